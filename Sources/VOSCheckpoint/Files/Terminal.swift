// Pseudo-terminals of the image itself (a capsule started with --tty): the master and its
// slaves come back with the same index in the restored capsule's own devpts instance (a fresh
// instance hands out indices from 0, so opening ptmx until index N comes up recreates N), with
// termios, window size, controlling terminal and foreground group. Unread terminal buffers are
// not carried over.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum PtyMaster: FileKind {
    static let tag = "ptmx"

    static func isMasterLink(_ link: String) -> Bool { link == "/dev/ptmx" || link == "/dev/pts/ptmx" }

    static func matches(_ f: OpenFile) -> Bool { f.isCharDevice && isMasterLink(f.link) }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        var index: Int32 = 0
        try checked("ioctl(TIOCGPTN)", "fd \(f.fd) (\(f.link))") { vos_ioctl(local, UInt(VOS_TIOCGPTN), &index) }
        r.ptyIndex = index
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        // The master itself (reopening ptmx, even through /proc/self/fd, makes a new pty).
        let master = try context.ptyMaster(r.ptyIndex ?? 0)
        try setStatusFlags(master, r.flags, what: "pty master \(r.ptyIndex ?? 0)")
        return master
    }
}

enum PtySlave: FileKind {
    static let tag = "pts"

    /// The index of a slave of a master in scope, else nil.
    static func index(_ f: OpenFile) -> Int32? {
        guard f.isCharDevice, f.link.hasPrefix("/dev/pts/"), let n = Int32(f.link.dropFirst(9)), f.ptyMasters.contains(n) else { return nil }
        return n
    }

    static func matches(_ f: OpenFile) -> Bool { index(f) != nil }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        guard let n = index(f) else { return }
        r.ptyIndex = n
        var t = [UInt8](repeating: 0, count: 60)
        try checked("ioctl(TCGETS)", "fd \(f.fd) (\(f.link))") { vos_ioctl(local, UInt(VOS_TCGETS), &t) }
        r.termios = t
        var w = [UInt8](repeating: 0, count: 8)
        try checked("ioctl(TIOCGWINSZ)", "fd \(f.fd) (\(f.link))") { vos_ioctl(local, UInt(VOS_TIOCGWINSZ), &w) }
        r.windowSize = w
        // The session leader's controlling terminal (stat field 7 is major << 8 | minor for
        // pts indices below 256; pts majors are 136-143).
        // The foreground group is stat field 8 (a host PID here; a tree translates it).
        if let stat = try? ProcStat.read("/proc/\(f.pid)/stat"), stat.session == f.pid, stat.number(7) == UInt64(136 << 8) | UInt64(n) {
            r.controllingTerminal = true
            r.foregroundGroup = PID(stat.signedNumber(8))
        }
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let n = r.ptyIndex ?? 0
        _ = try context.ptyMaster(n)
        let path = try context.devptsPath("\(n)")
        let fd = context.track(try reopen(path, flags: r.flags | O_NOCTTY))
        if var t = r.termios { try checked("ioctl(TCSETS)", path) { vos_ioctl(fd, UInt(VOS_TCSETS), &t) } }
        if var w = r.windowSize { try checked("ioctl(TIOCSWINSZ)", path) { vos_ioctl(fd, UInt(VOS_TIOCSWINSZ), &w) } }
        return fd
    }

    /// The controlling terminal is taken by its session leader itself, then its foreground group.
    static func finish(_ r: FileRecord, in task: RemoteTask) throws {
        guard r.controllingTerminal == true else { return }
        try task.call("ioctl(TIOCSCTTY, fd \(r.fd))", .ioctl, UInt64(r.fd), UInt64(VOS_TIOCSCTTY), 0)
        if let group = r.foregroundGroup, group > 0 {
            let at = try task.stage(group, at: 0)
            try task.call("ioctl(TIOCSPGRP, \(group))", .ioctl, UInt64(r.fd), UInt64(VOS_TIOCSPGRP), at.raw)
        }
    }
}

extension FileRestoreContext {
    /// A path in the restored capsule's devpts instance.
    func devptsPath(_ name: String) throws -> String {
        guard let root = rootPID else {
            throw CheckpointError("cannot restore a terminal of the image", reason: "it is not being restored into a capsule")
        }
        return "/proc/\(root)/root/dev/pts/\(name)"
    }

    /// The master of pty `index`, opening the capsule's ptmx until that index comes up.
    func ptyMaster(_ index: Int32) throws -> Int32 {
        if let fd = ptys[index] { return fd }
        let ptmx = try devptsPath("ptmx")
        for _ in 0...index {
            let fd = track(try checked("open", ptmx) { vos_open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC, 0) })
            var got: Int32 = -1
            try checked("ioctl(TIOCGPTN)", ptmx) { vos_ioctl(fd, UInt(VOS_TIOCGPTN), &got) }
            var unlock: Int32 = 0
            try checked("ioctl(TIOCSPTLCK)", ptmx) { vos_ioctl(fd, UInt(VOS_TIOCSPTLCK), &unlock) }
            ptys[got] = fd
            if got == index { return fd }
        }
        throw CheckpointError("cannot restore pty \(index)", reason: "the capsule's devpts instance did not hand out that index")
    }
}
