// Issue 3, item 5: a program carrying lots of process state (vector registers, TLS, signal
// handlers, masks and pending signals, the alternate stack, timers, rseq, a robust mutex,
// file, heap, brk, stack and protected mappings, cmdline, cwd, umask, limits, thread names)
// gets every piece of it back after checkpoint and restore.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized, .timeLimit(.minutes(2)))
struct StateTests {
    /// Every vector register (zmm0-31 or ymm0-14, the opmask registers), MXCSR, the x87 control
    /// word and an x87 register, and nine general registers keep the values the program put in
    /// them; the thread goes on checking them after the restore. TLS and fs base are the same.
    @Test func registersXstateAndTLS() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.checkpointAndRestore()
        let (b, a) = (run.before, run.after)
        let cpuHasAVX512 = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx512f")
        #expect(b["mode"] == (cpuHasAVX512 ? "avx512" : "avx"), "the program checks the widest registers the CPU has")
        #expect(b["vecbad"] == "0", "register mismatches before the checkpoint: the program's check is broken")
        let iterations = b.int("vec")
        #expect(iterations > 0)
        let later = try run.waitTick { $0.int("vec") >= iterations + 100 }
        #expect(
            later != nil,
            "the register-checking thread does not run after the restore (vec=\(iterations) at the checkpoint)")
        #expect(
            run.last["vecbad"] == "0",
            "the vector thread found \(run.last["vecbad"] ?? "?") register mismatches after the restore: xstate or general registers were not restored"
        )
        #expect(a["tls"] == "7e57a11ce5", "the __thread variable lost its value")
        #expect(a["tlsaddr"] == b["tlsaddr"], "the __thread variable moved")
        #expect(a["fs"] == b["fs"], "fs base (ARCH_GET_FS) differs: \(b["fs"] ?? "?") -> \(a["fs"] ?? "?")")
        #expect(a["fs"] == a["tp"], "fs base and the TCB's self pointer disagree after the restore")
    }

    /// Handlers, the ignored signal, per-thread blocked masks and the alternate signal stack
    /// come back; a handler registered with SA_ONSTACK still runs on the alternate stack.
    @Test func signalHandlersMasksAndAlternateStack() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        for n in 1...3 {
            kill(run.pid, SIGUSR1)
            #expect(
                try run.waitTick { $0.int("usr1") == n } != nil, "SIGUSR1 #\(n) was not counted before the checkpoint")
        }
        try run.checkpointAndRestore()
        let (b, a) = (run.before, run.after)
        #expect(
            a["usr1"] == "3" && a["usr1alt"] == "3",
            "SIGUSR1 counts after restore: \(a["usr1"] ?? "?") (alt stack \(a["usr1alt"] ?? "?")), want 3 (3)")
        #expect(
            a["altstack"] == b["altstack"], "sigaltstack: \(b["altstack"] ?? "?") before, \(a["altstack"] ?? "?") after"
        )
        #expect(a["blocked"] == b["blocked"], "the main thread's blocked mask differs")
        #expect(
            run.outsideAfter.signals == run.outsideBefore.signals,
            "/proc/PID/status signal state differs: \(signalDiff(run.outsideBefore.signals, run.outsideAfter.signals))")

        kill(run.restored, SIGUSR1)
        let t = try run.waitTick { $0.int("usr1") == 4 }
        #expect(t != nil, "SIGUSR1 sent after the restore was not handled (usr1=\(run.last["usr1"] ?? "?"))")
        #expect(
            run.last["usr1alt"] == "4", "the SA_ONSTACK handler did not run on the alternate stack after the restore")
        kill(run.restored, SIGUSR2)
        let seq = run.last.int("seq")
        #expect(
            try run.waitTick { $0.int("seq") > seq + 2 } != nil,
            "SIGUSR2 killed the restored process: it is no longer ignored")
        #expect(run.last["usr2"] == "ignored")
    }

    /// A checkpoint that leaves the process running changes nothing in it: dispositions (the
    /// SIGTRAP handler included: every injected call ends in a trap), masks, pending signals,
    /// registers; it goes on ticking and checking its registers. The same when vos is killed
    /// (issue 10) inside an injected call or between two: every thread, the one spinning on its
    /// vector registers included, returns through its frame to exactly where it was.
    @Test(arguments: [nil, "injected-call", "checkpoint-injecting"])
    func leaveRunningLeavesSignalsAndRegistersAlone(killedAt point: String?) throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        let before = try ProcView(pid: run.pid)
        if let point {
            let r = try run.f.vos(["checkpoint", "--pid", String(run.pid), "--image", run.image, "--leave-running"],
                                  environment: ["VOS_DIE_AT": point])
            #expect(r.status == SIGKILL, "vos was not killed at \(point): \(r.status) \(r.stderr)")
            #expect(waitUntil { TracerPID(run.pid) == 0 }, "the process is still traced")
        } else {
            try run.f.checkpoint(run.pid, run.image, leaveRunning: true)
        }
        let after = try ProcView(pid: run.pid)
        #expect(
            after.signals == before.signals,
            "the checkpoint changed the running process: \(signalDiff(before.signals, after.signals))")
        // Timer signals that came during the freeze may still wait for the main thread to run:
        // compare the signals the program holds blocked.
        let held = bit(SIGWINCH) | bit(SIGURG) | bit(sigRTMin + 2)
        #expect(
            after.sharedPending & held == before.sharedPending & held,
            "the checkpoint changed the process's pending signals")
        #expect(
            after.threads.mapValues { $0.blocked } == before.threads.mapValues { $0.blocked },
            "the checkpoint changed a thread's blocked mask")
        #expect(
            after.threads.mapValues { $0.pending & held } == before.threads.mapValues { $0.pending & held },
            "the checkpoint changed a thread's pending signals")
        let vec = run.last.int("vec")
        #expect(
            try run.waitTick { $0.int("vec") >= vec + 50 } != nil, "the process does not run on after the checkpoint")
        #expect(run.last["vecbad"] == "0", "the checkpoint disturbed the registers of the running process")
    }

    /// An ignored SIGTRAP stays ignored: injected calls run between syscall stops and raise no
    /// SIGTRAP (a single-step trap is a forced SIGTRAP, and the kernel resets an ignored forced
    /// signal to SIG_DFL).
    @Test func ignoredSIGTRAPStaysIgnored() throws {
        let run = try StateRun(arguments: ["--ignore-sigtrap"])
        defer { run.f.cleanup() }
        let before = try ProcView(pid: run.pid)
        try #require(before.ignored & bit(SIGTRAP) != 0, "the program did not ignore SIGTRAP")
        try run.checkpointAndRestore()
        #expect(run.outsideAfter.ignored & bit(SIGTRAP) != 0, "SIGTRAP is no longer ignored after the restore")
        #expect(
            run.outsideAfter.ignored & ~bit(SIGTRAP) == before.ignored & ~bit(SIGTRAP), "other ignored signals changed")
    }

    /// A main thread without an alternate stack has none after the restore either (the restore
    /// stub inherits vos's own, which would crash an SA_ONSTACK handler).
    @Test func noAlternateStackStaysOff() throws {
        let run = try StateRun(arguments: ["--no-altstack"])
        defer { run.f.cleanup() }
        #expect(run.last["altstack"] == "(nil)/0/\(SS_DISABLE)", "the program did not disable its alternate stack")
        try run.checkpointAndRestore()
        #expect(
            run.after["altstack"] == "(nil)/0/\(SS_DISABLE)",
            "the restored main thread has an alternate stack it never set up: \(run.after["altstack"] ?? "?")")
        kill(run.restored, SIGUSR1)
        #expect(
            try run.waitTick { $0.int("usr1") == 1 } != nil,
            "the SA_ONSTACK SIGUSR1 handler did not run after the restore (alive: \(run.f.isAlive(run.restored)))")
        #expect(run.last["usr1alt"] == "0")
    }

    /// Signals blocked and pending at the checkpoint (one for the thread, two for the process,
    /// one of them with a sigqueue value) are still pending after the restore and are delivered,
    /// with their value, when the program unblocks them.
    @Test func pendingSignalsDeliveredAfterRestore() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.checkpointAndRestore()
        let (b, a) = (run.before, run.after)
        let held = bit(SIGWINCH) | bit(SIGURG) | bit(sigRTMin + 2)
        #expect(
            b.hex("pending") & held == held,
            "the signals were not pending before the checkpoint: \(b["pending"] ?? "?")")
        #expect(
            a.hex("pending") & held == held,
            "pending signals lost: \(b["pending"] ?? "?") before, \(a["pending"] ?? "?") after")
        #expect(a["winch"] == "0" && a["urg"] == "0" && a["rt"] == "0", "a blocked signal was delivered")
        let main = run.outsideAfter.threads["state-main"]
        #expect(
            ((main?.pending ?? 0) & bit(SIGWINCH)) != 0,
            "SIGWINCH (raised by the thread) is not in the main thread's SigPnd")
        #expect(
            run.outsideAfter.sharedPending & (bit(SIGURG) | bit(sigRTMin + 2)) == bit(SIGURG) | bit(sigRTMin + 2),
            "SIGURG and SIGRTMIN+2 are not in ShdPnd: \(String(run.outsideAfter.sharedPending, radix: 16))")

        let line = try run.command(2, "unblocked")
        #expect(line["winch"] == "1", "SIGWINCH pending at the checkpoint was not delivered after unblocking")
        #expect(line["urg"] == "1", "SIGURG pending at the checkpoint was not delivered after unblocking")
        #expect(line["rt"] == "1", "SIGRTMIN+2 pending at the checkpoint was not delivered after unblocking")
        #expect(
            line["rtvalue"] == "4242" && line["rtcode"] == "\(SI_QUEUE)",
            "the queued signal lost its siginfo: value \(line["rtvalue"] ?? "?"), si_code \(line["rtcode"] ?? "?")")
    }

    /// Queued real-time signals sent without pause while the checkpoint runs are each handled
    /// exactly once and in order: before the freeze, or after the restore (those pending at the
    /// freeze); only the last few, sent after the checkpoint killed the process, may be missing.
    @Test func signalsSentDuringCheckpointAreNeitherLostNorRepeated() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        let signal = sigRTMin + 6
        let target = run.pid
        let stop = StopFlag()
        let sender = Thread {
            var v: Int32 = 0
            while !stop.isSet && v < 60000 {
                if sigqueue(target, signal, sigval(sival_int: v)) == 0 { v += 1 }
                usleep(50)
            }
        }
        sender.start()
        #expect(try run.waitTick { $0.int("stream") >= 200 } != nil, "the program does not receive the signal stream")
        try run.checkpointAndRestore(afterCheckpoint: { stop.set() })
        let received = run.before.int("stream")
        #expect(try run.waitTick { $0.int("seq") > run.after.int("seq") + 3 } != nil)
        let t = run.last
        #expect(
            t["streambad"] == "0",
            """
            \(t["streambad"] ?? "?") signals of the stream came twice, out of order or skipped (first: value \
            \(t["streamfirstbad"] ?? "?"); \(received) handled before the checkpoint, \(t["stream"] ?? "?") in all)
            """)
        #expect(
            t.int("stream") == t.int("streamnext"),
            "handled \(t["stream"] ?? "?") signals, but the values reached \(t["streamnext"] ?? "?")")
        #expect(
            t.int("stream") > received,
            "no signal pending at the freeze was delivered after the restore (\(received) before, \(t["stream"] ?? "?") after)"
        )
    }

    /// setitimer and two POSIX timers (ids 1 and 2, id 0 deleted) keep their ids, signals and
    /// intervals, and keep firing after the restore.
    @Test func intervalAndPosixTimers() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.checkpointAndRestore()
        let (b, a) = (run.before, run.after)
        #expect(a["itimer"] == "50000", "ITIMER_REAL interval after restore: \(a["itimer"] ?? "?") µs, want 50000")
        #expect(b["ptimerid"] == "1" && b["idleid"] == "2", "the program's timer ids are not 1 and 2 to begin with")
        #expect(a["ptimerint"] == "40000000", "POSIX timer interval after restore: \(a["ptimerint"] ?? "?") ns")
        let left = a.int("idleleft")
        #expect(left > 3500 && left <= 3600, "the one-shot POSIX timer (1 h) has \(left) s left after the restore")
        #expect(
            try run.waitTick { $0.int("alrm") >= b.int("alrm") + 5 } != nil,
            "SIGALRM from setitimer stopped after the restore (\(b["alrm"] ?? "?") -> \(run.last["alrm"] ?? "?"))")
        #expect(
            try run.waitTick { $0.int("ptimer") >= b.int("ptimer") + 5 } != nil,
            "the POSIX timer stopped firing after the restore (\(b["ptimer"] ?? "?") -> \(run.last["ptimer"] ?? "?"))")
        #expect(
            run.last["ptimerbad"] == "0",
            "\(run.last["ptimerbad"] ?? "?") timer signals came with the wrong si_timerid/si_value: the kernel's timer id changed"
        )
        #expect(
            run.outsideAfter.timers == run.outsideBefore.timers,
            "/proc/PID/timers differs:\n\(run.outsideBefore.timers)\n--\n\(run.outsideAfter.timers)")
    }

    /// rseq is registered again in every thread (the area shows a real CPU); a thread that
    /// waited in FUTEX_WAIT across the restore exits holding a robust mutex: the main thread
    /// gets EOWNERDEAD (robust list) and pthread_join returns (clear_child_tid).
    @Test func rseqRobustListAndClearChildTID() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.checkpointAndRestore()
        #expect(run.before["rseq"] == "1", "the program's rseq check fails even before the checkpoint")
        #expect(
            run.after["rseq"] == "1",
            "the main thread's rseq area does not show the current CPU after the restore (rseq=\(run.after["rseq"] ?? "?") cpu_id=\(run.after["cpu"] ?? "?"))"
        )
        let line = try run.command(3, "robust")
        #expect(
            line["lock"] == "EOWNERDEAD",
            "locking the mutex held by the exited thread gave \(line["lock"] ?? "?"): the robust list was not restored")
        #expect(
            line["join"] == "0",
            "pthread_join of the exited thread gave \(line["join"] ?? "?"): clear_child_tid was not restored")
        #expect(line["threadrseq"] == "1", "the second thread's rseq area is not valid after the restore")
        #expect(line["threadstack"] == "1", "the second thread's stack changed")
        #expect(line["threadalt"] == "1", "the second thread's own alternate signal stack was not restored")
        let sig = sigRTMin + 5
        #expect(
            run.outsideBefore.threads["state-robust"].map { $0.pending & bit(sig) != 0 } == true,
            "the signal sent to the second thread alone was not pending there before the checkpoint")
        #expect(
            run.outsideAfter.threads["state-robust"].map { $0.pending & bit(sig) != 0 } == true,
            "the signal pending for the second thread alone is not pending there after the restore")
        #expect(
            line["threadsig"] == "1" && line["threadsigself"] == "1",
            "the signal pending for the second thread was handled \(line["threadsig"] ?? "?") time(s), in that thread: \(line["threadsigself"] ?? "?")"
        )
        #expect(
            line["threadsigalt"] == "1", "the second thread's SA_ONSTACK handler did not run on its alternate stack")
        #expect(
            line["threadsigcode"] == "\(SI_TKILL)",
            "the thread's pending signal lost its siginfo (si_code \(line["threadsigcode"] ?? "?"))")
    }

    /// Layout and contents: the same VMAs with the same protections; the data file mapping, the
    /// privately written pages of a file mapping (the file itself untouched), heap, brk, a big
    /// malloc, stack, a read-only and an inaccessible page hold their bytes; vdso works.
    @Test func memoryLayoutAndContents() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        let v0 = try run.command(1, "verify")
        try run.checkpointAndRestore()
        let (b, a) = (run.before, run.after)
        let mapsBefore = run.outsideBefore.maps
        let mapsAfter = run.outsideAfter.maps
        #expect(diff(mapsBefore, mapsAfter).isEmpty, "/proc/PID/maps differs:\n\(diff(mapsBefore, mapsAfter))")
        #expect(mapsAfter.count == mapsBefore.count, "\(mapsBefore.count) mappings before, \(mapsAfter.count) after")

        #expect(a["map"] == fnvHex(run.dataBytes), "the read-only file mapping does not hold the file's bytes")
        #expect(
            a["cow"] == fnvHex(run.expectedCow),
            "the privately written file pages do not hold the written bytes over the file's")
        #expect(
            fnvHex(try Data(contentsOf: URL(fileURLWithPath: run.f.path("cow.bin")))) == fnvHex(run.cowBytes),
            "the file behind the private mapping was modified")
        for key in ["small", "big", "sbrk", "brk", "ro", "stack"] {
            #expect(a[key] == b[key], "\(key): \(b[key] ?? "?") before, \(a[key] ?? "?") after")
        }
        #expect(abs(a.int("vdso_us")) < 100_000, "clock_gettime through the vdso is off by \(a["vdso_us"] ?? "?") µs")

        // The program's own view after the restore against /proc seen from outside before it
        // (the first verify grew the stack by 1 MiB; the second grows it by 2: past the restored VMA).
        let v1 = try run.command(1, "verify")
        for (key, name) in [
            ("heap", "[heap]"), ("stack", "[stack]"), ("vdso", "[vdso]"), ("vvar", "[vvar]"), ("data", "/data.bin"),
        ] {
            let outside = mapsBefore.first { $0.hasSuffix(name) }.map { String($0.prefix { $0 != " " }) }
            #expect(
                v1[key] == outside && outside != nil,
                "\(key) range seen by the program after the restore: \(v1[key] ?? "?"), before it: \(outside ?? "none")"
            )
        }
        #expect(
            v0["stackgrow"] == "ok" && v1["stackgrow"] == "ok", "the main stack did not grow by 2 MiB after the restore"
        )
        #expect(v1["roprot"] == "r--p", "the read-only page is \(v1["roprot"] ?? "?") after the restore")
        #expect(v1["noneprot"] == "---p", "the inaccessible page is \(v1["noneprot"] ?? "?") after the restore")
        #expect(v1["none"] == "ok", "the inaccessible page lost its bytes")
        #expect(v1["grow"] == "ok", "the heap cannot grow after the restore (sbrk/malloc)")
        #expect(abs(v1.int("vdsodiff_us")) < 100_000, "the vdso clock disagrees with the syscall")
    }

    /// cmdline, environ, cwd, umask, rlimits and thread names read back the same.
    @Test func mmFieldsCwdUmaskLimitsAndNames() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.checkpointAndRestore()
        let (o0, o1) = (run.outsideBefore, run.outsideAfter)
        #expect(o1.cmdline == o0.cmdline, "/proc/PID/cmdline differs")
        #expect(o1.environ == o0.environ, "/proc/PID/environ differs")
        #expect(o1.cwd == o0.cwd && o1.cwd == run.f.directory, "cwd: \(o0.cwd) before, \(o1.cwd) after")
        #expect(o1.umask == "0027", "umask after restore: \(o1.umask)")
        #expect(diff(o0.limits, o1.limits).isEmpty, "/proc/PID/limits differs:\n\(diff(o0.limits, o1.limits))")
        #expect(
            o0.limits.contains { $0.hasPrefix("Max open files") && $0.contains(" 200 ") },
            "the program did not lower RLIMIT_NOFILE")
        #expect(
            Set(o1.threads.keys) == ["state-main", "state-vec", "state-robust"],
            "thread names after restore: \(o1.threads.keys.sorted())")
        #expect(run.after["nofile"] == run.before["nofile"] && run.after["core"] == run.before["core"])
        #expect(run.after["cwd"] == run.before["cwd"] && run.after["umask"] == "027")
        #expect(run.after["name"] == "state-main")
        let v = try run.command(1, "verify")
        #expect(v["cmdline"] == "ok", "/proc/self/cmdline does not match the program's argv in memory")
        #expect(v["environ"] == "ok", "/proc/self/environ does not match the program's environ in memory")
        #expect(v["umask"] == "027")
    }

    /// `vos inspect` shows the threads, the memory and the signal state of the image.
    @Test func inspectShowsThreadsMemoryAndSignals() throws {
        let run = try StateRun()
        defer { run.f.cleanup() }
        try run.f.checkpoint(run.pid, run.image)
        let r = try run.f.vos(["inspect", run.image])
        #expect(r.status == 0, "vos inspect failed: \(r.stderr)")
        let text = r.stdout
        #expect(text.contains("threads (3):"), "inspect does not list 3 threads:\n\(text)")
        for name in ["state-main", "state-vec", "state-robust"] {
            #expect(text.contains("\"\(name)\""), "inspect does not show thread \(name)")
        }
        let mainLine = text.split(separator: "\n").first { $0.contains("\"state-main\"") }.map(String.init) ?? ""
        #expect(
            mainLine.contains("sigaltstack"), "inspect does not show the main thread's alternate stack: \(mainLine)")
        #expect(
            mainLine.contains("pending [\(SIGWINCH)"),
            "inspect does not show SIGWINCH pending for the main thread: \(mainLine)")
        #expect(mainLine.contains("rseq"), "inspect does not show the rseq area: \(mainLine)")
        let robustLine = text.split(separator: "\n").first { $0.contains("\"state-robust\"") }.map(String.init) ?? ""
        #expect(
            robustLine.contains("sigaltstack") && robustLine.contains("pending [\(sigRTMin + 5)]"),
            "inspect does not show the second thread's alternate stack and pending signal: \(robustLine)")
        for path in ["[heap]", "[stack]", "[vdso]", run.f.path("data.bin"), run.f.path("cow.bin")] {
            #expect(text.contains(path), "inspect's memory listing lacks \(path)")
        }
        let signals = text.split(separator: "\n").first { $0.hasPrefix("signals:") }.map(String.init) ?? ""
        #expect(signals.contains("\(SIGUSR2):ignored"), "inspect does not show SIGUSR2 ignored: \(signals)")
        #expect(signals.contains(" \(SIGUSR1):0x"), "inspect does not show the SIGUSR1 handler: \(signals)")
        #expect(
            signals.contains("pending for the process") && signals.contains("\(SIGURG)")
                && signals.contains("\(sigRTMin + 2)"),
            "inspect does not show SIGURG and SIGRTMIN+2 pending for the process: \(signals)")
        #expect(text.contains("timers: 1 interval, 2 POSIX"), "inspect does not show the timers:\n\(text)")
    }
}

