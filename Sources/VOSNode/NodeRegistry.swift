// The node's embedded registry: SQLite through GRDB in DATA/registry.sqlite (0600), holding what
// must survive a daemon restart: this node's cordon and its part of the cluster's event log.
// Only the daemon opens it (the CLI goes through the control socket); GRDB's queue serialises
// the daemon's threads.
import Foundation
import Glibc
import GRDB
import VOSImage

final class NodeRegistry: @unchecked Sendable {
    let path: String
    private let queue: DatabaseQueue

    init(directory: String) throws {
        path = directory + "/registry.sqlite"
        // Made 0600 before SQLite sees it (its journal takes the database's mode), and made so
        // again if it was opened up.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, PrivateFiles.fileMode)
        guard fd >= 0, fchmod(fd, PrivateFiles.fileMode) == 0 else {
            throw NodeError("cannot create the node registry \(path): \(String(cString: strerror(errno)))")
        }
        close(fd)
        do {
            queue = try DatabaseQueue(path: path)
            try Self.migrator.migrate(queue)
        } catch {
            throw NodeError("cannot open the node registry \(path): \(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            // One row per cordoned node: today only this node's own flag is kept here.
            try db.create(table: "cordon") { t in
                t.primaryKey("node", .text)
                t.column("since", .double).notNull()
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull()
                t.column("node", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("capsule", .text)
                t.column("subject", .text)
                t.column("downtimeMilliseconds", .double)
                t.column("message", .text).notNull()
            }
        }
        return m
    }

    func isCordoned(_ node: String) throws -> Bool {
        try access("read the cordon of \(node)") { try queue.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM cordon WHERE node = ?", arguments: [node]) ?? false
        } }
    }

    /// Sets or clears the flag; false when it was already so.
    func setCordon(_ node: String, _ on: Bool) throws -> Bool {
        try access("\(on ? "cordon" : "uncordon") \(node)") { try queue.write { db in
            if on {
                try db.execute(sql: "INSERT OR IGNORE INTO cordon (node, since) VALUES (?, ?)",
                               arguments: [node, Date().timeIntervalSince1970])
            } else {
                try db.execute(sql: "DELETE FROM cordon WHERE node = ?", arguments: [node])
            }
            return db.changesCount > 0
        } }
    }

    @discardableResult
    func record(_ event: ClusterEvent) throws -> ClusterEvent {
        try access("record a \(event.kind.rawValue) event") { try queue.write { db in
            var e = event
            try e.insert(db)
            return e
        } }
    }

    /// Events after `id`, oldest first, at most `limit`.
    func events(after id: Int64, limit: Int = 1000) throws -> [ClusterEvent] {
        try access("read the event log") { try queue.read { db in
            try ClusterEvent.filter(Column("id") > id).order(Column("id")).limit(limit).fetchAll(db)
        } }
    }

    private func access<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw NodeError("cannot \(what) in the node registry \(path): \(error)") }
    }
}
