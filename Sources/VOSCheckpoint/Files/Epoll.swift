// epoll: the instance is made by vOS, its registrations by the target itself once every fd is
// in place (epoll keys registrations by the fd number the registering process used).
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum Epoll: FileKind {
    static let tag = "epoll"
    static func matches(_ f: OpenFile) -> Bool { f.link == "anon_inode:[eventpoll]" }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.epollTargets = f.info.epollTargets.map { EpollTarget(fd: $0.fd, events: $0.events, data: $0.data) }
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        context.track(try checked("epoll_create1", "fd \(r.fd)") { vos_epoll_create1(O_CLOEXEC) })
    }

    static func finish(_ r: FileRecord, in task: RemoteTask) throws {
        for t in r.epollTargets ?? [] {
            // struct epoll_event is packed on x86-64: u32 events, u64 data.
            var bytes = withUnsafeBytes(of: t.events.littleEndian) { Array($0) }
            bytes += withUnsafeBytes(of: t.data.littleEndian) { Array($0) }
            let ev = try task.stage(bytes: bytes, at: 0)
            try task.call("epoll_ctl(EPOLL_CTL_ADD, fd \(t.fd))", .epollCtl, UInt64(r.fd), 1, UInt64(t.fd), ev.raw)
        }
    }
}
