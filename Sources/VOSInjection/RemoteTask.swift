// Makes a ptrace-stopped thread execute syscalls on vOS's behalf.
//
// No code is patched and no signal is raised (a single-step trap would be a forced SIGTRAP,
// which resets an ignored or blocked SIGTRAP to SIG_DFL): each call runs from a `syscall`
// instruction already in the tracee, from syscall-entry stop to syscall-exit stop
// (`PTRACE_SYSCALL`). Two ways:
// - a live thread with a ReturnFrame: the call starts and ends on the program's own
//   signal-return trampoline, so the thread's next step is always to return to its own
//   context, even if vos dies. `release()` hands its registers and mask back.
// - a restore stub (no frame; it dies with vos anyway): rip goes to any `syscall` (the vdso
//   has several), orig_rax = -1 keeps the kernel's syscall-restart logic away from it, and the
//   saved registers go back right after each call.
import CVOSShim
import Glibc
import VOSLinux

public final class RemoteTask {
    public let tracee: Tracee
    /// The registers the thread had when it stopped; put back after every injected call.
    public var savedRegisters: Registers
    /// Address of a `0f 05` (`syscall`) instruction in the tracee.
    public var syscallSite: RemoteAddress
    /// Writable memory of the tracee usable for syscall arguments.
    public var scratch: RemoteAddress
    public var scratchSize: UInt64
    /// The thread group id (the process) the thread belongs to.
    public let pid: PID
    /// Injected calls so far, for cost accounting.
    public private(set) var injectedCount = 0
    /// TID of the last thread created by an injected clone (from `PTRACE_EVENT_CLONE`).
    public private(set) var lastClonedTID: PID?
    /// The thread's own signal mask, when every signal must be blocked while calls are injected
    /// (a live thread: a signal-delivery stop would break a call). nil: the mask is left alone
    /// (a restore stub, whose mask blocks everything until it is released).
    public var ownSignalMask: UInt64?
    /// The live thread's way home (see ReturnFrame); nil for a restore stub.
    public private(set) var returnFrame: ReturnFrame?
    private var parked = false

    public var tid: PID { tracee.tid }

    public init(tracee: Tracee, pid: PID, savedRegisters: Registers, syscallSite: RemoteAddress,
                scratch: RemoteAddress, scratchSize: UInt64) {
        self.tracee = tracee
        self.pid = pid
        self.savedRegisters = savedRegisters
        self.syscallSite = syscallSite
        self.scratch = scratch
        self.scratchSize = scratchSize
    }

    /// A live thread's task: writes the thread's ReturnFrame into its stack now. Its scratch is
    /// the frame's. Call `release()` when done, also after a failure.
    public init(liveThread tracee: Tracee, pid: PID, savedRegisters: Registers, mask: UInt64, xstate: [UInt8],
                trampoline: (start: RemoteAddress, syscall: RemoteAddress), stack: [MemoryRegion]) throws {
        let frame = try ReturnFrame.install(pid: pid, tid: tracee.tid, registers: savedRegisters, mask: mask,
                                            xstate: xstate, trampoline: trampoline, stack: stack)
        self.tracee = tracee
        self.pid = pid
        self.savedRegisters = savedRegisters
        self.syscallSite = frame.trampolineSyscall
        self.scratch = frame.scratch
        self.scratchSize = ReturnFrame.scratchSize
        self.ownSignalMask = mask
        self.returnFrame = frame
    }

    /// Gives a live thread its own mask, then its own registers (in this order: until the
    /// second step its next instruction still returns it home through the frame), then erases
    /// the frame. Never throws: a thread that vanished is no longer ours to resume.
    public func release() {
        guard let frame = returnFrame else { return }
        returnFrame = nil
        if let own = ownSignalMask { try? tracee.setSignalMask(own) }
        try? tracee.setRegisters(savedRegisters)
        try? frame.erase(pid: pid)
    }

