// `vos drain NODE`, run by whichever node the CLI asks: cordon NODE first (so nothing is placed
// on it while it empties, as kubectl's drain does), then move its capsules live one at a time,
// biggest first, each to the least loaded other node (`Placement`), counting what this drain
// already placed. A capsule that cannot move stays running on NODE and is reported; NODE stays
// cordoned either way (`vos uncordon` undoes it).
import Foundation
import VOSMigration

extension NodeDaemon {
    func drain(_ node: String, step: (DrainStep) -> Void) throws -> DrainReport {
        let start = monotonicNanos()
        if node != me.name {
            _ = try find(node)  // an unknown name is refused, naming the known ones
            if let m = memberList().first(where: { $0.name == node }), m.state != "alive" {
                throw NodeError("cannot drain node \(node): it does not answer (last heard \(Int(m.lastSeenSeconds ?? 0)) s ago)")
            }
        }
        let info: NodeInfo
        do { info = try cordon(CordonRequest(node: node, cordon: true, by: me.name, reason: "drain")).info } catch {
            throw NodeError("cannot drain node \(node): cordoning it failed: \(Self.text(error))")
        }
        let loads = info.capsuleLoads ?? []
        let capsules = Placement.order(info.capsules.map { name in
            loads.first { $0.name == name } ?? CapsuleLoad(name: name, state: "running", processes: 0, memoryBytes: 0)
        })
        record(ClusterEvent(node: me.name, kind: .drainStarted, subject: node,
                            message: "drain of node \(node) started by \(me.name): \(capsules.count) capsule(s)"
                                + (capsules.isEmpty ? "" : " (\(capsules.map(\.name).joined(separator: ", ")))")))
        logger.info("draining node \(node): \(capsules.map(\.name))")

        var placement = Placement(members: memberList(), excluding: node)
        var steps: [DrainStep] = []
        for c in capsules {
            let s: DrainStep
            switch placement.choose(for: c) {
            case .failure(let why):
                s = DrainStep(capsule: c.name, destination: nil, result: "failed", error: why.description)
                record(ClusterEvent(node: me.name, kind: .migrationFailed, capsule: c.name, subject: node,
                                    message: "capsule \(c.name) stays on \(node): \(why)"))
            case .success(let dest):
                record(ClusterEvent(node: me.name, kind: .placed, capsule: c.name, subject: dest.name,
                                    message: "capsule \(c.name) (\(c.memoryBytes >> 20) MiB, " + String(format: "%.1f%% CPU", c.cpu())
                                        + ") placed on \(dest.name): least loaded (" + String(format: "score %.4f", dest.score)
                                        + ", \(dest.capsules) capsule(s))"))
                do {
                    let r = try migrate(c.name, from: node, to: dest.name)
                    placement.place(c, on: dest.name)
                    s = DrainStep(capsule: c.name, destination: dest.name, result: "migrated",
                                  downtimeMilliseconds: r.downtimeMilliseconds, totalMilliseconds: r.totalMilliseconds)
                } catch {
                    s = DrainStep(capsule: c.name, destination: dest.name, result: "failed", error: Self.text(error))
                }
            }
            steps.append(s)
            step(s)
        }
        let report = DrainReport(node: node, cordoned: true, steps: steps, milliseconds: Double(monotonicNanos() - start) / 1e6)
        record(ClusterEvent(node: me.name, kind: .drainFinished, subject: node,
                            message: "drain of node \(node) finished: \(steps.count - report.failed) moved, \(report.failed) failed, "
                                + String(format: "%.1f s", report.milliseconds / 1000)))
        return report
    }

    /// One live migration off `node`: here, or by asking that node (which records it).
    private func migrate(_ capsule: String, from node: String, to destination: String) throws -> MigrationReport {
        if node == me.name { return try migrateOut(capsule: capsule, to: destination, mode: .live) { _ in } }
        let peer = try link(to: node)
        defer { peer.close() }
        try peer.send(try Message("migrate", MigrateRequest(capsule: capsule, to: destination, mode: MigrationMode.live.rawValue)))
        while true {
            let m = try peer.receive(timeout: 600, expecting: "the migration of \(capsule)")
            switch m.type {
            case "progress": continue
            case "migrated": return try m.decode(MigrationReport.self)
            default: throw NodeError("unexpected \"\(m.type)\" from node \(node)")
            }
        }
    }
}
