// The kernel's view of every unix socket, from sock_diag (NETLINK_SOCK_DIAG, AF_UNIX, see
// sock_diag(7)): type, state, bound name, the peer's inode (UDIAG_SHOW_PEER), a listener's
// backlog and not-yet-accepted connections, shutdown. /proc/net/unix has no peer column.
import CVOSShim
import Glibc
import VOSLinux

/// One unix socket as sock_diag reports it.
struct UnixSocketInfo {
    var inode: UInt64
    /// SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5.
    var type: Int32
    /// TCP_ESTABLISHED 1, TCP_CLOSE 7, TCP_LISTEN 10 (the kernel reuses the TCP names).
    var state: UInt8
    /// sun_path as bound (an abstract name starts with a 0 byte); nil when unbound.
    var name: [UInt8]?
    /// The socket it is connected to; 0 when that peer was closed.
    var peer: UInt64?
    /// A listener's backlog (UNIX_DIAG_RQLEN: sk_max_ack_backlog).
    var backlog: UInt32?
    /// Connections queued on a listener and not accepted yet (UNIX_DIAG_ICONS).
    var pending: [UInt64] = []
    /// sk_shutdown: RCV_SHUTDOWN 1, SEND_SHUTDOWN 2.
    var shutdown: UInt8 = 0

    static let listening: UInt8 = 10
    static let established: UInt8 = 1

    var typeName: String {
        switch type {
        case SOCK_STREAM_VALUE: return "stream"
        case SOCK_DGRAM_VALUE: return "datagram"
        case SOCK_SEQPACKET_VALUE: return "seqpacket"
        default: return "type \(type)"
        }
    }

    /// The name for messages: the path, "@name" for an abstract one, "an unnamed socket".
    static func describe(_ name: [UInt8]?) -> String {
        guard let name, !name.isEmpty else { return "an unnamed socket" }
        if name[0] == 0 { return "@" + String(decoding: name.dropFirst(), as: UTF8.self) }
        return String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
    }
}

let SOCK_STREAM_VALUE: Int32 = 1
let SOCK_DGRAM_VALUE: Int32 = 2
let SOCK_SEQPACKET_VALUE: Int32 = 5

/// Every unix socket of the network namespaces of the listed processes (and vos's own, where
/// restored sockets were made), and which of them the listed processes hold.
final class UnixSocketTable {
    var sockets: [UInt64: UnixSocketInfo] = [:]
    /// Inodes of the sockets held by an fd of a listed process: the image's sockets.
    var held: Set<UInt64> = []

