// memfds: the memory object is saved once per image (MappedObjects), so an fd and every
// mapping of it, in any process of a tree, come back as one object again; seals included.
import Glibc
import VOSImage
import VOSLinux

enum Memfd: FileKind {
    static let tag = "memfd"

    static func matches(_ f: OpenFile) -> Bool { f.isRegular && f.link.hasPrefix("/memfd:") }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.object = try MappedObjects.save(fd: local, path: f.link, writer: blobs.image)
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        guard let object = r.object else { throw ImageError.inconsistent("memfd fd \(r.fd) has no saved object") }
        let shared = try context.object(object)
        // A new open file description of the same object, with the saved flags and offset.
        let fd = context.track(try reopen("/proc/self/fd/\(shared)", flags: r.flags))
        try setPosition(fd, r.position, path: r.path)
        return fd
    }
}
