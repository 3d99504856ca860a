// Capsules measured through the `vos` binary (vos run / checkpoint / restore / stop / rm), each
// figure next to its reference taken in the same run: start of a command in a capsule vs
// posix_spawn of the same command; a fixed amount of CPU- and syscall-bound work inside vs
// outside; checkpoint and restore of a 10-process tree. The capsules live in a registry of their
// own under /tmp (VOS_STATE_DIR), removed at the end, also on failure or SIGINT.
import Foundation
import Glibc
import VOSCapsule
import VOSCheckpoint
import VOSLinux

struct CapsuleStartResult: Codable {
    var command: [String]
    /// From before posix_spawn of `vos run` until the command's marker file exists.
    var capsuleMilliseconds: Sample
    /// From before posix_spawn of `vos run` until `vos run` has exited (the capsule is registered).
    var vosRunExitMilliseconds: Sample
    /// From before posix_spawn of the bare command until its marker exists.
    var bareMilliseconds: Sample
    /// Median of capsule minus median of bare.
    var overheadMilliseconds: Double
}

struct CapsuleWorkResult: Codable {
    var mode: String
    var iterations: Int
    /// The program's own elapsed time (CLOCK_MONOTONIC around its loop), ms.
    var outsideMilliseconds: Sample
    var insideMilliseconds: Sample
    /// Median inside / median outside.
    var ratio: Double
}

struct CapsuleTreeResult: Codable {
    /// Processes counted in the capsule before each checkpoint and after each restore (init included).
    var processes: Int
    var frozenMilliseconds: Sample
    /// The engine's own total (CheckpointSummary.totalMilliseconds).
    var checkpointMilliseconds: Sample
    /// Wall time of the `vos checkpoint` command, process start and exit included.
    var checkpointCommandMilliseconds: Sample
    /// `vos restore`'s own figure: from before the image is read until every process runs.
    var restoreMilliseconds: Sample
    /// Wall time of the `vos restore` command.
    var restoreCommandMilliseconds: Sample
    var verifiedRestores: Int
}

struct CapsuleResult: Codable {
    var start: CapsuleStartResult
    var work: [CapsuleWorkResult]
    var tree: CapsuleTreeResult
}

/// The benchmark's own capsule registry, and `vos` run as a child of this process.
enum CapsuleBench {
    static let stateDirectory = "/tmp/vos-bench-\(getpid())-state"
    static var registry: CapsuleRegistry { CapsuleRegistry(root: stateDirectory + "/capsules") }

    static func prepare() throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        setenv("VOS_STATE_DIR", stateDirectory, 1)
    }

    /// Kills the init of every capsule still running in our registry (which kills everything in
    /// its PID namespace), reaps it (we are the subreaper of every capsule init), and removes
    /// the registry. Called at the end, on failure and on SIGINT/SIGTERM.
    static func cleanUp() {
        guard access(stateDirectory, F_OK) == 0 else { return }
        for record in registry.all() where record.isRunning {
            kill(record.initPID, SIGKILL)
            var status: Int32 = 0
            while waitpid(record.initPID, &status, 0) == -1 && errno == EINTR {}
        }
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }

    /// Starts `vos ARGS`; returns its PID (in Children, so an interruption kills it).
    static func startVOS(_ arguments: [String], log: String) throws -> PID {
        try Children.shared.spawn(try Products.path("vos"), arguments, stdout: log + ".out", stderr: log + ".err")
    }

    /// Waits for a child to exit; fails unless it exited with status 0.
    static func expectSuccess(_ pid: PID, _ what: String, log: String) throws {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        Children.shared.forget(pid)
        guard status == 0 else {
            throw BenchError("\(what) failed (wait status \(status)): \(lastLines(log + ".err")) \(lastLines(log + ".out"))")
        }
    }

    /// `vos ARGS` to its end; returns its stdout and its wall time in ms.
    @discardableResult
    static func vos(_ arguments: [String], log: String) throws -> (String, Double) {
        Scratch.remove(log + ".out")
        let ((), elapsed) = try timed {
            let pid = try startVOS(arguments, log: log)
            try expectSuccess(pid, "vos \(arguments.joined(separator: " "))", log: log)
        }
        return ((try? String(contentsOfFile: log + ".out", encoding: .utf8)) ?? "", elapsed)
    }

    /// The registered capsule's init, adopted so that any failure kills it.
    static func adoptInit(_ name: String) throws -> CapsuleRecord {
        let record = try registry.load(name)
        Children.shared.adopt(record.initPID)
        return record
    }

    /// `vos stop` (if it still runs), reap its init, `vos rm`.
    static func remove(_ record: CapsuleRecord, log: String) throws {
        if record.isRunning { try vos(["stop", record.name], log: log) }
        Children.shared.stop(record.initPID)  // already dead: only reaps it
        try vos(["rm", record.name], log: log)
    }

    /// Polls (every 100 µs) until `path` exists; returns the ms since `start`.
    static func waitForFile(_ path: String, since start: UInt64, seconds: Double = 10) throws -> Double {
        let deadline = start + UInt64(seconds * 1e9)
        while access(path, F_OK) != 0 {
            if Kernel.monotonicNanos() > deadline { throw BenchError("\(path) did not appear within \(seconds) s") }
            usleep(100)
        }
        return Double(Kernel.monotonicNanos() - start) / 1e6
    }

    static func processes(in record: CapsuleRecord) -> [CapsuleProcess] {
        CapsuleProcesses.list(record).filter { $0.state.first != "Z" }
    }
}

