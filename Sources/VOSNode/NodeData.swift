// A node's data directory (mode 0700, root only): the cluster credential, the node's settings,
// the control socket the local CLI talks through, and the capsule registry of this node.
import Foundation
import Glibc
import VOSImage
import VOSLinux
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

    /// Refuses a directory another user owns or others may enter: it holds the cluster key,
    /// and its mode is what keeps the control socket root-only. A directory of ours that is
    /// open to others (made by hand, or by an older vos) is closed (0700).
    public func secure() throws {
        var s = stat()
        guard stat(directory, &s) == 0 else {
            throw NodeError("cannot use the node data directory \(directory): stat: \(String(cString: strerror(errno)))")
        }
        guard s.st_uid == geteuid() else {
            throw NodeError("the node data directory \(directory) belongs to uid \(s.st_uid), not to uid \(geteuid()) running the node: "
                + "another user could reach the control socket and the cluster key")
        }
        if s.st_mode & 0o077 != 0 && chmod(directory, PrivateFiles.directoryMode) != 0 {
            throw NodeError("cannot make the node data directory \(directory) private: chmod(0700): \(String(cString: strerror(errno)))")
        }
    }

    public var isInitialised: Bool { FileManager.default.fileExists(atPath: stateDirectory) }

    /// Creates the directory; with `key` (a joining node's token) or a new key (a new cluster).
    public func initialise(key: ClusterKey?) throws -> ClusterKey {
        if isInitialised { throw NodeError("\(directory) is already a node's data directory") }
        do {
            // Every directory made 0700 whatever the umask; one that existed becomes 0700 too.
            try PrivateFiles.makeDirectories(directory)
            try checked("chmod(0700)", directory) { chmod(directory, PrivateFiles.directoryMode) }
            try PrivateFiles.makeDirectories(stateDirectory)
        } catch {
            throw NodeError("cannot create the node data directory \(directory): \(error)")
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
