// `vos drain NODE`: every capsule of NODE moved live to the least loaded other nodes, NODE left
// cordoned. One line per capsule as it finishes; non-zero exit if any stays on NODE.
import ArgumentParser
import Foundation
import VOSNode

struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move every capsule off a node (live), each to the least loaded other node, and cordon it.")

    @Argument(help: "The node to empty (this one or any other the local node knows).") var node: String
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func run() throws {
        let report: DrainReport
        do {
            report = try NodeClient(data: data.node).drain(node: node) { s in
                if output.json { return }
                switch s.result {
                case "migrated":
                    print("\(s.capsule) -> \(s.destination ?? "?"): migrated, downtime \(formatMillis(s.downtimeMilliseconds ?? 0)), "
                        + "total \(formatMillis(s.totalMilliseconds ?? 0))")
                default:
                    print("\(s.capsule) -> \(s.destination ?? "nowhere"): FAILED, stays on \(node): \(s.error ?? "unknown error")")
                }
                fflush(stdout)
            }
        } catch {
            throw CleanError("\(error)")
        }
        if output.json {
            print(try jsonString(report))
        } else {
            print("node \(node) drained in \(String(format: "%.1f s", report.milliseconds / 1000)): "
                + "\(report.steps.count - report.failed) capsule(s) moved, \(report.failed) failed; \(node) is cordoned")
        }
        if report.failed > 0 {
            throw CleanError("\(report.failed) capsule(s) could not leave node \(node): "
                + report.steps.filter { $0.result != "migrated" }.map(\.capsule).joined(separator: ", "))
        }
    }
}
