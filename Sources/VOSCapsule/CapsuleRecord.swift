// What vOS remembers of a capsule between commands: capsule.json in its registry directory.
import Foundation
import VOSImage
import VOSLinux

public struct CapsuleRecord: Codable, Sendable {
    public var name: String
    public var hostname: String
    public var command: [String]
    /// The capsule init's PID on the host (PID 1 inside).
    public var initPID: PID
    /// The init's PID namespace ("pid:[N]"), to tell a live capsule from a reused PID.
    public var pidNamespace: String
    public var created: Double
    public var tty: Bool
    public var ip: String?
    /// With `--net`: the capsule's address, MAC and bridge.
    public var network: CapsuleNetworkInfo?
    /// With `--fs`: its own root (an overlay over a base, its upper layer under `layers/NAME`).
    public var filesystem: CapsuleFilesystem?

    public init(name: String, hostname: String, command: [String], initPID: PID, pidNamespace: String, created: Double, tty: Bool, ip: String?) {
        self.name = name
        self.hostname = hostname
        self.command = command
        self.initPID = initPID
        self.pidNamespace = pidNamespace
        self.created = created
        self.tty = tty
        self.ip = ip
    }

    /// Running while the init is alive in the namespace it was made with.
    public var isRunning: Bool {
        guard let stat = try? ProcStat.read("/proc/\(initPID)/stat"), stat.state != "Z", stat.state != "X" else { return false }
        return Namespaces.identity(of: initPID, "pid") == pidNamespace
    }
}
