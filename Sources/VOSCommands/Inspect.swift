// `vos inspect DIR [--json]`: what an image holds, readable.
import ArgumentParser
import Foundation
import VOSImage
import VOSLinux

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what an image holds.")

    @Argument(help: "The image directory.")
    var image: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        let reader: ImageReader
        do { reader = try ImageReader(directory: image) } catch { throw CleanError("cannot inspect \(image): \(error)") }
        let view = ImageView(reader)
        if output.json {
            print(try jsonString(view))
        } else {
            print(view.text, terminator: "")
        }
    }
}

/// An error printed as is.
struct CleanError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The parts of an image a person looks at (xstate bytes and siginfo raw bytes summarised).
struct ImageView: Encodable {
    struct Thread: Encodable {
        var tid: PID, name: String, rip: String, rsp: String, fsBase: String, inSyscall: Int64?
        var xstateBytes: Int, signalMask: String, pendingSignals: [Int32], rseq: String?, alternateStack: String?
    }
    struct Mapping: Encodable {
        var start: String, end: String, permissions: String, path: String, sizeBytes: UInt64, storedBytes: UInt64, flags: [String]
    }
    struct File: Encodable {
        var fd: Int32, kind: String, path: String, flags: String, position: UInt64, note: String?
    }
    var formatVersion: String, toolVersion: String, created: String
    var machine: MachineInfo
    var pid: PID, commandLine: [String], executable: String, cwd: String, umask: String
    var threads: [Thread]
    var memory: [Mapping]
    var storedBytes: UInt64
    var files: [File]
    var signalActions: [SignalAction]
    var sharedPendingSignals: [Int32]
    var intervalTimers: [IntervalTimer], posixTimers: [PosixTimer]
    var limits: [ResourceLimit]
    /// For a capsule image: the capsule and every process of its tree (IDs inside it).
    var capsule: CapsuleInfo?
    var tree: [TreeMember]?

    struct TreeMember: Encodable {
        var pid: PID, parent: PID, processGroup: PID, session: PID, zombieStatus: Int32?, command: String, threads: Int
    }

