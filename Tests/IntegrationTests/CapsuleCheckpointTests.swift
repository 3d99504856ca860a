// Issue 4: a capsule's whole tree is checkpointed and restored with the same PIDs inside, its
// shape (parents, sessions, groups, a zombie), a pipe with data in flight, a shared file
// description, and a monotonic clock that does not go back.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleCheckpointTests {
    func vos(_ f: Fixture, _ args: [String]) throws -> CommandResult {
        try f.vos(args, environment: ["VOS_STATE_DIR": f.path("state")])
    }

    /// The latest "id NAME pid= ppid= pgid= sid=" line of each process.
    func identities(_ report: String) -> [String: String] {
        var out: [String: String] = [:]
        for l in lines(report) where l.hasPrefix("id ") {
            let parts = l.split(separator: " ", maxSplits: 2)
            if parts.count == 3 { out[String(parts[1])] = String(parts[2]) }
        }
        return out
    }

    /// "got A n=<k> mono=<ns>" lines: the sequence numbers and clock readings.
    func received(_ report: String) -> [(n: Int, mono: Int64)] {
        lines(report).compactMap { l in
            guard l.hasPrefix("got A n=") else { return nil }
            let f = l.split(separator: " ")
            guard f.count == 4, let n = Int(f[2].dropFirst(2)), let m = Int64(f[3].dropFirst(5)) else { return nil }
            return (n, m)
        }
    }

    /// Host PIDs of a capsule's processes by PID inside, from vos ps.
    func hostPIDs(_ f: Fixture, _ name: String) throws -> [Int32: Int32] {
        struct Entry: Decodable {
            struct P: Decodable { var pid: Int32; var hostPID: Int32 }
            var name: String
            var processes: [P]
        }
        let r = try vos(f, ["ps", "--json"])
        let entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
        return Dictionary(uniqueKeysWithValues: (entries.first { $0.name == name }?.processes ?? []).map { ($0.pid, $0.hostPID) })
    }

    func startTree(_ f: Fixture, name: String, report: String) throws {
        let r = try vos(f, ["run", "--name", name, "--", Products.path("vos-test-tree"), report])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        #expect(waitUntil { identities(report).count == 4 && received(report).count >= 20 })
        for host in try hostPIDs(f, name).values { f.adopt(host) }
    }

    @Test func treeComesBackWhole() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("report.txt")
        try startTree(f, name: "tree", report: report)
        let before = identities(report)
        #expect(before["parent"]?.hasPrefix("pid=2 ppid=1 ") == true, "\(before)")

        let cp = try vos(f, ["checkpoint", "tree", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        #expect(cp.stdout.contains("capsule stopped"))
        let lastBefore = try #require(received(report).last)
        sleep(2)  // the capsule spends 2 s as an image: its clock must not count them

        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        #expect(rs.stdout.contains("restored capsule tree"))
        let hosts = try hostPIDs(f, "tree")
        for h in hosts.values { f.adopt(h) }
        #expect(waitUntil { (received(report).last?.n ?? 0) >= lastBefore.n + 20 })

        // Same PIDs, parents, groups and sessions inside.
        let after = identities(report)
        #expect(after == before, "before \(before)\nafter \(after)")
        // Every line A wrote reached the parent once, in order: nothing lost in the pipe.
        let seq = received(report).map(\.n)
        #expect(seq == Array(0..<seq.count), "the pipe lost or repeated data around \(lastBefore.n)")
        // CLOCK_MONOTONIC inside continues from where it was (time namespace offsets): no jump
        // back, and much less than the 2 s the capsule spent as an image (what remains is the
        // restore itself and the program's 20 ms cadence).
        let monos = received(report).map(\.mono)
        #expect(zip(monos, monos.dropFirst()).allSatisfy { $0 <= $1 }, "the capsule's clock went backwards")
        if let i = monos.firstIndex(where: { $0 > lastBefore.mono }) {
            #expect(monos[i] - lastBefore.mono < 1_000_000_000, "the clock jumped \(monos[i] - lastBefore.mono) ns over the restore")
        }
        // The zombie is still there for its parent to reap, with its exit status.
        let parent = try #require(hosts[2])
        kill(parent, SIGUSR2)
        #expect(waitUntil { lines(report).contains("reaped Z status=7") })
        #expect(try vos(f, ["stop", "tree"]).status == 0)
    }

    /// Restoring beside the still-running original: two capsules with the same PIDs inside.
    @Test func restoreBesideTheOriginal() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("report.txt")
        try startTree(f, name: "one", report: report)
        let cp = try vos(f, ["checkpoint", "one", "--image", f.path("img"), "--leave-running"])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let rs = try vos(f, ["restore", f.path("img"), "--name", "two"])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        let one = try hostPIDs(f, "one"), two = try hostPIDs(f, "two")
        for h in Array(one.values) + Array(two.values) { f.adopt(h) }
        #expect(Set(one.keys) == Set(two.keys), "one \(one) two \(two)")
        #expect(Set(one.values).isDisjoint(with: two.values))
        // Both parents keep reading their own A: each sequence number now arrives twice.
        let n = received(report).count
        #expect(waitUntil { received(report).count >= n + 40 })
        let counts = Dictionary(grouping: received(report).map(\.n), by: { $0 }).values.filter { $0.count == 2 }.count
        #expect(counts >= 10)
        #expect(try vos(f, ["stop", "one"]).status == 0)
        #expect(try vos(f, ["stop", "two"]).status == 0)
    }
}
