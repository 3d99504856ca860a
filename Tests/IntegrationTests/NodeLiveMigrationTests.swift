// Issue 6: live (pre-copy) and lazy (post-copy) migration between node daemons on simulated
// machines: the counter with no gap or repeat, a GiB that keeps being rewritten arriving intact,
// a web server whose client keeps its connection, the network cut during pre-copy leaving the
// capsule running untouched on its source, and a lazy source kept until every page arrived.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct NodeLiveMigrationTests {
    struct Report: Decodable {
        struct Round: Decodable { var round: Int; var pages: UInt64 }
        var mode: String
        var downtimeMilliseconds: Double
        var totalMilliseconds: Double
        var rounds: [Round]
        var destinationPID: Int32
    }

    func report(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> Report {
        try #require(r.status == 0, "vos migrate: \(r.stderr)", sourceLocation: sourceLocation)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func hostPID(_ c: NodeCluster, _ i: Int, _ name: String, inner: Int32) -> Int32? {
        c.lan.capsules(i).first { $0.name == name }?.processes.first { $0.pid == inner }?.hostPID
    }

    /// The counter moved live, then lazily, then back: one sequence, no gap, no repeat.
    @Test func counterMovesLiveAndLazily() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let out = lan.f.path("count.txt")
        let r = try lan.vos(0, ["run", "--name", "count", "--", Products.path("vos-test-counter"), out])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        try #require(waitUntil { counterSequence(out).values.count >= 30 })

        let live = try report(try lan.vos(0, ["migrate", "count", "--to", "b", "--live", "--json", "--data", c.data(0)]))
        lan.adoptCapsules(1)
        #expect(live.mode == "live" && !live.rounds.isEmpty && live.rounds[0].pages > 0, "\(live)")
        #expect(lan.capsules(0).first { $0.name == "count" } == nil, "still on a")
        var before = counterSequence(out).values.count
        #expect(waitUntil(10) { counterSequence(out).values.count >= before + 30 }, "not counting on b")

        let lazy = try report(try lan.vos(1, ["migrate", "count", "--to", "a", "--lazy", "--json", "--data", c.data(1)]))
        lan.adoptCapsules(0)
        #expect(lazy.mode == "lazy" && lazy.downtimeMilliseconds <= lazy.totalMilliseconds, "\(lazy)")
        #expect(lan.capsules(1).first { $0.name == "count" } == nil, "still on b")
        before = counterSequence(out).values.count
        #expect(waitUntil(10) { counterSequence(out).values.count >= before + 30 }, "not counting on a")
        let seq = counterSequence(out)
        #expect(seq.continuous, "gap or repeat in \(seq.values.count) values")
        print("counter: live downtime \(live.downtimeMilliseconds) ms in \(live.rounds.count) round(s); lazy running after \(lazy.downtimeMilliseconds) ms, complete after \(lazy.totalMilliseconds) ms")
    }

    /// 1 GiB rewritten at 1000 pages per 10 ms, moved live: every page intact on b (the program
    /// checks each page's pattern and version itself), the downtime reported.
    @Test func gibibyteBeingRewrittenMovesLive() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let r = try lan.vos(0, ["run", "--name", "dirty", "--", Products.path("vos-test-dirtier"), "1024", "1000"])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        let logA = lan.nodes[0].stateDirectory + "/capsules/dirty/output.log"
        try #require(waitUntil(60) { lines(logA).contains { $0.hasPrefix("ready") } }, "\(lines(logA).suffix(3))")

        let m = try report(try lan.vos(0, ["migrate", "dirty", "--to", "b", "--live", "--json", "--data", c.data(0)]))
        lan.adoptCapsules(1)
        print("1 GiB live: rounds \(m.rounds.map(\.pages)), downtime \(m.downtimeMilliseconds) ms, total \(m.totalMilliseconds) ms")
        #expect(m.rounds.first.map { $0.pages >= 262144 } == true, "round 0 sent \(m.rounds.first?.pages ?? 0) pages")
        let logB = lan.nodes[1].stateDirectory + "/capsules/dirty/output.log"
        let pid = try #require(hostPID(c, 1, "dirty", inner: 2), "not running on b")
        let writes = lines(logB).filter { $0.hasPrefix("progress") }.count
        #expect(waitUntil(20) { lines(logB).filter { $0.hasPrefix("progress") }.count >= writes + 2 }, "not rewriting on b")
        kill(pid, SIGUSR1)
        #expect(waitUntil(60) { lines(logB).contains { $0.hasPrefix("verify ") || $0.hasPrefix("CORRUPT") } })
        #expect(lines(logB).contains { $0.hasPrefix("verify ok") }, "\(lines(logB).filter { !$0.hasPrefix("progress") }.suffix(5))")
        #expect(!lines(logB).contains { $0.hasPrefix("CORRUPT") })
    }

    /// A web server moved live: the client's one keep-alive connection goes on answering, and
    /// new connections reach the capsule's address on b.
    @Test func webServerKeepsItsClientAcrossALiveMigration() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let ip = lan.address(10)
        let server = lan.f.path("server.py"), client = lan.f.path("client.py"), out = lan.f.path("client.txt")
        try keepAliveServer.write(toFile: server, atomically: true, encoding: .utf8)
        try keepAliveClient.write(toFile: client, atomically: true, encoding: .utf8)
        let run = try lan.vos(0, ["run", "--name", "web", "--net", "--ip", ip, "--", python3, server, "8080"])
        try #require(run.status == 0, "vos run: \(run.stderr)")
        lan.adoptCapsules(0)
        try lan.startClient([python3, client, ip, "8080"], stdout: out)
        try #require(waitUntil(30) { let l = ClientLog(out); return l.keepAlive.count >= 20 && l.newOK.count >= 2 }, "\(lines(out).suffix(5))")

        let m = try report(try lan.vos(0, ["migrate", "web", "--to", "b", "--live", "--json", "--data", c.data(0)]))
        lan.adoptCapsules(1)
        let before = ClientLog(out).keepAlive.count, newBefore = ClientLog(out).newOK.count
        #expect(waitUntil(20) { let l = ClientLog(out); return (l.keepAlive.count >= before + 40 && l.newOK.count >= newBefore + 3) || l.keepAliveError != nil })
        let log = ClientLog(out)
        #expect(log.keepAliveError == nil, "\(log.keepAliveError ?? "")")
        #expect(log.keepAlive.enumerated().allSatisfy { $0.offset == $0.element.index && $0.element.status.contains("200") })
        #expect(Set(log.keepAlive.map(\.localPort)).count == 1, "the keep-alive connection was replaced")
        #expect(log.newOK.count >= newBefore + 3, "new connections do not reach \(ip) on b")
        #expect(lan.capsules(1).first { $0.name == "web" } != nil && lan.capsules(0).first { $0.name == "web" } == nil)
        print("web server live: downtime \(m.downtimeMilliseconds) ms, longest pause seen by the client \(log.longestPause) ms")
    }

    /// The link between the nodes cut (b's uplink deleted) during pre-copy: vos migrate fails
    /// naming b, the capsule runs on on a with every page intact and no tracking left behind.
    @Test func networkCutDuringPreCopy() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let r = try lan.vos(0, ["run", "--name", "dirty", "--", Products.path("vos-test-dirtier"), "1024", "1000"])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        let logA = lan.nodes[0].stateDirectory + "/capsules/dirty/output.log"
        try #require(waitUntil(60) { lines(logA).contains { $0.hasPrefix("ready") } })
        let pid = try #require(hostPID(c, 0, "dirty", inner: 2))

        let mout = lan.f.path("migrate.out"), merr = lan.f.path("migrate.err")
        let migrate = try lan.start(0, ["/bin/sh", "-c", "exec \"$@\" 2>\(merr)", "sh", Products.vos, "migrate", "dirty",
                                        "--to", "b", "--live", "--data", c.data(0)], stdout: mout)
        try #require(waitUntil(60) { (try? String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8))?.contains(" uw") == true },
                     "pre-copy never began: \(lines(mout)) \(lines(merr))")
        usleep(300_000)
        try lan.cutLink(1)
        #expect(waitUntil(90) { exitCode(migrate) != nil }, "vos migrate did not end after the cut")
        let code = exitCode(migrate)
        let err = lines(merr).joined(separator: "\n")
        #expect(code != nil && code != 0 && code! < 128, "vos migrate ended with \(code.map(String.init) ?? "nothing")")
        #expect(err.contains("node b") && err.contains("keeps running"), "vos migrate said: \(err)")
        print("network cut during pre-copy: \(err)")

        #expect(hostPID(c, 0, "dirty", inner: 2) == pid, "the capsule is not the same on a")
        let smaps = (try? String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8)) ?? ""
        #expect(!smaps.split(separator: "\n").contains { $0.hasPrefix("VmFlags") && $0.contains(" uw") }, "write-protect tracking left behind")
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        #expect(!fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)"))?.contains("userfaultfd") == true })
        let writes = lines(logA).filter { $0.hasPrefix("progress") }.count
        #expect(waitUntil(20) { lines(logA).filter { $0.hasPrefix("progress") }.count >= writes + 2 }, "not rewriting on a")
        kill(pid, SIGUSR1)
        #expect(waitUntil(60) { lines(logA).contains { $0.hasPrefix("verify ") || $0.hasPrefix("CORRUPT") } })
        #expect(lines(logA).contains { $0.hasPrefix("verify ok") }, "\(lines(logA).filter { !$0.hasPrefix("progress") }.suffix(5))")
    }

    /// `--lazy`: the capsule runs on b at once, while its frozen original stays on a until
    /// every page has arrived; then a has nothing left and b holds every page intact.
    @Test func lazySourceStaysUntilEveryPageHasArrived() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let r = try lan.vos(0, ["run", "--name", "hog", "--", Products.path("vos-test-memhog"), "1024"])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        let logA = lan.nodes[0].stateDirectory + "/capsules/hog/output.log"
        try #require(waitUntil(60) { lines(logA).contains { $0.hasPrefix("ready ") } })
        let source = try #require(hostPID(c, 0, "hog", inner: 2))

        let mout = lan.f.path("migrate.out"), merr = lan.f.path("migrate.err")
        let migrate = try lan.start(0, ["/bin/sh", "-c", "exec \"$@\" 2>\(merr)", "sh", Products.vos, "migrate", "hog",
                                        "--to", "b", "--lazy", "--json", "--data", c.data(0)], stdout: mout)
        // Running on b (its init answers) while vos migrate still waits for the last pages.
        try #require(waitUntil(60) { hostPID(c, 1, "hog", inner: 2) != nil || exitCode(migrate) != nil })
        lan.adoptCapsules(1)
        // 1 GiB takes seconds to arrive; the copy runs after a fraction of one.
        let stillServing = exitCode(migrate) == nil
        #expect(stillServing, "vos migrate was over before the copy was seen running on b")
        #expect(lan.f.isAlive(source), "the source was removed before every page had arrived")
        #expect(lan.capsules(0).contains { $0.name == "hog" }, "a's registry lost the capsule early")
        #expect(waitUntil(120) { exitCode(migrate) != nil }, "vos migrate --lazy did not finish")
        #expect(exitCode(migrate) == 0, "vos migrate: \(lines(merr))")
        #expect(!lan.f.isAlive(source) && !lan.capsules(0).contains { $0.name == "hog" }, "the source is still there")
        print("lazy 1 GiB: the source was still serving when b ran the copy: \(stillServing); \(lines(mout).joined())")

        let logB = lan.nodes[1].stateDirectory + "/capsules/hog/output.log"
        let hog = try #require(hostPID(c, 1, "hog", inner: 2))
        kill(hog, SIGUSR1)
        #expect(waitUntil(60) { lines(logB).contains { $0.hasPrefix("verify ") || $0.hasPrefix("CORRUPT") } })
        #expect(lines(logB).contains("verify ok 262144"), "\(lines(logB).filter { !$0.hasPrefix("tick=") }.suffix(5))")
    }
}