enum CapsuleScenarios {
    static func run(_ plan: Plan) throws -> CapsuleResult {
        try CapsuleBench.prepare()
        defer { CapsuleBench.cleanUp() }
        let start = try startOverhead(runs: plan.capsuleStartRuns)
        let work = try [("cpu", 300_000_000), ("syscall", 1_000_000)].map {
            try runtimeOverhead(mode: $0.0, iterations: $0.1, runs: plan.capsuleWorkRuns)
        }
        let tree = try treeCheckpoint(runs: plan.capsuleTreeRuns)
        return CapsuleResult(start: start, work: work, tree: tree)
    }

    /// `vos run -- sh -c ': > MARKER; exec sleep 1000'` vs posix_spawn of the same sh, interleaved.
    static func startOverhead(runs: Int) throws -> CapsuleStartResult {
        let script = ": > \"$0\"; exec sleep 1000"
        var capsule: [Double] = []
        var exited: [Double] = []
        var bare: [Double] = []
        for run in 0..<runs {
            // Bare: Children.spawn is the same posix_spawn (fd closing included) that starts vos.
            do {
                let marker = Scratch.path("start-bare-\(run)")
                let t0 = Kernel.monotonicNanos()
                let pid = try Children.shared.spawn(
                    "/bin/sh", ["-c", script, marker], stdout: Scratch.path("start-bare.out"),
                    stderr: Scratch.path("start-bare.err"))
                defer { Children.shared.stop(pid) }
                bare.append(try CapsuleBench.waitForFile(marker, since: t0))
            }
            // In a capsule: the marker, and separately when `vos run` returned.
            do {
                let name = "start-\(run)"
                let marker = Scratch.path("start-capsule-\(run)")
                let log = Scratch.path("vos-run-\(run)")
                let t0 = Kernel.monotonicNanos()
                let pid = try CapsuleBench.startVOS(
                    ["run", "--name", name, "--", "/bin/sh", "-c", script, marker], log: log)
                var markerMs: Double?
                var exitMs: Double?
                var status: Int32 = 0
                while markerMs == nil || exitMs == nil {
                    let now = Kernel.monotonicNanos()
                    if now > t0 + 10_000_000_000 { throw BenchError("vos run of \(name) took over 10 s: \(lastLines(log + ".err"))") }
                    if markerMs == nil, access(marker, F_OK) == 0 { markerMs = Double(now - t0) / 1e6 }
                    if exitMs == nil, waitpid(pid, &status, WNOHANG) == pid {
                        exitMs = Double(now - t0) / 1e6
                        Children.shared.forget(pid)
                        guard status == 0 else { throw BenchError("vos run \(name) failed: \(lastLines(log + ".err"))") }
                    }
                    usleep(100)
                }
                let record = try CapsuleBench.adoptInit(name)
                capsule.append(markerMs!)
                exited.append(exitMs!)
                try CapsuleBench.remove(record, log: log)
            }
        }
        let c = Sample(capsule)
        let b = Sample(bare)
        progress(
            "capsule start: command running after \(ms(c.median)) vs \(ms(b.median)) bare (medians of \(runs))")
        return CapsuleStartResult(
            command: ["/bin/sh", "-c", script, "MARKER"], capsuleMilliseconds: c,
            vosRunExitMilliseconds: Sample(exited), bareMilliseconds: b, overheadMilliseconds: c.median - b.median)
    }

