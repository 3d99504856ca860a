// Issue 3, items 6 and 7: open files come back after a restore, one check per fd kind made by
// the program itself; an fd kind vOS does not support makes `vos checkpoint` refuse cleanly.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct FileTests {
    /// Every kind vos-test-fds checks, in its report order.
    static let kinds = [
        "regular", "dup", "append", "deleted", "directory", "devnull", "devzero", "devurandom", "stdin",
        "pipe", "bigpipe", "fifo", "bigfifo", "rwfifo", "opath", "eventfd", "epoll", "timerfd", "timerfd-expired",
        "signalfd", "stdout",
    ]

    /// Starts vos-test-fds with stdout a pipe the test holds and waits for its "ready".
    func startFds(_ f: Fixture, work: String, report: String) throws -> (PID, HeldPipe) {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let out = try HeldPipe()
        let pid = try f.start(Products.path("vos-test-fds"), [work, report], stdoutPipe: out)
        try #require(
            waitUntil { out.text.contains("ready\n") },
            "vos-test-fds never got ready: \(lines(f.path("stderr-piped.txt")))")
        return (pid, out)
    }

    /// Sends SIGUSR2 (for the signalfd), creates the trigger file and returns the report lines.
    func runChecks(_ pid: PID, work: String, report: String) throws -> [String] {
        try #require(kill(pid, SIGUSR2) == 0, "kill(SIGUSR2) on pid \(pid): errno \(errno)")
        try #require(FileManager.default.createFile(atPath: work + "/go", contents: nil))
        try #require(waitUntil(15) { FileManager.default.fileExists(atPath: report) }, "no report from pid \(pid)")
        return lines(report)
    }

    func expectEveryKindOK(_ report: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for kind in Self.kinds {
            let line = report.first { $0 == "ok \(kind)" || $0.hasPrefix("FAIL \(kind):") } ?? "no line for \(kind)"
            #expect(line == "ok \(kind)", "\(line)", sourceLocation: sourceLocation)
        }
        #expect(report.count == Self.kinds.count, "unexpected report lines: \(report)", sourceLocation: sourceLocation)
    }

    /// The program's checks pass without any checkpoint: a failure after restore is vOS's.
    @Test func checksPassWithoutCheckpoint() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let work = f.path("work")
        let report = f.path("report.txt")
        let (pid, out) = try startFds(f, work: work, report: report)
        expectEveryKindOK(try runChecks(pid, work: work, report: report))
        #expect(waitUntil { out.text.contains("stdout after restore\n") })
    }

    /// Every fd kind works after checkpoint + restore: offsets, flags, unread pipe data, the
    /// deleted file's contents, the eventfd count, epoll registrations, timers and the signalfd.
    /// stdout was a pipe of the test: after the restore it is `vos restore`'s stdout.
    @Test func everyKindComesBack() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let work = f.path("work")
        let report = f.path("report.txt")
        let image = f.path("img")
        let (pid, out) = try startFds(f, work: work, report: report)
        let tableBefore = fdTable(pid)
        try f.checkpoint(pid, image)

        let inspect = try f.vos(["inspect", image])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let stdoutLine = inspect.stdout.split(separator: "\n").first { $0.contains("fd 1:") } ?? ""
        #expect(
            stdoutLine.contains("connected on restore to the restoring command's stdout"), "inspect says: \(stdoutLine)"
        )
        #expect(inspect.stdout.contains("deleted while open; contents saved"), "\(inspect.stdout)")

        let restoreOut = f.path("restore-stdout.txt")
        let restored = try f.restore(image, stdout: restoreOut)
        // The same fd numbers naming the same files (pipes are new pipes: their inode differs),
        // nothing more; stdout is now the file `vos restore` wrote to.
        var expected = tableBefore
        expected[1] = restoreOut
        let after = fdTable(restored)
        let differing = Set(expected.keys).union(after.keys).sorted().filter { expected[$0] != after[$0] }
        let changes = differing.map { "fd \($0): \(expected[$0] ?? "none") before, \(after[$0] ?? "none") after" }
        #expect(differing.isEmpty, "fds differing after restore: \(changes)")
        expectEveryKindOK(try runChecks(restored, work: work, report: report))
        #expect(
            waitUntil { lines(restoreOut).contains("stdout after restore") },
            "restore's stdout holds: \(lines(restoreOut))")
        #expect(out.text == "ready\n", "the test's pipe got more after the restore")
        #expect(out.sawEndOfFile, "someone still holds the test's pipe open")
        #expect(f.isAlive(restored))
    }

    /// `--leave-running` reads unread pipe data without consuming it and puts nothing back
    /// wrong: the original's checks all pass after the checkpoint.
    @Test func leaveRunningLeavesFdsAlone() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let work = f.path("work")
        let report = f.path("report.txt")
        let (pid, out) = try startFds(f, work: work, report: report)
        let tableBefore = fdTable(pid)
        let r = try f.checkpoint(pid, f.path("img"), leaveRunning: true)
        #expect(r.stdout.contains("left running"))
        #expect(fdTable(pid) == tableBefore)
        expectEveryKindOK(try runChecks(pid, work: work, report: report))
        #expect(waitUntil { out.text.contains("stdout after restore\n") })
    }

    /// An inotify fd is refused before anything is frozen: the error names the fd and its kind,
    /// no image directory is left, and the program runs on with no gap in its counter.
    @Test func unsupportedKindIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let image = f.path("img")
        let pid = try f.start(Products.path("vos-test-unsupported"), [out])
        try #require(waitUntil { counter(out).count >= 10 })
        let inotifyFD = try #require(
            try ProcFile.numericEntries("/proc/\(pid)/fd").first {
                (try? ProcFile.link("/proc/\(pid)/fd/\($0)")) == "anon_inode:inotify"
            },
            "no inotify fd in /proc/\(pid)/fd")

        let before = counter(out).count
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", image])
        #expect(r.status != 0)
        #expect(r.stderr.contains("fd \(inotifyFD) is an inotify instance"), "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: "), "stderr: \(r.stderr)")
        #expect(
            !r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump") && !r.stderr.contains("backtrace"),
            "stderr: \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "stderr: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: image), "the image directory was left behind")

        #expect(f.isAlive(pid))
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("TracerPid:\t0\n"), "still traced: \(status)")
        #expect(waitUntil { counter(out).count >= before + 30 }, "the counter stopped")
        let seq = counter(out)
        #expect(seq.enumerated().allSatisfy { $0.offset == $0.element.n }, "gap or repeat: \(seq.suffix(40).map(\.n))")
        let pauses = zip(seq.dropFirst(before), seq.dropFirst(before + 1)).map { $1.ms - $0.ms }
        #expect((pauses.max() ?? 0) < 1000, "the counter paused \(pauses.max() ?? 0) ms around the refused checkpoint")
    }

    /// fd number → /proc/PID/fd link, with pipe inode numbers dropped ("pipe:[4711]" → "pipe").
    func fdTable(_ pid: PID) -> [Int32: String] {
        var table: [Int32: String] = [:]
        for fd in (try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? [] {
            let link = (try? ProcFile.link("/proc/\(pid)/fd/\(fd)")) ?? "?"
            table[fd] = link.hasPrefix("pipe:") ? "pipe" : link
        }
        return table
    }

    /// "n=<k> ms=<t>" lines of vos-test-unsupported.
    func counter(_ path: String) -> [(n: Int, ms: Int)] {
        lines(path).compactMap { l in
            let parts = l.split(separator: " ")
            guard parts.count == 2, parts[0].hasPrefix("n="), parts[1].hasPrefix("ms="),
                let n = Int(parts[0].dropFirst(2)), let ms = Int(parts[1].dropFirst(3))
            else { return nil }
            return (n, ms)
        }
    }
}
