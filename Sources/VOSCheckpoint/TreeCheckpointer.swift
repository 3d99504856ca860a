// Checkpoint of a whole process tree (a capsule: its init and every descendant): freeze every
// process, collect each, find open files shared between processes, write tree.json. Any
// failure thaws every process and removes the partial image.
import Glibc
import VOSImage
import VOSLinux

/// What happens to the tree once its image is complete.
public enum CheckpointEnding {
    case kill, thaw
    /// Left frozen (and its network cut) for the caller, on this thread: a migration kills it
    /// only once the destination runs the copy, and thaws it if anything fails.
    case hold
}

public enum TreeCheckpointer {
    /// `capsule` is written into the image with the clocks of the root's time namespace.
    /// `network`: the capsule's own network, cut off while its sockets are dumped.
    public static func checkpoint(root: PID, imageDirectory: String, leaveRunning: Bool,
                                  capsule: (name: String, hostname: String, command: [String], tty: Bool)?,
                                  network: CheckpointNetwork? = nil, filesystem: CheckpointFilesystem? = nil) throws -> CheckpointSummary {
        let what = capsule.map { "cannot checkpoint capsule \"\($0.name)\"" } ?? "cannot checkpoint the tree of pid \(root)"
        let writer = try step(what) { try ImageWriter(directory: imageDirectory) }
        return try checkpoint(root: root, writer: writer, ending: leaveRunning ? .thaw : .kill, capsule: capsule, network: network,
                              filesystem: filesystem).summary
    }

