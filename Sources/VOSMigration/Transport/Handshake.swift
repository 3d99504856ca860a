// Mutual authentication with the cluster key (a pre-shared-key scheme from swift-crypto):
// each side sends a fresh nonce, each proves it holds the key with an HMAC over both nonces and
// both names under its own role label, and both derive per-direction AES-GCM keys with HKDF.
// Neither side sends anything of value before the other has proved itself: a node of another
// cluster learns nothing and can neither push an image nor ask for anything.
import Crypto
import Foundation
import NIOCore

public struct NodeIdentity: Sendable {
    public var name: String
    public var key: ClusterKey

    public init(name: String, key: ClusterKey) {
        self.name = name
        self.key = key
    }
}

enum Handshake {
    struct Hello: Codable { var version: Int; var node: String; var nonce: Data }
    struct Challenge: Codable { var node: String; var nonce: Data; var proof: Data }
    struct Proof: Codable { var proof: Data }
    static let timeout: TimeInterval = 10

    static func transcript(_ role: String, client: Hello, server: String, serverNonce: Data) -> Data {
        Data("vos-\(role)-proof\0".utf8) + client.nonce + serverNonce + Data(client.node.utf8) + Data([0]) + Data(server.utf8)
    }

    static func proof(_ role: String, _ key: ClusterKey, client: Hello, server: String, serverNonce: Data) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: transcript(role, client: client, server: server, serverNonce: serverNonce), using: key.key))
    }

    /// Compared in constant time.
    static func valid(_ proof: Data, _ role: String, _ key: ClusterKey, client: Hello, server: String, serverNonce: Data) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: transcript(role, client: client, server: server, serverNonce: serverNonce), using: key.key)
    }

    static func keys(_ key: ClusterKey, _ clientNonce: Data, _ serverNonce: Data) -> (toServer: SymmetricKey, toClient: SymmetricKey) {
        let salt = clientNonce + serverNonce
        func derive(_ info: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: key.key, salt: salt, info: Data(info.utf8), outputByteCount: 32)
        }
        return (derive("vos client to server"), derive("vos server to client"))
    }

    static func nonce() -> Data { SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) } }

    /// The connecting side. Throws when the peer cannot prove the cluster key or refuses ours.
    static func client(_ link: PeerLink, as me: NodeIdentity) throws {
        let hello = Hello(version: 1, node: me.name, nonce: nonce())
        try link.send(try Message("hello", hello))
        let c: Challenge
        do { c = try link.receive(timeout: timeout, expecting: "its proof of the cluster key").decode(Challenge.self) } catch {
            link.close()
            throw MigrationError("cannot authenticate \(link.peer)", reason: "\(error)")
        }
        guard valid(c.proof, "server", me.key, client: hello, server: c.node, serverNonce: c.nonce) else {
            link.close()
            throw MigrationError("refusing \(link.peer) (calls itself \"\(c.node)\")",
                                 reason: "it cannot prove it holds this cluster's credential (a node of another cluster, or not a vos node)")
        }
        try link.send(try Message("proof", Proof(proof: proof("client", me.key, client: hello, server: c.node, serverNonce: c.nonce))))
        let k = keys(me.key, hello.nonce, c.nonce)
        link.sendCipher = FrameCipher(key: k.toServer)
        link.receiveCipher = FrameCipher(key: k.toClient)
        do { _ = try link.receive(timeout: timeout, expecting: "its welcome") } catch {
            link.close()
            throw MigrationError("\(link.peer) (\"\(c.node)\") refused this node",
                                 reason: "it does not accept our cluster credential (\(error))")
        }
        link.peerName = c.node
        link.peer = "node \(c.node) (\(link.peer))"
    }

    /// The accepting side. Throws (and closes) when the client cannot prove the cluster key.
    static func server(_ link: PeerLink, as me: NodeIdentity) throws {
        let hello = try link.receive(timeout: timeout, expecting: "a hello").decode(Hello.self)
        guard hello.version == 1 else { throw MigrationError("refusing \(link.peer)", reason: "protocol version \(hello.version), this node speaks 1") }
        let serverNonce = nonce()
        try link.send(try Message("challenge", Challenge(
            node: me.name, nonce: serverNonce, proof: proof("server", me.key, client: hello, server: me.name, serverNonce: serverNonce))))
        let p: Proof
        do { p = try link.receive(timeout: timeout, expecting: "its proof of the cluster key").decode(Proof.self) } catch {
            // A node of another cluster hangs up here: our proof did not check out on its side.
            link.close()
            throw MigrationError("refused a connection from \(link.peer) (calls itself \"\(hello.node)\")",
                                 reason: "it gave no proof of this cluster's credential (\(error))")
        }
        guard valid(p.proof, "client", me.key, client: hello, server: me.name, serverNonce: serverNonce) else {
            link.close()
            throw MigrationError("refused a connection from \(link.peer) (calls itself \"\(hello.node)\")",
                                 reason: "it cannot prove it holds this cluster's credential")
        }
        let k = keys(me.key, hello.nonce, serverNonce)
        link.sendCipher = FrameCipher(key: k.toClient)
        link.receiveCipher = FrameCipher(key: k.toServer)
        try link.send(Message("welcome"))
        link.peerName = hello.node
        link.peer = "node \(hello.node) (\(link.peer))"
    }
}

extension PeerLink {
    /// Connects to a node and authenticates both ways.
    public static func connect(node host: String, port: Int, as me: NodeIdentity, group: EventLoopGroup) throws -> PeerLink {
        let link = try connect(host: host, port: port, group: group)
        try Handshake.client(link, as: me)
        return link
    }
}
