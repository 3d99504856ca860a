// What a node tells the others about itself (joins and heartbeats) and `vos nodes` shows.
import Foundation
import Glibc

public struct NodeInfo: Codable, Sendable, Equatable {
    public var name: String
    /// ADDR:PORT its daemon listens on.
    public var address: String
    /// 1-minute load average, and the machine's CPUs.
    public var load: Double
    public var cpus: Int
    public var memoryAvailableBytes: UInt64
    public var capsules: [String]
    /// Seconds since this node last heard from it (0 for itself).
    public var lastSeenSeconds: Double?
    public var state: String?

    public static func local(name: String, address: String, capsules: [String]) -> NodeInfo {
        var loads = [Double](repeating: 0, count: 3)
        _ = getloadavg(&loads, 3)
        var available: UInt64 = 0
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kb = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) })
        {
            available = kb * 1024
        }
        return NodeInfo(name: name, address: address, load: loads[0], cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
                        memoryAvailableBytes: available, capsules: capsules, lastSeenSeconds: 0, state: "alive")
    }

    /// "host", port from "host:port".
    public var hostAndPort: (String, Int)? { NodeInfo.split(address) }

    public static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), port > 0, port < 65536
        else { return nil }
        return (String(address[..<colon]), port)
    }
}

struct Members: Codable { var members: [NodeInfo] }
struct MigrateRequest: Codable {
    var capsule: String
    var to: String
    var mode: String
}
