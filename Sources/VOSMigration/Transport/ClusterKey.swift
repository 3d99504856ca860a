// The cluster credential: 32 random bytes made by `vos node init`, kept in the node's data
// directory (0600) and handed to joining nodes as a token. Holding it is what makes a node a
// member: every connection between nodes proves it both ways (`Handshake`).
import Crypto
import Foundation
import Glibc

public struct ClusterKey: @unchecked Sendable, Equatable {
    public let key: SymmetricKey
    static let tokenPrefix = "vos1-"

    public init(key: SymmetricKey) { self.key = key }

    public static func generate() -> ClusterKey { ClusterKey(key: SymmetricKey(size: .bits256)) }

    public var token: String {
        Self.tokenPrefix + key.withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    public init(token: String) throws {
        let body = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard body.hasPrefix(Self.tokenPrefix),
            let data = Data(base64Encoded: String(body.dropFirst(Self.tokenPrefix.count))
                .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")),
            data.count == 32
        else { throw MigrationError("bad join token", reason: "expected \"\(Self.tokenPrefix)\" and 32 bytes in base64 (as `vos node init` prints)") }
        key = SymmetricKey(data: data)
    }

    /// A short public fingerprint, for logs and `vos nodes` (never the key itself).
    public var fingerprint: String {
        let digest = SHA256.hash(data: Data("vos-cluster-id".utf8) + key.withUnsafeBytes { Data($0) })
        return digest.prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    public static func load(path: String) throws -> ClusterKey {
        guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw MigrationError("cannot read the cluster credential \(path)", reason: String(cString: strerror(errno)))
        }
        return try ClusterKey(token: text)
    }

    /// Written with mode 0600 from the start (never readable by others, not even briefly).
    public func save(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MigrationError("cannot create \(path)", reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw MigrationError("cannot write \(path)", reason: String(cString: strerror(errno)))
        }
    }
}
