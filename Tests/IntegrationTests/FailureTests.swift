// Issue 3, failure behaviour: clear one-line errors, a failed checkpoint leaves the target
// running exactly as before, a bad image restores nothing.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct FailureTests {
    /// A failure is one line on stderr naming what failed, a nonzero exit, no stack trace.
    func expectCleanError(_ r: CommandResult, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status != 0, sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "more than one line: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Backtrac"), sourceLocation: sourceLocation)
    }

    @Test func checkpointOfMissingProcess() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        // PIDs above the host's pid_max never exist.
        let r = try f.vos(["checkpoint", "--pid", "99999999", "--image", f.path("img")])
        expectCleanError(r, contains: "cannot checkpoint pid 99999999: no such process")
        #expect(!FileManager.default.fileExists(atPath: f.path("img")))
    }

    @Test func checkpointOfVosItself() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        // sh execs vos, so $$ is vos's own PID.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exec \"$0\" checkpoint --pid $$ --image \"$1\"", Products.vos, f.path("img")]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        expectCleanError(CommandResult(status: p.terminationStatus, stdout: "", stderr: e), contains: "that is this vos process itself")
    }

    @Test func checkpointIntoUnwritableDirectory() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 5 })
        // A path below a regular file can never be created, not even by root.
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", out + "/img"])
        expectCleanError(r, contains: "cannot write image \(out)/img")
        let n = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= n + 10 })
        #expect(counterSequence(out).continuous)
    }

    /// A checkpoint that fails after the memory was copied (fault injected through the test-only
    /// VOS_FAULT variable) thaws the target: the counter continues with no gap, no image is left.
    @Test func failedCheckpointLeavesTargetRunning() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 5 })
        for point in ["checkpoint-after-memory", "checkpoint-before-manifest"] {
            let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img")], environment: ["VOS_FAULT": point])
            expectCleanError(r, contains: "injected fault at \(point)")
            #expect(!FileManager.default.fileExists(atPath: f.path("img")), "a failed checkpoint left its image behind")
        }
        let n = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= n + 10 })
        #expect(counterSequence(out).continuous)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("SigBlk:\t0000000000000000"), "the target's signal mask was not given back")
        #expect(status.contains("TracerPid:\t0"))
    }

    /// The image directory fills up half-way (a 1 MiB tmpfs): a clear error, the target goes on.
    @Test func fullImageDirectoryLeavesTargetRunning() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let mnt = f.path("small")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try #require(mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
        defer { umount2(mnt, Int32(MNT_DETACH)) }
        let out = f.path("memhog.txt")
        let pid = try f.start(Products.path("vos-test-memhog"), ["16"], stdout: out)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("ready") } })
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", mnt + "/img"])
        expectCleanError(r, contains: "No space left on device")
        #expect(f.isAlive(pid))
        kill(pid, SIGUSR1)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("verify ok") } })
        let ticks = lines(out).filter { $0.hasPrefix("tick=") }.count
        #expect(waitUntil { lines(out).filter { $0.hasPrefix("tick=") }.count >= ticks + 3 })
        #expect((try? FileManager.default.contentsOfDirectory(atPath: mnt)) ?? [] == [], "the partial image was not removed")
    }

    /// Makes an image of a counter, then lets `damage` spoil it; restoring must fail with
    /// `message` and leave no process running the counter behind.
    func expectRestoreRefused(_ damage: (String) throws -> Void, message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 5 }, sourceLocation: sourceLocation)
        let image = f.path("img")
        try f.checkpoint(pid, image)
        try damage(image)
        let r = try f.vos(["restore", image])
        expectCleanError(r, contains: message, sourceLocation: sourceLocation)
        #expect(processesRunning(out).isEmpty, "a failed restore left a process behind", sourceLocation: sourceLocation)
        let n = counterSequence(out).values.count
        usleep(100_000)
        #expect(counterSequence(out).values.count == n, "something restored is still writing", sourceLocation: sourceLocation)
    }

    @Test func truncatedImageIsRefused() throws {
        try expectRestoreRefused({ image in
            let p = image + "/pages.img"
            let size = (try FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.int64Value ?? 0
            #expect(truncate(p, off_t(size / 2)) == 0)
        }, message: "image is truncated: pages.img has")
    }

    @Test func corruptedPagesAreRefused() throws {
        try expectRestoreRefused({ image in try flipByte(image + "/pages.img", at: 4096 + 17) },
                                 message: "image is corrupted: checksum of pages.img does not match")
    }

    @Test func corruptedMetadataIsRefused() throws {
        try expectRestoreRefused({ image in try flipByte(image + "/process.json", at: 40) },
                                 message: "image is corrupted: checksum of process.json does not match")
    }

    @Test func newerMajorVersionIsRefused() throws {
        try expectRestoreRefused({ image in
            let p = image + "/manifest.json"
            var text = try String(contentsOfFile: p, encoding: .utf8)
            text = text.replacingOccurrences(of: "\"major\" : 1", with: "\"major\" : 2")
            try text.write(toFile: p, atomically: true, encoding: .utf8)
        }, message: "image format 2.0 was written by a newer vOS; this vOS reads format 1.x and older")
    }

    @Test func missingManifestIsRefused() throws {
        try expectRestoreRefused({ image in try FileManager.default.removeItem(atPath: image + "/manifest.json") },
                                 message: "image is incomplete: its manifest")
    }
}

func flipByte(_ path: String, at offset: UInt64) throws {
    let h = try #require(FileHandle(forUpdatingAtPath: path))
    defer { try? h.close() }
    try h.seek(toOffset: offset)
    let b = try #require(try h.read(upToCount: 1)?.first)
    try h.seek(toOffset: offset)
    try h.write(contentsOf: [b ^ 0xff])
}

/// PIDs of live processes whose command line mentions `text`.
func processesRunning(_ text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !cmd.isEmpty,
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z ")
        else { return false }
        return String(decoding: cmd.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text)
    }
}

@Suite(.serialized)
struct ConcurrentCheckpointTests {
    /// Two checkpoints of one process at once: one wins, the other is told the process is
    /// already being checkpointed, and the process runs on with no gap.
    @Test func secondCheckpointIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("memhog.txt")
        // 256 MiB: the first checkpoint takes long enough for the second to find it at work.
        let pid = try f.start(Products.path("vos-test-memhog"), ["256"], stdout: out)
        #expect(waitUntil(30) { lines(out).contains { $0.hasPrefix("ready") } })
        var first: CommandResult?
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            first = try? f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img1"), "--leave-running"])
            done.signal()
        }
        // Wait until the first one has the process under ptrace.
        #expect(waitUntil { (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?.contains("TracerPid:\t0") == false })
        let second = try f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img2"), "--leave-running"])
        done.wait()
        #expect(first?.status == 0, "the first checkpoint failed: \(first?.stderr ?? "")")
        #expect(second.status != 0)
        #expect(second.stderr.contains("cannot checkpoint pid \(pid): it is already being checkpointed or traced by pid"), "\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.path("img2")))
        kill(pid, SIGUSR1)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("verify ok") } })
    }
}
