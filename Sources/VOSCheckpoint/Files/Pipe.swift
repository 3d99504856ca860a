// Pipes with both ends in the process, unread data included: the data is copied with tee()
// into a pipe of vOS's own (it stays in the target's pipe), and written into the new pipe
// before the target gets it (probe 8).
import CVOSShim
import Glibc
import VOSImage
import VOSLinux

enum Pipe: FileKind {
    static let tag = "pipe"

    static func matches(_ f: OpenFile) -> Bool { f.isFIFO && f.link.hasPrefix("pipe:") && bothEndsInProcess(f) }

    static func bothEndsInProcess(_ f: OpenFile) -> Bool {
        let modes = f.pipeAccessModes[f.link] ?? []
        return modes.contains(O_RDONLY) && modes.contains(O_WRONLY)
    }

    static func inode(_ link: String) -> UInt64 { UInt64(link.dropFirst(6).dropLast()) ?? 0 }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.pipeInode = inode(f.link)
        try dumpContents(local, into: &r, link: f.link)
    }

    /// Capacity and unread bytes, from every end that can read (O_RDONLY, or O_RDWR as FIFOs
    /// are often opened); an anonymous pipe has one read end, a FIFO is filled once on restore.
    static func dumpContents(_ local: Int32, into r: inout FileRecord, link: String) throws {
        r.pipeCapacity = try checked("fcntl(F_GETPIPE_SZ)", link) { fcntl(local, VOS_F_GETPIPE_SZ) }
        guard r.flags & O_ACCMODE != O_WRONLY else { return }
        r.pipeData = try peek(local, capacity: r.pipeCapacity ?? 65536, link: link)
    }

    /// Copies the unread bytes without consuming them: tee() into a pipe at least as large.
    static func peek(_ fd: Int32, capacity: Int32, link: String) throws -> [UInt8] {
        var queued: Int32 = 0
        try checked("ioctl(FIONREAD)", link) { vos_ioctl(fd, UInt(VOS_FIONREAD), &queued) }
        guard queued > 0 else { return [] }
        var p: [Int32] = [0, 0]
        try checked("pipe2", "a copy of \(link)") { vos_pipe2(&p, O_CLOEXEC | O_NONBLOCK) }
        defer { close(p[0]); close(p[1]) }
        // A copy smaller than the queue would silently cut the data (probe 8): size it first.
        try checked("fcntl(F_SETPIPE_SZ, \(capacity))", "a copy of \(link)") {
            fcntl(p[1], VOS_F_SETPIPE_SZ, capacity)
        }
        let copied = try checked("tee", link) { vos_tee(fd, p[1], Int(queued), 2 /* SPLICE_F_NONBLOCK */) }
        guard copied == Int(queued) else {
            throw SyscallError(call: "tee", errno: .ioError, subject: "\(link): copied \(copied) of \(queued) unread bytes")
        }
        var out = [UInt8](repeating: 0, count: copied)
        var done = 0
        while done < copied {
            let n = try checked("read", "a copy of \(link)") { out.withUnsafeMutableBytes { read(p[0], $0.baseAddress! + done, copied - done) } }
            done += n
        }
        return out
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let ino = r.pipeInode ?? 0
        if context.pipes[ino] == nil {
            var p: [Int32] = [0, 0]
            try checked("pipe2", "pipe:[\(ino)]") { vos_pipe2(&p, O_CLOEXEC) }
            context.pipes[ino] = (context.track(p[0]), context.track(p[1]))
            if let cap = r.pipeCapacity {
                try checked("fcntl(F_SETPIPE_SZ, \(cap))", "pipe:[\(ino)]") { fcntl(p[1], VOS_F_SETPIPE_SZ, cap) }
            }
        }
        let ends = context.pipes[ino]!
        if let data = r.pipeData, !data.isEmpty { try writeAll(ends.write, data, what: "pipe:[\(ino)]") }
        let fd = r.flags & O_ACCMODE == O_RDONLY ? ends.read : ends.write
        try setStatusFlags(fd, r.flags, what: "pipe:[\(ino)]")
        return fd
    }
}

/// Named pipes: reopened by path (a keeper opened read-write first, so opening either end
/// never blocks), unread data written back through the keeper.
enum FIFO: FileKind {
    static let tag = "fifo"

    static func matches(_ f: OpenFile) -> Bool { f.isFIFO && f.link.hasPrefix("/") }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        try Pipe.dumpContents(local, into: &r, link: f.link)
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let keeper = context.track(try reopen(context.path(r.path), flags: O_RDWR | O_NONBLOCK))
        if let cap = r.pipeCapacity {
            try checked("fcntl(F_SETPIPE_SZ, \(cap))", r.path) { fcntl(keeper, VOS_F_SETPIPE_SZ, cap) }
        }
        if let data = r.pipeData, !data.isEmpty, context.filledFIFOs.insert(r.path).inserted {
            try writeAll(keeper, data, what: r.path)
        }
        let fd = context.track(try reopen(context.path(r.path), flags: (r.flags & ~O_NONBLOCK) | O_NONBLOCK))
        try setStatusFlags(fd, r.flags, what: r.path)
        return fd
    }
}

func writeAll(_ fd: Int32, _ data: [UInt8], what: String) throws {
    var done = 0
    while done < data.count {
        let n = try checked("write", what) { data.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) } }
        done += n
    }
}

/// Sets O_NONBLOCK/O_APPEND/O_ASYNC as saved (F_SETFL ignores the access mode).
func setStatusFlags(_ fd: Int32, _ flags: Int32, what: String) throws {
    try checked("fcntl(F_SETFL)", what) { vos_fcntl_int(fd, F_SETFL, flags & ~O_ACCMODE) }
}