// MARK: - the program and what is seen of it

/// vos-test-state started in a fixture, with its data files; checkpointed and restored on demand.
private final class StateRun {
    let f: Fixture
    let report: String
    let image: String
    let pid: PID
    private(set) var restored: PID = 0
    let dataBytes: Data, cowBytes: Data
    /// The last tick before the checkpoint and the first after the restore.
    private(set) var before: Tick = Tick(), after: Tick = Tick()
    private(set) var outsideBefore = ProcView(), outsideAfter = ProcView()

    init(arguments: [String] = [], _ name: String = #function) throws {
        f = try Fixture(name)
        report = f.path("report.txt")
        image = f.path("img")
        dataBytes = Data((0..<(3 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
        cowBytes = Data((0..<(4 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 1) })
        try dataBytes.write(to: URL(fileURLWithPath: f.path("data.bin")))
        try cowBytes.write(to: URL(fileURLWithPath: f.path("cow.bin")))
        pid = try f.start(
            Products.path("vos-test-state"), [report, f.directory, "two words", "--mark=state"] + arguments,
            environment: ["VOS_STATE_MARK": "environ survives"])
        let ready = waitUntil { lines(self.report).contains { $0.hasPrefix("ready") || $0.hasPrefix("error") } }
        try #require(
            ready && !lines(report).contains { $0.hasPrefix("error") }, "vos-test-state did not start: \(lines(report))"
        )
        try #require(try waitTick { $0.int("seq") >= 2 } != nil, "vos-test-state does not tick")
    }

    /// What a process that wrote `cow.bin` privately holds: the file with two strings over it.
    var expectedCow: Data {
        var d = cowBytes
        for (offset, s) in [(4096 + 100, "vos private page 1"), (3 * 4096 + 3000, "vos private page 3")] {
            d.replaceSubrange(offset..<offset + s.utf8.count + 1, with: Array(s.utf8) + [0])
        }
        return d
    }

    var ticks: [Tick] { lines(report).filter { $0.hasPrefix("tick ") }.map(Tick.init) }
    var last: Tick { ticks.last ?? Tick() }

    /// Waits up to 10 s for a tick matching `condition`.
    func waitTick(_ condition: (Tick) -> Bool) throws -> Tick? {
        var found: Tick?
        _ = waitUntil {
            found = ticks.last(where: condition)
            return found != nil
        }
        return found
    }

    /// Sends command `n` (SIGHUP with a sigqueue value) and returns its answer line.
    func command(_ n: Int32, _ answer: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Tick {
        let target = restored != 0 ? restored : pid
        let count = lines(report).filter { $0.hasPrefix(answer + " ") }.count
        #expect(
            sigqueue(target, SIGHUP, sigval(sival_int: n)) == 0,
            "sigqueue to \(target): \(String(cString: strerror(errno)))")
        var line: String?
        _ = waitUntil {
            let answers = lines(report).filter { $0.hasPrefix(answer + " ") }
            line = answers.count > count ? answers.last : nil
            return line != nil
        }
        return try #require(
            line.map(Tick.init),
            "no \"\(answer)\" line for command \(n); process \(target) \(f.isAlive(target) ? "still runs" : "is dead"), last line: \(lines(report).last ?? "")",
            sourceLocation: sourceLocation)
    }

    /// Checkpoint (the process is killed), restore, and wait for it to tick again; keeps the
    /// outside views and the ticks on both sides.
    func checkpointAndRestore(afterCheckpoint: () -> Void = {}, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        outsideBefore = try ProcView(pid: pid)
        try f.checkpoint(pid, image, sourceLocation: sourceLocation)
        afterCheckpoint()
        before = try #require(ticks.last, "no tick before the checkpoint", sourceLocation: sourceLocation)
        restored = try f.restore(image, sourceLocation: sourceLocation)
        let next = before.int("seq") + 1
        after = try #require(
            try waitTick { $0.int("seq") == next },
            "the restored process does not tick (last: \(lines(report).last ?? ""))",
            sourceLocation: sourceLocation)
        let seqs = ticks.map { $0.int("seq") }
        #expect(
            seqs == Array(0..<seqs.count), "tick sequence has a gap or repeat around \(before.int("seq"))",
            sourceLocation: sourceLocation)
        outsideAfter = try ProcView(pid: restored)
    }
}

