// The fd table: listed before freezing (to refuse unsupported kinds early), dumped through
// pidfd_getfd duplicates, and installed into the restored process at the saved numbers.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum FileTable {
    /// Every fd of `pid` with what /proc says about it.
    /// Whether any of `files` is a socket (TCP ones are dumped in repair mode).
    static func holdsSockets(_ files: [OpenFile]) -> Bool { files.contains { $0.link.hasPrefix("socket:") } }

    static func list(pid: PID) throws -> [OpenFile] { try list(pids: [pid])[pid] ?? [] }

    /// Every fd of each process; pipe ends are paired across all of them (a tree's pipes).
    static func list(pids: [PID]) throws -> [PID: [OpenFile]] {
        var result: [PID: [OpenFile]] = [:]
        var modes: [String: Set<Int32>] = [:]
        var masters: Set<Int32> = []
        for pid in pids {
            var files: [OpenFile] = []
            for fd in try ProcFile.numericEntries("/proc/\(pid)/fd") {
                guard let link = try? ProcFile.link("/proc/\(pid)/fd/\(fd)"), let info = try? FDInfo.read(pid: pid, fd: fd) else {
                    continue  // closed meanwhile
                }
                var st = stat()
                let mode = stat("/proc/\(pid)/fd/\(fd)", &st) == 0 ? st.st_mode : 0
                if link.hasPrefix("pipe:") { modes[link, default: []].insert(info.flags & O_ACCMODE) }
                if PtyMaster.isMasterLink(link), let index = info.lines["tty-index"].flatMap({ Int32($0) }) { masters.insert(index) }
                files.append(OpenFile(pid: pid, fd: fd, link: link, info: info, mode: mode, pipeAccessModes: [:]))
            }
            result[pid] = files
        }
        for pid in pids {
            result[pid] = result[pid]?.map {
                var f = $0
                f.pipeAccessModes = modes
                f.ptyMasters = masters
                return f
            }
        }
        try UnixSocketTable.attach(&result)
        return result
    }

    /// The first fd no kind can handle, as an error naming its number and kind.
    static func checkSupported(_ files: [OpenFile], pid: PID) throws {
        for f in files where FileKinds.kind(for: f) == nil {
            throw CheckpointError("cannot checkpoint pid \(pid)", reason: "fd \(f.fd) is \(FileKinds.describe(f)), which vOS does not support yet; the process was left running")
        }
    }

    static func dump(_ files: [OpenFile], pid: PID, blobs: BlobWriter) throws -> [FileRecord] {
        let pidfd = try Kernel.pidfdOpen(pid)
        defer { try? pidfd.close() }
        var records: [FileRecord] = []
        for f in files {
            guard let kind = FileKinds.kind(for: f) else { try checkSupported([f], pid: pid); continue }
            let local = try Kernel.pidfdGetfd(pidfd, f.fd, pid: pid)
            defer { try? local.close() }
            var r = FileRecord(fd: f.fd, kind: kind.tag, flags: f.info.flags, position: f.info.position, path: f.link)
            r.sameDescriptionAs = records.first { sameDescription(pid: pid, $0.fd, f.fd) }?.fd
            if r.sameDescriptionAs == nil {
                try step("dumping fd \(f.fd) (\(f.link))") { try kind.dump(f, local: local.rawValue, into: &r, blobs: blobs) }
            }
            records.append(r)
        }
        return records
    }

    /// `kcmp(KCMP_FILE)`: do two fds of one process share an open file description?
    static func sameDescription(pid: PID, _ a: Int32, _ b: Int32) -> Bool {
        vos_syscall6(312, Int(pid), Int(pid), 0, Int(a), Int(b), 0) == 0
    }

    /// Empties the stub's fd table (everything it inherited from vos), then installs every saved
    /// fd of process `owner` at its number, then lets kinds finish (epoll registrations).
    static func restore(_ records: [FileRecord], owner: PID, context: FileRestoreContext, task: RemoteTask) throws {
        let cloexec = UInt64(O_CLOEXEC)
        let high = UInt64((records.map(\.fd).max() ?? 0) + 1)
        // The stub inherited vos's pidfd: keep a copy above every saved fd, close the rest.
        let pidfd = try task.call("fcntl(F_DUPFD_CLOEXEC)", .fcntl, UInt64(context.vosPidfd), UInt64(F_DUPFD_CLOEXEC), high)
        if pidfd > 0 { try task.call("close_range", .closeRange, 0, pidfd - 1, 0) }
        try task.call("close_range", .closeRange, pidfd + 1, UInt64(UInt32.max), 0)
        for r in records.sorted(by: { $0.fd < $1.fd }) {
            let wantCloexec = r.flags & O_CLOEXEC != 0
            if let same = r.sameDescriptionAs, r.sameDescriptionProcess == nil {
                try task.call("dup3(\(same), \(r.fd))", .dup3, UInt64(same), UInt64(r.fd), wantCloexec ? cloexec : 0)
                continue
            }
            let local: Int32
            if let process = r.sameDescriptionProcess, let same = r.sameDescriptionAs {
                guard let shared = context.installed["\(process):\(same)"] else {
                    throw ImageError.inconsistent("fd \(r.fd) shares fd \(same) of pid \(process), which is not restored before it")
                }
                local = shared
            } else {
                guard let kind = FileKinds.kind(tag: r.kind) else {
                    throw ImageError.inconsistent("fd \(r.fd) has kind \"\(r.kind)\", unknown to this vOS")
                }
                local = try step("reopening fd \(r.fd) (\(r.path))") { try kind.open(r, context) }
            }
            context.installed["\(owner):\(r.fd)"] = local
            let got = try task.call("pidfd_getfd(fd \(r.fd))", .pidfdGetfd, pidfd, UInt64(local), 0)
            if got != UInt64(r.fd) {
                try task.call("dup3(\(got), \(r.fd))", .dup3, got, UInt64(r.fd), wantCloexec ? cloexec : 0)
                try task.call("close", .close, got)
            } else if !wantCloexec {
                try task.call("fcntl(F_SETFD)", .fcntl, got, UInt64(F_SETFD), 0)
            }
        }
        try task.call("close", .close, pidfd)
        for r in records where r.sameDescriptionAs == nil {
            try FileKinds.kind(tag: r.kind)?.finish(r, in: task)
        }
    }
}
