// Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT every thread, until the thread list is
// stable (threads created meanwhile are caught by the next pass). Thawing puts back exactly
// what was changed (registers, signal masks) and detaches.
import CVOSShim
import Glibc
import VOSLinux

public final class FrozenProcess {
    public let pid: PID
    /// Main thread first.
    public private(set) var threads: [Tracee] = []
    /// Registers and masks as found: put back by `thaw()`.
    var originalRegisters: [PID: Registers] = [:]
    var originalMasks: [PID: UInt64] = [:]
    private var detached = false

    /// Seizes and stops every thread of `pid`.
    public init(pid: PID, options: Int = 0) throws {
        self.pid = pid
        var known = Set<PID>()
        do {
            while true {
                let tids = try ProcFile.numericEntries("/proc/\(pid)/task")
                let fresh = tids.filter { !known.contains($0) }
                if fresh.isEmpty { break }
                for tid in fresh {
                    let t: Tracee
                    do { t = try Tracee.seize(tid, options: options) } catch {
                        // A thread that exited between the listing and the seize.
                        if error.errno == .noSuchProcess && tid != pid { continue }
                        if error.errno == .notPermitted, let tracer = Self.tracer(of: tid) { throw Self.busy(pid, tracer) }
                        throw error
                    }
                    try t.interrupt()
                    threads.append(t)
                    known.insert(tid)
                }
                for t in threads where originalRegisters[t.tid] == nil {
                    try Self.waitForInterruptStop(t)
                    originalRegisters[t.tid] = try t.registers()
                    originalMasks[t.tid] = try t.signalMask()
                }
            }
        } catch {
            thaw()
            throw error
        }
        threads.sort { a, b in a.tid == pid ? true : (b.tid == pid ? false : a.tid < b.tid) }
    }

    /// Waits for the `PTRACE_INTERRUPT` stop of `t`. A signal the thread dequeued between the
    /// seize and the interrupt shows up first as a signal-delivery stop: it is handed back
    /// (`PTRACE_CONT` with it), so the kernel delivers it as it would have without vOS and the
    /// saved state holds the handler's frame. Continuing without it, as before, lost the signal
    /// from the image (and a re-send at thaw lost its siginfo). The interrupt is asked again
    /// first: a ptrace stop that comes with a pending interrupt consumes it (man 2 ptrace,
    /// PTRACE_INTERRUPT).
    static func waitForInterruptStop(_ t: Tracee) throws {
        while true {
            guard let stop = try t.wait() else { continue }
            switch stop {
            case .eventStop:
                return
            case .signal(let s):
                try t.interrupt()
                try t.cont(signal: s)
            case .clone, .syscall:
                try t.cont()
            case .exited, .killed:
                throw SyscallError(call: "waitpid", errno: .noSuchProcess, subject: "tid \(t.tid) (it exited while being frozen)")
            }
        }
    }

    /// The PID of whoever ptraces `tid` (another vos checkpoint, a debugger), if anyone.
    static func tracer(of tid: PID) -> PID? {
        let t = PID(ProcStatus.number(pid: tid, "TracerPid"))
        return t > 0 ? t : nil
    }

    /// A process already traced cannot be frozen: say by whom.
    static func busy(_ pid: PID, _ tracer: PID) -> CheckpointError {
        let cmd = ProcessState.commandLine(pid: tracer).joined(separator: " ")
        return CheckpointError("cannot checkpoint pid \(pid)",
                               reason: "it is already being checkpointed or traced by pid \(tracer) (\(cmd.isEmpty ? "?" : cmd)); the process was left as it was")
    }

    /// The mask a thread holds while calls are injected into it: every signal blocked. Injected
    /// calls run between syscall stops and raise no signal; a single-step design would need
    /// SIGTRAP unblocked, since a forced SIGTRAP that is blocked or ignored resets its
    /// disposition to SIG_DFL (`force_sig_info_to_task`, kernel/signal.c).
    static let injectionSignalMask: UInt64 = ~0

    /// Puts back registers and masks and detaches every thread; never throws (a thread that
    /// vanished meanwhile is no longer ours to resume).
    public func thaw() {
        guard !detached else { return }
        detached = true
        for t in threads.reversed() {
            if let m = originalMasks[t.tid] { try? t.setSignalMask(m) }
            if let r = originalRegisters[t.tid] { try? t.setRegisters(r) }
            try? t.detach()
        }
    }

    /// Kills the process and reaps every thread (a traced thread stays a zombie until its tracer
    /// reaps it, and its TID stays taken meanwhile: probe 12).
    /// Returns when the SIGKILL was sent (CLOCK_MONOTONIC ns): from then on the process never
    /// runs again, while the kernel may take ~80 ms per GiB more to free its memory before the
    /// threads can be reaped.
    @discardableResult
    public func kill() -> UInt64 {
        guard !detached else { return Kernel.monotonicNanos() }
        detached = true
        parentAtKill = (try? ProcStat.read("/proc/\(pid)/stat"))?.ppid
        try? Kernel.kill(pid, 9)
        let killedAt = Kernel.monotonicNanos()
        for t in threads.reversed() { _ = try? Kernel.wait(t.tid) }
        return killedAt
    }

    private var parentAtKill: PID?

    /// Waits, up to two seconds, for the parent to reap the killed process so that its PID is
    /// free for a restore right after; not when the parent is vos's own parent, which cannot
    /// reap before vos returns.
    public func waitUntilReaped() {
        guard let parent = parentAtKill, parent != getppid() else { return }
        let deadline = Kernel.monotonicNanos() + 2_000_000_000
        while access("/proc/\(pid)", F_OK) == 0 && Kernel.monotonicNanos() < deadline { usleep(2000) }
    }
}
