// Makes a ptrace-stopped thread execute syscalls on vOS's behalf.
//
// Each injected call sets rip to a `syscall` instruction that already exists in the tracee
// (its vdso has several) and runs the thread from syscall-entry stop to syscall-exit stop
// (`PTRACE_SYSCALL`): no code is patched, no signal is raised (a single-step trap would be a
// forced SIGTRAP, which resets an ignored or blocked SIGTRAP to SIG_DFL), and the thread holds
// foreign registers only for that one call. orig_rax = -1 keeps the kernel's syscall-restart
// logic away from the injected rip when the thread was stopped inside an interrupted syscall;
// the saved registers (with their original orig_rax) go back right after each call.
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
    /// The thread's own signal mask, when every signal must be blocked for the duration of each
    /// injected call only (a live process being checkpointed: if vos dies between two calls,
    /// the thread has its own registers and mask back). nil: the mask is left alone (a restore
    /// stub, whose mask blocks everything until it is released).
    public var ownSignalMask: UInt64?

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

    /// Runs syscall `nr` in the tracee and returns its raw result (`-errno` on failure).
    public func rawCall(_ name: String, _ nr: Int, _ args: [UInt64]) throws -> Int64 {
        var regs = savedRegisters
        regs.rip = syscallSite.raw
        regs.rax = UInt64(nr)
        regs.origRax = UInt64.max
        let a = args + Array(repeating: 0, count: max(0, 6 - args.count))
        regs.rdi = a[0]; regs.rsi = a[1]; regs.rdx = a[2]; regs.r10 = a[3]; regs.r8 = a[4]; regs.r9 = a[5]
        if ownSignalMask != nil { try tracee.setSignalMask(~0) }
        try tracee.setRegisters(regs)
        defer {
            try? tracee.setRegisters(savedRegisters)
            if let own = ownSignalMask { try? tracee.setSignalMask(own) }
        }
        injectedCount += 1
        try tracee.runToSyscallStop()
        var entered = false
        while true {
            guard let stop = try tracee.wait() else { continue }
            switch stop {
            case .syscall where !entered:
                entered = true
                try tracee.runToSyscallStop()
            case .syscall:
                let after = try tracee.registers()
                guard after.rip == syscallSite.raw + 2 else {
                    throw InjectionError(call: name, tid: tid, reason: "stopped at \(RemoteAddress(after.rip)), expected \(syscallSite + 2)")
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