    /// Runs syscall `nr` in the tracee and returns its raw result (`-errno` on failure).
    public func rawCall(_ name: String, _ nr: Int, _ args: [UInt64]) throws -> Int64 {
        let a = args + Array(repeating: 0, count: max(0, 6 - args.count))
        func withArguments(_ r: Registers) -> Registers {
            var r = r
            r.rdi = a[0]; r.rsi = a[1]; r.rdx = a[2]; r.r10 = a[3]; r.r8 = a[4]; r.r9 = a[5]
            return r
        }
        // Where the call starts, and where the thread stands once it returned.
        let expectedExit: RemoteAddress
        if let frame = returnFrame {
            // rt_sigreturn until the entry stop, the wanted call from there on.
            try tracee.setRegisters(frame.parked(savedRegisters))
            if !parked, ownSignalMask != nil { try tracee.setSignalMask(~0) }
            parked = true
            expectedExit = frame.trampoline
        } else {
            var regs = withArguments(savedRegisters)
            regs.rip = syscallSite.raw
            regs.rax = UInt64(nr)
            regs.origRax = UInt64.max
            if ownSignalMask != nil { try tracee.setSignalMask(~0) }
            try tracee.setRegisters(regs)
            expectedExit = syscallSite + 2
        }
        defer {
            if returnFrame == nil {
                try? tracee.setRegisters(savedRegisters)
                if let own = ownSignalMask { try? tracee.setSignalMask(own) }
            }
        }
        injectedCount += 1
        try tracee.runToSyscallStop()
        var entered = false
        while true {
            guard let stop = try tracee.wait() else { continue }
            switch stop {
            case .syscall where !entered:
                entered = true
                if let frame = returnFrame {
                    // One SETREGS switches number, arguments and return address together.
                    var regs = withArguments(frame.parked(savedRegisters))
                    guard try tracee.registers().origRax == 15 else {
                        throw InjectionError(call: name, tid: tid, reason: "the thread entered another syscall than the trampoline's")
                    }
                    regs.origRax = UInt64(nr)
                    regs.rip = frame.trampoline.raw
                    try tracee.setRegisters(regs)
                }
                DiePoint.here("injected-call")
                try tracee.runToSyscallStop()
            case .syscall:
                let after = try tracee.registers()
                guard after.rip == expectedExit.raw else {
                    throw InjectionError(call: name, tid: tid, reason: "stopped at \(RemoteAddress(after.rip)), expected \(expectedExit)")
                }
                return after.result
            case .clone:
                // An injected clone with PTRACE_O_TRACECLONE/TRACEFORK stops here, inside the call.
                lastClonedTID = PID(truncatingIfNeeded: try tracee.eventMessage())
                try tracee.runToSyscallStop()
            case .eventStop:
                try tracee.runToSyscallStop()
            case .signal(let s):
                throw InjectionError(call: name, tid: tid, reason: "the thread stopped with signal \(s) instead of finishing the call")
            case .exited(let code):
                throw InjectionError(call: name, tid: tid, reason: "the process exited with status \(code)")
            case .killed(let s):
                throw InjectionError(call: name, tid: tid, reason: "the process was killed by signal \(s)")
            }
        }
    }

    /// Runs a syscall and throws a SyscallError naming it when it returns -errno.
    @discardableResult
    public func call(_ name: String, _ nr: SyscallNumber, _ args: UInt64..., subject: String? = nil) throws -> UInt64 {
        let r = try rawCall(name, nr.rawValue, args)
        if r < 0 && r > -4096 {
            throw SyscallError(call: name, errno: .init(rawValue: Int32(-r)), subject: subject ?? "pid \(pid) (injected in tid \(tid))")
        }
        return UInt64(bitPattern: r)
    }

    // MARK: scratch memory

    /// Writes bytes into the tracee (through /proc/PID/mem, which also writes read-only pages).
    public func poke(_ bytes: [UInt8], at address: RemoteAddress) throws {
        try RemoteTask.writeMemory(pid: pid, bytes, at: address)
    }

    public func peek(_ count: Int, at address: RemoteAddress) throws -> [UInt8] {
        try RemoteTask.readMemory(pid: pid, count, at: address)
    }

    public static func writeMemory(pid: PID, _ bytes: [UInt8], at address: RemoteAddress) throws {
        let path = "/proc/\(pid)/mem"
        let fd = try checked("open", path) { open(path, O_RDWR | O_CLOEXEC) }
        defer { close(fd) }
        let n = try checked("pwrite", "\(path) at \(address)") {
            bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(Int64(bitPattern: address.raw))) }
        }
        guard n == bytes.count else {
            throw SyscallError(call: "pwrite", errno: .ioError, subject: "\(path) at \(address): short write")
        }
    }

    public static func readMemory(pid: PID, _ count: Int, at address: RemoteAddress) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { b in
            try ProcessMemory.read(pid: pid, ranges: [RemoteRange(address: address, length: UInt64(count))], into: b.baseAddress!)
        }
        return out
    }

    /// Writes `value`'s bytes to the scratch area at `offset` and returns the remote address.
    /// Only plain values: an Array or a class would stage its reference, not its contents.
    public func stage<T: BitwiseCopyable>(_ value: T, at offset: UInt64 = 0) throws -> RemoteAddress {
        let bytes = withUnsafeBytes(of: value) { Array($0) }
        try poke(bytes, at: scratch + offset)
        return scratch + offset
    }

    public func stage(bytes: [UInt8], at offset: UInt64 = 0) throws -> RemoteAddress {
        try poke(bytes, at: scratch + offset)
        return scratch + offset
    }

    public func stage(string: String, at offset: UInt64) throws -> RemoteAddress {
        try stage(bytes: Array(string.utf8) + [0], at: offset)
    }

    /// Reads a value of type T back from the scratch area.
    public func unstage<T: BitwiseCopyable>(_ type: T.Type, at offset: UInt64 = 0) throws -> T {
        let bytes = try peek(MemoryLayout<T>.size, at: scratch + offset)
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
}
