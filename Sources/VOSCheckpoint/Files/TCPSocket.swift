// TCP sockets: a listening socket comes back bound and listening with its backlog; an
// established connection is dumped and rebuilt with TCP_REPAIR (tcp(7)) in the order of probe 6
// of kernel-facts.md, so the peer sees no handshake, no lost and no repeated byte. The dump puts
// the socket in repair mode and leaves it there: the checkpoint then kills the process, and a
// socket closed in repair mode sends neither FIN nor RST. Connections waiting in a listening
// socket's accept queue are not saved.
import Glibc
import VOSImage
import VOSLinux

enum TCPSocket: FileKind {
    static let tag = "tcp"
    static let c = SocketConstants.self
    /// /proc/net/tcp and TCP_INFO states.
    static let established: UInt8 = 1, closed: UInt8 = 7, listening: UInt8 = 10

    static func matches(_ f: OpenFile) -> Bool { InetSocket.state(pid: f.pid, link: f.link, proto: "tcp") != nil }

    static func dump(_ f: OpenFile, local fd: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        var s = try InetSocket.dump(fd)
        let info = try Socket.bytesOption(fd, c.ipprotoTCP, c.tcpInfo, size: 104, "TCP_INFO")
        guard info.count >= 32 else {
            throw CheckpointError("cannot read TCP_INFO", reason: "the kernel gave \(info.count) bytes")
        }
        switch info[0] {
        case listening:
            s.listenBacklog = Int32(bitPattern: u32(info, at: 28))  // tcpi_sacked = sk_max_ack_backlog
        case closed:
            break  // made (perhaps bound), never connected
        case established:
            s.tcp = try dumpConnection(fd, info: info)
        default:
            throw CheckpointError(
                "cannot checkpoint TCP socket fd \(f.fd) (\(Socket.describe(s.local ?? []))"
                    + " to \(Socket.describe(s.peer ?? [])))",
                reason: "it is in TCP state \(info[0]) (closing); vOS saves listening, established and unconnected"
                    + " sockets only")
        }
        r.socket = s
    }

    /// Probe 6's dump: repair mode on, each queue's sequence number, length and bytes, then the
    /// options (TCP_REPAIR_OPTIONS cannot be read back: they come from TCP_INFO and TCP_MAXSEG),
    /// the window and the timestamp.
    static func dumpConnection(_ fd: Int32, info: [UInt8]) throws -> TCPConnectionRecord {
        try Socket.setIntOption(fd, c.ipprotoTCP, c.tcpRepair, 1, "TCP_REPAIR")
        try Socket.setIntOption(fd, c.ipprotoTCP, c.tcpRepairQueue, c.sendQueue, "TCP_REPAIR_QUEUE")
        let sendSequence = UInt32(
            bitPattern: try Socket.intOption(fd, c.ipprotoTCP, c.tcpQueueSequence, "TCP_QUEUE_SEQ"))
        let outq = try Socket.queueBytes(fd, c.siocOutQ, "SIOCOUTQ")
        let unsent = try Socket.queueBytes(fd, c.siocOutQNotSent, "SIOCOUTQNSD")
        let sendQueue = try Socket.peek(fd, count: Int(outq))
        try Socket.setIntOption(fd, c.ipprotoTCP, c.tcpRepairQueue, c.receiveQueue, "TCP_REPAIR_QUEUE")
        let receiveSequence = UInt32(
            bitPattern: try Socket.intOption(fd, c.ipprotoTCP, c.tcpQueueSequence, "TCP_QUEUE_SEQ"))
        let inq = try Socket.queueBytes(fd, c.siocInQ, "SIOCINQ")
        let receiveQueue = try Socket.peek(fd, count: Int(inq))
        try Socket.setIntOption(fd, c.ipprotoTCP, c.tcpRepairQueue, c.noQueue, "TCP_REPAIR_QUEUE")
        guard sendQueue.count == outq, receiveQueue.count == inq else {
            throw CheckpointError(
                "cannot read a TCP connection's queues",
                reason:
                    "read \(sendQueue.count) of \(outq) queued bytes to send, \(receiveQueue.count) of \(inq) received")
        }
        let window = try Socket.bytesOption(fd, c.ipprotoTCP, c.tcpRepairWindow, size: 20, "TCP_REPAIR_WINDOW")
        return TCPConnectionRecord(
            sendSequence: sendSequence, receiveSequence: receiveSequence, sendQueue: sendQueue, unsentBytes: unsent,
            receiveQueue: receiveQueue,
            maxSegment: try Socket.intOption(fd, c.ipprotoTCP, c.tcpMaxSegment, "TCP_MAXSEG"),
            options: info[5], sendWindowScale: info[6] & 0xf, receiveWindowScale: info[6] >> 4,
            timestamp: UInt32(bitPattern: try Socket.intOption(fd, c.ipprotoTCP, c.tcpTimestamp, "TCP_TIMESTAMP")),
            window: (0..<window.count / 4).map { u32(window, at: $0 * 4) },
            noDelay: try Socket.intOption(fd, c.ipprotoTCP, c.tcpNoDelay, "TCP_NODELAY") != 0)
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        guard let s = r.socket else {
            throw ImageError.inconsistent("fd \(r.fd) is a TCP socket without its socket record")
        }
        let fd = try InetSocket.make(s, context, fd: r.fd)
        let what = "TCP socket fd \(r.fd)"
        if let t = s.tcp {
            guard let local = s.local, let peer = s.peer else {
                throw ImageError.inconsistent("fd \(r.fd) is an established TCP connection without both addresses")
            }
            try step("rebuilding the connection \(Socket.describe(local)) to \(Socket.describe(peer)) of fd \(r.fd)") {
                try repair(fd, t, local: local, peer: peer, what: what)
            }
        } else {
            if let local = s.local { try Socket.bind(fd, local, what: what) }
            if let backlog = s.listenBacklog { try Socket.listen(fd, backlog: backlog, what: what) }
        }
        try setStatusFlags(fd, r.flags, what: what)
        return fd
    }

