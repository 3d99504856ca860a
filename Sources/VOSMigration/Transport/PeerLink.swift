// One connection to another node (TCP, authenticated and encrypted after `Handshake`) or
// between the CLI and its node (a unix socket only root can reach: plain frames). Blocking
// send and receive for the threads that do the work; every wait has a deadline, so a peer that
// dies or a network that is cut gives an error naming the peer instead of a hang.
import Crypto
import Dispatch
import Foundation
import NIOCore
import NIOPosix

public final class PeerLink: @unchecked Sendable {
    let channel: Channel
    let inbox: Inbox
    /// "node b (10.1.0.12:7100)" once known; the address before.
    public internal(set) var peer: String
    public internal(set) var peerName: String?
    var sendCipher: FrameCipher?
    var receiveCipher: FrameCipher?
    /// Seconds any one send or receive may wait.
    public var timeout: TimeInterval = 30
    private var inFlight: EventLoopFuture<Void>?

    init(channel: Channel, inbox: Inbox, peer: String) {
        self.channel = channel
        self.inbox = inbox
        self.peer = peer
    }

    static func pipeline(_ channel: Channel, _ inbox: Inbox) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
            try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox))
        }
    }

    /// TCP to another node (not yet authenticated: see `Handshake.client`).
    public static func connect(host: String, port: Int, group: EventLoopGroup) throws -> PeerLink {
        let inbox = Inbox()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            // Unacknowledged data for 10 s ends the connection (a cut network is an error, not a hang).
            .channelOption(ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 18 /* TCP_USER_TIMEOUT */)), value: 10_000)
            .channelInitializer { pipeline($0, inbox) }
        do {
            let channel = try bootstrap.connect(host: host, port: port).wait()
            return PeerLink(channel: channel, inbox: inbox, peer: "\(host):\(port)")
        } catch {
            throw MigrationError("cannot connect to \(host):\(port)", reason: "\(error)")
        }
    }

    /// The unix control socket of the local node.
    public static func connect(unixPath: String, group: EventLoopGroup) throws -> PeerLink {
        let inbox = Inbox()
        do {
            let channel = try ClientBootstrap(group: group).channelInitializer { pipeline($0, inbox) }
                .connect(unixDomainSocketPath: unixPath).wait()
            return PeerLink(channel: channel, inbox: inbox, peer: "the node at \(unixPath)")
        } catch {
            throw MigrationError("cannot reach the node daemon at \(unixPath)", reason: "\(error) (is `vos node start` running?)")
        }
    }

    public func send(_ message: Message) throws {
        let bytes = message.encoded()
        var buffer: ByteBuffer
        if sendCipher != nil {
            let sealed = try sendCipher!.seal(bytes)
            buffer = channel.allocator.buffer(capacity: 4 + sealed.ciphertext.count + sealed.tag.count)
            buffer.writeInteger(UInt32(sealed.ciphertext.count + sealed.tag.count))
            buffer.writeBytes(sealed.ciphertext)
            buffer.writeBytes(sealed.tag)
        } else {
            buffer = channel.allocator.buffer(capacity: 4 + bytes.count)
            buffer.writeInteger(UInt32(bytes.count))
            buffer.writeBytes(bytes)
        }
        // One frame in flight while the next is prepared (sealing overlaps the socket write);
        // waiting for the one before keeps memory bounded and a dead peer an error.
        let previous = inFlight
        inFlight = channel.writeAndFlush(buffer)
        if let previous { try wait(previous, "sending to \(peer)") }
    }

    /// Waits until every frame sent so far is written to the socket.
    public func flush() throws {
        if let f = inFlight { try wait(f, "sending to \(peer)") }
        inFlight = nil
    }

    /// The next message. A "failed" message from the peer is thrown as its error.
    public func receive(timeout: TimeInterval? = nil, expecting what: String = "a reply") throws -> Message {
        try flush()
        guard let event = inbox.pop(timeout: timeout ?? self.timeout) else {
            close()
            throw MigrationError("waiting for \(what) from \(peer)", reason: "nothing arrived in \(Int(timeout ?? self.timeout)) s")
        }
        switch event {
        case .closed: throw MigrationError("waiting for \(what) from \(peer)", reason: "the connection was closed")
        case .failed(let e): throw MigrationError("waiting for \(what) from \(peer)", reason: "the connection failed: \(e)")
        case .frame(let frame):
            let m: Message
            if receiveCipher != nil {
                let plain = try frame.withUnsafeReadableBytes { try receiveCipher!.open($0) }
                m = try plain.withUnsafeBytes { try Message.decode($0) }
            } else {
                m = try frame.withUnsafeReadableBytes { try Message.decode($0) }
            }
            if m.type == "failed" { throw RemoteError(peer: peer, text: (try m.decode(RemoteFailure.self)).error) }
            return m
        }
    }

    /// Sends a request and returns the reply.
    public func request(_ message: Message, timeout: TimeInterval? = nil) throws -> Message {
        try send(message)
        return try receive(timeout: timeout, expecting: "the reply to \(message.type)")
    }

    public func close() { channel.close(promise: nil) }

    private func wait(_ future: EventLoopFuture<Void>, _ what: String) throws {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<Void, Error>?
        future.whenComplete {
            result = $0
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            close()
            throw MigrationError(what, reason: "no progress in \(Int(timeout)) s (the peer or the network stopped)")
        }
        if case .failure(let e) = result {
            if let c = e as? ChannelError, c == .ioOnClosedChannel || c == .alreadyClosed {
                throw MigrationError(what, reason: "the connection was lost (the peer went away or the network between us was cut)")
            }
            throw MigrationError(what, reason: "\(e)")
        }
    }
}
