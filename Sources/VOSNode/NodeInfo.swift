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
    /// Unschedulable (`vos drain`, `vos cordon`): nothing is placed on it; said by the node itself.
    public var cordoned: Bool?
    public var memoryTotalBytes: UInt64?
    /// Every capsule of its registry with its figures (`vos ps --all`); nil from an older vos.
    public var capsuleLoads: [CapsuleLoad]?

    public static func local(name: String, address: String, capsules: [String], loads: [CapsuleLoad]? = nil,
                             cordoned: Bool = false) -> NodeInfo {
        var averages = [Double](repeating: 0, count: 3)
        _ = getloadavg(&averages, 3)
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        func bytes(_ key: String) -> UInt64 {
            let line = meminfo.split(separator: "\n").first { $0.hasPrefix(key + ":") }
            return (line?.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0) * 1024
        }
        return NodeInfo(name: name, address: address, load: averages[0], cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
                        memoryAvailableBytes: bytes("MemAvailable"), capsules: capsules, lastSeenSeconds: 0, state: "alive",
                        cordoned: cordoned, memoryTotalBytes: bytes("MemTotal"), capsuleLoads: loads)
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
    /// `--carry-base`: the base files the capsule uses travel in its upper layer.
    var carryBase: Bool? = nil
}
