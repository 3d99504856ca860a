// A node's data directory (mode 0700, root only): the cluster credential, the node's settings,
// the control socket the local CLI talks through, and the capsule registry of this node.
import Foundation
import Glibc
import VOSMigration

public struct NodeData: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// $VOS_NODE_DATA, else /var/lib/vos/node.
    public static func defaultDirectory() -> String {
        ProcessInfo.processInfo.environment["VOS_NODE_DATA"] ?? "/var/lib/vos/node"
    }

    public var keyPath: String { directory + "/cluster.key" }
    public var controlSocket: String { directory + "/control.sock" }
    public var pidFile: String { directory + "/node.pid" }
    public var logPath: String { directory + "/node.log" }
    /// VOS_STATE_DIR of the capsules this node runs (`vos run` with it set runs one here).
    public var stateDirectory: String { directory + "/state" }

    public var isInitialised: Bool { FileManager.default.fileExists(atPath: stateDirectory) }

    /// Creates the directory; with `key` (a joining node's token) or a new key (a new cluster).
    public func initialise(key: ClusterKey?) throws -> ClusterKey {
        if isInitialised { throw NodeError("\(directory) is already a node's data directory") }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            chmod(directory, 0o700)
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw NodeError("cannot create the node data directory \(directory): \(error.localizedDescription)")
        }
        let k = key ?? ClusterKey.generate()
        try k.save(path: keyPath)
        return k
    }

    /// The cluster credential; a token given at start must match it (or is adopted when the
    /// directory has none yet).
    public func key(token: String?) throws -> ClusterKey {
        guard isInitialised else { throw NodeError("\(directory) is not a node's data directory: run `vos node init --data \(directory)` first") }
        let given = try token.map { try ClusterKey(token: $0) }
        if FileManager.default.fileExists(atPath: keyPath) {
            let k = try ClusterKey.load(path: keyPath)
            if let given, given != k {
                throw NodeError("the token given is another cluster's credential than the one in \(keyPath)")
            }
            return k
        }
        guard let given else { throw NodeError("\(directory) holds no cluster credential: give --token") }
        try given.save(path: keyPath)
        return given
    }
}
