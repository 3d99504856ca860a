// The CLI's side of the control socket: one request per connection.
import Foundation
import NIOCore
import NIOPosix
import VOSMigration

public struct NodeClient {
    let data: NodeData
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    public init(data: NodeData) { self.data = data }

    func connect() throws -> PeerLink {
        guard FileManager.default.fileExists(atPath: data.controlSocket) else {
            throw NodeError("no node daemon runs with data directory \(data.directory) (no \(data.controlSocket)): start one with `vos node start`")
        }
        do { return try PeerLink.connect(unixPath: data.controlSocket, group: group) } catch { throw NodeError("\(error)") }
    }

    public func nodes() throws -> [NodeInfo] {
        let link = try connect()
        defer { link.close() }
        return try link.request(Message("nodes")).decode(Members.self).members
    }

    /// Asks the local node to move a capsule; `progress` sees each step as it happens.
    public func migrate(capsule: String, to node: String, mode: MigrationMode,
                        progress: (MigrationEvent) -> Void) throws -> MigrationReport {
        let link = try connect()
        defer { link.close() }
        try link.send(try Message("migrate", MigrateRequest(capsule: capsule, to: node, mode: mode.rawValue)))
        while true {
            // A migration's steps can be long (a restore of many GiB): each may take minutes.
            let m = try link.receive(timeout: 600, expecting: "the migration's progress")
            switch m.type {
            case "progress": progress(try m.decode(MigrationEvent.self))
            case "migrated": return try m.decode(MigrationReport.self)
            default: throw NodeError("unexpected \"\(m.type)\" from the node")
            }
        }
    }
}
