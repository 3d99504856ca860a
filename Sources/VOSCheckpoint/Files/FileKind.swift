// One protocol for every kind of open file, with dump and restore side by side in each kind's
// file, and one registry. Restore builds the open file in vOS's own process; the target then
// takes it with pidfd_getfd (FileTable), so every kind restores the same way.
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

/// An fd of the frozen target, as vOS sees it while dumping.
struct OpenFile {
    var pid: PID
    var fd: Int32
    /// readlink of /proc/PID/fd/N.
    var link: String
    var info: FDInfo
    /// stat of the open file (through /proc/PID/fd/N).
    var mode: mode_t
    /// For each pipe link: the access modes of every fd with that link in the process, or in
    /// the whole tree being checkpointed, to pair the ends of a pipe.
    var pipeAccessModes: [String: Set<Int32>]
    /// Indices of the pty masters held in the same scope: their slaves are terminals of the
    /// image, not terminals from outside.
    var ptyMasters: Set<Int32> = []

    /// For socket fds: what sock_diag says of every unix socket, and which the listed processes hold.
    var unixSockets: UnixSocketTable? = nil

    var isFIFO: Bool { mode & S_IFMT == S_IFIFO }
    var isRegular: Bool { mode & S_IFMT == S_IFREG }
    var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
    var isCharDevice: Bool { mode & S_IFMT == S_IFCHR }
    var accessMode: Int32 { info.flags & O_ACCMODE }
}

protocol FileKind {
    /// Written to images: never reuse a value.
    static var tag: String { get }
    static func matches(_ file: OpenFile) -> Bool
    /// Fills the kind-specific fields; `local` is vOS's duplicate of the target's fd.
    static func dump(_ file: OpenFile, local: Int32, into record: inout FileRecord, blobs: BlobWriter) throws
    /// Makes the open file in vOS's own process and returns its fd there.
    static func open(_ record: FileRecord, _ context: FileRestoreContext) throws -> Int32
    /// Runs after every fd is in place in the target (epoll registers its targets here).
    static func finish(_ record: FileRecord, in task: RemoteTask) throws
}

extension FileKind {
    static func finish(_ record: FileRecord, in task: RemoteTask) throws {}
}

/// The kinds vOS knows, in matching order.
enum FileKinds {
    static let all: [any FileKind.Type] = [
        PtyMaster.self, PtySlave.self, InheritedStream.self, OpenPath.self, Memfd.self, RegularFile.self, Directory.self, CharacterDevice.self, Pipe.self,
        FIFO.self, Eventfd.self, Epoll.self, Timerfd.self, Signalfd.self, UnixSocket.self, TCPSocket.self, UDPSocket.self,
    ]

    static func kind(tag: String) -> (any FileKind.Type)? { all.first { $0.tag == tag } }
    static func kind(for file: OpenFile) -> (any FileKind.Type)? { all.first { $0.matches(file) } }

    /// What an unsupported fd is, for the error message.
    static func describe(_ file: OpenFile) -> String {
        let link = file.link
        if let reason = UnixSocket.refusal(file) { return reason }
        if link.hasPrefix("socket:") { return "a socket (\(link))" }
        if link.hasPrefix("anon_inode:") {
            // "anon_inode:inotify", "anon_inode:[pidfd]", "anon_inode:[userfaultfd]"...
            let name = link.dropFirst("anon_inode:".count).filter { $0 != "[" && $0 != "]" }
            return "\("aeiou".contains(name.first ?? "x") ? "an" : "a") \(name) instance"
        }
        if link.hasPrefix("pipe:") { return "a pipe whose other end is outside the process (\(link))" }
        if link.hasSuffix(RegularFile.deletedSuffix) && !file.isRegular {
            return "a deleted \(typeName(file)) (\(link))"
        }
        return "\(typeName(file)) \(link)"
    }

    static func typeName(_ file: OpenFile) -> String {
        switch file.mode & S_IFMT {
        case S_IFBLK: return "the block device"
        case S_IFSOCK: return "the socket file"
        case S_IFLNK: return "the symlink"
        case S_IFIFO: return "the FIFO"
        case S_IFREG: return "the file"
        case S_IFDIR: return "the directory"
        case S_IFCHR: return "the character device"
        default: return "the file"
        }
    }
}

/// Stores blobs (deleted files' contents) as image parts.
final class BlobWriter {
    let image: ImageWriter
    init(image: ImageWriter) { self.image = image }

    func write(_ bytes: [UInt8]) throws -> String {
        let name = image.nextBlobName()
        try image.writePart(name, bytes)
        return name
    }
}

/// What restoring files shares between fds: pipes made once for both ends, blobs to read.
final class FileRestoreContext {
    let image: ImageReader
    var pipes: [UInt64: (read: Int32, write: Int32)] = [:]
    /// FIFOs whose unread data is back already: two readers of one FIFO saved the same bytes.
    var filledFIFOs: Set<String> = []
    /// Every fd vOS opened for the restore; closed when the target has its copies.
    var opened: [Int32] = []
    /// The open file installed as fd N of process P ("P:N"), for fds of other processes of the
    /// tree that share its description.
    var installed: [String: Int32] = [:]
    /// Memory objects recreated as memfds, by key (MappedObjects).
    var objects: [String: Int32] = [:]
    /// Unix sockets made for the restore, by saved inode: a pair's second end waits here for
    /// its fd (maybe in another process of the tree).
    var unixSockets: [UInt64: Int32] = [:]
    /// The restored tree's root (a capsule's init stub), whose /proc/PID/root shows the
    /// capsule's mounts (its devpts instance).
    var rootPID: PID?
    /// pty masters recreated, by index (Terminal).
    var ptys: [Int32: Int32] = [:]
    /// A pidfd of vos itself, opened before any stub is cloned so that every stub inherits it
    /// at this number: a stub in another PID namespace could not open one (vos has no PID there).
    let vosPidfd: Int32
    /// The restored capsule's network namespace (when it has one of its own): sockets are made in it.
    var networkNamespace: Int32?
    /// The capsule has a root of its own: the saved paths are inside it.
    var ownRoot = false

    /// Where vos finds a saved path: inside the capsule's own root (through the root stub's
    /// /proc/PID/root), or on this machine with the image's rewrites.
    func path(_ saved: String) -> String {
        if ownRoot, let rootPID { return "/proc/\(rootPID)/root" + saved }
        return image.localPath(saved)
    }

    init(image: ImageReader) throws {
        self.image = image
        vosPidfd = try Kernel.pidfdOpen(getpid()).rawValue
        // Not close-on-exec: the stubs exec before they are taken over and must keep it.
        _ = fcntl(vosPidfd, F_SETFD, 0)
    }

    func track(_ fd: Int32) -> Int32 {
        opened.append(fd)
        return fd
    }

    func closeAll() {
        for fd in opened { close(fd) }
        opened = []
        installed = [:]
        objects = [:]
        close(vosPidfd)
    }
}

/// Reopens a path the way the target had it open. Creation flags are dropped: the file must exist.
func reopen(_ path: String, flags: Int32) throws -> Int32 {
    let f = flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)
    return try checked("open", path) { vos_open_flags(path, f | O_CLOEXEC) }
}

import CVOSShim

func vos_open_flags(_ path: String, _ flags: Int32) -> Int32 { vos_open(path, flags, 0) }

func setPosition(_ fd: Int32, _ position: UInt64, path: String) throws {
    try checked("lseek", path) { lseek(fd, off_t(position), SEEK_SET) }
}
