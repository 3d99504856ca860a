// Thin typed doors to syscalls the controller itself makes (not injected ones).
import CVOSShim
import Glibc
import SystemPackage

public enum Kernel {
    /// `pidfd_open(2)`.
    public static func pidfdOpen(_ pid: PID) throws(SyscallError) -> FileDescriptor {
        let fd = try checked("pidfd_open", "pid \(pid)") { vos_syscall6(Int(VOS_SYS_pidfd_open), Int(pid), 0, 0, 0, 0, 0) }
        return FileDescriptor(rawValue: CInt(fd))
    }

    /// `pidfd_getfd(2)`: a duplicate of the target's fd, the same open file description.
    public static func pidfdGetfd(_ pidfd: FileDescriptor, _ targetFD: Int32, pid: PID) throws(SyscallError) -> FileDescriptor {
        let fd = try checked("pidfd_getfd", "fd \(targetFD) of pid \(pid)") {
            vos_syscall6(Int(VOS_SYS_pidfd_getfd), Int(pidfd.rawValue), Int(targetFD), 0, 0, 0, 0)
        }
        return FileDescriptor(rawValue: CInt(fd))
    }

    /// `tgkill(2)`.
    public static func kill(_ pid: PID, _ signal: Int32) throws(SyscallError) {
        try checked("kill(\(signal))", "pid \(pid)") { Glibc.kill(pid, signal) }
    }

    /// `uname(2)` release, like "6.18.44".
    public static func release() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    public static func machine() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// `CLOCK_BOOTTIME` in nanoseconds.
    public static func boottimeNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Pins the calling thread to one CPU (probe 1: injection round trips cost ~15 µs on the
    /// tracee's CPU and ~100 µs across idle vCPUs). Returns the previous affinity.
    public static func pinCallingThread(to cpu: Int32) -> [UInt8]? {
        var old = [UInt8](repeating: 0, count: 128)
        guard vos_sched_getaffinity(0, 128, &old) == 0 else { return nil }
        _ = vos_pin_to_cpu(cpu)
        return old
    }

    /// Pins a restore stub and the calling thread to the CPU the caller runs on: injected calls
    /// then never wait for a wake-up across CPUs (probe 1: ~15 µs a round trip on one CPU, up to
    /// ~100 µs across). The stub's own affinity is rewritten from the image when it is released.
    /// Returns the caller's previous affinity.
    public static func pinTogether(stub: PID) -> [UInt8]? {
        let cpu = vos_sched_getcpu()
        guard cpu >= 0 else { return nil }
        var mask = [UInt8](repeating: 0, count: 128)
        mask[Int(cpu) / 8] |= 1 << UInt8(cpu % 8)
        _ = mask.withUnsafeBytes { vos_sched_setaffinity(stub, 128, $0.baseAddress) }
        return pinCallingThread(to: cpu)
    }

    public static func restoreAffinity(_ mask: [UInt8]) {
        _ = mask.withUnsafeBytes { vos_sched_setaffinity(0, 128, $0.baseAddress) }
    }

    public static func affinity(of tid: PID) throws(SyscallError) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: 128)
        try checked("sched_getaffinity", "tid \(tid)") { vos_sched_getaffinity(tid, 128, &mask) }
        return mask
    }

    public static func setAffinity(of tid: PID, _ mask: [UInt8]) throws(SyscallError) {
        try checked("sched_setaffinity", "tid \(tid)") {
            mask.withUnsafeBytes { vos_sched_setaffinity(tid, mask.count, $0.baseAddress) }
        }
    }

    /// `get_robust_list(2)` of another thread: head address and length.
    public static func robustList(of tid: PID) throws(SyscallError) -> (head: UInt64, length: UInt64) {
        var head: UInt64 = 0
        var len: UInt64 = 0
        try checked("get_robust_list", "tid \(tid)") {
            withUnsafeMutablePointer(to: &head) { h in
                withUnsafeMutablePointer(to: &len) { l in
                    vos_syscall6(Int(VOS_SYS_get_robust_list), Int(tid), Int(bitPattern: h), Int(bitPattern: l), 0, 0, 0)
                }
            }
        }
        return (head, len)
    }

    /// `waitpid(pid, __WALL)`; returns the raw status.
    public static func wait(_ pid: PID, nohang: Bool = false) throws(SyscallError) -> (pid: PID, status: Int32) {
        var status: Int32 = 0
        let r = try checked("waitpid", "pid \(pid)") { vos_waitpid_all(pid, &status, nohang ? 1 : 0) }
        return (r, status)
    }

    /// Reaps every child and tracee of the calling process (`waitpid(-1, __WALL)` until ECHILD).
    public static func reapAll() {
        var status: Int32 = 0
        while vos_waitpid_all(-1, &status, 0) > 0 || vos_errno() == EINTR {}
    }

    /// `prctl(PR_SET_CHILD_SUBREAPER, 1)` for the calling process.
    public static func becomeSubreaper() throws(SyscallError) {
        try checked("prctl(PR_SET_CHILD_SUBREAPER)", "self") { vos_prctl(VOS_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }
    }
}