/// One report line: its first word and its key=value pairs.
private struct Tick {
    var kind = ""
    var values: [String: String] = [:]
    init() {}
    init(_ line: String) {
        let words = line.split(separator: " ")
        kind = words.first.map(String.init) ?? ""
        for w in words.dropFirst() {
            guard let eq = w.firstIndex(of: "=") else { continue }
            values[String(w[..<eq])] = String(w[w.index(after: eq)...])
        }
    }
    subscript(_ key: String) -> String? { values[key] }
    func int(_ key: String) -> Int { Int(values[key] ?? "") ?? Int.min }
    func hex(_ key: String) -> UInt64 { UInt64(values[key] ?? "", radix: 16) ?? 0 }
}

/// What /proc shows of a process from outside; the PID is written as "PID" so that a process
/// restored under another PID compares equal.
private struct ProcView {
    struct Thread: Equatable { var blocked: UInt64 = 0, pending: UInt64 = 0 }
    var maps: [String] = []
    var limits: [String] = []
    var cmdline = Data(), environ = Data()
    var cwd = "", umask = ""
    var signals: [String] = []
    var sharedPending: UInt64 = 0
    /// SigIgn.
    var ignored: UInt64 = 0
    var timers = ""
    /// By thread name.
    var threads: [String: Thread] = [:]

