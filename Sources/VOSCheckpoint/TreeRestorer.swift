// Restore of a process tree into new namespaces (a capsule): every process comes back under its
// saved PID with its saved parent, session and group. Stubs are made first, each forked by an
// injected clone3 in its parent's stub with set_tid = its PID; then each stub becomes its
// process; then all are released together. Any failure kills every stub.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

public struct TreeRestoreSummary: Codable, Sendable {
    /// The root's PID on the host (for a capsule: its init).
    public var rootHostPID: PID
    public var processes: Int
    public var threads: Int
    public var milliseconds: Double
}

public enum TreeRestorer {
    /// `prepare` runs once the namespaces exist, before any process is rebuilt (a capsule's
    /// network is set up there: its sockets are made inside it).
    /// `lazy`: post-copy for every process (see `Restorer.restoreLazily`): the server serves
    /// their private anonymous memory after release; wait for it with `waitUntilComplete()`.
    /// `root`: the capsule's own filesystem, entered by the root stub before anything else.
    public static func restore(image: ImageReader, namespaces: NamespaceSet, hostname: String, root ownRoot: CapsuleRoot? = nil,
                               prepare: (PID) throws -> Void = { _ in }, lazy: LazyPageServer? = nil) throws -> TreeRestoreSummary {
        let start = Kernel.monotonicNanos()
        guard let tree = image.tree else { throw CheckpointError("cannot restore", reason: "the image holds no process tree") }
        let files = try FileRestoreContext(image: image)
        defer { files.closeAll() }
        let offsets = tree.capsule.map { c in
            (monotonic: c.monotonicNanos - Int64(Kernel.monotonicNanos()), boottime: c.boottimeNanos - Int64(Kernel.boottimeNanos()))
        }
        let root = try step("cannot create the capsule's namespaces") {
            try NamespaceStub.spawn(namespaces, hostname: hostname, timeOffsets: offsets, devpts: tree.capsule?.tty == true, root: ownRoot)
        }
        let rootPID = root.tid
        var stubs: [PID: Tracee] = [:]
        do {
            stubs[tree.processes[0].pid] = root
            if namespaces.contains(.net) { files.networkNamespace = files.track(try NetworkNamespace.open(of: rootPID)) }
            try prepare(rootPID)
            files.rootPID = rootPID
            files.ownRoot = ownRoot != nil
            if let ipc = tree.ipc { try step("cannot restore the capsule's System V IPC objects") { try SysVObjects.restore(ipc, image: image, root: rootPID) } }
            let oldAffinity = Kernel.pinTogether(stub: rootPID)
            defer { if let oldAffinity { Kernel.restoreAffinity(oldAffinity) } }
            try forkStubs(tree, into: &stubs)
            try setGroups(tree, stubs)
            if let ipc = tree.ipc { try step("setting the last PIDs of System V semaphores") { try SysVObjects.setLastPIDs(ipc, stubs: stubs) } }
            var built: [BuiltProcess] = []
            for p in image.processes {
                guard let tracee = stubs[p.record.pid] else { throw ImageError.inconsistent("pid \(p.record.pid) is not in the tree") }
                built.append(try step("cannot restore pid \(p.record.pid) of the tree") {
                    try ProcessBuilder.build(tracee: tracee, image: p, files: files, newPID: false, newSession: false, lazy: lazy)
                })
            }
            if let ipc = tree.ipc { try step("removing System V segments marked for removal") { try SysVObjects.removeMarked(ipc, root: rootPID) } }
            for b in built.reversed() { try b.release() }
            lazy?.released()
            return TreeRestoreSummary(rootHostPID: rootPID, processes: image.processes.count,
                                      threads: image.processes.reduce(0) { $0 + $1.record.threads.count },
                                      milliseconds: Double(Kernel.monotonicNanos() - start) / 1e6)
        } catch {
            // The root is a PID namespace's init: its death kills every process in it, but it is
            // reaped only once they are, and those we trace must be reaped by us first.
            for t in stubs.values { Glibc.kill(t.tid, SIGKILL) }
            Glibc.kill(rootPID, SIGKILL)
            Kernel.reapAll()
            lazy?.abort()
            if error is CheckpointError { throw error }
            throw CheckpointError("cannot restore the process tree", cause: error)
        }
    }

