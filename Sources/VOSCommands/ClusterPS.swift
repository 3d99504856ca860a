// `vos ps --all`: every capsule on every node the local node knows, from the members' last
// heartbeats (at most one interval old): no node is asked anything at the time, so the list
// comes at once even when a peer is slow or gone, and it is the very data the drain places by.
import Foundation
import VOSNode

enum ClusterPS {
    struct Entry: Encodable {
        var node: String
        var name: String
        /// "running" or "exited"; "unknown" on an unreachable node (its last known list).
        var state: String
        var processes: Int
        var memoryBytes: UInt64
        /// Percent of one CPU over the last heartbeat interval; nil before two samples.
        var cpuPercent: Double?
        /// The same over the last ~10 s.
        var cpuAveragePercent: Double?
        var lastCheckpoint: Double?
        var ip: String?
    }

    static func entries(_ nodes: [NodeInfo]) -> [Entry] {
        nodes.flatMap { n in
            let loads = n.capsuleLoads ?? n.capsules.map { CapsuleLoad(name: $0, state: "running", processes: 0, memoryBytes: 0) }
            return loads.map { c in
                Entry(node: n.name, name: c.name, state: n.state == "alive" ? c.state : "unknown", processes: c.processes,
                      memoryBytes: c.memoryBytes, cpuPercent: c.cpuPercent, cpuAveragePercent: c.cpuAveragePercent, lastCheckpoint: c.lastCheckpoint, ip: c.ip)
            }
        }
    }

    static func run(_ data: DataOption, json: Bool) throws {
        let nodes: [NodeInfo]
        do { nodes = try NodeClient(data: data.node).nodes() } catch { throw CleanError("\(error)") }
        let list = entries(nodes)
        if json {
            print(try jsonString(list))
            return
        }
        print("NODE".padding(12) + "NAME".padding(16) + "STATE".padding(9) + "PROCS".padding(6) + "MEMORY".padding(11)
            + "CPU".padding(8) + "LAST CHECKPOINT".padding(20) + "IP")
        let when = DateFormatter()
        when.dateFormat = "yyyy-MM-dd HH:mm:ss"
        for e in list {
            print(e.node.padding(12) + e.name.padding(16) + e.state.padding(9) + String(e.processes).padding(6)
                + formatBytes(e.memoryBytes).padding(11) + (e.cpuPercent.map { String(format: "%.1f%%", $0) } ?? "-").padding(8)
                + (e.lastCheckpoint.map { when.string(from: Date(timeIntervalSince1970: $0)) } ?? "-").padding(20) + (e.ip ?? "-"))
        }
        for n in nodes where n.state != "alive" {
            print("node \(n.name) is \(n.state ?? "in an unknown state"): its capsules as last heard")
        }
    }
}
