// Issue 10, items 1 and 2: `kill -9` of vos at any moment. A checkpoint's target goes on exactly
// as before (alive, not stopped, not traced, its own signal mask, its fd table and memory map
// unchanged, its output continuing with no gap); a killed restore leaves no process behind, or
// a whole running one. Fixed points (VOS_DIE_AT: vos sends itself SIGKILL there) cover the
// moments that matter by construction; random moments (quick: 20, VOS_SOAK=1: 200) cover the rest.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct KillSafetyTests {
    /// Inside an injected call, between calls (threads parked on their return frames) and after (threads
    /// frozen with their own registers back), with and without --leave-running.
    @Test(arguments: ["injected-call", "checkpoint-injecting", "checkpoint-frozen"], [false, true])
    func checkpointKilledAt(point: String, leaveRunning: Bool) throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the counter does not count")
        let before = try Observed(pid)
        let (status, stderr) = try runVOS(f, checkpointArguments(pid, f.path("img"), leaveRunning), dieAt: point)
        #expect(status == SIGKILL, "vos was not killed at \(point): exit \(status), \(stderr)")
        try expectUntouched(pid, before, out)
    }

    @Test func checkpointKilledAtRandomMoments() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        var pid = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the counter does not count")
        // How long a whole checkpoint takes here: the moments are drawn up to a bit past it.
        let clock = Date()
        try f.checkpoint(pid, f.path("timing"), leaveRunning: true)
        let whole = Date().timeIntervalSince(clock)
        var rng = SystemRandomNumberGenerator()
        var finished = 0
        for round in 0..<Soak.count(quick: 20, soak: 200) {
            let leaveRunning = round % 2 == 0
            let image = f.path("img-\(round)")
            let before = try Observed(pid)
            let delay = Double.random(in: 0...(whole * 1.2), using: &rng)
            let (status, stderr) = try runVOS(f, checkpointArguments(pid, image, leaveRunning), killAfter: delay)
            if status != SIGKILL {
                // vos finished first: a whole checkpoint.
                try #require(status == 0, "round \(round): checkpoint failed: \(stderr)")
                finished += 1
            }
            if !leaveRunning && !f.isAlive(pid) {
                // vos got as far as ending the target: only once the image was complete.
                let inspect = try f.vos(["inspect", image])
                try #require(inspect.status == 0, "round \(round): target ended but image incomplete: \(inspect.stderr)")
                f.reap(pid)
                pid = try f.restore(image)
                let count = lines(out).count
                try #require(waitUntil { lines(out).count > count + 5 }, "round \(round): the restored counter does not go on")
                #expect(counterSequence(out).continuous, "round \(round): a gap or a repeat after the restore")
                continue
            }
            try expectUntouched(pid, before, out, round: round)
        }
        print("kill -9 of vos checkpoint at \(Soak.count(quick: 20, soak: 200)) random moments within \(Int(whole * 1200)) ms: "
            + "\(finished) finished before the kill, the target went on every time")
    }

    @Test func restoreKilledAtRandomMoments() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the counter does not count")
        let image = f.path("img")
        try f.checkpoint(pid, image)
        let saved = counterSequence(out).values.last!
        let clock = Date()
        let restored = try f.restore(image)
        let whole = Date().timeIntervalSince(clock)
        kill(restored, SIGKILL)
        f.reap(restored)

        var rng = SystemRandomNumberGenerator()
        var survived = 0
        for round in 0..<Soak.count(quick: 20, soak: 200) {
            let linesBefore = lines(out).count
            let delay = Double.random(in: 0...(whole * 1.2), using: &rng)
            let (status, stderr) = try runVOS(f, ["restore", image, "--pidfile", f.path("pid-\(round)")], killAfter: delay)
            try #require(status == SIGKILL || status == 0, "round \(round): restore failed: \(stderr)")
            // Either nothing is left, or one whole process that counts on from where it was saved.
            _ = waitUntil(3) { processesMarked(f.directory).count <= 1 && zombies(childrenOf: [getpid()]).isEmpty || reapChildren() }
            let left = processesMarked(f.directory)
            try #require(left.count <= 1, "round \(round): processes left: \(describe(left))")
            if let survivor = left.first {
                survived += 1
                try #require(survivor == pid, "round \(round): an unexpected process is left: \(describe(left))")
                try #require(TracerPID(survivor) == 0, "round \(round): the restored process is still traced")
                try #require(waitUntil { lines(out).count >= linesBefore + 10 }, "round \(round): the restored process does not count")
                let fresh = counterSequence(out).values.dropFirst(linesBefore).prefix(10)
                try #require(Array(fresh) == Array(saved + 1...saved + fresh.count), "round \(round): it went on with \(Array(fresh)), saved at \(saved)")
                kill(survivor, SIGKILL)
                f.reap(survivor)
            } else {
                #expect(lines(out).count == linesBefore, "round \(round): a process that is gone wrote to the file")
            }
            _ = waitUntil(3) { reapChildren() && zombies(childrenOf: [getpid()]).isEmpty }
        }
        print("kill -9 of vos restore at \(Soak.count(quick: 20, soak: 200)) random moments within \(Int(whole * 1200)) ms: "
            + "\(survived) left a whole running process, the others nothing")
    }

    /// A capsule restore killed at random moments leaves nothing (no process, so no namespace:
    /// they die with their last process) or the whole capsule running; and a name reserved by a
    /// killed restore is free again for the next one.
    @Test func capsuleRestoreKilledAtRandomMoments() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let run = try f.vos(["run", "--name", "c", "--", Products.path("vos-test-counter"), out])
        try #require(run.status == 0, "vos run: \(run.stderr)")
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the capsule does not count")
        let image = f.path("img")
        let cp = try f.vos(["checkpoint", "c", "--image", image])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        try #require(waitUntil(5) { processesMarked(f.directory).isEmpty }, "the checkpointed capsule still runs")
        let saved = counterSequence(out).values.last!

        // Killed right after reserving a new name: the name is not left taken.
        let reserved = try runVOS(f, ["restore", image, "--name", "copy"], dieAt: "capsule-restore-reserved")
        #expect(reserved.0 == SIGKILL, "vos was not killed: \(reserved)")
        let clock = Date()
        let copy = try f.vos(["restore", image, "--name", "copy"])
        let whole = Date().timeIntervalSince(clock)
        try #require(copy.status == 0, "the name reserved by a killed restore stays taken: \(copy.stderr)")
        #expect(try f.vos(["stop", "copy"]).status == 0)
        try #require(waitUntil(5) { _ = reapChildren(); return processesMarked(f.directory).isEmpty }, "capsule copy does not stop")

        var rng = SystemRandomNumberGenerator()
        var survived = 0
        for round in 0..<Soak.count(quick: 10, soak: 100) {
            let linesBefore = lines(out).count
            let delay = Double.random(in: 0...(whole * 1.2), using: &rng)
            let (status, stderr) = try runVOS(f, ["restore", image], killAfter: delay)
            try #require(status == SIGKILL || status == 0, "round \(round): restore failed: \(stderr)")
            // Either it counts, or every process of it is gone.
            _ = waitUntil(5) { _ = reapChildren(); return processesMarked(f.directory).isEmpty || lines(out).count >= linesBefore + 10 }
            let cameUp = lines(out).count > linesBefore
            if cameUp {
                // The whole capsule, registered: it counts on from where it was saved.
                survived += 1
                try #require(waitUntil { lines(out).count >= linesBefore + 10 }, "round \(round): the restored capsule does not count")
                let ps = try f.vos(["ps", "--json"]).stdout
                try #require(ps.contains("\"running\""), "round \(round): a running capsule is not in the registry: \(ps)")
                let fresh = Array(counterSequence(out).values.dropFirst(linesBefore).prefix(10))
                try #require(fresh == Array(saved + 1...saved + fresh.count), "round \(round): went on with \(fresh), saved at \(saved)")
                let stop = try f.vos(["stop", "c"])
                try #require(stop.status == 0, "round \(round): vos stop: \(stop.stderr)")
            }
            let gone = waitUntil(5) { _ = reapChildren(); return processesMarked(f.directory).isEmpty }
            try #require(gone, "round \(round): processes left: \(describe(processesMarked(f.directory)))")
            if !cameUp { #expect(!(try f.vos(["ps", "--json"]).stdout.contains("\"running\"")), "round \(round): a capsule that is gone is said to run") }
        }
        print("kill -9 of a capsule restore at \(Soak.count(quick: 10, soak: 100)) random moments within \(Int(whole * 1200)) ms: "
            + "\(survived) left the whole capsule running, the others nothing")
    }

    // MARK: helpers

    func checkpointArguments(_ pid: PID, _ image: String, _ leaveRunning: Bool) -> [String] {
        ["checkpoint", "--pid", String(pid), "--image", image] + (leaveRunning ? ["--leave-running"] : [])
    }

    /// Runs vos, killed with SIGKILL after `killAfter` seconds if still running; returns the
    /// signal that ended it (or its exit status) and its stderr.
    func runVOS(_ f: Fixture, _ arguments: [String], dieAt: String? = nil, killAfter: Double? = nil) throws -> (Int32, String) {
        let err = f.path("vos-stderr.txt")
        try? FileManager.default.removeItem(atPath: err)
        var env = ["VOS_STATE_DIR": f.path("state")]
        if let dieAt { env["VOS_DIE_AT"] = dieAt }
        let vos = try spawn(Products.vos, arguments, environment: env, stdout: f.path("vos-stdout.txt"), stderr: err)
        if let killAfter {
            usleep(useconds_t(killAfter * 1e6))
            kill(vos, SIGKILL)
        }
        var status: Int32 = 0
        while waitpid(vos, &status, 0) == -1 && errno == EINTR {}
        let code = (status & 0x7f) != 0 ? status & 0x7f : (status >> 8) & 0xff
        return (code, (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// What a user can see of a running process.
    struct Observed {
        var fds: [String], maps: [String], blocked: String
        init(_ pid: PID) throws {
            (fds, maps) = try footprint(pid)
            blocked = try ProcStatus.read("/proc/\(pid)/status").values["SigBlk"] ?? "?"
        }
    }

    func expectUntouched(_ pid: PID, _ before: Observed, _ out: String, round: Int? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
        let at = round.map { "round \($0): " } ?? ""
        try #require(waitUntil(5) { TracerPID(pid) == 0 }, "\(at)the target is still traced", sourceLocation: sourceLocation)
        let state = try ProcStat.read("/proc/\(pid)/stat").state
        try #require(state == "S" || state == "R", "\(at)the target is in state \(state)", sourceLocation: sourceLocation)
        let count = lines(out).count
        try #require(waitUntil { lines(out).count >= count + 10 }, "\(at)the target does not run on", sourceLocation: sourceLocation)
        let seq = counterSequence(out)
        #expect(seq.continuous, "\(at)a gap or a repeat: \(firstBreak(seq.values))", sourceLocation: sourceLocation)
        let now = try Observed(pid)
        #expect(now.blocked == before.blocked, "\(at)signal mask \(now.blocked), was \(before.blocked)", sourceLocation: sourceLocation)
        #expect(now.fds == before.fds, "\(at)fd table changed: \(difference(before.fds, now.fds))", sourceLocation: sourceLocation)
        #expect(now.maps == before.maps, "\(at)memory map changed: \(difference(before.maps, now.maps))", sourceLocation: sourceLocation)
    }
}

func TracerPID(_ pid: PID) -> Int64 { (try? ProcStatus.read("/proc/\(pid)/status"))?.number("TracerPid") ?? -1 }

/// Reaps every child that has exited (we are the subreaper of restored processes); true.
func reapChildren() -> Bool {
    var status: Int32 = 0
    while waitpid(-1, &status, WNOHANG) > 0 {}
    return true
}
