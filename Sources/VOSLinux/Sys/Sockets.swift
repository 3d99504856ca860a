// Socket calls for saving and rebuilding TCP and UDP sockets: options, raw socket addresses, the
// queue ioctls, TCP_REPAIR (tcp(7); the order is probe 6 of kernel-facts.md), and entering a
// network namespace around socket() (a socket belongs to the netns it was made in: probe 13).
import CVOSShim
import Glibc

/// Option numbers and values from <linux/tcp.h>, <asm-generic/socket.h> and <linux/sockios.h>.
public enum SocketConstants {
    public static let solSocket: Int32 = 1
    public static let soReuseAddress: Int32 = 2
    public static let soType: Int32 = 3
    public static let soSendBuffer: Int32 = 7
    public static let soReusePort: Int32 = 15
    public static let soProtocol: Int32 = 38
    public static let soDomain: Int32 = 39
    public static let ipprotoTCP: Int32 = 6
    public static let ipprotoIPv6: Int32 = 41
    public static let ipv6V6Only: Int32 = 26
    public static let tcpNoDelay: Int32 = 1
    public static let tcpMaxSegment: Int32 = 2
    public static let tcpInfo: Int32 = 11
    public static let tcpRepair: Int32 = 19
    public static let tcpRepairQueue: Int32 = 20
    public static let tcpQueueSequence: Int32 = 21
    public static let tcpRepairOptions: Int32 = 22
    public static let tcpTimestamp: Int32 = 24
    public static let tcpRepairWindow: Int32 = 29
    /// TCP_REPAIR_QUEUE values.
    public static let noQueue: Int32 = 0, receiveQueue: Int32 = 1, sendQueue: Int32 = 2
    /// SIOCINQ (= FIONREAD), SIOCOUTQ (= TIOCOUTQ), SIOCOUTQNSD.
    public static let siocInQ: UInt = 0x541B, siocOutQ: UInt = 0x5411, siocOutQNotSent: UInt = 0x894B
}

public enum Socket {
    static let c = SocketConstants.self

    /// socket(2), close-on-exec.
    public static func make(family: Int32, type: Int32, protocol proto: Int32) throws(SyscallError) -> Int32 {
        try checked("socket(family \(family), type \(type))", "a new socket") {
            socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
        }
    }