    /// Writes the tree's image through `writer` (a directory or memory). With `.hold` the
    /// returned `HeldTree` owns the frozen processes.
    /// `pages` decides how memory is saved (a live migration sends only what changed).
    public static func checkpoint(root: PID, writer: ImageWriter, ending: CheckpointEnding,
                                  capsule: (name: String, hostname: String, command: [String], tty: Bool)?,
                                  network: CheckpointNetwork? = nil, filesystem: CheckpointFilesystem? = nil,
                                  pages: PageSaver? = nil) throws -> (summary: CheckpointSummary, held: HeldTree?) {
        let start = Kernel.monotonicNanos()
        let what = capsule.map { "cannot checkpoint capsule \"\($0.name)\"" } ?? "cannot checkpoint the tree of pid \(root)"
        var frozen: [FrozenProcess] = []
        var guardian: Guardian?
        func undo() {
            TCPSocket.leaveRepair(pids: frozen.map(\.pid))
            for f in frozen.reversed() { f.thaw() }
            network?.reconnect()
            guardian?.dismiss()
            writer.discard()
        }
        do {
            var members = try ProcessTree.discover(root: root)
            let live = members.filter { !$0.isZombie }.map(\.hostPID)
            for (pid, files) in try FileTable.list(pids: live) { try FileTable.checkSupported(files, pid: pid) }
            let oldAffinity = Kernel.pinCallingThread(to: (try? ProcStat.read("/proc/\(root)/stat").lastCPU) ?? 0)
            defer { if let oldAffinity { Kernel.restoreAffinity(oldAffinity) } }
            // Freeze, then look again: a process forked meanwhile is frozen in the next pass.
            var frozenPIDs = Set<PID>()
            while true {
                let fresh = members.filter { !$0.isZombie && !frozenPIDs.contains($0.hostPID) }
                if fresh.isEmpty { break }
                for m in fresh {
                    frozen.append(try step("\(what) while freezing pid \(m.hostPID)") { try FrozenProcess(pid: m.hostPID) })
                    frozenPIDs.insert(m.hostPID)
                }
                members = try ProcessTree.discover(root: root)
            }
            let frozenAt = Kernel.monotonicNanos()
            // The System V objects of the capsule's IPC namespace, while every process is frozen.
            let ipc = try step("\(what) while saving its System V IPC objects") {
                try SysVObjects.save(root: root, writer: writer, innerPIDs: Dictionary(members.map { ($0.hostPID, $0.shape.pid) }) { a, _ in a })
            }
            let files = try FileTable.list(pids: members.filter { !$0.isZombie }.map(\.hostPID))
            if network != nil || files.values.contains(where: FileTable.holdsSockets) {
                guardian = Guardian.start(pids: frozen.map(\.pid), interface: network?.interface)
            }
            // Before any socket is dumped: the old kernel must stop acknowledging data (probe 13).
            try network.map { n in try step("\(what) while cutting its network off") { try n.cut() } }

            var records: [ProcessRecord] = []
            var bytes: UInt64 = 0
            for m in members where !m.isZombie {
                guard let f = frozen.first(where: { $0.pid == m.hostPID }) else { continue }
                let stat = try ProcStat.read("/proc/\(m.hostPID)/stat")
                var (record, stored) = try step("\(what): pid \(m.shape.pid)") {
                    try Checkpointer.collect(pid: m.hostPID, frozen: f, stat: stat, writer: writer, pagesName: TreeRecord.pagesPart(m.shape.pid),
                                             files: files[m.hostPID], sysVSaved: ipc != nil, savedPID: m.shape.pid,
                                             pages: pages ?? ImagePageSaver())
                }
                var ids = ProcessTree.innerThreadIDs(hostPID: m.hostPID)
                ids[m.hostPID] = m.shape.pid
                record.translateIDs(ids)
                records.append(record)
                bytes += stored
            }
            markSharedFiles(&records, hosts: members.filter { !$0.isZombie }.map(\.hostPID))
            // Terminal foreground groups were read as host PIDs.
            let inner = Dictionary(uniqueKeysWithValues: members.map { ($0.hostPID, $0.shape.pid) })
            for r in records.indices {
                for i in records[r].files.indices {
                    if let g = records[r].files[i].foregroundGroup { records[r].files[i].foregroundGroup = inner[g] ?? 0 }
                }
            }
            for r in records { try writer.writeProcess(r, name: TreeRecord.processPart(r.pid)) }
            var info = try capsule.map { c in
                let clocks = try capsuleClocks(root: root, frozenAtNanos: frozenAt)
                return CapsuleInfo(name: c.name, hostname: c.hostname, command: c.command, monotonicNanos: clocks.monotonic,
                                   boottimeNanos: clocks.boottime, tty: c.tty)
            }
            info?.network = network?.info
            if let filesystem {
                // While every process is frozen: the files match the memory that uses them.
                let (archive, snapshot) = try step("\(what) while saving its filesystem") { () throws -> ([UInt8], [UInt8]?) in
                    let used = Set(records.flatMap { r in
                        r.memory.map(\.region.path).filter { $0.hasPrefix("/") && !$0.hasSuffix(RegularFile.deletedSuffix) }
                            + r.files.filter { $0.kind == RegularFile.tag && $0.blob == nil }.map(\.path) + [r.executable]
                    })
                    let (base, volumes) = try filesystem.describe(used.sorted())
                    info?.filesystem = filesystem.info
                    info?.filesystem?.baseFiles = filesystem.carryBase ? nil : base
                    info?.filesystem?.volumeFiles = volumes.isEmpty ? nil : volumes
                    info?.filesystem?.upperParent = filesystem.parent
                    return try filesystem.archiveUpper(filesystem.carryBase ? base.map(\.path) : [])
                }
                if let sent = filesystem.upperBase {
                    // Already in the store (and at the destination): listed, not copied again.
                    writer.addPageFile(name: sent.name, size: sent.size, chunks: sent.chunks)
                    info?.filesystem?.upperIsIncremental = true
                }
                try writer.writePart(CapsuleFilesystem.upperPart, archive)
                if let snapshot { try writer.writePart(CapsuleFilesystem.upperSnapshotPart, snapshot) }
            }
            try FaultInjection.check("checkpoint-before-manifest")
            try writer.finish(tree: TreeRecord(processes: members.map(\.shape), capsule: info, ipc: ipc), root: records[0], machine: MachineInfo.current())
            let held = HeldTree(frozen: frozen, network: network, guardian: guardian)
            let thawed = Kernel.monotonicNanos()
            switch ending {
            case .thaw: held.thaw()
            case .kill: held.kill()
            case .hold: break
            }
            let end = Kernel.monotonicNanos()
            let summary = CheckpointSummary(
                pid: root, image: writer.directory, threads: records.reduce(0) { $0 + $1.threads.count },
                files: records.reduce(0) { $0 + $1.files.count }, pagesStored: bytes / pageSize, bytesStored: bytes,
                frozenMilliseconds: Double(thawed - frozenAt) / 1e6, totalMilliseconds: Double(end - start) / 1e6,
                leftRunning: ending == .thaw)
            return (summary, ending == .hold ? held : nil)
        } catch {
            undo()
            if error is CheckpointError { throw error }
            throw CheckpointError(what, cause: error)
        }
    }

    /// Marks each fd that shares its open file description with an fd of an earlier process
    /// (inherited through fork: one offset, one pipe end). `kcmp(KCMP_FILE)` across processes,
    /// only between fds whose /proc links are the same.
    static func markSharedFiles(_ records: inout [ProcessRecord], hosts: [PID]) {
        for b in records.indices {
            for i in records[b].files.indices where records[b].files[i].sameDescriptionAs == nil {
                let fb = records[b].files[i]
                search: for a in 0..<b {
                    for fa in records[a].files where fa.path == fb.path && fa.sameDescriptionAs == nil {
                        if vos_kcmp_file(hosts[a], hosts[b], fa.fd, fb.fd) {
                            records[b].files[i].sameDescriptionAs = fa.fd
                            records[b].files[i].sameDescriptionProcess = records[a].pid
                            break search
                        }
                    }
                }
            }
        }
    }

