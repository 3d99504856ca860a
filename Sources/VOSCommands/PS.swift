// `vos ps [--json]`: every capsule, its state and its processes.
import ArgumentParser
import Foundation
import VOSCapsule

struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List capsules and their processes.")

    @Flag(help: "Every capsule on every node the local node daemon knows (see --data).") var all = false
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    struct Entry: Encodable {
        var name: String, state: String, hostname: String, initPID: Int32, command: [String], processes: [CapsuleProcess]
        /// With `--net`: the capsule's address.
        var ip: String?
    }

    func run() throws {
        if all { return try ClusterPS.run(data, json: output.json) }
        let registry = CapsuleRegistry()
        let entries = registry.all().map { r in
            Entry(name: r.name, state: r.isRunning ? "running" : "exited", hostname: r.hostname, initPID: r.initPID,
                  command: r.command, processes: CapsuleProcesses.list(r), ip: r.network?.address)
        }
        if output.json {
            print(try jsonString(entries))
            return
        }
        print("NAME".padding(toLength: 16, withPad: " ", startingAt: 0) + "STATE    PID  HOST-PID  MEMORY    COMMAND")
        for e in entries {
            print(e.name.padding(toLength: 16, withPad: " ", startingAt: 0) + e.state.padding(toLength: 9, withPad: " ", startingAt: 0)
                + (e.processes.isEmpty ? "-" : "") + (e.ip.map { "  ip \($0)" } ?? ""))
            for p in e.processes {
                print(String(repeating: " ", count: 25) + String(p.pid).leftPad(3) + "  " + String(p.hostPID).leftPad(8)
                    + "  " + "\(p.memoryKiB) KiB".leftPad(8) + "  " + p.command)
            }
        }
    }
}
