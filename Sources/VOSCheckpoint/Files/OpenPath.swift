// O_PATH fds (a directory or file held only to name it: openat, fstat, fchdir...): nothing is
// open for I/O, so nothing but the path and the flags travels. Checked before the other kinds
// because an O_PATH fd of a regular file or a FIFO cannot be read, seeked or peeked.
import Glibc
import VOSImage
import VOSLinux

enum OpenPath: FileKind {
    static let tag = "opath"
    /// `O_PATH` (fcntl-linux.h); Swift's Glibc module does not export the GNU flags.
    static let flag: Int32 = 0o1000_0000

    /// A deleted file held by O_PATH has no contents to save (read fails with EBADF): refused.
    static func matches(_ f: OpenFile) -> Bool {
        f.info.flags & flag != 0 && f.link.hasPrefix("/") && !f.link.hasSuffix(RegularFile.deletedSuffix)
    }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {}

    /// O_NOFOLLOW among the saved flags reopens a symlink itself, as the original did.
    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        context.track(try reopen(context.path(r.path), flags: r.flags))
    }
}
