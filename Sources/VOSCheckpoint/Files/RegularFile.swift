// Regular files: reopened by path with their flags and offset. A file deleted while open has
// its contents saved in the image and comes back as an unlinked file with the same data.
import CVOSShim
import Glibc
import VOSImage
import VOSLinux

enum RegularFile: FileKind {
    static let tag = "regular"
    static let deletedSuffix = " (deleted)"

    static func matches(_ f: OpenFile) -> Bool { f.isRegular && f.link.hasPrefix("/") }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        guard f.link.hasSuffix(deletedSuffix) else { return }
        r.path = String(f.link.dropLast(deletedSuffix.count))
        r.blob = try blobs.write(try readWhole(local, path: f.link))
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let fd: Int32
        if let blob = r.blob {
            fd = try recreateDeleted(r, at: context.path(r.path), contents: try context.image.blob(blob))
        } else {
            fd = try reopen(context.path(r.path), flags: r.flags)
        }
        try setPosition(fd, r.position, path: r.path)
        return context.track(fd)
    }

    static func readWhole(_ fd: Int32, path: String) throws -> [UInt8] {
        var st = stat()
        try checked("fstat", path) { fstat(fd, &st) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < out.count {
            let n = try checked("pread", path) { out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) } }
            if n == 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    /// An O_TMPFILE in the file's old directory (or /tmp): unlinked from birth, like the original.
    static func recreateDeleted(_ r: FileRecord, at path: String, contents: [UInt8]) throws -> Int32 {
        let dir = path.split(separator: "/").dropLast().joined(separator: "/")
        let dirs = ["/" + dir, "/tmp"]
        var tmp: Int32 = -1
        for d in dirs {
            tmp = vos_open_flags(d, VOS_O_TMPFILE | O_RDWR | O_CLOEXEC)
            if tmp >= 0 { break }
        }
        if tmp < 0 { throw SyscallError(call: "open(VOS_O_TMPFILE)", errno: .init(rawValue: errno), subject: dirs.joined(separator: ", ")) }
        defer { close(tmp) }
        var done = 0
        while done < contents.count {
            let n = try checked("write", "deleted file \(r.path)") {
                contents.withUnsafeBytes { Glibc.write(tmp, $0.baseAddress! + done, $0.count - done) }
            }
            done += n
        }
        // Open it under its old name for a moment, so /proc/PID/fd shows "<path> (deleted)" as
        // before (CRIU does the same); if that name is taken or its directory gone, reopen the
        // nameless file through /proc. Either way the new open file gets the saved flags.
        guard linkat(AT_FDCWD, "/proc/self/fd/\(tmp)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 else {
            return try reopen("/proc/self/fd/\(tmp)", flags: r.flags)
        }
        let fd: Int32
        do { fd = try reopen(path, flags: r.flags) } catch {
            unlink(path)
            throw error
        }
        do { try checked("unlink", "deleted file \(r.path), linked again for its reopen") { unlink(path) } } catch {
            close(fd)
            throw error
        }
        return fd
    }
}

enum Directory: FileKind {
    static let tag = "directory"
    static func matches(_ f: OpenFile) -> Bool { f.isDirectory && f.link.hasPrefix("/") }
    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {}
    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let fd = context.track(try reopen(context.path(r.path), flags: r.flags))
        try setPosition(fd, r.position, path: r.path)
        return fd
    }
}

/// /dev/null, /dev/zero, /dev/urandom, terminals opened by path...: reopened by path.
enum CharacterDevice: FileKind {
    static let tag = "chardev"
    static func matches(_ f: OpenFile) -> Bool { f.isCharDevice && f.link.hasPrefix("/") }
    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {}
    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        context.track(try reopen(context.path(r.path), flags: r.flags))
    }
}
