// Issue 4: a capsule's whole tree is checkpointed and restored with the same PIDs inside, its
// shape (parents, sessions, groups, a zombie), a pipe with data in flight, a shared file
// description, and a monotonic clock that does not go back.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleCheckpointTests {
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
        let inspect = try vos(f, ["inspect", f.path("img")]).stdout
        #expect(inspect.contains("capsule: tree, hostname tree"), "\(inspect.prefix(300))")
        #expect(inspect.contains("process tree (6 processes; PIDs inside the capsule)"))
        #expect(inspect.contains("zombie, wait status 1792"), "the zombie exited with status 7")
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

    /// Memory shared by a parent and its child (MAP_SHARED anonymous, a memfd mapped by both and
    /// read through its fd) is still one object after the restore: the parent sees the child's
    /// increments in all three.
    @Test func sharedMemoryStaysShared() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("shm.txt")
        let r = try vos(f, ["run", "--name", "shm", "--", Products.path("vos-test-shm"), report])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        func last() -> [String: Int] {
            var v: [String: Int] = [:]
            for kv in (lines(report).last ?? "").split(separator: " ") {
                let p = kv.split(separator: "=")
                if p.count == 2, let n = Int(p[1]) { v[String(p[0])] = n }
            }
            return v
        }
        #expect(waitUntil { (last()["fdread"] ?? 0) >= 10 })
        for h in try hostPIDs(f, "shm").values { f.adopt(h) }
        try #require(try vos(f, ["checkpoint", "shm", "--image", f.path("img")]).status == 0)
        let before = last()
        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        for h in try hostPIDs(f, "shm").values { f.adopt(h) }
        #expect(waitUntil {
            let now = last()
            return ["shared", "memfd", "fdread"].allSatisfy { (now[$0] ?? 0) >= (before[$0] ?? 0) + 20 }
        }, "before \(before), after \(last()): the parent no longer sees the child's writes")
        #expect(try vos(f, ["stop", "shm"]).status == 0)
    }

    /// A python3 multiprocessing pool (parent, 3 workers, pipes, POSIX semaphores in deleted
    /// /dev/shm files, helper threads) continues its work: every result once, in order.
    @Test func pythonMultiprocessingPool() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let script = f.path("pool.py"), out = f.path("pool.txt")
        try """
            import multiprocessing as mp, sys, time
            def work(n):
                time.sleep(0.01)
                return n * n
            if __name__ == "__main__":
                out = open(sys.argv[1], "a", buffering=1)
                with mp.Pool(3) as pool:
                    n = 0
                    while True:
                        for r in pool.imap(work, range(n, n + 6)):
                            out.write(f"sq {r}\\n")
                        n += 6
            """.write(toFile: script, atomically: true, encoding: .utf8)
        func results() -> [Int] { lines(out).compactMap { $0.hasPrefix("sq ") ? Int($0.dropFirst(3)) : nil } }
        let r = try vos(f, ["run", "--name", "pool", "--", "/usr/bin/python3", script, out])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        #expect(waitUntil(20) { results().count >= 30 })
        for h in try hostPIDs(f, "pool").values { f.adopt(h) }
        #expect(try hostPIDs(f, "pool").count == 5, "init, the pool's parent and 3 workers")
        let cp = try vos(f, ["checkpoint", "pool", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let n = results().count
        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        for h in try hostPIDs(f, "pool").values { f.adopt(h) }
        let log = { ((try? f.vos(["logs", "pool"]))?.stdout ?? "").suffix(500) }
        #expect(waitUntil(20) { results().count >= n + 60 }, "the pool does not work after the restore: \(log())")
        let values = results()
        #expect(values == (0..<values.count).map { $0 * $0 }, "a result is missing or repeated")
        #expect(try vos(f, ["stop", "pool"]).status == 0)
    }

    /// A shell pipeline (`sh -c 'prog | cat >> f'`): the pipe between two processes, with what
    /// is in flight, comes back; the counter's sequence continues with no gap or repeat.
    @Test func shellPipelineContinues() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("pipeline.txt")
        let r = try vos(f, ["run", "--name", "pipe", "--", "/bin/sh", "-c", "\"$0\" /dev/stdout | cat >> \"$1\"",
                            Products.path("vos-test-counter"), out])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        #expect(waitUntil { counterSequence(out).values.count >= 20 })
        for h in try hostPIDs(f, "pipe").values { f.adopt(h) }
        #expect(try hostPIDs(f, "pipe").count == 4, "init, sh, the counter and cat")
        try #require(try vos(f, ["checkpoint", "pipe", "--image", f.path("img")]).status == 0)
        let n = counterSequence(out).values.count
        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        for h in try hostPIDs(f, "pipe").values { f.adopt(h) }
        #expect(waitUntil { counterSequence(out).values.count >= n + 30 })
        #expect(counterSequence(out).continuous, "the pipeline lost or repeated a line")
        #expect(try vos(f, ["stop", "pipe"]).status == 0)
    }
}
