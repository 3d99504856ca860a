// Standard streams that came from outside the process (a terminal, a pipe or socket of the
// shell): the other end does not travel, so on restore they are connected to the restoring
// command's own stdin/stdout/stderr, as CRIU's shell-job and inherit-fd do.
import Glibc
import VOSImage
import VOSLinux

enum InheritedStream: FileKind {
    static let tag = "inherited"

    static func matches(_ f: OpenFile) -> Bool {
        guard f.fd <= 2, PtySlave.index(f) == nil else { return false }
        if f.link.hasPrefix("/dev/pts/") || f.link.hasPrefix("/dev/tty") || f.link == "/dev/console" { return true }
        if f.link.hasPrefix("socket:") { return true }
        if f.link.hasPrefix("pipe:") { return !Pipe.bothEndsInProcess(f) }
        return false
    }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.inheritedFrom = f.fd
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let own = r.inheritedFrom ?? r.fd
        return context.track(try checked("fcntl(F_DUPFD_CLOEXEC)", "vos's own fd \(own)") { fcntl(own, F_DUPFD_CLOEXEC, 0) })
    }
}
