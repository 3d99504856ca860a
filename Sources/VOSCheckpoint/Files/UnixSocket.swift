// Unix domain sockets (stream, datagram, seqpacket) whose peers are in the image: socketpairs
// and connections (across the processes of a tree too), listeners and bound datagram sockets,
// unread data with its message boundaries, shutdown, options. A connected pair comes back as a
// socketpair made in vos (both ends at once, from whichever end is restored first; the other
// waits in the context for its process), listeners and bound sockets by bind() to their path.
import CVOSShim
import Glibc
import VOSImage
import VOSLinux

enum UnixSocket: FileKind {
    static let tag = "unix"

    static func matches(_ f: OpenFile) -> Bool {
        guard let ino = UnixSocketTable.inode(f.link), f.unixSockets?.sockets[ino] != nil else { return false }
        return refusal(f) == nil
    }

    /// Why vOS cannot save this unix socket (for the unsupported-fd error); nil when it can, or
    /// when the fd is not a unix socket at all.
    static func refusal(_ f: OpenFile) -> String? {
        guard let ino = UnixSocketTable.inode(f.link), let table = f.unixSockets, let s = table.sockets[ino] else {
            return nil
        }
        let what = "a unix \(s.typeName) socket (\(f.link))"
        guard [SOCK_STREAM_VALUE, SOCK_DGRAM_VALUE, SOCK_SEQPACKET_VALUE].contains(s.type) else { return what }
        if let name = s.name, !name.isEmpty, name[0] != 0, name[0] != UInt8(ascii: "/") {
            return "\(what) bound to the relative path \(UnixSocketInfo.describe(name))"
        }
        if s.state == UnixSocketInfo.listening && !s.pending.isEmpty {
            return
                "\(what) listening on \(UnixSocketInfo.describe(s.name)) with \(s.pending.count) connection(s) not accepted yet"
        }
        // A client whose connection waits in a listener's queue: its peer is the embryo socket,
        // which has no inode yet (sock_diag says 0); the listener's UNIX_DIAG_ICONS name the client.
        if let listener = table.sockets.values.first(where: { $0.pending.contains(ino) }) {
            return "\(what) connected to \(UnixSocketInfo.describe(listener.name)), "
                + "whose listener has not accepted the connection yet"
        }
        guard let peer = s.peer, peer != 0 else { return nil }
        guard table.held.contains(peer) else {
            let name = UnixSocketInfo.describe(table.sockets[peer]?.name)
            return "\(what) connected to \(name) (socket:[\(peer)]) outside the checkpointed processes"
        }
        // A one-way peer (a datagram socket connect()ed to another) is reconnected by name.
        if let p = table.sockets[peer], p.peer != ino, p.name?.first ?? 0 != UInt8(ascii: "/") {
            return
                "\(what) connected to \(UnixSocketInfo.describe(p.name)) (socket:[\(peer)]), which has no path to reconnect to"
        }
        return nil
    }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        guard let ino = UnixSocketTable.inode(f.link), let s = f.unixSockets?.sockets[ino] else {
            throw CheckpointError("fd \(f.fd)", reason: "\(f.link) is no longer a unix socket known to sock_diag")
        }
        r.unixInode = ino
        r.unixType = s.type
        if let name = s.name, !name.isEmpty { r.unixName = name }
        r.unixPeerInode = s.peer
        r.unixBacklog = s.backlog
        if s.shutdown != 0 { r.unixShutdown = s.shutdown }
        r.unixPassCredentials = try intOption(local, 16 /* SO_PASSCRED */, "SO_PASSCRED", f) != 0
        r.unixSendBuffer = try intOption(local, 7 /* SO_SNDBUF */, "SO_SNDBUF", f)
        r.unixReceiveBuffer = try intOption(local, 8 /* SO_RCVBUF */, "SO_RCVBUF", f)
        let peekOffset = try intOption(local, 42 /* SO_PEEK_OFF */, "SO_PEEK_OFF", f)
        if peekOffset >= 0 { r.unixPeekOffset = peekOffset }
        if s.state != UnixSocketInfo.listening {
            let queue = try peekQueue(local, type: s.type, peekOffset: peekOffset, f)
            if !queue.isEmpty { r.unixQueue = queue.map(Base64.init(wrappedValue:)) }
        }
    }

    /// Every unread message, left in the queue: with SO_PEEK_OFF set, each MSG_PEEK continues
    /// where the previous one stopped (socket(7); unix(7) sockets honour it for every type since
    /// 4.4), so datagrams past the first are read too. The target is frozen; its own peek offset
    /// goes back afterwards. A datagram's length comes first from a MSG_TRUNC peek of 0 bytes.
    static func peekQueue(_ fd: Int32, type: Int32, peekOffset: Int32, _ f: OpenFile) throws -> [[UInt8]] {
        try setIntOption(fd, 42, 0, "SO_PEEK_OFF", f)
        defer { try? setIntOption(fd, 42, peekOffset, "SO_PEEK_OFF", f) }
        if type == SOCK_STREAM_VALUE {
            var queued: Int32 = 0
            try checked("ioctl(SIOCINQ)", "fd \(f.fd) (\(f.link))") { vos_ioctl(fd, 0x541B, &queued) }
            var data: [UInt8] = []
            while data.count < Int(queued), let chunk = try peek(fd, count: Int(queued) - data.count, f), !chunk.isEmpty
            {
                data += chunk
            }
            guard data.count == Int(queued) else {
                throw CheckpointError(
                    "fd \(f.fd) (\(f.link))", reason: "peeked \(data.count) of \(queued) unread bytes")
            }
            return data.isEmpty ? [] : [data]
        }
        var messages: [[UInt8]] = []
        while let probe = try peek(fd, count: 0, f, truncate: true) {
            // A zero-length datagram is marked peeked and skipped by the next peek at the same offset.
            let length = probe.count
            if length == 0 {
                messages.append([])
                continue
            }
            guard let message = try peek(fd, count: length, f), message.count == length else {
                throw CheckpointError(
                    "fd \(f.fd) (\(f.link))", reason: "a queued datagram of \(length) bytes could not be peeked whole")
            }
            messages.append(message)
        }
        return messages
    }

    /// One recvmsg(MSG_PEEK | MSG_DONTWAIT); nil when nothing is left (EAGAIN). With `truncate`
    /// (MSG_TRUNC) it returns as many zero bytes as the next datagram holds. Refuses a message
    /// carrying fds (SCM_RIGHTS): the peek would give vos copies, which are closed.
    static func peek(_ fd: Int32, count: Int, _ f: OpenFile, truncate: Bool = false) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max(count, 1))
        var control = [UInt8](repeating: 0, count: 1024)
        var controlLength = 0
        var err: Int32 = 0
        let flags = Int32(MSG_PEEK | MSG_DONTWAIT) | (truncate ? Int32(MSG_TRUNC) : 0)
        let n = buffer.withUnsafeMutableBytes { b in
            control.withUnsafeMutableBytes { c in
                var iov = iovec(iov_base: b.baseAddress, iov_len: count)
                return withUnsafeMutablePointer(to: &iov) { iovp -> Int in
                    var m = msghdr()
                    m.msg_iov = iovp
                    m.msg_iovlen = 1
                    m.msg_control = c.baseAddress
                    m.msg_controllen = c.count
                    var r: Int
                    repeat {
                        r = recvmsg(fd, &m, flags)
                        err = r < 0 ? errno : 0
                    } while r < 0 && err == EINTR
                    controlLength = Int(m.msg_controllen)
                    return r
                }
            }
        }
        if n < 0 {
            if err == EAGAIN { return nil }
            throw SyscallError(
                call: "recvmsg(MSG_PEEK)", errno: .init(rawValue: err), subject: "fd \(f.fd) (\(f.link))")
        }
        var at = 0
        var passed = 0
        while at + 16 <= controlLength {
            let len = control[at..<(at + 8)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            guard len >= 16 else { break }
            if UnixSocketTable.u32(control, at + 8) == 1 && UnixSocketTable.u32(control, at + 12) == 1 {  // SOL_SOCKET, SCM_RIGHTS
                for i in stride(from: at + 16, to: min(at + len, controlLength) - 3, by: 4) {
                    close(Int32(bitPattern: UnixSocketTable.u32(control, i)))
                    passed += 1
                }
            }
            at += (len + 7) & ~7
        }
        if passed > 0 {
            throw CheckpointError(
                "fd \(f.fd) (\(f.link))",
                reason: "an unread message carries \(passed) file descriptor(s) (SCM_RIGHTS), which vOS cannot save yet"
            )
        }
        return truncate ? [UInt8](repeating: 0, count: n) : Array(buffer.prefix(n))
    }

    // MARK: restore

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        guard let ino = r.unixInode else { throw ImageError.inconsistent("fd \(r.fd) is a unix socket with no inode") }
        if context.unixSockets[ino] == nil { try make(ino, context) }
        guard let fd = context.unixSockets[ino] else {
            throw ImageError.inconsistent("unix socket \(ino) was not made")
        }
        try setStatusFlags(fd, r.flags, what: r.path)
        return fd
    }

    /// The image's unix sockets by inode, from every process (a pair's ends may be in two).
    static func records(_ context: FileRestoreContext) -> [UInt64: FileRecord] {
        var out: [UInt64: FileRecord] = [:]
        for p in context.image.processes {
            for f in p.record.files where f.kind == tag {
                if let i = f.unixInode, out[i] == nil { out[i] = f }
            }
        }
        return out
    }

    /// Makes socket `ino` (and its peer, for a pair) in vos, with its queue refilled.
    static func make(_ ino: UInt64, _ context: FileRestoreContext) throws {
        let index = records(context)
        guard let r = index[ino] else { throw ImageError.inconsistent("unix socket \(ino) has no record") }
        let type = r.unixType ?? SOCK_STREAM_VALUE
        let what = "unix socket \(r.path)"
        if let peer = r.unixPeerInode, let p = index[peer], p.unixPeerInode == ino {
            let (a, b) = try connectThroughListener(r, p, index, context) ?? pair(type, context, what)
            context.unixSockets[ino] = a
            context.unixSockets[peer] = b
            try refill(a, r.unixQueue?.map(\.wrappedValue), from: b, type: type, to: nil, what)
            try refill(b, p.unixQueue?.map(\.wrappedValue), from: a, type: type, to: nil, "unix socket \(p.path)")
            try setOptions(a, r, what)
            try setOptions(b, p, "unix socket \(p.path)")
            try shut(a, r, what)
            try shut(b, p, "unix socket \(p.path)")
            return
        }
        if r.unixPeerInode == 0 && type != SOCK_DGRAM_VALUE {
            // Its peer was closed: a pair whose other end is closed once the data is back.
            let (a, b) = try pair(type, context, what)
            context.unixSockets[ino] = a
            try refill(a, r.unixQueue?.map(\.wrappedValue), from: b, type: type, to: nil, what)
            context.opened.removeAll { $0 == b }
            close(b)
            try setOptions(a, r, what)
            return
        }
        let s = context.track(
            try made(in: context) {
                try checked("socket(AF_UNIX, \(type))", what) {
                    socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
                }
            })
        context.unixSockets[ino] = s
        if let name = r.unixName {
            try removeStale(name, what)
            try withAddress(name) { a, l in
                try checked("bind(\(UnixSocketInfo.describe(name)))", what) { bind(s, a, l) }
            }
        }
        if let backlog = r.unixBacklog {
            try checked("listen(\(backlog))", what) { listen(s, Int32(clamping: backlog)) }
        }
        if let peer = r.unixPeerInode, peer != 0 {
            guard let p = index[peer], let name = p.unixName else {
                throw ImageError.inconsistent("\(what) is connected to socket \(peer), which has no record or no name")
            }
            if context.unixSockets[peer] == nil { try make(peer, context) }
            try withAddress(name) { a, l in
                try checked("connect(\(UnixSocketInfo.describe(name)))", what) { connect(s, a, l) }
            }
        }
        if let queue = r.unixQueue?.map(\.wrappedValue), !queue.isEmpty {
            guard let name = r.unixName else {
                throw ImageError.inconsistent("\(what) has unread data but neither peer nor name")
            }
            let sender = try checked("socket(AF_UNIX, \(type))", what) {
                socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
            defer { close(sender) }
            try refill(s, queue, from: sender, type: type, to: name, what)
        }
        try setOptions(s, r, what)
        try shut(s, r, what)
    }

    /// A connection accepted from a listener of the image (the accepted end is named like the
    /// listener) is made the same way, connect() then accept(), so both ends keep their names
    /// (getsockname of the accepted end, getpeername of the client). Returns the ends of `r`
    /// and `p` in that order; nil when neither end came from a listener of the image.
    static func connectThroughListener(_ r: FileRecord, _ p: FileRecord, _ index: [UInt64: FileRecord],
                                       _ context: FileRestoreContext) throws -> (Int32, Int32)? {
        guard r.unixType == SOCK_STREAM_VALUE || r.unixType == SOCK_SEQPACKET_VALUE else { return nil }
        func listener(named name: [UInt8]?) -> FileRecord? {
            guard let name else { return nil }
            return index.values.first { $0.unixBacklog != nil && $0.unixName == name }
        }
        let rAccepted: Bool
        let found: FileRecord
        if let l = listener(named: r.unixName) { (rAccepted, found) = (true, l) }
        else if let l = listener(named: p.unixName) { (rAccepted, found) = (false, l) }
        else { return nil }
        guard let listenerInode = found.unixInode, let path = found.unixName else { return nil }
        let client = rAccepted ? p : r
        let what = "unix socket \(client.path)"
        if context.unixSockets[listenerInode] == nil { try make(listenerInode, context) }
        guard let l = context.unixSockets[listenerInode] else { return nil }
        let type = r.unixType ?? SOCK_STREAM_VALUE
        let c = context.track(try made(in: context) {
            try checked("socket(AF_UNIX, \(type))", what) { socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0) }
        })
        if let name = client.unixName {
            try removeStale(name, what)
            try withAddress(name) { a, n in try checked("bind(\(UnixSocketInfo.describe(name)))", what) { bind(c, a, n) } }
        }
        try withAddress(path) { a, n in try checked("connect(\(UnixSocketInfo.describe(path)))", what) { connect(c, a, n) } }
        // The connection is in the listener's queue as soon as connect() returns: no wait.
        let a = context.track(try checked("accept", "unix socket \(found.path)") { accept(l, nil, nil) })
        _ = fcntl(a, F_SETFD, FD_CLOEXEC)
        return rAccepted ? (a, c) : (c, a)
    }

    static func pair(_ type: Int32, _ context: FileRestoreContext, _ what: String) throws -> (Int32, Int32) {
        var sv: [Int32] = [0, 0]
        try made(in: context) {
            try checked("socketpair(AF_UNIX, \(type))", what) {
                socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &sv)
            }
        }
        return (context.track(sv[0]), context.track(sv[1]))
    }

    /// Runs `create` inside the capsule's network namespace when it has its own: a unix socket
    /// belongs to the namespace it is made in, which holds its abstract name and its sock_diag entry.
    static func made<T>(in context: FileRestoreContext, _ create: () throws -> T) throws -> T {
        try context.networkNamespace.map { try NetworkNamespace.withEntered($0, create) } ?? create()
    }

    /// Sends the saved unread messages to `receiver` from `sender` (its peer, or a helper socket
    /// sending to the receiver's name), one send per datagram so boundaries stay. The sender's
    /// buffer is raised meanwhile: the data was charged to the old peer's SO_SNDBUF, which the
    /// application may have lowered since.
    static func refill(
        _ receiver: Int32, _ queue: [[UInt8]]?, from sender: Int32, type: Int32, to name: [UInt8]?, _ what: String
    ) throws {
        guard let queue, !queue.isEmpty else { return }
        let total = queue.reduce(0) { $0 + $1.count }
        let old = try intOption(sender, 7, "SO_SNDBUF", what: what)
        try setIntOption(
            sender, 32 /* SO_SNDBUFFORCE */, Int32(clamping: min(total * 2 + (1 << 20), 1 << 30)), "SO_SNDBUFFORCE",
            what: what)
        for message in queue {
            var done = 0
            repeat {
                let send = { (a: UnsafePointer<sockaddr>?, l: socklen_t) throws -> Int in
                    try message.withUnsafeBytes { b in
                        try checked("send(\(message.count - done) of \(message.count) bytes)", what) {
                            sendto(
                                sender, b.baseAddress.map { $0 + done }, b.count - done,
                                Int32(MSG_DONTWAIT | MSG_NOSIGNAL), a, l)
                        }
                    }
                }
                done += try name.map { try withAddress($0, send) } ?? send(nil, 0)
            } while done < message.count && type == SOCK_STREAM_VALUE
        }
        try setIntOption(sender, 32, max(old / 2, 1), "SO_SNDBUFFORCE", what: what)
    }

    /// SO_PASSCRED, the buffer sizes (getsockopt gives twice what setsockopt takes; the FORCE
    /// variants pass net.core.[rw]mem_max as the original may have) and SO_PEEK_OFF.
    static func setOptions(_ fd: Int32, _ r: FileRecord, _ what: String) throws {
        if r.unixPassCredentials == true { try setIntOption(fd, 16, 1, "SO_PASSCRED", what: what) }
        if let v = r.unixSendBuffer { try setIntOption(fd, 32, max(v / 2, 1), "SO_SNDBUFFORCE", what: what) }
        if let v = r.unixReceiveBuffer { try setIntOption(fd, 33, max(v / 2, 1), "SO_RCVBUFFORCE", what: what) }
        if let v = r.unixPeekOffset { try setIntOption(fd, 42, v, "SO_PEEK_OFF", what: what) }
    }

    /// shutdown(2) as saved (RCV_SHUTDOWN 1 → SHUT_RD, SEND_SHUTDOWN 2 → SHUT_WR, both → SHUT_RDWR).
    static func shut(_ fd: Int32, _ r: FileRecord, _ what: String) throws {
        guard let mask = r.unixShutdown, mask & 3 != 0 else { return }
        let how = Int32(mask & 3) - 1
        try checked("shutdown(\(how))", what) { shutdown(fd, how) }
    }

    /// The stale socket file of a path-bound socket (left by the checkpointed process) goes,
    /// so bind() can make a new one; anything else at that path is an error.
    static func removeStale(_ name: [UInt8], _ what: String) throws {
        guard name.first ?? 0 != 0 else { return }
        let path = UnixSocketInfo.describe(name)
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw CheckpointError("cannot bind \(what)", reason: "\(path) exists and is not a socket")
        }
        try checked("unlink", path) { unlink(path) }
    }

    static func withAddress<T>(_ name: [UInt8], _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) throws -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let count = min(name.count, MemoryLayout.size(ofValue: address.sun_path))
        withUnsafeMutableBytes(of: &address.sun_path) { p in for i in 0..<count { p[i] = name[i] } }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + count)
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    static func intOption(_ fd: Int32, _ option: Int32, _ name: String, _ f: OpenFile) throws -> Int32 {
        try intOption(fd, option, name, what: "fd \(f.fd) (\(f.link))")
    }

    static func intOption(_ fd: Int32, _ option: Int32, _ name: String, what: String) throws -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(4)
        try checked("getsockopt(\(name))", what) { getsockopt(fd, SOL_SOCKET, option, &v, &len) }
        return v
    }

    static func setIntOption(_ fd: Int32, _ option: Int32, _ value: Int32, _ name: String, _ f: OpenFile) throws {
        try setIntOption(fd, option, value, name, what: "fd \(f.fd) (\(f.link))")
    }

    static func setIntOption(_ fd: Int32, _ option: Int32, _ value: Int32, _ name: String, what: String) throws {
        var v = value
        try checked("setsockopt(\(name), \(value))", what) { setsockopt(fd, SOL_SOCKET, option, &v, 4) }
    }
}
