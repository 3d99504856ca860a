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

        /// In the child: blocks until the parent opens the gate. The child drops its own copy
        /// of the write end first: should vos die before opening it (kill -9), the read sees the
        /// end of the pipe and the child exits instead of waiting forever, untraced.
        func pass() {
            close(fds[1])
            var byte: UInt8 = 0
            var n = read(fds[0], &byte, 1)
            while n < 0 && errno == EINTR { n = read(fds[0], &byte, 1) }
            if n != 1 { _exit(127) }
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
