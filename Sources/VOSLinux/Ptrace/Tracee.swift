// One ptrace-seized thread: every ptrace request vOS makes goes through here.
import CVOSShim
import Glibc
import SystemPackage

/// What a `waitpid` on a tracee reported.
public enum TraceeStop: Equatable, Sendable {
    /// A group-stop or `PTRACE_INTERRUPT` stop (`PTRACE_EVENT_STOP`), or the stop right after
    /// an execve (`PTRACE_EVENT_EXEC`, with `PTRACE_O_TRACEEXEC`).
    case eventStop
    /// `PTRACE_EVENT_CLONE` or `PTRACE_EVENT_FORK`: a new task; `eventMessage()` gives its ID.
    case clone
    /// A syscall-entry or syscall-exit stop (`PTRACE_SYSCALL` with `PTRACE_O_TRACESYSGOOD`):
    /// a ptrace stop, not a signal.
    case syscall
    /// A signal-delivery stop.
    case signal(Int32)
    case exited(Int32)
    case killed(Int32)
}

/// A thread under `PTRACE_SEIZE`. Not thread-safe: ptrace answers only the thread that seized.
public final class Tracee {
    public let tid: PID

    private init(tid: PID) { self.tid = tid }

    /// `PTRACE_SEIZE` without stopping the thread.
    /// `PTRACE_SEIZE` without stopping the thread. `PTRACE_O_TRACESYSGOOD` is always on: injected
    /// calls run between syscall stops, which are told from signals by it.
    public static func seize(_ tid: PID, options: Int = 0) throws(SyscallError) -> Tracee {
        let all = UInt(options) | UInt(VOS_PTRACE_O_TRACESYSGOOD)
        try checked("ptrace(PTRACE_SEIZE)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_SEIZE), tid, 0, all) }
        return Tracee(tid: tid)
    }

    /// A thread already traced by us: one auto-attached by `PTRACE_O_TRACECLONE`.
    public static func adopt(_ tid: PID) -> Tracee { Tracee(tid: tid) }

    /// `PTRACE_INTERRUPT`: asks for a stop; collect it with `waitStop()`.
    public func interrupt() throws(SyscallError) {
        try checked("ptrace(PTRACE_INTERRUPT)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_INTERRUPT), tid, 0, 0) }
    }

    /// Waits for the next stop of this thread and classifies it.
    public func wait(nohang: Bool = false) throws(SyscallError) -> TraceeStop? {
        let (pid, status) = try Kernel.wait(tid, nohang: nohang)
        if pid == 0 { return nil }
        return Self.classify(status)
    }

    static func classify(_ status: Int32) -> TraceeStop {
        let low = status & 0x7f
        if low == 0 { return .exited((status >> 8) & 0xff) }
        if (status & 0xff) != 0x7f { return .killed(low) }
        let sig = (status >> 8) & 0xff
        switch status >> 16 {
        case Int32(VOS_PTRACE_EVENT_STOP), Int32(VOS_PTRACE_EVENT_EXEC): return .eventStop
        case Int32(VOS_PTRACE_EVENT_CLONE), Int32(VOS_PTRACE_EVENT_FORK): return .clone
        default: return sig == SIGTRAP | 0x80 ? .syscall : .signal(sig)
        }
    }

    /// Waits until the thread reports `PTRACE_EVENT_STOP`, remembering signals seen meanwhile
    /// (a signal-delivery stop before the interrupt: the signal stays pending once suppressed).
    public func waitEventStop() throws(SyscallError) -> [Int32] {
        var suppressed: [Int32] = []
        while true {
            guard let stop = try wait() else { continue }
            switch stop {
            case .eventStop: return suppressed
            case .signal(let s):
                // Re-inject it as pending: continuing with the signal would deliver it now, so
                // the signal is recorded and the thread continued without it, then re-queued later.
                suppressed.append(s)
                try checked("ptrace(PTRACE_CONT)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_CONT), tid, 0, 0) }
            case .clone, .syscall:
                try checked("ptrace(PTRACE_CONT)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_CONT), tid, 0, 0) }
            case .exited, .killed:
                throw SyscallError(call: "waitpid", errno: .noSuchProcess, subject: "tid \(tid) (it exited while being frozen)")
            }
        }
    }

    public func registers() throws(SyscallError) -> Registers {
        var r = user_regs_struct()
        try checked("ptrace(PTRACE_GETREGS)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &r) { vos_ptrace(Int(VOS_PTRACE_GETREGS), tid, 0, UInt(bitPattern: $0)) }
        }
        return Registers(r)
    }

    public func setRegisters(_ regs: Registers) throws(SyscallError) {
        var r = regs.raw
        try checked("ptrace(PTRACE_SETREGS)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &r) { vos_ptrace(Int(VOS_PTRACE_SETREGS), tid, 0, UInt(bitPattern: $0)) }
        }
    }

    /// `PTRACE_GETREGSET NT_X86_XSTATE`: FPU/SSE/AVX/AVX-512 state, sized by the CPU's XCR0.
    public func xstate() throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 16384)
        let size = try buf.withUnsafeMutableBytes { b throws -> Int in
            var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
            try checked("ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)", "tid \(tid)") {
                withUnsafeMutablePointer(to: &iov) {
                    vos_ptrace(Int(VOS_PTRACE_GETREGSET), tid, UInt(VOS_NT_X86_XSTATE), UInt(bitPattern: $0))
                }
            }
            return iov.iov_len
        }
        return Array(buf.prefix(size))
    }

    public func setXstate(_ state: [UInt8]) throws {
        var copy = state
        try copy.withUnsafeMutableBytes { b throws in
            var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
            try checked("ptrace(PTRACE_SETREGSET, NT_X86_XSTATE)", "tid \(tid)") {
                withUnsafeMutablePointer(to: &iov) {
                    vos_ptrace(Int(VOS_PTRACE_SETREGSET), tid, UInt(VOS_NT_X86_XSTATE), UInt(bitPattern: $0))
                }
            }
        }
    }

    public func signalMask() throws(SyscallError) -> UInt64 {
        var mask: UInt64 = 0
        try checked("ptrace(PTRACE_GETSIGMASK)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &mask) { vos_ptrace(Int(VOS_PTRACE_GETSIGMASK), tid, 8, UInt(bitPattern: $0)) }
        }
        return mask
    }

    public func setSignalMask(_ mask: UInt64) throws(SyscallError) {
        var m = mask
        try checked("ptrace(PTRACE_SETSIGMASK)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &m) { vos_ptrace(Int(VOS_PTRACE_SETSIGMASK), tid, 8, UInt(bitPattern: $0)) }
        }
    }

    /// `PTRACE_GET_RSEQ_CONFIGURATION`: (area, length, signature); area 0 when unregistered.
    public func rseqConfiguration() throws(SyscallError) -> (area: UInt64, length: UInt32, signature: UInt32) {
        var c = vos_rseq_configuration()
        try checked("ptrace(PTRACE_GET_RSEQ_CONFIGURATION)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &c) {
                vos_ptrace(Int(VOS_PTRACE_GET_RSEQ_CONFIGURATION), tid, UInt(MemoryLayout<vos_rseq_configuration>.size), UInt(bitPattern: $0))
            }
        }
        return (c.rseq_abi_pointer, c.rseq_abi_size, c.signature)
    }

    /// Pending signals with their siginfo, from the thread's own queue or the process's shared one.
    public func pendingSignals(shared: Bool) throws(SyscallError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        while true {
            var args = vos_peeksiginfo_args(off: UInt64(result.count), flags: shared ? UInt32(VOS_PTRACE_PEEKSIGINFO_SHARED) : 0, nr: 1)
            var info = vos_siginfo()
            let n = try checked("ptrace(PTRACE_PEEKSIGINFO)", "tid \(tid)") {
                withUnsafeMutablePointer(to: &args) { a in
                    withUnsafeMutablePointer(to: &info) { i in
                        vos_ptrace(Int(VOS_PTRACE_PEEKSIGINFO), tid, UInt(bitPattern: a), UInt(bitPattern: i))
                    }
                }
            }
            if n == 0 { return result }
            result.append(withUnsafeBytes(of: &info) { Array($0) })
        }
    }

    public func eventMessage() throws(SyscallError) -> UInt64 {
        var msg: UInt64 = 0
        try checked("ptrace(PTRACE_GETEVENTMSG)", "tid \(tid)") {
            withUnsafeMutablePointer(to: &msg) { vos_ptrace(Int(VOS_PTRACE_GETEVENTMSG), tid, 0, UInt(bitPattern: $0)) }
        }
        return msg
    }

    public func setOptions(_ options: Int) throws(SyscallError) {
        try checked("ptrace(PTRACE_SETOPTIONS)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_SETOPTIONS), tid, 0, UInt(options)) }
    }

    public func cont(signal: Int32 = 0) throws(SyscallError) {
        try checked("ptrace(PTRACE_CONT)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_CONT), tid, 0, UInt(signal)) }
    }

    /// `PTRACE_SYSCALL`: run until the next syscall entry or exit.
    public func runToSyscallStop() throws(SyscallError) {
        try checked("ptrace(PTRACE_SYSCALL)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_SYSCALL), tid, 0, 0) }
    }

    /// `PTRACE_DETACH`: the thread resumes where its registers say.
    public func detach() throws(SyscallError) {
        try checked("ptrace(PTRACE_DETACH)", "tid \(tid)") { vos_ptrace(Int(VOS_PTRACE_DETACH), tid, 0, 0) }
    }
}
