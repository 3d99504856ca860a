// UDP sockets: the bound address and the connected peer come back (datagrams waiting in the
// receive queue are not saved: UDP may lose them anyway).
import Glibc
import VOSImage
import VOSLinux

enum UDPSocket: FileKind {
    static let tag = "udp"
    static func matches(_ f: OpenFile) -> Bool { InetSocket.state(pid: f.pid, link: f.link, proto: "udp") != nil }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.socket = try InetSocket.dump(local)
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        guard let s = r.socket else {
            throw ImageError.inconsistent("fd \(r.fd) is a UDP socket without its socket record")
        }
        let fd = try InetSocket.make(s, context, fd: r.fd)
        let what = "UDP socket fd \(r.fd)"
        if let local = s.local { try Socket.bind(fd, local, what: what) }
        if let peer = s.peer { try Socket.connect(fd, peer, what: what) }
        try setStatusFlags(fd, r.flags, what: what)
        return fd
    }
}