    public static func intOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ name: String) throws(SyscallError)
        -> Int32
    {
        var v: Int32 = 0
        var len = socklen_t(4)
        try checked("getsockopt(\(name))", "socket fd \(fd)") { getsockopt(fd, level, option, &v, &len) }
        return v
    }

    public static func setIntOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32, _ name: String)
        throws(SyscallError)
    {
        var v = value
        try checked("setsockopt(\(name), \(value))", "socket fd \(fd)") { setsockopt(fd, level, option, &v, 4) }
    }

    /// An option read as bytes (TCP_INFO, TCP_REPAIR_WINDOW); as many as the kernel gave.
    public static func bytesOption(_ fd: Int32, _ level: Int32, _ option: Int32, size: Int, _ name: String)
        throws(SyscallError) -> [UInt8]
    {
        var buffer = [UInt8](repeating: 0, count: size)
        var len = socklen_t(size)
        try checked("getsockopt(\(name))", "socket fd \(fd)") {
            buffer.withUnsafeMutableBytes { getsockopt(fd, level, option, $0.baseAddress, &len) }
        }
        return Array(buffer.prefix(Int(len)))
    }

    public static func setBytesOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ bytes: [UInt8], _ name: String)
        throws(SyscallError)
    {
        try checked("setsockopt(\(name))", "socket fd \(fd)") {
            bytes.withUnsafeBytes { setsockopt(fd, level, option, $0.baseAddress, socklen_t($0.count)) }
        }
    }

    /// getsockname(2) as raw sockaddr bytes.
    public static func localAddress(_ fd: Int32) throws(SyscallError) -> [UInt8] {
        try address(fd, "getsockname") { getsockname(fd, $0, $1) }
    }

    /// getpeername(2) as raw sockaddr bytes; nil when not connected (ENOTCONN).
    public static func peerAddress(_ fd: Int32) throws(SyscallError) -> [UInt8]? {
        do { return try address(fd, "getpeername") { getpeername(fd, $0, $1) } } catch
            where error.errno.rawValue == ENOTCONN
        { return nil }
    }

    private static func address(
        _ fd: Int32, _ call: String,
        _ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws(SyscallError) -> [UInt8] {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try checked(call, "socket fd \(fd)") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, &len) }
            }
        }
        return withUnsafeBytes(of: &storage) { Array($0.prefix(Int(len))) }
    }

    public static func bind(_ fd: Int32, _ address: [UInt8], what: String) throws(SyscallError) {
        try checked("bind(\(Self.describe(address)))", what) {
            address.withUnsafeBytes {
                Glibc.bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
            }
        }
    }

    public static func connect(_ fd: Int32, _ address: [UInt8], what: String) throws(SyscallError) {
        try checked("connect(\(Self.describe(address)))", what) {
            address.withUnsafeBytes {
                Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
            }
        }
    }

    public static func listen(_ fd: Int32, backlog: Int32, what: String) throws(SyscallError) {
        try checked("listen(\(backlog))", what) { Glibc.listen(fd, backlog) }
    }

    /// SIOCINQ / SIOCOUTQ / SIOCOUTQNSD: bytes in a queue.
    public static func queueBytes(_ fd: Int32, _ request: UInt, _ name: String) throws(SyscallError) -> Int32 {
        var n: Int32 = 0
        try checked("ioctl(\(name))", "socket fd \(fd)") { vos_ioctl(fd, request, &n) }
        return n
    }

    /// recv(MSG_PEEK | MSG_DONTWAIT) of up to `count` bytes (in repair mode: of the selected queue).
    public static func peek(_ fd: Int32, count: Int) throws(SyscallError) -> [UInt8] {
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try checked("recv(MSG_PEEK)", "socket fd \(fd)") {
            buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, Int32(MSG_PEEK | MSG_DONTWAIT)) }
        }
        return Array(buffer.prefix(n))
    }

    /// send(2) of every byte (in repair mode: into the selected queue).
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws(SyscallError) {
        var done = 0
        while done < bytes.count {
            done += try checked("send(\(bytes.count - done) bytes)", what) {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// sendto(2) one datagram or frame to a raw address (an AF_PACKET sockaddr_ll).
    public static func sendTo(_ fd: Int32, _ bytes: [UInt8], _ address: [UInt8], what: String) throws(SyscallError) {
        try checked("sendto", what) {
            bytes.withUnsafeBytes { b in
                address.withUnsafeBytes { a in
                    sendto(
                        fd, b.baseAddress, b.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                        socklen_t(a.count))
                }
            }
        }
    }

    /// "10.200.0.5:8000" or "[::]:8000" for a raw AF_INET/AF_INET6 sockaddr.
    public static func describe(_ address: [UInt8]) -> String {
        guard address.count >= 8 else { return "?" }
        let family = Int32(address[0]) | Int32(address[1]) << 8
        let port = Int(address[2]) << 8 | Int(address[3])
        if family == AF_INET { return address[4..<8].map(String.init).joined(separator: ".") + ":\(port)" }
        if family == AF_INET6 && address.count >= 24 {
            let words = stride(from: 8, to: 24, by: 2).map {
                String(Int(address[$0]) << 8 | Int(address[$0 + 1]), radix: 16)
            }
            return "[" + words.joined(separator: ":") + "]:\(port)"
        }
        return "family \(family)"
    }
}

public enum NetworkNamespace {
    /// Runs `body` with the calling thread in the network namespace `namespaceFD` refers to
    /// (setns(CLONE_NEWNET) is allowed in a multithreaded process: it is per thread), then puts
    /// the thread back into the one it was in.
    public static func withEntered<T>(_ namespaceFD: Int32, _ body: () throws -> T) throws -> T {
        let own = try checked("open", "/proc/thread-self/ns/net") {
            vos_open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC, 0)
        }
        defer { close(own) }
        try enter(namespaceFD, what: "the capsule's network namespace")
        defer { try? enter(own, what: "vos's own network namespace") }
        return try body()
    }

    static func enter(_ fd: Int32, what: String) throws(SyscallError) {
        try checked("setns(CLONE_NEWNET)", what) {
            Int32(truncatingIfNeeded: vos_syscall6(308, Int(fd), 0x4000_0000, 0, 0, 0, 0))
        }
    }

    /// An fd of the network namespace of `pid` (/proc/PID/ns/net).
    public static func open(of pid: PID) throws(SyscallError) -> Int32 {
        try checked("open", "/proc/\(pid)/ns/net") { vos_open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC, 0) }
    }
}
