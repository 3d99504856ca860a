// Process-wide state that is not memory or files: signal dispositions, timers, mm fields,
// cwd, umask, limits. Injected queries run in the main thread.
import CVOSShim
import VOSImage
import VOSInjection
import VOSLinux

enum ProcessState {
    /// Dispositions of every signal that is ignored or caught (SigIgn|SigCgt in status): the
    /// handler addresses are not in /proc, so ask `rt_sigaction(sig, NULL, &old)`.
    static func signalActions(status: ProcStatus, task: RemoteTask) throws -> [SignalAction] {
        let nonDefault = status.hex("SigIgn") | status.hex("SigCgt")
        var out: [SignalAction] = []
        for sig in 1...64 where nonDefault & (1 << UInt64(sig - 1)) != 0 {
            try task.call("rt_sigaction(\(sig))", .rtSigaction, UInt64(sig), 0, task.scratch.raw, 8)
            let a = try task.unstage(vos_kernel_sigaction.self)
            out.append(SignalAction(signal: Int32(sig), handler: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask))
        }
        return out
    }

    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF; only the armed ones are kept.
    static func intervalTimers(task: RemoteTask) throws -> [IntervalTimer] {
        var out: [IntervalTimer] = []
        for which in 0...2 {
            try task.call("getitimer(\(which))", .getitimer, UInt64(which), task.scratch.raw)
            let v = try task.unstage(vos_itimerval.self)
            if v.value_sec != 0 || v.value_usec != 0 || v.interval_sec != 0 || v.interval_usec != 0 {
                out.append(IntervalTimer(which: Int32(which), valueMicros: v.value_sec * 1_000_000 + v.value_usec,
                                         intervalMicros: v.interval_sec * 1_000_000 + v.interval_usec))
            }
        }
        return out
    }

    /// POSIX timers from /proc/PID/timers ("ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.123\nClockID: 1"),
    /// each with its current setting from an injected `timer_gettime`.
    static func posixTimers(pid: PID, task: RemoteTask) throws -> [PosixTimer] {
        let text = (try? ProcFile.text("/proc/\(pid)/timers")) ?? ""
        var out: [PosixTimer] = []
        var current: [String: String] = [:]
        func flush() throws {
            guard let idText = current["ID"], let id = Int32(idText) else { return }
            let sigParts = (current["signal"] ?? "0/0").split(separator: "/")
            let notifyParts = (current["notify"] ?? "signal/pid.0").split(separator: "/")
            let mode = notifyParts.first.map(String.init) ?? "signal"
            let target = notifyParts.count > 1 ? notifyParts[1] : "pid.0"
            let thread = PID(target.split(separator: ".").last ?? "0") ?? 0
            // SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4 (proc shows "thread" for it)
            let notify: Int32 = mode == "none" ? 1 : (target.hasPrefix("tid") ? 4 : 0)
            try task.call("timer_gettime(\(id))", .timerGettime, UInt64(id), task.scratch.raw)
            let v = try task.unstage(vos_itimerspec.self)
            out.append(PosixTimer(
                id: id, clock: Int32(current["ClockID"] ?? "0") ?? 0, signal: Int32(sigParts.first ?? "0") ?? 0,
                notify: notify, notifyThread: thread, sigevValue: UInt64(sigParts.count > 1 ? sigParts[1] : "0", radix: 16) ?? 0,
                valueNanos: v.value_sec * 1_000_000_000 + v.value_nsec,
                intervalNanos: v.interval_sec * 1_000_000_000 + v.interval_nsec))
            current = [:]
        }
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            if key == "ID" { try flush() }
            current[key] = String(line[line.index(after: colon)...]).trimmingCharacters(in: " ")
        }
        try flush()
        return out
    }

    /// mm fields: most from /proc/PID/stat; the current brk only from an injected `brk(0)`.
    static func mmFields(stat: ProcStat, pid: PID, task: RemoteTask) throws -> MMFields {
        let brk = try task.call("brk(0)", .brk, 0)
        return MMFields(
            startCode: stat.number(26), endCode: stat.number(27), startData: stat.number(45), endData: stat.number(46),
            startBrk: stat.number(47), brk: brk, startStack: stat.number(28), argStart: stat.number(48),
            argEnd: stat.number(49), envStart: stat.number(50), envEnd: stat.number(51), auxv: try Auxv.read(pid: pid))
    }

    static func commandLine(pid: PID) -> [String] {
        let bytes = (try? ProcFile.read("/proc/\(pid)/cmdline")) ?? []
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
