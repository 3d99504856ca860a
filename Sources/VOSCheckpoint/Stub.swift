// The restore stub: a child of vos that becomes the restored process. It is cloned under the
// saved PID (clone3 set_tid), seized at once, then execs vos's own executable and is taken over
// at the exec stop, before the dynamic loader runs: it then holds four mappings instead of a
// copy of the restorer's whole address space, which would take milliseconds (and more as the
// restorer grows) to unmap.
import CVOSShim
import Glibc
import VOSLinux

enum Stub {
    /// Options every stub is seized with. `PTRACE_O_EXITKILL`: if vos dies, the half-built
    /// process dies with it.
    static let options = Int(VOS_PTRACE_O_TRACECLONE | VOS_PTRACE_O_TRACEFORK | VOS_PTRACE_O_TRACEEXEC | VOS_PTRACE_O_EXITKILL)

    /// Creates the stub under the saved PID (or any PID when `newPID`), stopped and seized.
    static func spawn(pid: PID, newPID: Bool) throws -> Tracee {
        let gate = try Gate()
        let exec = try Exec()
        var tid: Int32 = pid
        var args = vos_clone_args()
        args.exit_signal = UInt64(SIGCHLD)
        let r = withUnsafeMutablePointer(to: &tid) { tp in
            if !newPID {
                args.set_tid = UInt64(UInt(bitPattern: tp))
                args.set_tid_size = 1
            }
            return withUnsafeMutablePointer(to: &args) { vos_syscall6(435, Int(bitPattern: $0), MemoryLayout<vos_clone_args>.size, 0, 0, 0, 0) }
        }
        if r == 0 {
            // The child: only async-signal-safe calls (vos has other threads).
            gate.pass()
            exec.run()
        }
        if r < 0 {
            let e = vos_errno()
            if !newPID && e == EEXIST { throw IDTaken.error(pid, what: "pid") }
            throw SyscallError(call: "clone3", errno: .init(rawValue: e), subject: "the restore stub")
        }
        return try takeOver(PID(r), gate: gate)
    }

    /// Seizes a cloned stub waiting at its gate, lets it exec, and collects the exec stop; every
    /// signal is blocked then (no signal may interrupt an injection; clones inherit the mask).
    static func takeOver(_ pid: PID, gate: Gate) throws -> Tracee {
        let tracee: Tracee
        do { tracee = try Tracee.seize(pid, options: options) } catch {
            discard(pid)
            throw error
        }
        gate.open()
        do {
            _ = try tracee.waitEventStop()
            // The exec stop comes from inside execve: finish it (its syscall-exit stop), so that
            // injected calls start from outside any syscall.
            try tracee.runToSyscallStop()
            guard try tracee.wait() == .syscall else {
                throw CheckpointError("cannot start the restore stub", reason: "no syscall-exit stop after its execve")
            }
            try tracee.setSignalMask(FrozenProcess.injectionSignalMask)
        } catch {
            discard(pid)
            throw CheckpointError("cannot start the restore stub", cause: error)
        }
        return tracee
    }

    /// A pipe the child waits on before it execs, so that it is seized before the exec.
    struct Gate {
        let fds: [Int32]

        init() throws {
            var p: [Int32] = [0, 0]
            try checked("pipe2", "the restore stub's gate") { vos_pipe2(&p, O_CLOEXEC) }
            fds = p
        }

        /// In the child: blocks until the parent opens the gate.
        func pass() {
            var byte: UInt8 = 0
            while read(fds[0], &byte, 1) < 0 && errno == EINTR {}
        }

        func open() {
            var byte: UInt8 = 1
            _ = write(fds[1], &byte, 1)
            close(fds[0])
            close(fds[1])
        }
    }

    /// execve of vos's own executable, prepared before the clone (no allocation in the child).
    struct Exec {
        let path: UnsafeMutablePointer<CChar>
        let argv: [UnsafeMutablePointer<CChar>?]
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]

        init() throws {
            path = strdup(try ProcFile.link("/proc/self/exe"))!
            argv = [strdup("vos-restore-stub"), nil]
        }

        func run() -> Never {
            argv.withUnsafeBufferPointer { a in envp.withUnsafeBufferPointer { e in _ = execve(path, a.baseAddress!, e.baseAddress!) } }
            _exit(127)
        }
    }

    /// Kills and reaps a stub that will not become the restored process.
    static func discard(_ pid: PID) {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = vos_waitpid_all(pid, &status, 0)
    }
}

/// The error for a saved PID or TID that another process holds now.
enum IDTaken {
    static func error(_ id: PID, what: String) -> CheckpointError {
        CheckpointError(
            "cannot restore \(what) \(id)",
            reason: "\(what) \(id) is taken by \(holder(of: id)); restore inside a capsule (its PIDs live in a namespace of "
                + "their own), or pass --new-pid to restore with new IDs")
    }

    /// "pid 123 (cmd args)" for the process that owns `id` (a process or one of its threads).
    static func holder(of id: PID) -> String {
        let tgid = ProcStatus.number(pid: id, "Tgid")
        let owner = tgid > 0 ? PID(tgid) : id
        let cmd = ProcessState.commandLine(pid: owner).joined(separator: " ")
        let state = (try? ProcStat.read("/proc/\(owner)/stat").state) == "Z" ? ", a zombie not yet reaped by its parent" : ""
        return "pid \(owner) (\(cmd.isEmpty ? "?" : cmd)\(state))"
    }
}

