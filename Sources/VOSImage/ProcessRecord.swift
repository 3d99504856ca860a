// process.json: everything about one process except its page data.
import VOSLinux

public struct ProcessRecord: Codable, Sendable {
    public var pid: PID
    public var commandLine: [String]
    public var executable: String
    public var name: String
    public var threads: [ThreadRecord]
    public var memory: [MemoryRecord]
    public var mm: MMFields
    public var files: [FileRecord]
    public var signalActions: [SignalAction]
    /// Signals queued for the whole process (raw siginfo).
    @Base64List public var sharedPendingSignals: [[UInt8]]
    public var itimers: [IntervalTimer]
    public var posixTimers: [PosixTimer]
    public var cwd: String
    public var umask: UInt32
    public var limits: [ResourceLimit]
    public var parentDeathSignal: Int32
    /// Host CLOCK_MONOTONIC at the freeze, nanoseconds (for timers and time namespaces).
    public var frozenAtMonotonicNanos: UInt64

    public init(pid: PID, commandLine: [String], executable: String, name: String, threads: [ThreadRecord],
                memory: [MemoryRecord], mm: MMFields, files: [FileRecord], signalActions: [SignalAction],
                sharedPendingSignals: [[UInt8]], itimers: [IntervalTimer], posixTimers: [PosixTimer], cwd: String,
                umask: UInt32, limits: [ResourceLimit], parentDeathSignal: Int32, frozenAtMonotonicNanos: UInt64) {
        self.pid = pid
        self.commandLine = commandLine
        self.executable = executable
        self.name = name
        self.threads = threads
        self.memory = memory
        self.mm = mm
        self.files = files
        self.signalActions = signalActions
        self.sharedPendingSignals = sharedPendingSignals
        self.itimers = itimers
        self.posixTimers = posixTimers
        self.cwd = cwd
        self.umask = umask
        self.limits = limits
        self.parentDeathSignal = parentDeathSignal
        self.frozenAtMonotonicNanos = frozenAtMonotonicNanos
    }
}

/// A non-default signal disposition (`struct k_sigaction` as the kernel holds it).
public struct SignalAction: Codable, Sendable, Equatable {
    public var signal: Int32
    public var handler: UInt64
    public var flags: UInt64
    public var restorer: UInt64
    public var mask: UInt64
    public init(signal: Int32, handler: UInt64, flags: UInt64, restorer: UInt64, mask: UInt64) {
        self.signal = signal
        self.handler = handler
        self.flags = flags
        self.restorer = restorer
        self.mask = mask
    }
}

/// `setitimer` timers: which (ITIMER_REAL/VIRTUAL/PROF), value and interval in µs.
public struct IntervalTimer: Codable, Sendable, Equatable {
    public var which: Int32
    public var valueMicros: Int64
    public var intervalMicros: Int64
    public init(which: Int32, valueMicros: Int64, intervalMicros: Int64) {
        self.which = which
        self.valueMicros = valueMicros
        self.intervalMicros = intervalMicros
    }
}

/// A `timer_create` timer from /proc/PID/timers with its current setting.
public struct PosixTimer: Codable, Sendable, Equatable {
    public var id: Int32
    public var clock: Int32
    public var signal: Int32
    /// SIGEV_* notify mode and, for SIGEV_THREAD_ID, the thread.
    public var notify: Int32
    public var notifyThread: PID
    public var sigevValue: UInt64
    public var valueNanos: Int64
    public var intervalNanos: Int64
    public init(id: Int32, clock: Int32, signal: Int32, notify: Int32, notifyThread: PID, sigevValue: UInt64,
                valueNanos: Int64, intervalNanos: Int64) {
        self.id = id
        self.clock = clock
        self.signal = signal
        self.notify = notify
        self.notifyThread = notifyThread
        self.sigevValue = sigevValue
        self.valueNanos = valueNanos
        self.intervalNanos = intervalNanos
    }
}
