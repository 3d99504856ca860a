// The CLI's side of the community's commands: drain, cordon, the event log.
import Foundation
import VOSMigration

extension NodeClient {
    /// Asks the local node to drain `node`; `step` sees each capsule's result as it comes.
    public func drain(node: String, step: (DrainStep) -> Void) throws -> DrainReport {
        let link = try connect()
        defer { link.close() }
        try link.send(try Message("drain", DrainRequest(node: node)))
        while true {
            // Each capsule's move may take minutes (many GiB); the wait is per step.
            let m = try link.receive(timeout: 900, expecting: "the drain's progress")
            switch m.type {
            case "drain-step": step(try m.decode(DrainStep.self))
            case "drained": return try m.decode(DrainReport.self)
            default: throw NodeError("unexpected \"\(m.type)\" from the node")
            }
        }
    }

    public func cordon(node: String, _ on: Bool) throws -> CordonReply {
        let link = try connect()
        defer { link.close() }
        return try link.request(try Message("cordon", CordonRequest(node: node, cordon: on, by: nil, reason: nil))).decode(CordonReply.self)
    }

    /// The cluster's events after the ids given per node (all when none).
    public func events(after: [String: Int64]) throws -> EventsReply {
        let link = try connect()
        defer { link.close() }
        return try link.request(try Message("events", EventsRequest(after: after))).decode(EventsReply.self)
    }
}
