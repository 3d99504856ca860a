// Accepting connections: TCP from other nodes (each authenticated before its first request)
// and the unix control socket. Every accepted connection gets a thread of its own: what it asks
// for (a checkpoint, a restore) blocks on ptrace and must not run on an event loop.
import Foundation
import NIOCore
import NIOPosix

public enum Listener {
    /// Binds `host:port`; `serve` runs on a new thread per connection.
    public static func tcp(host: String, port: Int, group: EventLoopGroup,
                           serve: @escaping @Sendable (PeerLink) -> Void) throws -> Channel {
        try bind(group, "\(host):\(port)", serve) { try $0.bind(host: host, port: port).wait() }
    }

    /// Binds a unix socket at `path` (its directory decides who may connect).
    public static func unix(path: String, group: EventLoopGroup, serve: @escaping @Sendable (PeerLink) -> Void) throws -> Channel {
        unlink(path)
        return try bind(group, path, serve) { try $0.bind(unixDomainSocketPath: path).wait() }
    }

    private static func bind(_ group: EventLoopGroup, _ what: String, _ serve: @escaping @Sendable (PeerLink) -> Void,
                             _ bind: (ServerBootstrap) throws -> Channel) throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let inbox = Inbox()
                let peer = channel.remoteAddress.map { "\($0.ipAddress ?? "local"):\($0.port ?? 0)" } ?? "a local client"
                let link = PeerLink(channel: channel, inbox: inbox, peer: peer)
                return PeerLink.pipeline(channel, inbox).map {
                    let t = Thread { serve(link) }
                    t.name = "vos-conn"
                    t.start()
                }
            }
        do { return try bind(bootstrap) } catch {
            throw MigrationError("cannot listen on \(what)", reason: "\(error)")
        }
    }
}

extension PeerLink {
    /// Authenticates an accepted connection (see `Handshake.server`).
    public func authenticate(as me: NodeIdentity) throws { try Handshake.server(self, as: me) }

    /// Tells the other end a request failed, with the error's text.
    public func fail(_ error: Error) {
        try? send(try Message("failed", RemoteFailure(error: "\(error)")))
    }
}
