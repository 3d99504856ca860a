// timerfd: clock, the remaining time and interval (fdinfo "it_value: (s, ns)"), re-armed
// relative to the restore, and the expirations not read yet (fdinfo "ticks"), put back with
// TFD_IOC_SET_TICKS after the re-arm (timerfd_settime zeroes them).
import CVOSShim
import Glibc
import VOSImage
import VOSLinux

enum Timerfd: FileKind {
    static let tag = "timerfd"
    static func matches(_ f: OpenFile) -> Bool { f.link == "anon_inode:[timerfd]" }

    static func dump(_ f: OpenFile, local: Int32, into r: inout FileRecord, blobs: BlobWriter) throws {
        r.timerClock = Int32(f.info.lines["clockid"] ?? "1") ?? 1
        r.timerFlags = Int32(f.info.lines["settime flags"] ?? "0", radix: 8) ?? 0
        r.timerValueNanos = nanos(f.info.lines["it_value"])
        r.timerIntervalNanos = nanos(f.info.lines["it_interval"])
        r.timerTicks = UInt64(f.info.lines["ticks"] ?? "0") ?? 0
    }

    /// `_IOW('T', 0, __u64)` from linux/timerfd.h (CONFIG_CHECKPOINT_RESTORE kernels only).
    static let setTicksRequest: UInt = 0x4008_5400

    /// "(1, 500000000)" → nanoseconds.
    static func nanos(_ text: String?) -> UInt64 {
        let parts = (text ?? "").filter { $0.isNumber || $0 == "," }.split(separator: ",")
        guard parts.count == 2, let s = UInt64(parts[0]), let ns = UInt64(parts[1]) else { return 0 }
        return s * 1_000_000_000 + ns
    }

    static func open(_ r: FileRecord, _ context: FileRestoreContext) throws -> Int32 {
        let fd = context.track(try checked("timerfd_create", "fd \(r.fd)") {
            Int32(truncatingIfNeeded: vos_syscall6(283, Int(r.timerClock ?? 1), Int(O_CLOEXEC), 0, 0, 0, 0))
        })
        let value = r.timerValueNanos ?? 0, interval = r.timerIntervalNanos ?? 0
        if value > 0 || interval > 0 {
            var spec = vos_itimerspec(
                interval_sec: Int64(interval / 1_000_000_000), interval_nsec: Int64(interval % 1_000_000_000),
                value_sec: Int64(max(value, 1) / 1_000_000_000), value_nsec: Int64(max(value, 1) % 1_000_000_000))
            try checked("timerfd_settime", "fd \(r.fd)") {
                vos_syscall6(286, Int(fd), 0, Int(bitPattern: UInt(bitPattern: withUnsafeMutablePointer(to: &spec) { $0 })), 0, 0, 0)
            }
        }
        if var ticks = r.timerTicks, ticks > 0 {
            try checked("ioctl(TFD_IOC_SET_TICKS, \(ticks))", "timerfd \(r.fd)") {
                vos_ioctl(fd, setTicksRequest, &ticks)
            }
        }
        try setStatusFlags(fd, r.flags, what: "timerfd \(r.fd)")
        return fd
    }
}