    init() {}
    init(pid: PID) throws {
        let base = "/proc/\(pid)"
        // ProcFile reads to EOF: Foundation's readers stop after the first page of a /proc file.
        func text(_ p: String) throws -> String { try ProcFile.text(base + "/" + p) }
        maps = try text("maps").split(separator: "\n").map(String.init)
        limits = try text("limits").split(separator: "\n").map(String.init)
        cmdline = Data(try ProcFile.read(base + "/cmdline"))
        environ = Data(try ProcFile.read(base + "/environ"))
        cwd = try ProcFile.link(base + "/cwd")
        let status = try text("status")
        func field(_ s: String, _ key: String) -> String {
            s.split(separator: "\n").first { $0.hasPrefix(key + ":") }.map {
                $0.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
            } ?? ""
        }
        umask = field(status, "Umask")
        signals = ["SigIgn", "SigCgt"].map { "\($0) \(field(status, $0))" }
        sharedPending = UInt64(field(status, "ShdPnd"), radix: 16) ?? 0
        ignored = UInt64(field(status, "SigIgn"), radix: 16) ?? 0
        timers = try text("timers").replacingOccurrences(of: "pid.\(pid)\n", with: "pid.PID\n")
        for tid in try FileManager.default.contentsOfDirectory(atPath: base + "/task") {
            let s = try text("task/\(tid)/status")
            threads[field(s, "Name")] = Thread(
                blocked: UInt64(field(s, "SigBlk"), radix: 16) ?? 0,
                pending: UInt64(field(s, "SigPnd"), radix: 16) ?? 0)
            signals.append("\(field(s, "Name")) SigBlk \(field(s, "SigBlk"))")
        }
        signals.sort()
    }
}