    /// A stub's task for injected calls before it is transformed: its vdso's syscall
    /// instruction, scratch below its stack pointer.
    static func stubTask(_ tracee: Tracee) throws -> RemoteTask {
        let regs = try tracee.registers()
        let regions = try MemoryMap.readRanges(pid: tracee.tid)
        return RemoteTask(tracee: tracee, pid: tracee.tid, savedRegisters: regs, syscallSite: try SyscallSite.find(pid: tracee.tid, in: regions),
                          scratch: RemoteAddress((regs.rsp - 1024) & ~15), scratchSize: 512)
    }

    /// Every process after the root, forked from its parent's stub under its saved PID;
    /// session leaders call setsid before they fork their own children; zombies exit at once.
    static func forkStubs(_ tree: TreeRecord, into stubs: inout [PID: Tracee]) throws {
        var tasks: [PID: RemoteTask] = [:]
        for m in tree.processes.dropFirst() {
            guard let parent = stubs[m.parent] else {
                throw ImageError.inconsistent("pid \(m.pid)'s parent \(m.parent) comes after it in the tree")
            }
            if tasks[m.parent] == nil { tasks[m.parent] = try stubTask(parent) }
            let task = tasks[m.parent]!
            var args = vos_clone_args()
            args.exit_signal = UInt64(SIGCHLD)
            let tidAt = try task.stage(m.pid, at: 128)
            args.set_tid = tidAt.raw
            args.set_tid_size = 1
            let at = try task.stage(args, at: 0)
            let r = try task.rawCall("clone3(pid \(m.pid))", SyscallNumber.clone3.rawValue, [at.raw, UInt64(MemoryLayout<vos_clone_args>.size)])
            if r == -17 { throw IDTaken.error(m.pid, what: "pid") }
            guard r > 0, let host = task.lastClonedTID else {
                throw SyscallError(call: "clone3 (injected)", errno: .init(rawValue: Int32(-r)), subject: "pid \(m.pid) of the tree")
            }
            let child = Tracee.adopt(host)
            _ = try child.waitEventStop()
            stubs[m.pid] = child
            if let status = m.zombieStatus {
                try makeZombie(child, status: status)
                continue
            }
            if m.session == m.pid { try stubTask(child).call("setsid", .setsid) }
        }
    }

    /// Process groups: leaders make their own group first, then members join theirs.
    static func setGroups(_ tree: TreeRecord, _ stubs: [PID: Tracee]) throws {
        // Group 0: a group outside the tree's PID namespace, kept as inherited from the root.
        let live = tree.processes.filter { $0.zombieStatus == nil && $0.session != $0.pid && $0.processGroup != 0 }
        for m in live.filter({ $0.processGroup == $0.pid }) + live.filter({ $0.processGroup != $0.pid }) {
            guard let t = stubs[m.pid] else { continue }
            try step("joining pid \(m.pid) to process group \(m.processGroup)") {
                try stubTask(t).call("setpgid", .setpgid, 0, UInt64(m.processGroup == m.pid ? 0 : m.processGroup))
            }
        }
    }

    /// A zombie: the stub exits with the saved status (a death by a signal comes back as SIGKILL),
    /// and stays a zombie until its restored parent reaps it.
    static func makeZombie(_ t: Tracee, status: Int32) throws {
        if status & 0x7f == 0 {
            let task = try stubTask(t)
            var regs = task.savedRegisters
            regs.rip = task.syscallSite.raw
            regs.rax = 231  // exit_group
            regs.rdi = UInt64((status >> 8) & 0xff)
            regs.origRax = UInt64.max
            try t.setRegisters(regs)
            try t.cont()
        } else {
            Glibc.kill(t.tid, SIGKILL)
        }
        // We are its tracer: collect the exit so that the zombie passes to its real parent.
        while true {
            guard let stop = try t.wait() else { continue }
            if case .exited = stop { return }
            if case .killed = stop { return }
            try t.cont()
        }
    }
}