    static func inode(_ link: String) -> UInt64? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst(8).dropLast())
    }

    /// Gives every listed socket fd the table (one sock_diag dump per network namespace).
    static func attach(_ files: inout [PID: [OpenFile]]) throws {
        let held = Set(files.values.joined().compactMap { inode($0.link) })
        guard !held.isEmpty else { return }
        let table = UnixSocketTable()
        table.held = held
        var seen = Set<UInt64>()
        for pid in [getpid()] + files.keys.sorted() {
            var st = stat()
            guard stat("/proc/\(pid)/ns/net", &st) == 0, seen.insert(UInt64(st.st_ino)).inserted else { continue }
            let ns = try checked("open", "/proc/\(pid)/ns/net") {
                vos_open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC, 0)
            }
            defer { close(ns) }
            for s in try dump(namespace: ns, pid: pid) { table.sockets[s.inode] = s }
        }
        for pid in files.keys {
            files[pid] = files[pid]?.map {
                var f = $0
                if inode(f.link) != nil { f.unixSockets = table }
                return f
            }
        }
    }

    /// One UNIX_DIAG dump of every socket in the network namespace `ns`, from a netlink socket
    /// made in it (setns on this thread only, then back).
    static func dump(namespace ns: Int32, pid: PID) throws -> [UnixSocketInfo] {
        let own = try checked("open", "/proc/thread-self/ns/net") {
            vos_open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC, 0)
        }
        defer { close(own) }
        try checked("setns(CLONE_NEWNET)", "the network namespace of pid \(pid)") {
            Int32(truncatingIfNeeded: vos_syscall6(308, Int(ns), 0x4000_0000, 0, 0, 0, 0))
        }
        let made = socket(
            AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        let madeErrno = errno
        defer { if made >= 0 { close(made) } }
        try checked("setns(CLONE_NEWNET)", "vos's own network namespace") {
            Int32(truncatingIfNeeded: vos_syscall6(308, Int(own), 0x4000_0000, 0, 0, 0, 0))
        }
        guard made >= 0 else {
            throw SyscallError(
                call: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)", errno: .init(rawValue: madeErrno),
                subject: "the network namespace of pid \(pid)")
        }
        // nlmsghdr (16 bytes) + unix_diag_req (24 bytes).
        var req: [UInt8] = []
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { req += $0 } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { req += $0 } }
        put32(40)
        put16(20 /* SOCK_DIAG_BY_FAMILY */)
        put16(0x1 | 0x300 /* NLM_F_REQUEST | NLM_F_DUMP */)
        put32(1)
        put32(0)
        req += [UInt8(AF_UNIX), 0, 0, 0]
        put32(0xFFFF_FFFF)  // every state
        put32(0)  // any inode
        put32(0x1 | 0x4 | 0x8 | 0x10)  // UDIAG_SHOW_NAME | PEER | ICONS | RQLEN
        put32(0xFFFF_FFFF)
        put32(0xFFFF_FFFF)  // no cookie
        try checked("send(SOCK_DIAG_BY_FAMILY)", "netlink") {
            req.withUnsafeBytes { send(made, $0.baseAddress, $0.count, 0) }
        }
        var out: [UnixSocketInfo] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try checked("recv", "netlink (sock_diag)") {
                buffer.withUnsafeMutableBytes { recv(made, $0.baseAddress, $0.count, 0) }
            }
            var at = 0
            while at + 16 <= n {
                let len = Int(u32(buffer, at))
                let type = u16(buffer, at + 4)
                guard len >= 16, at + len <= n else { break }
                if type == 3 /* NLMSG_DONE */ { return out }
                if type == 2 /* NLMSG_ERROR */ {
                    let e = -Int32(bitPattern: u32(buffer, at + 16))
                    throw SyscallError(
                        call: "sock_diag(AF_UNIX)", errno: .init(rawValue: e),
                        subject: "the network namespace of pid \(pid)")
                }
                if type == 20, len >= 32 { out.append(parse(Array(buffer[(at + 16)..<(at + len)]))) }
                at += (len + 3) & ~3
            }
        }
    }

    /// unix_diag_msg (family, type, state, pad, inode, cookie[2]) then rtattrs.
    static func parse(_ m: [UInt8]) -> UnixSocketInfo {
        var s = UnixSocketInfo(inode: UInt64(u32(m, 4)), type: Int32(m[1]), state: m[2])
        var at = 16
        while at + 4 <= m.count {
            let len = Int(u16(m, at))
            let type = u16(m, at + 2)
            guard len >= 4, at + len <= m.count else { break }
            let body = Array(m[(at + 4)..<(at + len)])
            switch type {
            case 0: s.name = body  // UNIX_DIAG_NAME
            case 2 where body.count >= 4: s.peer = UInt64(u32(body, 0))  // UNIX_DIAG_PEER
            case 3: s.pending = stride(from: 0, to: body.count - 3, by: 4).map { UInt64(u32(body, $0)) }  // ICONS
            case 4 where body.count >= 8 && s.state == UnixSocketInfo.listening: s.backlog = u32(body, 4)  // RQLEN
            case 6 where !body.isEmpty: s.shutdown = body[0]  // UNIX_DIAG_SHUTDOWN
            default: break
            }
            at += (len + 3) & ~3
        }
        return s
    }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
}