/// glibc's SIGRTMIN (a function call in C: Swift does not see the macro).
private let sigRTMin = __libc_current_sigrtmin()

private func bit(_ signal: Int32) -> UInt64 { 1 << UInt64(signal - 1) }

/// A flag one thread sets and another polls.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// The entries of two `ProcView.signals` lists that differ, with the signals that appeared
/// (+) or went (-) in each mask: "SigCgt -5 (Trace/breakpoint trap)".
private func signalDiff(_ a: [String], _ b: [String]) -> String {
    let old = Dictionary(a.map { e in (String(e.split(separator: " ").dropLast().joined(separator: " ")), e) }) {
        x, _ in x
    }
    var out: [String] = []
    for e in b where !a.contains(e) {
        let key = e.split(separator: " ").dropLast().joined(separator: " ")
        let was = UInt64(old[key]?.split(separator: " ").last ?? "", radix: 16) ?? 0
        let now = UInt64(e.split(separator: " ").last ?? "", radix: 16) ?? 0
        let changes = (1...64).compactMap { (s: Int32) -> String? in
            let w = was & bit(s) != 0
            let n = now & bit(s) != 0
            return w == n ? nil : "\(n ? "+" : "-")\(s) (\(String(cString: strsignal(s))))"
        }
        out.append("\(key) \(changes.joined(separator: ", "))")
    }
    return out.isEmpty ? "entries differ: \(a) vs \(b)" : out.joined(separator: "; ")
}

/// FNV-1a 64, as the program computes it, in the program's hex.
private func fnvHex(_ d: Data) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in d { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(h, radix: 16)
}

/// Lines only in `a` (-) or only in `b` (+).
private func diff(_ a: [String], _ b: [String]) -> String {
    (a.filter { !b.contains($0) }.map { "- " + $0 } + b.filter { !a.contains($0) }.map { "+ " + $0 }).joined(
        separator: "\n")
}
