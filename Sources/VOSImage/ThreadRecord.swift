// One thread's saved state.
import VOSLinux

public struct ThreadRecord: Codable, Sendable {
    public var tid: PID
    public var name: String
    public var registers: Registers
    /// `NT_X86_XSTATE` bytes (FPU, SSE, AVX, AVX-512), as many as the CPU's XCR0 asks for.
    @Base64 public var xstate: [UInt8]
    public var signalMask: UInt64
    public var rseq: RseqRegistration?
    public var robustListHead: UInt64
    public var robustListLength: UInt64
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID` address (`PR_GET_TID_ADDRESS`).
    public var clearChildTID: UInt64
    @Base64 public var affinity: [UInt8]
    /// Signals queued for this thread alone, as raw 128-byte siginfo.
    @Base64List public var pendingSignals: [[UInt8]]
    public var alternateStack: AlternateStack?

    public init(tid: PID, name: String, registers: Registers, xstate: [UInt8], signalMask: UInt64, rseq: RseqRegistration?,
                robustListHead: UInt64, robustListLength: UInt64, clearChildTID: UInt64, affinity: [UInt8],
                pendingSignals: [[UInt8]], alternateStack: AlternateStack?) {
        self.tid = tid
        self.name = name
        self.registers = registers
        self.xstate = xstate
        self.signalMask = signalMask
        self.rseq = rseq
        self.robustListHead = robustListHead
        self.robustListLength = robustListLength
        self.clearChildTID = clearChildTID
        self.affinity = affinity
        self.pendingSignals = pendingSignals
        self.alternateStack = alternateStack
    }
}

public struct RseqRegistration: Codable, Sendable, Equatable {
    public var area: UInt64
    public var length: UInt32
    public var signature: UInt32
    public init(area: UInt64, length: UInt32, signature: UInt32) {
        self.area = area
        self.length = length
        self.signature = signature
    }
}

public struct AlternateStack: Codable, Sendable, Equatable {
    public var base: UInt64
    public var size: UInt64
    public var flags: Int32
    public init(base: UInt64, size: UInt64, flags: Int32) {
        self.base = base
        self.size = size
        self.flags = flags
    }
}
