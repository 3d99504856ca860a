// An IPv4/IPv6 socket (kinds "tcp" and "udp"): addresses, options, and for an established TCP
// connection the state TCP_REPAIR needs to rebuild it (sequence numbers, queues, options, window).
public struct SocketRecord: Codable, Sendable, Equatable {
    /// AF_INET or AF_INET6, SOCK_STREAM or SOCK_DGRAM, IPPROTO_*.
    public var family: Int32
    public var type: Int32
    public var proto: Int32
    /// Raw sockaddr bytes from getsockname; nil when the socket was never bound.
    public var local: [UInt8]?
    /// Raw sockaddr bytes from getpeername; nil when not connected.
    public var peer: [UInt8]?
    public var reuseAddress: Bool
    public var reusePort: Bool
    /// IPV6_V6ONLY of an AF_INET6 socket.
    public var v6Only: Bool?
    /// A listening TCP socket's backlog (sk_max_ack_backlog, tcpi_sacked of TCP_INFO).
    public var listenBacklog: Int32?
    public var tcp: TCPConnectionRecord?

    public init(family: Int32, type: Int32, proto: Int32, reuseAddress: Bool, reusePort: Bool) {
        self.family = family
        self.type = type
        self.proto = proto
        self.reuseAddress = reuseAddress
        self.reusePort = reusePort
    }
}

/// An established TCP connection as dumped in repair mode (tcp(7), TCP_REPAIR).
public struct TCPConnectionRecord: Codable, Sendable, Equatable {
    /// TCP_QUEUE_SEQ of the send queue (snd_nxt... the sequence after its last byte) and of the
    /// receive queue (rcv_nxt).
    public var sendSequence: UInt32
    public var receiveSequence: UInt32
    /// The whole send queue (SIOCOUTQ bytes); its last `unsentBytes` (SIOCOUTQNSD) were never sent.
    public var sendQueue: [UInt8]
    public var unsentBytes: Int32
    /// Received bytes the process has not read (SIOCINQ).
    public var receiveQueue: [UInt8]
    /// TCP_MAXSEG.
    public var maxSegment: Int32
    /// From TCP_INFO: tcpi_options (1 timestamps, 2 SACK, 4 window scaling) and the scales.
    public var options: UInt8
    public var sendWindowScale: UInt8
    public var receiveWindowScale: UInt8
    /// TCP_TIMESTAMP.
    public var timestamp: UInt32
    /// TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
    public var window: [UInt32]
    public var noDelay: Bool

    public init(
        sendSequence: UInt32, receiveSequence: UInt32, sendQueue: [UInt8], unsentBytes: Int32, receiveQueue: [UInt8],
        maxSegment: Int32, options: UInt8, sendWindowScale: UInt8, receiveWindowScale: UInt8, timestamp: UInt32,
        window: [UInt32], noDelay: Bool
    ) {
        self.sendSequence = sendSequence
        self.receiveSequence = receiveSequence
        self.sendQueue = sendQueue
        self.unsentBytes = unsentBytes
        self.receiveQueue = receiveQueue
        self.maxSegment = maxSegment
        self.options = options
        self.sendWindowScale = sendWindowScale
        self.receiveWindowScale = receiveWindowScale
        self.timestamp = timestamp
        self.window = window
        self.noDelay = noDelay
    }
}
