// Process-wide state put back by injected calls in the stub's main thread.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum RestoreProcessState {
    /// `PR_SET_MM_MAP` with every mm field and the executable (`/proc/PID/exe`), while the stub
    /// maps nothing of its own: the kernel refuses to replace the executable (EBUSY) while any
    /// mapping of the old one exists, and the saved layout may well map the very file the stub
    /// was started from (a capsule's init is vos). The fields need not be mapped yet; `[heap]`
    /// and `[stack]` are labelled from them when /proc is read. (`PR_SET_MM_EXE_FILE` alone would
    /// need CAP_SYS_RESOURCE.)
    static func mm(_ task: RemoteTask, _ p: ProcessRecord) throws {
        let exePath = try task.stage(string: p.executable, at: 2048)
        let exe = try task.call("openat(\(p.executable))", .openat, UInt64(bitPattern: Int64(AT_FDCWD)), exePath.raw, UInt64(O_RDONLY | O_CLOEXEC), 0)
        let auxvBytes = p.mm.auxv.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } }
        let auxv = try task.stage(bytes: auxvBytes, at: 4096)
        var map = vos_prctl_mm_map()
        map.start_code = p.mm.startCode; map.end_code = p.mm.endCode
        map.start_data = p.mm.startData; map.end_data = p.mm.endData
        map.start_brk = p.mm.startBrk; map.brk = p.mm.brk; map.start_stack = p.mm.startStack
        map.arg_start = p.mm.argStart; map.arg_end = p.mm.argEnd
        map.env_start = p.mm.envStart; map.env_end = p.mm.envEnd
        map.auxv = auxv.raw; map.auxv_size = UInt32(auxvBytes.count); map.exe_fd = UInt32(exe)
        let m = try task.stage(map, at: 0)
        try task.call("prctl(PR_SET_MM_MAP)", .prctl, UInt64(VOS_PR_SET_MM), UInt64(VOS_PR_SET_MM_MAP), m.raw, UInt64(MemoryLayout<vos_prctl_mm_map>.size))
        try task.call("close(exe)", .close, exe)
    }

    static func name(_ task: RemoteTask, _ name: String) throws {
        let s = try task.stage(bytes: Array(name.utf8.prefix(15)) + [0], at: 0)
        try task.call("prctl(PR_SET_NAME)", .prctl, UInt64(VOS_PR_SET_NAME), s.raw)
    }

    /// Limits as saved, but never above the stub's hard limits: raising a hard limit needs
    /// CAP_SYS_RESOURCE, which root lacks on some machines.
    static func limits(_ task: RemoteTask, _ saved: [ResourceLimit]) throws {
        let current = try Limits.read(pid: task.pid)
        for l in saved {
            guard let now = current.first(where: { $0.resource == l.resource }), now.soft != l.soft || now.hard != l.hard else { continue }
            let hard = min(l.hard, now.hard)
            let soft = min(l.soft, hard)
            // struct rlimit64 { cur; max }: the values' bytes (staging the Array itself would
            // copy its buffer pointer, not its elements).
            let v = try task.stage(bytes: [soft, hard].flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } }, at: 0)
            try task.call("prlimit64(\(l.name))", .prlimit64, 0, UInt64(l.resource), v.raw, 0)
        }
    }

    static func cwdAndUmask(_ task: RemoteTask, _ p: ProcessRecord) throws {
        let path = try task.stage(string: p.cwd, at: 0)
        try task.call("chdir(\(p.cwd))", .chdir, path.raw)
        try task.call("umask", .umask, UInt64(p.umask))
    }

    /// Every disposition as saved; anything else the stub inherited goes back to SIG_DFL.
    static func signalActions(_ task: RemoteTask, _ saved: [SignalAction], stubNonDefault: UInt64) throws {
        for sig in Int32(1)...64 where sig != SIGKILL && sig != SIGSTOP {
            let action: vos_kernel_sigaction
            if let a = saved.first(where: { $0.signal == sig }) {
                action = vos_kernel_sigaction(handler: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask)
            } else if stubNonDefault & (1 << UInt64(sig - 1)) != 0 {
                action = vos_kernel_sigaction(handler: 0, flags: 0, restorer: 0, mask: 0)
            } else {
                continue
            }
            let at = try task.stage(action, at: 0)
            try task.call("rt_sigaction(\(sig))", .rtSigaction, UInt64(sig), at.raw, 0, 8)
        }
    }

    static func intervalTimers(_ task: RemoteTask, _ timers: [IntervalTimer]) throws {
        for t in timers {
            let v = vos_itimerval(interval_sec: t.intervalMicros / 1_000_000, interval_usec: t.intervalMicros % 1_000_000,
                                  value_sec: max(t.valueMicros, 1) / 1_000_000, value_usec: max(t.valueMicros, 1) % 1_000_000)
            let at = try task.stage(v, at: 0)
            try task.call("setitimer(\(t.which))", .setitimer, UInt64(t.which), at.raw, 0)
        }
    }

    /// POSIX timers under their saved ids: `PR_TIMER_CREATE_RESTORE_IDS` (Linux 6.17) makes
    /// timer_create take the id from its output argument.
    static func posixTimers(_ task: RemoteTask, _ timers: [PosixTimer], tidMap: [PID: PID]) throws {
        guard !timers.isEmpty else { return }
        let restoreIDs: UInt64 = 77
        try task.call("prctl(PR_TIMER_CREATE_RESTORE_IDS, ON)", .prctl, restoreIDs, 1)
        for t in timers.sorted(by: { $0.id < $1.id }) {
            var ev = [UInt8](repeating: 0, count: 64)
            withUnsafeBytes(of: t.sigevValue.littleEndian) { ev.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: t.signal.littleEndian) { ev.replaceSubrange(8..<12, with: $0) }
            withUnsafeBytes(of: t.notify.littleEndian) { ev.replaceSubrange(12..<16, with: $0) }
            let thread = tidMap[t.notifyThread] ?? t.notifyThread
            withUnsafeBytes(of: thread.littleEndian) { ev.replaceSubrange(16..<20, with: $0) }
            let evAt = try task.stage(bytes: ev, at: 0)
            let idAt = try task.stage(t.id, at: 128)
            try task.call("timer_create(id \(t.id))", .timerCreate, UInt64(t.clock), evAt.raw, idAt.raw)
            let got = try task.unstage(Int32.self, at: 128)
            guard got == t.id else { throw CheckpointError("cannot restore POSIX timer \(t.id)", reason: "the kernel gave id \(got)") }
            if t.valueNanos > 0 || t.intervalNanos > 0 {
                let value = max(t.valueNanos, 1)
                let spec = vos_itimerspec(interval_sec: t.intervalNanos / 1_000_000_000, interval_nsec: t.intervalNanos % 1_000_000_000,
                                          value_sec: value / 1_000_000_000, value_nsec: value % 1_000_000_000)
                let specAt = try task.stage(spec, at: 256)
                try task.call("timer_settime(\(t.id))", .timerSettime, UInt64(t.id), 0, specAt.raw, 0)
            }
        }
        try task.call("prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)", .prctl, restoreIDs, 0)
    }
}
