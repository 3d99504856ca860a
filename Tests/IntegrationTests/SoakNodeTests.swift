// Issue 10, item 4: the node daemons' memory stays flat while a small capsule (the counter)
// migrates back and forth between two nodes (quick: 6 migrations; VOS_SOAK=1: 50), after two
// warm-up migrations. Resident memory and open fds of both daemons are sampled after the
// warm-up, half-way and at the end; the counter runs on without a gap. (The allocator's arenas
// reach their high-water mark over the first ~50 migrations: ~20 MiB, flat after that.)
import Foundation
import Glibc
import Testing
import VOSLinux

extension SoakTests {
    /// Growth of a daemon's resident memory over the measured migrations that counts as a leak.
    static let daemonGrowthBound: Int64 = 32 << 20

    @Test func nodeDaemonMemoryStaysFlat() throws {
        let migrations = Soak.count(quick: 6, soak: 50)
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let out = lan.f.path("count.txt")
        let r = try lan.vos(0, ["run", "--name", "count", "--", Products.path("vos-test-counter"), out])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        try #require(waitUntil { counterSequence(out).values.count >= 20 }, "the counter does not count")
        let daemons = try [0, 1].map { try #require(c.daemons[$0]) }

        var at = 0
        func move(_ k: Int) throws {
            let to = 1 - at
            let source = lan.capsules(at).flatMap { $0.processes.map(\.hostPID) }
            let r = try c.migrate("count", from: at, to: c.name(to))
            lan.adoptCapsules(to)
            // The source's processes, killed, may be re-parented to the test process (a subreaper).
            for p in source { lan.f.reap(p) }
            try #require(r.status == 0, "migration \(k) \(c.name(at)) → \(c.name(to)): \(r.stderr)\nnode a: \(c.logText(0))\nnode b: \(c.logText(1))")
            at = to
            let size = fileSize(out)
            try #require(waitUntil { fileSize(out) >= size + 30 }, "migration \(k): the counter does not run on")
        }
        for k in 0..<2 { try move(k) }
        let rssBefore = daemons.map(residentBytes), fdsBefore = daemons.map(fdCount)
        let zombiesBefore = zombies(childrenOf: [getpid()])
        let began = Date()
        var rssHalfway: [Int64] = []
        for k in 0..<migrations {
            try move(2 + k)
            if k == migrations / 2 - 1 { rssHalfway = daemons.map(residentBytes) }
        }
        let seconds = Date().timeIntervalSince(began)
        // Connections of the last migration and heartbeats may still be closing: let fds settle.
        _ = waitUntil(5) { daemons.map(fdCount) == fdsBefore }
        let rssAfter = daemons.map(residentBytes), fdsAfter = daemons.map(fdCount)

        for i in 0..<2 {
            print("soak: node \(c.name(i)) daemon over \(migrations) migrations: VmRSS \(mebibytes(rssBefore[i])) → \(mebibytes(rssHalfway[i])) "
                + "half-way → \(mebibytes(rssAfter[i])) "
                + "(\(mebibytes(rssAfter[i] - rssBefore[i]))), fds \(fdsBefore[i]) → \(fdsAfter[i])")
            #expect(rssBefore[i] > 0 && rssAfter[i] - rssBefore[i] < Self.daemonGrowthBound,
                    "node \(c.name(i))'s daemon grew from \(mebibytes(rssBefore[i])) to \(mebibytes(rssAfter[i]))")
            #expect(fdsAfter[i] <= fdsBefore[i], "node \(c.name(i))'s daemon holds \(fdsAfter[i]) fds, \(fdsBefore[i]) after the warm-up")
        }
        print("soak: \(migrations) cold migrations of the counter in " + String(format: "%.1f s (%.0f ms each)", seconds, seconds * 1000 / Double(migrations)))
        let seq = counterSequence(out)
        #expect(seq.continuous, "a gap or a repeat over \(migrations + 2) migrations: \(firstBreak(seq.values))")
        // The capsule is on one node only, and of the fixture's processes only it and the daemons are left.
        let onNodes = [0, 1].map { lan.capsules($0).map(\.name) }
        #expect(onNodes[at] == ["count"] && onNodes[1 - at].isEmpty, "capsules on a, b: \(onNodes)")
        let capsule = Set(lan.capsules(at).flatMap { $0.processes.map(\.hostPID) })
        let expected = capsule.union(daemons)
        #expect(processesMarked(lan.f.directory) == expected, "processes left: \(describe(processesMarked(lan.f.directory).subtracting(expected)))")
        let left = lastingZombies(childrenOf: capsule.union(daemons).union([getpid()])).subtracting(zombiesBefore)
        #expect(left.isEmpty, "zombies left: \(describe(left))")
    }
}
