// One entry of the cluster's log: a decision or a result, recorded by the node that made or
// saw it (in its own registry) and read cluster-wide by merging every node's log.
import Foundation
import GRDB

public enum EventKind: String, Codable, Sendable, DatabaseValueConvertible {
    case drainStarted = "drain-started", drainFinished = "drain-finished"
    /// A drain's choice of destination for one capsule.
    case placed
    /// Load sharing's decision to move a capsule off an overloaded node.
    case balanced
    case migrated, migrationFailed = "migration-failed"
    case nodeJoined = "node-joined", nodeUnreachable = "node-unreachable", nodeBack = "node-back"
    case cordoned, uncordoned
}

public struct ClusterEvent: Codable, Sendable, Equatable {
    /// Increasing on the node that recorded it (its log's own numbering).
    public var id: Int64?
    /// Unix time, seconds.
    public var time: Double
    /// The node that recorded it.
    public var node: String
    public var kind: EventKind
    public var capsule: String?
    /// The other node concerned: a migration's destination, the drained or cordoned node, the
    /// member that joined or went silent.
    public var subject: String?
    public var downtimeMilliseconds: Double?
    public var message: String

    public init(node: String, kind: EventKind, capsule: String? = nil, subject: String? = nil,
                downtimeMilliseconds: Double? = nil, message: String) {
        time = Date().timeIntervalSince1970
        self.node = node
        self.kind = kind
        self.capsule = capsule
        self.subject = subject
        self.downtimeMilliseconds = downtimeMilliseconds
        self.message = message
    }
}

extension ClusterEvent: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "event"

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