    /// vos-test-work MODE ITERATIONS run `runs` times outside and `runs` times as the command of a
    /// capsule, interleaved (the order alternating), each reporting its own elapsed time.
    static func runtimeOverhead(mode: String, iterations: Int, runs: Int) throws -> CapsuleWorkResult {
        let work = try Products.path("vos-test-work")
        var outside: [Double] = []
        var inside: [Double] = []
        func elapsed(_ path: String) throws -> Double {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            guard text.hasPrefix("ns="), let ns = Double(text.dropFirst(3).trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw BenchError("vos-test-work wrote no time to \(path): \(text)") }
            return ns / 1e6
        }
        func bare(_ run: Int) throws {
            let out = Scratch.path("work-\(mode)-out-\(run)")
            let pid = try Children.shared.spawn(
                work, [mode, "\(iterations)", out], stdout: Scratch.path("work.out"), stderr: Scratch.path("work.err"))
            try CapsuleBench.expectSuccess(pid, "vos-test-work \(mode)", log: Scratch.path("work"))
            outside.append(try elapsed(out))
        }
        func capsule(_ run: Int) throws {
            let name = "work-\(mode)-\(run)"
            let out = Scratch.path("work-\(mode)-in-\(run)")
            let log = Scratch.path("vos-work-\(run)")
            try CapsuleBench.vos(["run", "--name", name, "--", work, mode, "\(iterations)", out], log: log)
            let record = try CapsuleBench.adoptInit(name)
            _ = try CapsuleBench.waitForFile(out, since: Kernel.monotonicNanos(), seconds: 60)
            inside.append(try elapsed(out))
            // The init exits once its command has: wait for that, then reap it and rm.
            for _ in 0..<5000 where record.isRunning { usleep(1000) }
            try CapsuleBench.remove(record, log: log)
        }
        for run in 0..<runs {
            if run % 2 == 0 {
                try bare(run)
                try capsule(run)
            } else {
                try capsule(run)
                try bare(run)
            }
        }
        let o = Sample(outside)
        let i = Sample(inside)
        progress(
            "capsule runtime \(mode): \(ms(i.median)) inside vs \(ms(o.median)) outside, "
                + String(format: "ratio %.4f (medians of %d)", i.median / o.median, runs))
        return CapsuleWorkResult(
            mode: mode, iterations: iterations, outsideMilliseconds: o, insideMilliseconds: i, ratio: i.median / o.median)
    }

    /// A capsule running `sh` with 9 `sleep` children (10 processes, 11 with the capsule init):
    /// checkpointed (stopped) and restored `runs` times, a fresh capsule each run.
    static func treeCheckpoint(runs: Int) throws -> CapsuleTreeResult {
        let expected = 11
        var frozen: [Double] = []
        var total: [Double] = []
        var checkpointWall: [Double] = []
        var restore: [Double] = []
        var restoreWall: [Double] = []
        var verified = 0
        func waitForCount(_ record: CapsuleRecord, _ what: String) throws {
            let deadline = Kernel.monotonicNanos() + 10_000_000_000
            var count = 0
            while Kernel.monotonicNanos() < deadline {
                count = CapsuleBench.processes(in: record).count
                if count == expected { return }
                usleep(2000)
            }
            throw BenchError("capsule \(record.name) \(what): \(count) live processes, expected \(expected)")
        }
        for run in 0..<runs {
            let name = "tree-\(run)"
            let log = Scratch.path("vos-tree-\(run)")
            let image = Scratch.path("image-capsule-tree-\(run)")
            defer { Scratch.remove(image) }
            try CapsuleBench.vos(
                ["run", "--name", name, "--", "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do sleep 1000 & done; wait"],
                log: log)
            let record = try CapsuleBench.adoptInit(name)
            try waitForCount(record, "before the checkpoint")

            let (out, wall) = try CapsuleBench.vos(["checkpoint", name, "--image", image, "--json"], log: log)
            let c = try JSONDecoder().decode(CheckpointSummary.self, from: Data(out.utf8))
            Children.shared.stop(record.initPID)  // killed by the checkpoint: reap it
            frozen.append(c.frozenMilliseconds)
            total.append(c.totalMilliseconds)
            checkpointWall.append(wall)

            let (rout, rwall) = try CapsuleBench.vos(["restore", image, "--json"], log: log)
            let r = try JSONDecoder().decode(TreeRestoreSummary.self, from: Data(rout.utf8))
            let restored = try CapsuleBench.adoptInit(name)
            restore.append(r.milliseconds)
            restoreWall.append(rwall)
            guard restored.initPID == r.rootHostPID else {
                throw BenchError("capsule \(name): registry says init \(restored.initPID), vos restore \(r.rootHostPID)")
            }
            try waitForCount(restored, "after the restore")
            verified += 1
            try CapsuleBench.remove(restored, log: log)
        }
        progress(
            "capsule tree: frozen \(ms(Sample(frozen).median)), checkpoint \(ms(Sample(total).median)), "
                + "restore \(ms(Sample(restore).median)) (medians of \(runs), \(verified) restores with all \(expected) running)")
        return CapsuleTreeResult(
            processes: expected, frozenMilliseconds: Sample(frozen), checkpointMilliseconds: Sample(total),
            checkpointCommandMilliseconds: Sample(checkpointWall), restoreMilliseconds: Sample(restore),
            restoreCommandMilliseconds: Sample(restoreWall), verifiedRestores: verified)
    }
}
