// eventfd: the counter (fdinfo "eventfd-count", hex) and EFD_SEMAPHORE.
import Glibc
import VOSImage
import VOSLinux

enum Eventfd: FileKind {
    static let tag = "eventfd"
    static func matches(_ f: OpenFile) -> Bool { f.link == "anon_inode:[eventfd]" }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.eventfdCount = UInt64(f.info.lines["eventfd-count"] ?? "0", radix: 16) ?? 0
        r.eventfdSemaphore = (f.info.lines["eventfd-semaphore"] ?? "0") == "1"
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let semaphore: Int32 = r.eventfdSemaphore == true ? 1 : 0  // EFD_SEMAPHORE
        let fd = context.track(try checked("eventfd", "fd \(r.fd)") { vos_eventfd(0, O_CLOEXEC | semaphore) })
        var count = r.eventfdCount ?? 0
        if count > 0 {
            try checked("write", "eventfd \(r.fd)") { write(fd, &count, 8) }
        }
        try setStatusFlags(fd, r.flags, what: "eventfd \(r.fd)")
        return fd
    }
}

/// signalfd: its mask (fdinfo "sigmask", hex).
enum Signalfd: FileKind {
    static let tag = "signalfd"
    static func matches(_ f: OpenFile) -> Bool { f.link == "anon_inode:[signalfd]" }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.signalMask = UInt64(f.info.lines["sigmask"] ?? "0", radix: 16) ?? 0
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        var mask = r.signalMask ?? 0
        let fd = context.track(try checked("signalfd", "fd \(r.fd)") {
            Int32(truncatingIfNeeded: vos_syscall6(289, -1, Int(bitPattern: UInt(bitPattern: withUnsafeMutablePointer(to: &mask) { $0 })), 8, Int(O_CLOEXEC), 0, 0))
        })
        try setStatusFlags(fd, r.flags, what: "signalfd \(r.fd)")
        return fd
    }
}

import CVOSShim