    /// Probe 6's restore order: sequence numbers, bind, connect (no handshake in repair mode),
    /// options, timestamp, the receive queue, the sent-but-unacknowledged part of the send
    /// queue, the window (only after the receive queue: EINVAL before), repair off (sends a
    /// window probe), then the never-sent part written normally.
    static func repair(_ fd: Int32, _ t: TCPConnectionRecord, local: [UInt8], peer: [UInt8], what: String) throws {
        func set(_ option: Int32, _ value: Int32, _ name: String) throws {
            try Socket.setIntOption(fd, c.ipprotoTCP, option, value, name)
        }
        if t.sendQueue.count > 1 << 16 {
            try Socket.setIntOption(
                fd, c.solSocket, c.soSendBuffer, Int32(min(t.sendQueue.count * 2, 1 << 30)), "SO_SNDBUF")
        }
        try set(c.tcpRepair, 1, "TCP_REPAIR")
        try set(c.tcpRepairQueue, c.sendQueue, "TCP_REPAIR_QUEUE")
        try set(c.tcpQueueSequence, Int32(bitPattern: t.sendSequence &- UInt32(t.sendQueue.count)), "TCP_QUEUE_SEQ")
        try set(c.tcpRepairQueue, c.receiveQueue, "TCP_REPAIR_QUEUE")
        try set(
            c.tcpQueueSequence, Int32(bitPattern: t.receiveSequence &- UInt32(t.receiveQueue.count)), "TCP_QUEUE_SEQ")
        try Socket.bind(fd, local, what: what)
        try Socket.connect(fd, peer, what: what)
        // struct tcp_repair_opt { u32 opt_code; u32 opt_val; }: TCPOPT_MAXSEG 2, TCPOPT_WINDOW 3,
        // TCPOPT_SACK_PERM 4, TCPOPT_TIMESTAMP 8; tcpi_options: 1 timestamps, 2 SACK, 4 wscale.
        var options: [(UInt32, UInt32)] = [(2, UInt32(bitPattern: t.maxSegment))]
        if t.options & 4 != 0 { options.append((3, UInt32(t.sendWindowScale) | UInt32(t.receiveWindowScale) << 16)) }
        if t.options & 1 != 0 { options.append((8, 0)) }
        if t.options & 2 != 0 { options.append((4, 0)) }
        try Socket.setBytesOption(
            fd, c.ipprotoTCP, c.tcpRepairOptions, options.flatMap { bytes($0.0) + bytes($0.1) }, "TCP_REPAIR_OPTIONS")
        try set(c.tcpTimestamp, Int32(bitPattern: t.timestamp), "TCP_TIMESTAMP")
        try set(c.tcpRepairQueue, c.receiveQueue, "TCP_REPAIR_QUEUE")
        try Socket.sendAll(fd, t.receiveQueue, what: "\(what) (its receive queue)")
        let sentPart = t.sendQueue.count - Int(t.unsentBytes)
        try set(c.tcpRepairQueue, c.sendQueue, "TCP_REPAIR_QUEUE")
        try Socket.sendAll(fd, Array(t.sendQueue.prefix(sentPart)), what: "\(what) (its sent, unacknowledged bytes)")
        try set(c.tcpRepairQueue, c.noQueue, "TCP_REPAIR_QUEUE")
        if t.window.count == 5 {
            try Socket.setBytesOption(fd, c.ipprotoTCP, c.tcpRepairWindow, t.window.flatMap(bytes), "TCP_REPAIR_WINDOW")
        }
        try set(c.tcpRepair, 0, "TCP_REPAIR")
        if t.noDelay { try set(c.tcpNoDelay, 1, "TCP_NODELAY") }
        try Socket.sendAll(fd, Array(t.sendQueue.dropFirst(sentPart)), what: "\(what) (its never sent bytes)")
    }

    /// Takes every established TCP socket of `pids` out of repair mode (a checkpoint that leaves
    /// the processes running, or one that failed). Best effort: a socket is still usable either way
    /// only once this ran, so errors are ignored socket by socket.
    static func leaveRepair(pids: [PID]) {
        for pid in pids {
            guard let pidfd = try? Kernel.pidfdOpen(pid) else { continue }
            defer { try? pidfd.close() }
            for fd in (try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? [] {
                guard let link = try? ProcFile.link("/proc/\(pid)/fd/\(fd)"),
                    InetSocket.state(pid: pid, link: link, proto: "tcp") == established,
                    let local = try? Kernel.pidfdGetfd(pidfd, fd, pid: pid)
                else { continue }
                try? Socket.setIntOption(local.rawValue, c.ipprotoTCP, c.tcpRepair, 0, "TCP_REPAIR")
                try? local.close()
            }
        }
    }

    static func u32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    static func bytes(_ v: UInt32) -> [UInt8] {
        [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
    }
}
