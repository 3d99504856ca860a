// The CLI's side of the control socket: one request per connection.
import Foundation
import Glibc
import NIOCore
import NIOPosix
import VOSMigration

public struct NodeClient {
    let data: NodeData
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    public init(data: NodeData) { self.data = data }

    func connect() throws -> PeerLink {
        // The socket is root-only (0600 in a 0700 directory): a user who may not reach it is
        // told so, not that no daemon runs (a stat inside a directory we cannot enter fails too).
        var s = stat()
        if stat(data.controlSocket, &s) != 0 {
            let e = errno
            if e == EACCES || e == EPERM { throw Self.refusal(data.controlSocket) }
            if e == ENOENT {
                throw NodeError("no node daemon runs with data directory \(data.directory) (no \(data.controlSocket)): start one with `vos node start`")
            }
            throw NodeError("cannot reach the node daemon at \(data.controlSocket): stat: \(String(cString: strerror(e)))")
        }
        // Connecting needs write permission on the socket (checked for the effective uid).
        if faccessat(AT_FDCWD, data.controlSocket, W_OK, AT_EACCESS) != 0 && (errno == EACCES || errno == EPERM) {
            throw Self.refusal(data.controlSocket)
        }
        do { return try PeerLink.connect(unixPath: data.controlSocket, group: group) } catch { throw NodeError("\(error)") }
    }

    static func refusal(_ socket: String) -> NodeError {
        NodeError("cannot reach the node daemon at \(socket): permission denied (only root may control the node)")
    }

    public func nodes() throws -> [NodeInfo] {
        let link = try connect()
        defer { link.close() }
        return try link.request(Message("nodes")).decode(Members.self).members
    }

    /// Asks the local node to move a capsule; `progress` sees each step as it happens.
    public func migrate(capsule: String, to node: String, mode: MigrationMode, carryBase: Bool = false,
                        progress: (MigrationEvent) -> Void) throws -> MigrationReport {
        let link = try connect()
        defer { link.close() }
        try link.send(try Message("migrate", MigrateRequest(capsule: capsule, to: node, mode: mode.rawValue, carryBase: carryBase ? true : nil)))
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