    /// The root's CLOCK_MONOTONIC and CLOCK_BOOTTIME at the freeze: host clocks plus the offsets
    /// of its time namespace (/proc/PID/timens_offsets).
    static func capsuleClocks(root: PID, frozenAtNanos: UInt64) throws -> (monotonic: Int64, boottime: Int64) {
        var offsets: [String: Int64] = [:]
        for line in try ProcFile.text("/proc/\(root)/timens_offsets").split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.count == 3, let s = Int64(f[1]), let ns = Int64(f[2]) { offsets[String(f[0])] = s * 1_000_000_000 + ns }
        }
        let bootNow = Kernel.boottimeNanos()
        let elapsed = Int64(Kernel.monotonicNanos() - frozenAtNanos)
        return (Int64(frozenAtNanos) + (offsets["monotonic"] ?? 0), Int64(bootNow) - elapsed + (offsets["boottime"] ?? 0))
    }
}

/// A checkpointed tree still frozen, its network cut: `kill()` once its copy runs elsewhere,
/// `thaw()` to let it go on. Only the thread that froze it may call either (ptrace).
public final class HeldTree {
    private var frozen: [FrozenProcess]
    private let network: CheckpointNetwork?
    /// Undoes the network cut and the sockets' repair mode should vos die while it holds the tree.
    private let guardian: Guardian?

    init(frozen: [FrozenProcess], network: CheckpointNetwork?, guardian: Guardian?) {
        self.frozen = frozen
        self.network = network
        self.guardian = guardian
    }

    public var pids: [PID] { frozen.map(\.pid) }

    public func thaw() {
        TCPSocket.leaveRepair(pids: frozen.map(\.pid))
        for f in frozen.reversed() { f.thaw() }
        network?.reconnect()
        guardian?.dismiss()
        frozen = []
    }

    /// Every process killed at once (the frozen time ends there), then reaped by us, their
    /// tracer: descendants first, the root (whose parent is outside the tree) last.
    public func kill() {
        guard !frozen.isEmpty else { return }
        for f in frozen { try? Kernel.kill(f.pid, SIGKILL) }
        for f in frozen.dropFirst() { f.kill() }
        frozen.first?.kill()
        guardian?.dismiss()
        frozen.first?.waitUntilReaped()
        frozen = []
    }
}

/// A capsule's own filesystem during its checkpoint: recorded in the image, its upper layer
/// archived while the capsule is frozen.
public struct CheckpointFilesystem {
    public var info: CapsuleFilesystem
    /// The base's files and the volumes' files among the paths the processes map or hold open.
    public var describe: ([String]) throws -> (base: [CapsuleFilesystem.BaseFile], volumes: [CapsuleFilesystem.VolumeFile])
    /// The upper layer as an archive, with these base files added to it, and tar's
    /// listed-incremental state after it (nil for a plain archive).
    public var archiveUpper: ([String]) throws -> ([UInt8], [UInt8]?)
    /// `--carry-base`: the base files travel in the upper layer instead of being checked.
    public var carryBase: Bool
    /// A first copy of the upper layer already in the image's store (a live migration's), which
    /// `archiveUpper` continues incrementally.
    public var upperBase: ImageManifest.Part?
    /// `--parent`: the image whose upper layer this one's continues (absolute path).
    public var parent: String?

    public init(info: CapsuleFilesystem, carryBase: Bool,
                describe: @escaping ([String]) throws -> (base: [CapsuleFilesystem.BaseFile], volumes: [CapsuleFilesystem.VolumeFile]),
                archiveUpper: @escaping ([String]) throws -> ([UInt8], [UInt8]?)) {
        self.info = info
        self.carryBase = carryBase
        self.describe = describe
        self.archiveUpper = archiveUpper
    }
}

/// A capsule's network during its checkpoint: recorded in the image, cut off (its veth down)
/// after the freeze, reconnected when the capsule goes on (`--leave-running`, or a failure).
public struct CheckpointNetwork {
    public var info: CapsuleNetworkInfo
    /// The capsule's host-side veth, which `cut` takes down (a guardian brings it up if vos dies).
    public var interface: String
    public var cut: () throws -> Void
    public var reconnect: () -> Void

    public init(info: CapsuleNetworkInfo, interface: String, cut: @escaping () throws -> Void, reconnect: @escaping () -> Void) {
        self.info = info
        self.interface = interface
        self.cut = cut
        self.reconnect = reconnect
    }
}

func vos_kcmp_file(_ a: PID, _ b: PID, _ fa: Int32, _ fb: Int32) -> Bool {
    vos_syscall6(312, Int(a), Int(b), 0, Int(fa), Int(fb), 0) == 0
}

import CVOSShim
