// Requests and replies of the community's commands, between the CLI and its node and between
// nodes (each a Message header, JSON).
import Foundation
import VOSMigration

struct DrainRequest: Codable { var node: String }

/// One capsule of a drain, sent as soon as its move is over.
public struct DrainStep: Codable, Sendable {
    public var capsule: String
    /// The node chosen for it (nil when none could be).
    public var destination: String?
    /// "migrated" or "failed".
    public var result: String
    public var downtimeMilliseconds: Double?
    public var totalMilliseconds: Double?
    public var error: String?
}

public struct DrainReport: Codable, Sendable {
    public var node: String
    public var cordoned: Bool
    public var steps: [DrainStep]
    public var milliseconds: Double
    public var failed: Int { steps.filter { $0.result != "migrated" }.count }
}

struct CordonRequest: Codable {
    var node: String
    var cordon: Bool
    /// The node that asked (for the event log); the CLI leaves it out.
    var by: String?
    /// Why, for the event log ("drain").
    var reason: String?
}

public struct CordonReply: Codable, Sendable {
    public var node: String
    public var cordoned: Bool
    /// False when it already was so.
    public var changed: Bool
}

/// The last event id seen of each node's log; a node not named starts from its beginning.
struct EventsRequest: Codable { var after: [String: Int64] }

public struct EventsReply: Codable, Sendable {
    public var events: [ClusterEvent]
    /// Nodes whose log could not be read now, with why.
    public var unreadable: [String: String]
}