extension Registers {
    /// Registers to resume a thread that was stopped inside a syscall, as the kernel itself
    /// would have resumed it (probe 11): interrupted calls that restart are re-issued with their
    /// original arguments; a restart block (which belonged to the dead task) is re-issued for
    /// sleeps and futex waits, and becomes EINTR otherwise. orig_rax = -1 keeps the kernel
    /// from applying its own restart logic on top.
    func resumable() -> Registers {
        var r = self
        let inSyscall = Int64(bitPattern: origRax) >= 0
        let ret = Int64(bitPattern: rax)
        if inSyscall {
            switch ret {
            case -512, -513, -514:  // ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND
                r.rax = origRax
                r.rip -= 2
            case -516:  // ERESTART_RESTARTBLOCK
                if [35, 230, 202].contains(origRax) {  // nanosleep, clock_nanosleep, futex
                    r.rax = origRax
                    r.rip -= 2
                } else {
                    r.rax = UInt64(bitPattern: -4)  // EINTR
                }
            default: break
            }
        }
        r.origRax = UInt64.max
        return r
    }
}

/// The root stub of a tree restored into new namespaces (a capsule's init).
enum NamespaceStub {
    /// clone3 into `namespaces`; the child makes its mounts private, mounts the new PID
    /// namespace's /proc and sets the hostname itself (async-signal-safe calls only: vos has
    /// other threads), reports over a pipe, then waits to be taken over. With `timeOffsets`, vos
    /// first enters a new time namespace for its children with those CLOCK_MONOTONIC and
    /// CLOCK_BOOTTIME offsets (they can only be set before any process is in it: probe 10).
    /// `devpts`: mount a devpts instance of its own (a capsule with a terminal).
    static func spawn(_ namespaces: NamespaceSet, hostname: String, timeOffsets: (monotonic: Int64, boottime: Int64)?,
                      devpts: Bool = false) throws -> Tracee {
        if let t = timeOffsets { try enterTimeNamespace(t) }
        var ready: [Int32] = [0, 0]
        try checked("pipe2", "the namespace stub's readiness pipe") { vos_pipe2(&ready, O_CLOEXEC) }
        defer { close(ready[0]) }
        let gate = try Stub.Gate()
        let exec = try Stub.Exec()
        let host = strdup(hostname)!, proc = strdup("proc")!, procPath = strdup("/proc")!, root = strdup("/")!
        let pts = strdup("devpts")!, ptsPath = strdup("/dev/pts")!, ptsOptions = strdup("newinstance,ptmxmode=0666,mode=0620")!
        let ptmx = strdup("/dev/pts/ptmx")!, ptmxPath = strdup("/dev/ptmx")!
        defer { for p in [host, proc, procPath, root, pts, ptsPath, ptsOptions, ptmx, ptmxPath] { free(p) } }
        var args = vos_clone_args()
        args.flags = namespaces.subtracting(.time).rawValue
        args.exit_signal = UInt64(SIGCHLD)
        let r = withUnsafeMutablePointer(to: &args) { vos_syscall6(435, Int(bitPattern: $0), MemoryLayout<vos_clone_args>.size, 0, 0, 0, 0) }
        if r == 0 {
            var step: UInt8 = 0
            if mount(nil, root, nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 { step = 1 }
            if step == 0 && mount(proc, procPath, proc, UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 { step = 2 }
            if step == 0 && sethostname(host, strlen(host)) != 0 { step = 3 }
            if step == 0 && devpts && mount(pts, ptsPath, pts, UInt(MS_NOSUID | MS_NOEXEC), ptsOptions) != 0 { step = 4 }
            if step == 0 && devpts && mount(ptmx, ptmxPath, nil, UInt(MS_BIND), nil) != 0 { step = 5 }
            write(ready[1], &step, 1)
            gate.pass()
            exec.run()
        }
        close(ready[1])
        if r < 0 { throw SyscallError(call: "clone3(CLONE_NEW*)", errno: .init(rawValue: vos_errno()), subject: "the namespace stub") }
        var step: UInt8 = 255
        _ = read(ready[0], &step, 1)
        if step != 0 {
            gate.open()
            Stub.discard(PID(r))
            let what = [1: "mount(/, MS_REC|MS_PRIVATE)", 2: "mount(proc, /proc)", 3: "sethostname(\(hostname))", 4: "mount(devpts, newinstance)", 5: "mount(/dev/pts/ptmx on /dev/ptmx)"][Int(step)] ?? "its setup"
            throw CheckpointError("cannot prepare the capsule's namespaces", reason: "\(what) failed in the new namespaces")
        }
        return try Stub.takeOver(PID(r), gate: gate)
    }

    /// unshare(CLONE_NEWTIME) for the calling thread's future children, with the offsets.
    static func enterTimeNamespace(_ t: (monotonic: Int64, boottime: Int64)) throws {
        try checked("unshare(CLONE_NEWTIME)", "vos") { vos_syscall6(272, Int(NamespaceSet.time.rawValue), 0, 0, 0, 0, 0) }
        func line(_ name: String, _ ns: Int64) -> String {
            let s = ns >= 0 ? ns / 1_000_000_000 : -((-ns + 999_999_999) / 1_000_000_000)
            return "\(name) \(s) \(ns - s * 1_000_000_000)\n"
        }
        let text = line("monotonic", t.monotonic) + line("boottime", t.boottime)
        // /proc/self is the thread group leader: restores run on vos's main thread.
        let path = "/proc/self/timens_offsets"
        let fd = try checked("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        try checked("write", "\(path) (\(text.split(separator: "\n").joined(separator: ", ")))") {
            text.withCString { write(fd, $0, strlen($0)) }
        }
    }
}