    init(_ r: ImageReader) {
        let m = r.manifest, p = r.process
        capsule = r.tree?.capsule
        tree = r.tree.map { t in
            t.processes.map { m in
                let record = r.processes.first { $0.record.pid == m.pid }?.record
                return TreeMember(pid: m.pid, parent: m.parent, processGroup: m.processGroup, session: m.session,
                                  zombieStatus: m.zombieStatus, command: record?.commandLine.joined(separator: " ") ?? "(zombie)",
                                  threads: record?.threads.count ?? 0)
            }
        }
        formatVersion = m.formatVersion.description
        toolVersion = m.toolVersion
        created = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: m.created))
        machine = m.machine
        pid = p.pid
        commandLine = p.commandLine
        executable = p.executable
        cwd = p.cwd
        umask = String(format: "%04o", p.umask)
        threads = p.threads.map { t in
            let inSyscall = Int64(bitPattern: t.registers.origRax)
            return Thread(
                tid: t.tid, name: t.name, rip: hex(t.registers.rip), rsp: hex(t.registers.rsp), fsBase: hex(t.registers.fsBase),
                inSyscall: inSyscall >= 0 ? inSyscall : nil, xstateBytes: t.xstate.count, signalMask: hex(t.signalMask),
                pendingSignals: t.pendingSignals.map(signalNumber), rseq: t.rseq.map { hex($0.area) },
                alternateStack: t.alternateStack.map { "\(hex($0.base)) size \($0.size)" })
        }
        memory = p.memory.map {
            Mapping(start: hex($0.region.start.raw), end: hex($0.region.end.raw), permissions: $0.region.permissions, path: $0.region.path,
                    sizeBytes: $0.region.size, storedBytes: $0.storedPages * pageSize, flags: $0.region.flags)
        }
        storedBytes = p.memory.reduce(0) { $0 + $1.storedPages * pageSize }
        files = p.files.map { f in
            var note: String?
            if let i = f.inheritedFrom { note = "connected on restore to the restoring command's \(["stdin", "stdout", "stderr"][Int(i)])" }
            if let s = f.sameDescriptionAs { note = "same open file as fd \(s)" }
            if let d = f.pipeData, !d.isEmpty { note = "\(d.count) unread bytes saved" }
            if f.blob != nil { note = "deleted while open; contents saved" }
            if let t = f.epollTargets { note = "watches fds \(t.map { String($0.fd) }.joined(separator: ","))" }
            if let c = f.eventfdCount { note = "count \(c)" }
            if f.unixInode != nil { note = unixNote(f) }
            return File(fd: f.fd, kind: f.kind, path: f.path, flags: String(f.flags, radix: 8), position: f.position, note: note)
        }
        signalActions = p.signalActions
        sharedPendingSignals = p.sharedPendingSignals.map(signalNumber)
        intervalTimers = p.itimers
        posixTimers = p.posixTimers
        limits = p.limits
    }

    var text: String {
        var s = "image format \(formatVersion), written by vos \(toolVersion) at \(created)\n"
        s += "machine: Linux \(machine.kernelRelease) \(machine.architecture), \(machine.cpuModel)\n"
        s += "cpu features: \(machine.cpuFeatures.joined(separator: " "))\n"
        if let x = machine.xsaveFeatures, let size = machine.xsaveSize {
            s += "xsave components: 0x\(String(x, radix: 16)), \(size) bytes\n"
        }
        if let c = capsule {
            s += "capsule: \(c.name), hostname \(c.hostname)\(c.tty == true ? ", with a terminal" : ""), command \(c.command.joined(separator: " "))\n"
        }
        if let tree {
            s += "process tree (\(tree.count) processes; PIDs inside the capsule):\n"
            for m in tree {
                let what = m.zombieStatus.map { "zombie, wait status \($0)" } ?? "\(m.threads) thread(s), \(m.command)"
                s += "  pid \(m.pid) parent \(m.parent) group \(m.processGroup) session \(m.session): \(what)\n"
            }
            s += "root "
        }
        s += "process: pid \(pid), \(commandLine.joined(separator: " "))\n"
        s += "  executable \(executable), cwd \(cwd), umask \(umask)\n"
        s += "threads (\(threads.count)):\n"
        for t in threads {
            s += "  tid \(t.tid) \"\(t.name)\": rip \(t.rip) rsp \(t.rsp) fs_base \(t.fsBase)"
            if let n = t.inSyscall { s += ", in syscall \(n)" }
            s += ", xstate \(t.xstateBytes) bytes, sigmask \(t.signalMask)"
            if !t.pendingSignals.isEmpty { s += ", pending \(t.pendingSignals)" }
            if let r = t.rseq { s += ", rseq \(r)" }
            if let a = t.alternateStack { s += ", sigaltstack \(a)" }
            s += "\n"
        }
        s += "memory (\(memory.count) mappings, \(storedBytes) bytes stored):\n"
        for m in memory {
            s += "  \(m.start)-\(m.end) \(m.permissions) \(String(m.sizeBytes / 1024).leftPad(8)) KiB, stored \(String(m.storedBytes / 1024).leftPad(8)) KiB  \(m.path)\n"
        }
        s += "files (\(files.count)):\n"
        for f in files {
            s += "  fd \(f.fd): \(f.kind) \(f.path) flags 0\(f.flags) pos \(f.position)"
            if let n = f.note { s += " (\(n))" }
            s += "\n"
        }
        s += "signals: \(signalActions.count) non-default disposition(s)"
        for a in signalActions { s += " \(a.signal):\(a.handler == 1 ? "ignored" : hex(a.handler))" }
        if !sharedPendingSignals.isEmpty { s += "; pending for the process: \(sharedPendingSignals)" }
        s += "\n"
        if !intervalTimers.isEmpty || !posixTimers.isEmpty {
            s += "timers: \(intervalTimers.count) interval, \(posixTimers.count) POSIX\n"
        }
        return s
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func signalNumber(_ info: [UInt8]) -> Int32 {
    info.count >= 4 ? info.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } : 0
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

/// "stream, connected to socket:[12], 5000 unread bytes", "datagram, bound to /run/x.sock, 3 unread datagrams".
private func unixNote(_ f: FileRecord) -> String {
    var parts = [[1: "stream", 2: "datagram", 5: "seqpacket"][f.unixType ?? 0] ?? "type \(f.unixType ?? 0)"]
    if let name = f.unixName {
        let text = name.first == 0 ? "@" + String(decoding: name.dropFirst(), as: UTF8.self) : String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
        parts.append(f.unixBacklog != nil ? "listening on \(text), backlog \(f.unixBacklog ?? 0)" : "named \(text)")
    }
    if let peer = f.unixPeerInode { parts.append(peer == 0 ? "its peer closed" : "connected to socket:[\(peer)]") }
    if let q = f.unixQueue {
        parts.append(f.unixType == 1 ? "\(q.reduce(0) { $0 + $1.wrappedValue.count }) unread bytes" : "\(q.count) unread \(f.unixType == 5 ? "records" : "datagrams")")
    }
    if let m = f.unixShutdown { parts.append(["", "shut down for reading", "shut down for writing", "shut down"][Int(m & 3)]) }
    return parts.joined(separator: ", ")
}
