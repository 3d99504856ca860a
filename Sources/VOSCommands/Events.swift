// `vos events [-f] [--json]`: the cluster's log of decisions and results, every node's part
// merged by the local node. `-f` asks again every second for what is new (JSON: one object a
// line).
import ArgumentParser
import Foundation
import Glibc
import VOSNode

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the cluster's event log (drains, migrations, membership, cordons).")

    @Flag(name: .shortAndLong, help: "Keep following: print new events as they are recorded.") var follow = false
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func run() throws {
        let client = NodeClient(data: data.node)
        var after: [String: Int64] = [:]
        var warned: Set<String> = []
        let when = DateFormatter()
        when.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        while true {
            let reply: EventsReply
            do { reply = try client.events(after: after) } catch { throw CleanError("\(error)") }
            for (node, why) in reply.unreadable.sorted(by: { $0.key < $1.key }) where !warned.contains(node) {
                FileHandle.standardError.write(Data("vos events: the log of node \(node) cannot be read now: \(why)\n".utf8))
                warned.insert(node)
            }
            warned.formIntersection(reply.unreadable.keys)
            for e in reply.events { after[e.node] = max(after[e.node] ?? 0, e.id ?? 0) }
            if output.json && !follow {
                print(try jsonString(reply.events))
            } else {
                for e in reply.events {
                    if output.json {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.sortedKeys]
                        print(String(decoding: try encoder.encode(e), as: UTF8.self))
                    } else {
                        print(when.string(from: Date(timeIntervalSince1970: e.time)) + "  " + e.node.padding(8)
                            + e.kind.rawValue.padding(17) + e.message)
                    }
                }
            }
            fflush(stdout)
            if !follow { return }
            sleep(1)
        }
    }
}
