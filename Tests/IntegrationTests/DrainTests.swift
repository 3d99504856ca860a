// Issue 8: the community. Three simulated nodes; six capsules on a (three counters, three
// `python3 -m http.server --net` with a keep-alive client each). `vos drain a`, asked of node b,
// moves them all live to b and c (spread by load): no gap in any counter, no request lost on
// the clients' keep-alive connections; a stays cordoned across a daemon restart, refuses a capsule sent to it, and the event
// log, read from any node, holds each move with its downtime; `vos uncordon a` clears it.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct DrainTests {
    struct Node: Decodable {
        var name: String
        var state: String?
        var cordoned: Bool?
    }

    struct Capsule: Decodable {
        var node: String
        var name: String
        var state: String
        var memoryBytes: UInt64
        var cpuPercent: Double?
    }

    struct Event: Decodable {
        var node: String
        var kind: String
        var capsule: String?
        var subject: String?
        var downtimeMilliseconds: Double?
        var message: String
    }

    struct Step: Decodable {
        var capsule: String
        var destination: String?
        var result: String
        var downtimeMilliseconds: Double?
    }

    struct Report: Decodable {
        var node: String
        var steps: [Step]
        var milliseconds: Double
    }

    func json<T: Decodable>(_ type: T.Type, _ c: NodeCluster, _ i: Int, _ args: [String]) -> T? {
        guard let r = try? c.lan.vos(i, args + ["--data", c.data(i), "--json"]), r.status == 0 else { return nil }
        return try? JSONDecoder().decode(T.self, from: Data(r.stdout.utf8))
    }

    func nodes(_ c: NodeCluster, _ i: Int) -> [Node] { json([Node].self, c, i, ["nodes"]) ?? [] }
    func cluster(_ c: NodeCluster, _ i: Int) -> [Capsule] { json([Capsule].self, c, i, ["ps", "--all"]) ?? [] }
    func events(_ c: NodeCluster, _ i: Int) -> [Event] { json([Event].self, c, i, ["events"]) ?? [] }
    func cordoned(_ c: NodeCluster, seenFrom i: Int, _ node: String) -> Bool? { nodes(c, i).first { $0.name == node }?.cordoned }

    @Test func drainMovesEveryCapsuleLiveAndCordonsTheNode() throws {
        let started = Date()
        let lan = try SimulatedLAN(nodes: 3)
        let c = try NodeCluster.start(lan, count: 3)
        defer { c.teardown() }

        let counters = (0..<3).map { "count\($0)" }, webs = (0..<3).map { "web\($0)" }
        var counterOut: [String: String] = [:], clientOut: [String: String] = [:]
        for name in counters {
            counterOut[name] = lan.f.path("\(name).txt")
            let r = try lan.vos(0, ["run", "--name", name, "--", Products.path("vos-test-counter"), counterOut[name]!])
            try #require(r.status == 0, "vos run \(name): \(r.stderr)")
        }
        let site = lan.f.path("site")
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        try "hello from a capsule\n".write(toFile: site + "/index.html", atomically: true, encoding: .utf8)
        // The client of the network tests, its new connections given 10 s to connect instead
        // of 2: one whose SYN meets the frozen source is answered after TCP's retransmission (1 s,
        // then 3 s) on the destination, late but not lost.
        let client = lan.f.path("client.py")
        let patient = keepAliveClient.replacingOccurrences(of: "create_connection((host, port), timeout=2) as c", with: "create_connection((host, port), timeout=10) as c")
        try #require(patient != keepAliveClient)
        try patient.write(toFile: client, atomically: true, encoding: .utf8)
        for (k, name) in webs.enumerated() {
            // HTTP/1.1 for keep-alive; IPv4 only; hostname localhost: http.server's getfqdn() of
            // it is answered by /etc/hosts (the LAN has no DNS server to wait for).
            let r = try lan.vos(0, ["run", "--name", name, "--net", "--ip", lan.address(10 + k), "--hostname", "localhost", "--",
                                    python3, "-m", "http.server", "--protocol", "HTTP/1.1", "--bind", "0.0.0.0",
                                    "--directory", site, "8080"])
            try #require(r.status == 0, "vos run \(name): \(r.stderr)")
            clientOut[name] = lan.f.path("\(name)-client.txt")
            try lan.startClient([python3, client, lan.address(10 + k), "8080"], stdout: clientOut[name]!)
        }
        lan.adoptCapsules(0)
        for name in webs {
            try #require(waitUntil(30) { let l = ClientLog(clientOut[name]!); return l.keepAlive.count >= 20 && l.newOK.count >= 2 },
                         "\(name)'s client never got going: \(lines(clientOut[name]!).suffix(3))")
        }
        for name in counters { try #require(waitUntil { counterSequence(counterOut[name]!).values.count >= 20 }) }
        // Every capsule sampled on a (CPU needs two heartbeats) and seen from c.
        try #require(waitUntil(10) {
            let onA = cluster(c, 2).filter { $0.node == "a" }
            return onA.count == 6 && onA.allSatisfy { $0.state == "running" && $0.cpuPercent != nil && $0.memoryBytes > 0 }
        }, "vos ps --all on c: \(cluster(c, 2))")
        let ready = Date()
        // Follows the log on c while the drain runs (ended by PID at teardown).
        let followed = lan.f.path("events-f.jsonl")
        try lan.start(2, [Products.vos, "events", "-f", "--json", "--data", c.data(2)], stdout: followed)

        // The drain, asked of b: a is cordoned, then its capsules leave one by one.
        let r = try lan.vos(1, ["drain", "a", "--data", c.data(1), "--json"])
        lan.adoptCapsules(1)
        lan.adoptCapsules(2)
        try #require(r.status == 0, "vos drain a: \(r.stderr) \(r.stdout)")
        let report = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        #expect(Set(report.steps.map(\.capsule)) == Set(counters + webs) && report.steps.allSatisfy { $0.result == "migrated" },
                "\(report.steps)")
        let drained = Date()

        // Where they went: all on b and c, spread; none on a.
        var placed: [Capsule] = []
        #expect(waitUntil(5) {
            placed = cluster(c, 2).filter { $0.state == "running" }
            return placed.count == 6 && !placed.contains { $0.node == "a" }
        }, "vos ps --all on c: \(placed)")
        let byNode = Dictionary(grouping: placed, by: \.node).mapValues { $0.map(\.name).sorted() }
        #expect(Set(byNode.keys) == ["b", "c"], "not spread: \(byNode)")
        #expect(lan.capsules(0).filter { $0.state == "running" }.isEmpty, "a still runs \(lan.capsules(0).map(\.name))")

        // Everything goes on where it landed: every counter with no gap or repeat, every client
        // with every keep-alive request answered on its one connection.
        var before: [String: Int] = [:]
        for name in counters { before[name] = counterSequence(counterOut[name]!).values.count }
        for name in webs { before[name] = ClientLog(clientOut[name]!).keepAlive.count }
        for name in counters {
            #expect(waitUntil(10) { counterSequence(counterOut[name]!).values.count >= before[name]! + 20 }, "\(name) stopped counting")
            let seq = counterSequence(counterOut[name]!)
            #expect(seq.continuous, "\(name): gap or repeat in \(seq.values.count) values")
        }
        var pauses: [String] = [], lostNew = 0
        for name in webs {
            let out = clientOut[name]!
            #expect(waitUntil(20) { let l = ClientLog(out); return l.keepAlive.count >= before[name]! + 20 || l.keepAliveError != nil })
            let log = ClientLog(out)
            #expect(log.keepAliveError == nil, "\(name): \(log.keepAliveError ?? "")")
            #expect(log.keepAlive.enumerated().allSatisfy { $0.offset == $0.element.index && $0.element.status.contains("200") },
                    "\(name): a keep-alive request went unanswered")
            #expect(Set(log.keepAlive.map(\.localPort)).count == 1, "\(name): the keep-alive connection was replaced")
            // A new connection caught by the move can be lost: one still in the listener's accept
            // queue at the freeze is not carried yet (ARCHITECTURE, "Not built yet"). At most one
            // per move; the others are answered, late but answered.
            #expect(log.newErrors.count <= 1, "\(name): new connections failed: \(log.newErrors.prefix(3))")
            #expect(log.newOK.count >= 4, "\(name): \(log.newOK.count) new connections answered")
            lostNew += log.newErrors.count
            pauses.append("\(name) \(Int(log.longestPause)) ms")
        }

        // The log, read through a: a migrated event per capsule with its downtime, and the drain.
        let log = events(c, 0)
        for name in counters + webs {
            let e = log.first { $0.kind == "migrated" && $0.capsule == name }
            #expect(e?.node == "a" && e?.downtimeMilliseconds != nil && ["b", "c"].contains(e?.subject ?? ""), "\(name): \(String(describing: e))")
        }
        for kind in ["cordoned", "drain-started", "drain-finished", "placed"] {
            #expect(log.contains { $0.kind == kind }, "no \(kind) event in \(log.map(\.kind))")
        }
        #expect(log.first { $0.kind == "drain-started" }?.node == "b", "the drain is b's decision")
        #expect(waitUntil(5) {
            let seen = lines(followed).compactMap { try? JSONDecoder().decode(Event.self, from: Data($0.utf8)) }
            return Set(seen.filter { $0.kind == "migrated" }.compactMap(\.capsule)) == Set(counters + webs)
        }, "vos events -f on c did not show every move: \(lines(followed).suffix(3))")

        // a is cordoned, for every node, and takes nothing: a capsule sent there stays put.
        #expect(waitUntil(5) { cordoned(c, seenFrom: 2, "a") == true }, "c does not see a cordoned: \(nodes(c, 2))")
        let mover = try #require(placed.first { $0.name == "count0" })
        let from = mover.node == "b" ? 1 : 2
        let refused = try c.migrate("count0", from: from, to: "a")
        #expect(refused.status != 0 && refused.stderr.contains("cordoned"), "migrate to a cordoned node: \(refused.stderr)")
        #expect(lan.capsules(from).contains { $0.name == "count0" && $0.state == "running" }, "count0 left \(mover.node)")

        // The cordon survives a restart of a's daemon (it is in a's registry).
        c.kill(0)
        try c.start(0, join: 1)
        #expect(waitUntil(15) { nodes(c, 0).filter { $0.state == "alive" }.count == 3 }, "a did not come back: \(nodes(c, 0))")
        #expect(cordoned(c, seenFrom: 0, "a") == true, "a forgot its cordon across a restart")
        let table = try lan.vos(1, ["nodes", "--data", c.data(1)])
        #expect(table.stdout.split(separator: "\n").contains { $0.hasPrefix("a ") && $0.contains("cordoned") }, "vos nodes on b:\n\(table.stdout)")
        print("vos nodes on b:\n\(table.stdout)")

        // Uncordon (asked of c this time): every node sees a schedulable again.
        let u = try lan.vos(2, ["uncordon", "a", "--data", c.data(2)])
        #expect(u.status == 0 && u.stdout.contains("schedulable"), "vos uncordon a: \(u.stderr)")
        #expect(waitUntil(5) { cordoned(c, seenFrom: 1, "a") == false && cordoned(c, seenFrom: 0, "a") == false },
                "a still cordoned: \(nodes(c, 1))")
        #expect(events(c, 1).contains { $0.kind == "uncordoned" && $0.node == "a" })

        // c's daemon killed: the others record it unreachable, ps --all shows its capsules as last
        // heard (state unknown), and events still answers, naming the log it cannot read.
        c.kill(2)
        #expect(waitUntil(10) { events(c, 0).contains { $0.kind == "node-unreachable" && $0.subject == "c" } },
                "no node-unreachable event for c: \(events(c, 0).suffix(3).map(\.message))")
        let lastHeard = cluster(c, 1).filter { $0.node == "c" }
        #expect(!lastHeard.isEmpty && lastHeard.allSatisfy { $0.state == "unknown" }, "\(lastHeard)")
        let partial = try lan.vos(0, ["events", "--data", c.data(0)])
        #expect(partial.status == 0 && partial.stderr.contains("node c"), "vos events with c down: \(partial.stderr)")

        for (i, args) in [(1, ["ps", "--all"]), (0, ["events"])] {
            let out = try lan.vos(i, args + ["--data", c.data(i)])
            #expect(out.status == 0 && !out.stdout.isEmpty, "vos \(args.joined(separator: " ")): \(out.stderr)")
            print("vos \(args.joined(separator: " ")) on \(c.name(i)):\n\(out.stdout)")
        }
        let steps = report.steps.map { "\($0.capsule)→\($0.destination ?? "-") \(String(format: "%.0f", $0.downtimeMilliseconds ?? 0)) ms" }
        print("drain of a: \(String(format: "%.1f", report.milliseconds / 1000)) s for 6 capsules (\(steps.joined(separator: ", "))); "
            + "placed \(byNode); longest client pauses \(pauses.joined(separator: ", ")); new connections lost \(lostNew); setup "
            + String(format: "%.1f s, drain %.1f s, whole test %.1f s", ready.timeIntervalSince(started), drained.timeIntervalSince(ready),
                     Date().timeIntervalSince(started)))
    }
}
