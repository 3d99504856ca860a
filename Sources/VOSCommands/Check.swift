// `vos check PID|NAME [--json]`: can this process (or capsule) be checkpointed and moved? Says
// "ready" or lists every blocker with the resource it concerns, without stopping anything.
import ArgumentParser
import Foundation
import VOSCapsule
import VOSCheckpoint
import VOSLinux

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say, without checkpointing, whether a process or capsule can be checkpointed and moved, listing every blocker.")

    @Argument(help: "A process ID, or the name of a capsule.")
    var target: String

    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var target: String
        var ready: Bool
        var movable: Bool
        var blockers: [Blocker]
    }

    func run() throws {
        try requireRoot("check", because: "it reads other processes' file descriptors through pidfd_getfd")
        let pids: [PID], ownAddress: String?
        if let pid = PID(target) {
            guard let stat = try? ProcStat.read("/proc/\(pid)/stat"), stat.state != "Z" else {
                throw CleanError("cannot check pid \(pid): no such process")
            }
            pids = [pid]
            ownAddress = nil
        } else {
            let record = try CapsuleRegistry().load(target)
            guard record.isRunning else { throw CleanError("cannot check capsule \"\(target)\": it is not running") }
            pids = try ProcessTree.discover(root: record.initPID).filter { !$0.isZombie }.map(\.hostPID)
            ownAddress = record.network?.address
        }
        let blockers = Preflight.check(pids: pids, ownAddress: ownAddress)
        let result = Result(target: target, ready: !blockers.contains { $0.scope == .checkpoint }, movable: blockers.isEmpty, blockers: blockers)
        if output.json {
            print(try jsonString(result))
        } else if blockers.isEmpty {
            print("\(target): ready (\(pids.count) process\(pids.count == 1 ? "" : "es"); can be checkpointed and moved)")
        } else {
            print("\(target): \(result.ready ? "can be checkpointed and restored here, but not moved" : "cannot be checkpointed"):")
            for b in blockers {
                print("  pid \(b.pid), \(b.resource): \(b.problem) [\(b.scope == .checkpoint ? "blocks checkpoint" : "blocks moving")]")
            }
        }
        // Scripts can tell without parsing: 0 ready, 2 blockers.
        if !blockers.isEmpty { throw ExitCode(2) }
    }
}
