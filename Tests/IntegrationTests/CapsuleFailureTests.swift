// Issue 4, failure behaviour: a capsule checkpoint that fails leaves the capsule running as it
// was; a capsule restore that fails half-way leaves no process, namespace or registry entry.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleFailureTests {
    func vos(_ f: Fixture, _ args: [String], fault: String? = nil) throws -> CommandResult {
        try f.vos(args, environment: fault.map { ["VOS_FAULT": $0] } ?? [:])
    }

    /// The tree program's "got A n=<k>" sequence numbers.
    func received(_ report: String) -> [Int] {
        lines(report).compactMap { l in l.hasPrefix("got A n=") ? Int(l.split(separator: " ")[2].dropFirst(2)) : nil }
    }

    func startTree(_ f: Fixture, _ name: String, _ report: String) throws {
        let r = try vos(f, ["run", "--name", name, "--", Products.path("vos-test-tree"), report])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        #expect(waitUntil { received(report).count >= 10 })
        try f.adoptCapsule("c")
    }

    @Test func failedCheckpointLeavesTheCapsuleRunning() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("report.txt")
        try startTree(f, "c", report)
        let r = try vos(f, ["checkpoint", "c", "--image", f.path("img")], fault: "checkpoint-before-manifest")
        #expect(r.status != 0 && r.stderr.contains("injected fault at checkpoint-before-manifest"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.path("img")), "the partial image was left behind")
        let n = received(report).count
        #expect(waitUntil { received(report).count >= n + 20 }, "the capsule does not run on")
        let seq = received(report)
        #expect(seq == Array(0..<seq.count), "the pipe lost or repeated data")
        #expect(try vos(f, ["ps", "--json"]).stdout.contains("\"state\":\"running\""))
        #expect(try vos(f, ["stop", "c"]).status == 0)
    }

    @Test func failedRestoreLeavesNothingBehind() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("report.txt")
        try startTree(f, "c", report)
        try #require(try vos(f, ["checkpoint", "c", "--image", f.path("img")]).status == 0)
        let namespacesBefore = Set(pidNamespaces())
        let r = try vos(f, ["restore", f.path("img"), "--name", "again"], fault: "restore-after-memory")
        #expect(r.status != 0 && r.stderr.contains("injected fault at restore-after-memory"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(processesRunning(report).isEmpty, "a failed restore left processes behind")
        #expect(!(try vos(f, ["ps", "--json"]).stdout.contains("\"again\"")), "a failed restore left a registry entry")
        #expect(Set(pidNamespaces()).subtracting(namespacesBefore).isEmpty, "a failed restore left a PID namespace behind")
        let n = received(report).count
        usleep(200_000)
        #expect(received(report).count == n, "something restored is still running")
        // The image is still good: a second restore works.
        let ok = try vos(f, ["restore", f.path("img")])
        #expect(ok.status == 0, "\(ok.stderr)")
        try f.adoptCapsule("c")
        #expect(waitUntil { received(report).count >= n + 10 })
        #expect(try vos(f, ["stop", "c"]).status == 0)
    }

    /// Every PID namespace some live process is in.
    func pidNamespaces() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { p in
            guard Int32(p) != nil else { return nil }
            return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/pid")
        }
    }
}
