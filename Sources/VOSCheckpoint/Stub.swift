// The restore stub: a child of vos that does nothing but wait to be taken over. It is made with
// clone3 asking for the saved PID first (free when the original is gone), else any PID.
import CVOSShim
import Glibc
import VOSLinux

enum Stub {
    /// Creates the stub; returns its PID and whether it got the saved one.
    static func spawn(preferring pid: PID) throws -> (pid: PID, keptPID: Bool) {
        if let child = try clone(setTID: pid) { return (child, true) }
        guard let child = try clone(setTID: nil) else {
            throw CheckpointError("cannot create the restore stub", reason: "clone3 returned no child")
        }
        return (child, false)
    }

    /// nil when the requested PID is taken (EEXIST) or not allowed (EINVAL, EPERM).
    private static func clone(setTID: PID?) throws -> PID? {
        var tid: Int32 = setTID ?? 0
        var args = vos_clone_args()
        args.exit_signal = UInt64(SIGCHLD)
        let r = withUnsafeMutablePointer(to: &tid) { tp in
            if setTID != nil {
                args.set_tid = UInt64(UInt(bitPattern: tp))
                args.set_tid_size = 1
            }
            return withUnsafeMutablePointer(to: &args) { vos_syscall6(435, Int(bitPattern: $0), MemoryLayout<vos_clone_args>.size, 0, 0, 0, 0) }
        }
        if r == 0 {
            // The child: wait, doing nothing of its own, until the restorer replaces everything.
            while true { pause() }
        }
        if r > 0 { return PID(r) }
        let e = vos_errno()
        if setTID != nil && (e == EEXIST || e == EINVAL || e == EPERM || e == EBUSY) { return nil }
        throw SyscallError(call: "clone3", errno: .init(rawValue: e), subject: "the restore stub")
    }

    /// Kills and reaps a stub that will not become the restored process.
    static func discard(_ pid: PID) {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = vos_waitpid_all(pid, &status, 0)
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
