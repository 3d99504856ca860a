// tree.json: a process tree (a capsule's, for now) — its shape, IDs inside its PID namespace,
// and the namespaces it lives in. Each live process has its own process-<pid>.json and
// pages-<pid>.img.
import VOSLinux

public struct TreeRecord: Codable, Sendable {
    /// Parents before children; the root first.
    public var processes: [TreeProcess]
    /// Set when the tree is a capsule: its name, hostname and clocks at the freeze.
    public var capsule: CapsuleInfo?
    /// The System V IPC objects of the capsule's own IPC namespace (absent: none, or the tree
    /// shared vos's namespace and its segments were saved as plain shared memory).
    public var ipc: IPCRecord?

    public init(processes: [TreeProcess], capsule: CapsuleInfo?, ipc: IPCRecord? = nil) {
        self.processes = processes
        self.capsule = capsule
        self.ipc = ipc
    }

    public static let fileName = "tree.json"
    public static func processPart(_ pid: PID) -> String { "process-\(pid).json" }
    public static func pagesPart(_ pid: PID) -> String { "pages-\(pid).img" }
}

public struct TreeProcess: Codable, Sendable, Equatable {
    /// IDs as the tree's own PID namespace sees them.
    public var pid: PID
    public var parent: PID
    public var processGroup: PID
    public var session: PID
    /// A zombie not yet reaped: only its wait status is kept.
    public var zombieStatus: Int32?

    public init(pid: PID, parent: PID, processGroup: PID, session: PID, zombieStatus: Int32?) {
        self.pid = pid
        self.parent = parent
        self.processGroup = processGroup
        self.session = session
        self.zombieStatus = zombieStatus
    }
}

public struct CapsuleInfo: Codable, Sendable, Equatable {
    public var name: String
    public var hostname: String
    public var command: [String]
    /// The capsule's CLOCK_MONOTONIC and CLOCK_BOOTTIME at the freeze (host clock + the
    /// capsule's time-namespace offset): a restore sets offsets so they continue from there.
    public var monotonicNanos: Int64
    public var boottimeNanos: Int64
    /// The command runs on a terminal of the capsule's own devpts instance (`vos run --tty`).
    public var tty: Bool?
    /// With `--net`: the capsule's own network namespace, its address and MAC on the bridge.
    public var network: CapsuleNetworkInfo?
    /// With `--fs`: its own root, whose upper layer is in the image.
    public var filesystem: CapsuleFilesystem?

    public init(name: String, hostname: String, command: [String], monotonicNanos: Int64, boottimeNanos: Int64) {
        self.name = name
        self.hostname = hostname
        self.command = command
        self.monotonicNanos = monotonicNanos
        self.boottimeNanos = boottimeNanos
    }

    public init(name: String, hostname: String, command: [String], monotonicNanos: Int64, boottimeNanos: Int64, tty: Bool) {
        self.init(name: name, hostname: hostname, command: command, monotonicNanos: monotonicNanos, boottimeNanos: boottimeNanos)
        self.tty = tty ? true : nil
    }
}
