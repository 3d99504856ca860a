// Length-prefixed frames on a NIO channel ([u32 big-endian length][bytes]), handed to a
// blocking reader (`Inbox`): the engine's work (ptrace, page copies) runs on threads of its
// own, never on an event loop, and reads the connection as a stream of frames.
import Foundation
import NIOCore

final class FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    /// A 16 MiB data chunk plus the message header and the AEAD tag.
    static let maximum = 17 << 20

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= Self.maximum else {
            throw MigrationError("refused a frame", reason: "\(length) bytes is more than the \(Self.maximum) a peer may send")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Frames received, for one blocking reader. Reading from the socket pauses (autoRead off)
/// while too many frames wait, so a fast sender cannot fill our memory.
final class Inbox: @unchecked Sendable {
    enum Event { case frame(ByteBuffer), closed, failed(Error) }

    private let condition = NSCondition()
    private var events: [Event] = []
    private var head = 0
    private var paused = false
    weak var channel: Channel?
    static let high = 64, low = 16

    func push(_ e: Event) {
        condition.lock()
        events.append(e)
        let pause = !paused && events.count - head > Self.high
        if pause { paused = true }
        condition.signal()
        condition.unlock()
        if pause { _ = channel?.setOption(ChannelOptions.autoRead, value: false) }
    }

    /// The next event, or nil when `timeout` passes first.
    func pop(timeout: TimeInterval) -> Event? {
        condition.lock()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while head == events.count {
            if !condition.wait(until: deadline) {
                condition.unlock()
                return nil
            }
        }
        let e = events[head]
        head += 1
        if head > 256 {
            events.removeFirst(head)
            head = 0
        }
        let resume = paused && events.count - head < Self.low
        if resume { paused = false }
        condition.unlock()
        if resume { _ = channel?.setOption(ChannelOptions.autoRead, value: true) }
        return e
    }
}

final class InboxHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let inbox: Inbox
    private var ended = false

    init(inbox: Inbox) { self.inbox = inbox }

    func channelActive(context: ChannelHandlerContext) {
        inbox.channel = context.channel
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.push(.frame(unwrapInboundIn(data)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !ended { inbox.push(.closed) }
        ended = true
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !ended { inbox.push(.failed(error)) }
        ended = true
        context.close(promise: nil)
    }
}
