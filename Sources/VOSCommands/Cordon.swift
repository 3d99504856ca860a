// `vos cordon NODE` / `vos uncordon NODE`: whether capsules may be placed on a node. The flag
// is the node's own (kept in its registry across restarts, told in its heartbeats).
import ArgumentParser
import Foundation
import VOSNode

struct Cordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mark a node unschedulable: no capsule is placed on or moved to it.")

    @Argument(help: "The node.") var node: String
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func run() throws { try setCordon(node, true, data, output) }
}

struct Uncordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make a cordoned (or drained) node schedulable again.")

    @Argument(help: "The node.") var node: String
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func run() throws { try setCordon(node, false, data, output) }
}

private func setCordon(_ node: String, _ on: Bool, _ data: DataOption, _ output: OutputOptions) throws {
    let reply: CordonReply
    do { reply = try NodeClient(data: data.node).cordon(node: node, on) } catch { throw CleanError("\(error)") }
    if output.json {
        print(try jsonString(reply))
    } else {
        print("node \(node) \(reply.changed ? "is now" : "was already") \(on ? "cordoned" : "schedulable")")
    }
}
