// `vos nodes`: the nodes the local node knows, with their state and load.
import ArgumentParser
import Foundation
import VOSNode

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the nodes of this node's cluster.")

    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func run() throws {
        let nodes: [NodeInfo]
        do { nodes = try NodeClient(data: data.node).nodes() } catch { throw CleanError("\(error)") }
        if output.json {
            print(try jsonString(nodes))
            return
        }
        print("NAME".padding(16) + "ADDRESS".padding(22) + "STATE".padding(18) + "LOAD".padding(12) + "MEM FREE".padding(11) + "CAPSULES")
        for n in nodes {
            let seen = n.lastSeenSeconds.map { $0 > 0 ? String(format: " %.0fs", $0) : "" } ?? ""
            let state = (n.state ?? "?") + seen + (n.cordoned == true ? ",cordoned" : "")
            print(n.name.padding(16) + n.address.padding(22) + state.padding(18)
                + String(format: "%.2f/%d", n.load, n.cpus).padding(12) + formatBytes(n.memoryAvailableBytes).padding(11)
                + (n.capsules.isEmpty ? "-" : n.capsules.joined(separator: ",")))
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
