// The daemon's community duties besides the drain: moving one of its capsules out (for
// `vos migrate` and for a drain run by any node), its cordon, the event log (its own part, and
// the cluster's merged for the CLI) and the membership changes it sees.
import Foundation
import VOSMigration

extension NodeDaemon {
    /// An authenticated link to the member `name`.
    func link(to name: String) throws -> PeerLink {
        let target = try find(name)
        guard let (h, p) = target.hostAndPort else { throw NodeError("node \(name) has no usable address (\(target.address))") }
        return try PeerLink.connect(node: h, port: p, as: me, group: group)
    }

    /// Moves one of this node's capsules to `node`; the result goes into the event log.
    func migrateOut(capsule: String, to node: String, mode: MigrationMode, carryBase: Bool = false,
                    progress: (MigrationEvent) -> Void) throws -> MigrationReport {
        do {
            if node == me.name { throw NodeError("capsule \(capsule) already runs on node \(node)") }
            if memberList().first(where: { $0.name == node })?.cordoned == true {
                throw NodeError("node \(node) is cordoned: it takes no capsules (`vos uncordon \(node)` undoes it)")
            }
            let peer = try link(to: node)
            defer { peer.close() }
            logger.info("migrating capsule \(capsule) to \(node) (\(mode.rawValue))")
            let report = try CapsuleSender.migrate(capsule: capsule, mode: mode, to: peer, from: me.name, registry: registry,
                                                   carryBase: carryBase, progress: progress)
            logger.info("capsule \(capsule) moved to \(node): downtime \(report.downtimeMilliseconds) ms")
            announce()
            record(ClusterEvent(node: me.name, kind: .migrated, capsule: capsule, subject: node,
                                downtimeMilliseconds: report.downtimeMilliseconds,
                                message: "capsule \(capsule) moved from \(me.name) to \(node) (\(mode.rawValue)): downtime "
                                    + String(format: "%.1f ms, total %.0f ms", report.downtimeMilliseconds, report.totalMilliseconds)))
            return report
        } catch {
            record(ClusterEvent(node: me.name, kind: .migrationFailed, capsule: capsule, subject: node,
                                message: "capsule \(capsule) could not move from \(me.name) to \(node): \(Self.text(error))"))
            throw error
        }
    }

    /// A heartbeat now, not at the next beat: after a capsule left or arrived, the others'
    /// `ps --all` and placement see it at once rather than up to a second later.
    func announce() {
        sampler.sample(registry)
        DispatchQueue.global().async { [self] in heartbeat() }
    }

    /// Records an event; a registry that cannot take it is logged, never fatal to the work.
    func record(_ event: ClusterEvent) {
        do { try nodeRegistry.record(event) } catch { logger.warning("\(error)") }
    }

    static func text(_ error: Error) -> String { (error as? RemoteError)?.text ?? "\(error)" }

    // MARK: cordon

    /// This node's own flag, persisted before it is announced.
    func setCordon(_ on: Bool, by: String?, reason: String?) throws -> CordonReply {
        let changed = try nodeRegistry.setCordon(me.name, on)
        cordoned = on
        if changed {
            let who = by.map { " by \($0)" } ?? ""
            record(ClusterEvent(node: me.name, kind: on ? .cordoned : .uncordoned, subject: me.name,
                                message: "node \(me.name) \(on ? "cordoned" : "uncordoned")\(who)\(reason.map { " (\($0))" } ?? "")"))
            logger.info("\(on ? "cordoned" : "uncordoned")\(who)")
        }
        return CordonReply(node: me.name, cordoned: on, changed: changed)
    }

    /// Cordons or uncordons any node: this one, or another by asking it (the flag is the node's
    /// own, kept in its registry and told in its heartbeats). Returns its fresh member info.
    func cordon(_ r: CordonRequest) throws -> (reply: CordonReply, info: NodeInfo) {
        if r.node == me.name { return (try setCordon(r.cordon, by: r.by, reason: r.reason), localInfo()) }
        let peer = try link(to: r.node)
        defer { peer.close() }
        let answer = try peer.request(try Message("cordon", CordonRequest(node: r.node, cordon: r.cordon, by: me.name, reason: r.reason)))
        let info = try JSONDecoder().decode(NodeInfo.self, from: Data(answer.payload))
        merge([info], heardFrom: r.node)
        return (try answer.decode(CordonReply.self), info)
    }

    // MARK: events

    /// Every node's log merged (each read where it is kept), oldest first. Events are not
    /// forwarded when they happen: each has one writer and one copy, a node that is down at
    /// the time loses nothing, and nothing is replicated twice; the price is a read that asks
    /// every node (a handful).
    func clusterEvents(after: [String: Int64]) -> EventsReply {
        var reply = EventsReply(events: [], unreadable: [:])
        do { reply.events = try nodeRegistry.events(after: after[me.name] ?? 0) } catch { reply.unreadable[me.name] = "\(error)" }
        for m in memberList().dropFirst() {
            guard m.state == "alive" else {
                reply.unreadable[m.name] = "unreachable for \(Int(m.lastSeenSeconds ?? 0)) s"
                continue
            }
            do {
                let peer = try link(to: m.name)
                defer { peer.close() }
                peer.timeout = 5
                let r = try peer.request(try Message("events", EventsRequest(after: after)))
                reply.events += try r.decode(EventsReply.self).events
            } catch {
                reply.unreadable[m.name] = Self.text(error)
            }
        }
        reply.events.sort { ($0.time, $0.node, $0.id ?? 0) < ($1.time, $1.node, $1.id ?? 0) }
        return reply
    }

    // MARK: membership

    /// After each heartbeat: a member that went silent, or came back, is an event (each node
    /// records what it saw).
    func watchMembership() {
        for m in memberList().dropFirst() {
            guard let state = m.state else { continue }
            let before = lastStates[m.name]
            lastStates[m.name] = state
            if state == "unreachable" && before != "unreachable" {
                record(ClusterEvent(node: me.name, kind: .nodeUnreachable, subject: m.name,
                                    message: "node \(m.name) unreachable: silent for \(String(format: "%.1f", m.lastSeenSeconds ?? 0)) s"))
            } else if state == "alive" && before == "unreachable" {
                record(ClusterEvent(node: me.name, kind: .nodeBack, subject: m.name, message: "node \(m.name) answers again"))
            }
        }
    }
}
