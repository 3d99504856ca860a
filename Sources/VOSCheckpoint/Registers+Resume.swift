// How a restored thread's registers resume an interrupted syscall.
import VOSLinux

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
