// Issue 3, items 2-4: a 1 GiB memory pattern, 8 threads, the real python3 interpreter and a
// Swift program built by the package all continue after checkpoint and restore.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct ProgramTests {
    /// Every page of 1 GiB of patterned anonymous memory is intact after restore; pages never
    /// touched and clean file-backed pages are not stored.
    @Test func oneGiBPatternIntact() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let data = f.path("data.bin")
        FileManager.default.createFile(atPath: data, contents: Data((0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
        let out = f.path("memhog.txt")
        let pid = try f.start(Products.path("vos-test-memhog"), ["1024", data], stdout: out)
        #expect(waitUntil(60) { lines(out).contains { $0.hasPrefix("ready") } })
        let image = f.path("img")
        try f.checkpoint(pid, image)

        // Stored: the 1 GiB plus a little (libraries' data, heap, stack); not the 256 MiB never
        // touched, not the 8 MiB clean file mapping.
        let pagesSize = (try FileManager.default.attributesOfItem(atPath: image + "/pages.img")[.size] as? NSNumber)?.uint64Value ?? 0
        #expect(pagesSize >= 1 << 30)
        #expect(pagesSize < (1 << 30) + (4 << 20), "stored \(pagesSize) bytes: more than the touched anonymous memory")

        let restored = try f.restore(image)
        kill(restored, SIGUSR1)
        #expect(waitUntil(60) { lines(out).contains { $0.hasPrefix("verify ok") } }, "memhog output: \(lines(out).suffix(3))")
        #expect(!lines(out).contains { $0.hasPrefix("CORRUPT") })
    }

    /// All 8 worker threads keep advancing their own counters after restore, under their
    /// saved thread IDs and names; pthread_kill and a robust mutex keep working.
    @Test func eightThreadsContinue() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("threads.txt")
        let pid = try f.start(Products.path("vos-test-threads"), [out])
        #expect(waitUntil { (ThreadsReport.last(out)?.signals.allSatisfy { $0 > 0 }) ?? false })
        let tids = threadIDs(pid)
        #expect(tids.count == 9)
        try f.checkpoint(pid, f.path("img"))
        let before = try #require(ThreadsReport.last(out))
        let restored = try f.restore(f.path("img"))
        #expect(restored == pid, "the PID was not kept")
        #expect(threadIDs(restored) == tids, "thread IDs were not kept")
        #expect(waitUntil {
            guard let now = ThreadsReport.last(out) else { return false }
            return zip(now.counters, before.counters).allSatisfy { $0 > $1 + 50 } && zip(now.signals, before.signals).allSatisfy { $0 > $1 }
        }, "before \(before), after \(String(describing: ThreadsReport.last(out)))")
        let after = try #require(ThreadsReport.last(out))
        #expect(after.killErrors == before.killErrors, "pthread_kill failed after the restore")
        #expect(after.lockFailures == before.lockFailures, "the robust mutex could not be taken after the restore")
        let names = threadIDs(restored).compactMap {
            try? String(contentsOfFile: "/proc/\(restored)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(Set(names) == Set((0..<8).map { "w\($0)" } + ["vos-test-thread"]))
    }

    /// The real python3 interpreter running a loop continues with no gap.
    @Test func python3Continues() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("py.txt")
        let script = "import time\nn = 0\nwith open('\(out)', 'a', buffering=1) as f:\n    while True:\n        f.write(f'n={n}\\n'); n += 1; time.sleep(0.01)\n"
        let pid = try f.start("/usr/bin/python3", ["-c", script])
        #expect(waitUntil { counterSequence(out).values.count >= 20 })
        try f.checkpoint(pid, f.path("img"))
        let atCheckpoint = counterSequence(out).values.count
        _ = try f.restore(f.path("img"))
        #expect(waitUntil { counterSequence(out).values.count >= atCheckpoint + 30 })
        #expect(counterSequence(out).continuous)
    }

    /// A Swift program built by the package (Foundation, the Swift runtime) continues.
    @Test func swiftProgramContinues() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("swift.txt")
        FileManager.default.createFile(atPath: out, contents: nil)
        let pid = try f.start(Products.path("vos-test-swiftcounter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 20 })
        try f.checkpoint(pid, f.path("img"))
        let atCheckpoint = counterSequence(out).values.count
        _ = try f.restore(f.path("img"))
        #expect(waitUntil { counterSequence(out).values.count >= atCheckpoint + 30 })
        #expect(counterSequence(out).continuous)
    }
}
