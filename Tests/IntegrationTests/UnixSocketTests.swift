// Issue 4, item 2: unix domain sockets come back after a restore, in one process and across the
// processes of a capsule: socketpairs of each type and a connection made through a named
// listener, with unread data in both directions, a bound datagram socket with queued
// datagrams, a shut-down writer, options; a socket whose peer is outside the image is refused.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct UnixSocketTests {
    /// Every "ok" line vos-test-unix writes when all its checks pass, in either mode.
    static let expected: Set<String> = Set(
        ["stream", "dgram", "seqpacket", "named", "bound", "shut", "options", "listen", "address"].flatMap {
            ["ok \($0) A", "ok \($0) B"]
        }
            + ["ok orphan A"])

    /// Creates the go file and waits for both sides' "done"; every check must have passed.
    func expectAllChecksPass(
        _ f: Fixture, work: String, report: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        FileManager.default.createFile(atPath: work + "/go", contents: nil)
        let done = waitUntil(20) { Set(lines(report)).isSuperset(of: ["done A", "done B"]) }
        let got = lines(report)
        #expect(done, "the program did not finish its checks: \(got)", sourceLocation: sourceLocation)
        #expect(
            got.filter { $0.hasPrefix("FAIL") }.isEmpty, "\(got.filter { $0.hasPrefix("FAIL") })",
            sourceLocation: sourceLocation)
        #expect(
            Set(got).isSuperset(of: Self.expected), "missing: \(Self.expected.subtracting(got).sorted())",
            sourceLocation: sourceLocation)
    }

    func startOne(_ f: Fixture) throws -> (pid: Int32, work: String, report: String) {
        let work = f.path("w")
        let report = f.path("report.txt")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let pid = try f.start(Products.path("vos-test-unix"), [report, work, "one"])
        try #require(
            waitUntil { Set(lines(report)).isSuperset(of: ["ready A", "ready B"]) },
            "not ready: \(lines(f.path("stderr-0.txt")))")
        return (pid, work, report)
    }

    /// The program's checks pass without any checkpoint: a failure after a restore is vOS's.
    @Test func checksPassWithoutCheckpoint() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (_, work, report) = try startOne(f)
        expectAllChecksPass(f, work: work, report: report)
    }

    /// One process holding both ends of every channel: `vos checkpoint --pid`, restore, and
    /// again (the sockets vos made are checkpointed like the program's own); every unread byte
    /// and datagram is read once, in order, with its boundaries, after the restore; the listener
    /// accepts a new connection at its path; the options are as they were.
    @Test func singleProcessComesBack() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (pid, work, report) = try startOne(f)
        try f.checkpoint(pid, f.path("img1"))
        let inspect = try f.vos(["inspect", f.path("img1")])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("(datagram, connected to socket:["), "\(inspect.stdout)")
        #expect(
            inspect.stdout.contains("5 unread datagrams") && inspect.stdout.contains("5000 unread bytes"),
            "\(inspect.stdout)")
        #expect(inspect.stdout.contains("listening on \(work)/listen.sock, backlog 7"), "\(inspect.stdout)")
        let restored = try f.restore(f.path("img1"))
        try f.checkpoint(restored, f.path("img2"))
        _ = try f.restore(f.path("img2"))
        expectAllChecksPass(f, work: work, report: report)
    }

    /// `--leave-running`: the unread data was only peeked, so the original reads every message
    /// once, and its own peek offset is as it was.
    @Test func leaveRunningConsumesNothing() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (pid, work, report) = try startOne(f)
        try f.checkpoint(pid, f.path("img"), leaveRunning: true)
        #expect(f.isAlive(pid))
        expectAllChecksPass(f, work: work, report: report)
    }

    /// The same channels split between a parent (side A) and its child (side B) in a capsule:
    /// each pair's ends are in two processes, and come back connected to each other.
    @Test func capsuleProcessesStayConnected() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let work = f.path("w")
        let report = f.path("report.txt")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let r = try vos(f, ["run", "--name", "unix", "--", Products.path("vos-test-unix"), report, work, "two"])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        try #require(
            waitUntil { Set(lines(report)).isSuperset(of: ["ready A", "ready B"]) }, "not ready: \(lines(report))")
        try f.adoptCapsule("unix")
        let cp = try vos(f, ["checkpoint", "unix", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        try f.adoptCapsule("unix")
        expectAllChecksPass(f, work: work, report: report)
        #expect(try vos(f, ["stop", "unix"]).status == 0)
    }

    /// A socket connected to a server outside the image (here: the test itself) is refused
    /// before anything is frozen, naming the fd and the peer's path; the process runs on.
    @Test func peerOutsideTheImageIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let path = f.path("server.sock")
        let report = f.path("report.txt")
        let server = try listener(at: path)
        defer { close(server) }
        let pid = try f.start(Products.path("vos-test-unix"), [report, f.directory, "outside", path])
        let conn = accept(server, nil, nil)
        defer { close(conn) }
        try #require(waitUntil { lines(report).contains("ready A") })
        let fd = try #require(
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap(Int32.init).first {
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix(
                    "socket:")
            })
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("fd \(fd) is a unix stream socket"), "\(r.stderr)")
        #expect(
            r.stderr.contains("connected to \(path)") && r.stderr.contains("outside the checkpointed processes"),
            "\(r.stderr)")
        #expect(f.isAlive(pid))
    }

    /// A connection still in a listener's accept queue (the test never accepts it) is refused,
    /// saying so.
    @Test func unacceptedConnectionIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let path = f.path("server.sock"), report = f.path("report.txt")
        let server = try listener(at: path)
        defer { close(server) }
        let pid = try f.start(Products.path("vos-test-unix"), [report, f.directory, "outside", path])
        try #require(waitUntil { lines(report).contains("ready A") })
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img")])
        #expect(r.status != 0)
        #expect(
            r.stderr.contains("connected to \(path), whose listener has not accepted the connection yet"), "\(r.stderr)")
        #expect(f.isAlive(pid))
    }

    /// A file descriptor in flight (SCM_RIGHTS, unread) cannot be saved: the checkpoint fails
    /// while dumping, names the fd, and thaws the process.
    @Test func fileDescriptorInFlightIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("report.txt")
        let pid = try f.start(Products.path("vos-test-unix"), [report, f.directory, "rights"])
        try #require(waitUntil { lines(report).contains("ready A") })
        let r = try f.vos(["checkpoint", "--pid", String(pid), "--image", f.path("img")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("carries 1 file descriptor(s) (SCM_RIGHTS)"), "\(r.stderr)")
        #expect(f.isAlive(pid))
        #expect(!FileManager.default.fileExists(atPath: f.path("img")))
    }

    func listener(at path: String) throws -> Int32 {
        let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0 && listen(server, 1) == 0, "bind/listen: errno \(errno)")
        return server
    }
}
