// Issue 7: restore keeps the PID and every TID; a taken ID is a clear error; --new-pid makes a
// copy beside the original, with a warning for a multi-threaded process.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct PIDTests {
    /// A taken PID: an error naming the PID and the command holding it, nothing left behind.
    @Test func takenPIDIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 5 })
        try f.checkpoint(pid, f.path("img"), leaveRunning: true)
        let r = try f.vos(["restore", f.path("img")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot restore pid \(pid): pid \(pid) is taken by pid \(pid) (\(Products.path("vos-test-counter")) \(out))"), "stderr: \(r.stderr)")
        #expect(r.stderr.contains("--new-pid"))
        #expect(processesRunning(out) == [pid], "a failed restore left a process behind")
    }

    /// --new-pid restores a copy of an 8-thread program beside the original, with a warning.
    @Test func newPIDCopyBesideTheOriginal() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("threads.txt")
        let pid = try f.start(Products.path("vos-test-threads"), [out])
        #expect(waitUntil { ThreadsReport.last(out) != nil })
        try f.checkpoint(pid, f.path("img"), leaveRunning: true)
        let r = try f.vos(["restore", f.path("img"), "--new-pid", "--pidfile", f.path("pid")])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("warning: ") && r.stderr.contains("9 threads restored under new thread IDs"))
        #expect(r.stdout.contains("a new PID; it was pid \(pid)"))
        let copy = try #require(Int32(try String(contentsOfFile: f.path("pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        f.adopt(copy)
        #expect(copy != pid)
        #expect(Set(threadIDs(copy)).isDisjoint(with: threadIDs(pid)))
        #expect(threadIDs(copy).count == 9)
        let n = lines(out).count
        #expect(waitUntil { lines(out).count >= n + 20 })
        #expect(f.isAlive(pid) && f.isAlive(copy))
    }

    /// The counter gets its PID back after a plain checkpoint and restore.
    @Test func pidKeptAfterCheckpoint() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 5 })
        try f.checkpoint(pid, f.path("img"))
        let r = try f.vos(["restore", f.path("img"), "--pidfile", f.path("pid")])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        f.adopt(pid)
        #expect(r.stdout.contains("restored pid \(pid) (its original PID and thread IDs)"))
        let inspect = try f.vos(["inspect", f.path("img")])
        #expect(inspect.stdout.contains("process: pid \(pid)") && inspect.stdout.contains("tid \(pid) "))
    }
}
