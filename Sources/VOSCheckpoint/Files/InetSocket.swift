// What TCP and UDP sockets share: finding a socket's protocol and state in /proc/PID/net, its
// addresses and options, and making the new socket inside the capsule's network namespace.
import Glibc
import VOSImage
import VOSLinux

enum InetSocket {
    static let c = SocketConstants.self

    /// The state column (hex, e.g. 0x0A = LISTEN) of the socket behind `link` ("socket:[N]") in
    /// /proc/PID/net/PROTO or PROTO6; nil when it is not a socket of that protocol.
    static func state(pid: PID, link: String, proto: String) -> UInt8? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        let inode = link.dropFirst("socket:[".count).dropLast()
        for table in [proto, proto + "6"] {
            guard let text = try? ProcFile.text("/proc/\(pid)/net/\(table)") else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(whereSeparator: { $0 == " " })
                if f.count > 9 && f[9] == inode { return UInt8(f[3], radix: 16) }
            }
        }
        return nil
    }

    /// Family, type, addresses and the options vOS keeps, read on vOS's duplicate `fd`.
    static func dump(_ fd: Int32) throws -> SocketRecord {
        var s = SocketRecord(
            family: try Socket.intOption(fd, c.solSocket, c.soDomain, "SO_DOMAIN"),
            type: try Socket.intOption(fd, c.solSocket, c.soType, "SO_TYPE"),
            proto: try Socket.intOption(fd, c.solSocket, c.soProtocol, "SO_PROTOCOL"),
            reuseAddress: try Socket.intOption(fd, c.solSocket, c.soReuseAddress, "SO_REUSEADDR") != 0,
            reusePort: try Socket.intOption(fd, c.solSocket, c.soReusePort, "SO_REUSEPORT") != 0)
        if s.family == AF_INET6 { s.v6Only = try Socket.intOption(fd, c.ipprotoIPv6, c.ipv6V6Only, "IPV6_V6ONLY") != 0 }
        let local = try Socket.localAddress(fd)
        s.local = port(local) == 0 && isAnyAddress(local) ? nil : local
        s.peer = try Socket.peerAddress(fd)
        return s
    }

    /// A new socket like `s`, made in the restore's network namespace (the capsule's, when it has
    /// one: a socket belongs to the namespace it was made in), with its options set.
    static func make(_ s: SocketRecord, _ context: FileRestoreContext, fd: Int32) throws -> Int32 {
        let create = { () throws -> Int32 in try Socket.make(family: s.family, type: s.type, protocol: s.proto) }
        let sock = try context.networkNamespace.map { try NetworkNamespace.withEntered($0, create) } ?? create()
        _ = context.track(sock)
        if s.reuseAddress { try Socket.setIntOption(sock, c.solSocket, c.soReuseAddress, 1, "SO_REUSEADDR") }
        if s.reusePort { try Socket.setIntOption(sock, c.solSocket, c.soReusePort, 1, "SO_REUSEPORT") }
        if let v6 = s.v6Only { try Socket.setIntOption(sock, c.ipprotoIPv6, c.ipv6V6Only, v6 ? 1 : 0, "IPV6_V6ONLY") }
        return sock
    }

    static func port(_ address: [UInt8]) -> Int { address.count >= 4 ? Int(address[2]) << 8 | Int(address[3]) : 0 }

    static func isAnyAddress(_ address: [UInt8]) -> Bool {
        let family = address.count >= 2 ? Int32(address[0]) | Int32(address[1]) << 8 : 0
        if family == AF_INET { return address.count >= 8 && address[4..<8].allSatisfy { $0 == 0 } }
        return address.count >= 24 && address[8..<24].allSatisfy { $0 == 0 }
    }
}
