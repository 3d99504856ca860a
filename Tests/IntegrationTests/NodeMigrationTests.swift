// Issue 6: node daemons on simulated machines (`SimulatedLAN`, `NodeCluster`) moving capsules
// with `vos migrate`: a cold migration of the counter (no gap, no repeat, the log travels, the
// member list follows), the cluster credential keeping other clusters' nodes and forged
// handshakes out, and faults (a destination that fails to restore, a destination daemon killed
// mid-transfer, unknown names) leaving the capsule running on its source.
import Foundation
import CVOSShim
import Glibc
import NIOCore
import NIOPosix
import Testing
import VOSLinux
import VOSMigration

@Suite(.serialized)
struct NodeMigrationTests {
    /// The counter in capsule `name` on node i, its "n=K" lines in a fixture file (and a first
    /// line in the capsule's log); returns once it has counted 30.
    func startCounter(_ c: NodeCluster, on i: Int, name: String) throws -> String {
        let out = c.lan.f.path("\(name).txt")
        let r = try c.lan.vos(i, ["run", "--name", name, "--", "/bin/sh", "-c",
                                  "echo capsule \(name) starts; exec \(Products.path("vos-test-counter")) \(out)"])
        try #require(r.status == 0, "vos run on node \(c.name(i)): \(r.stderr)")
        c.lan.adoptCapsules(i)
        try #require(waitUntil { counterSequence(out).values.count >= 30 }, "the counter does not count")
        return out
    }

    /// Host PIDs of capsule `name` on node i (empty when it is not there).
    func hostPIDs(_ c: NodeCluster, _ i: Int, _ name: String) -> Set<Int32> {
        Set(c.lan.capsules(i).first { $0.name == name }?.processes.map(\.hostPID) ?? [])
    }

    /// The counter keeps going (`more` new values) with no gap and no repeat since it started.
    func expectCounting(_ out: String, more: Int = 30, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = counterSequence(out).values.count
        #expect(waitUntil(10) { counterSequence(out).values.count >= before + more },
                "the counter stopped at \(counterSequence(out).values.last ?? -1)", sourceLocation: sourceLocation)
        let seq = counterSequence(out)
        #expect(seq.continuous, "gap or repeat: \(firstBreak(seq.values))", sourceLocation: sourceLocation)
    }

    func firstBreak(_ v: [Int]) -> String {
        guard let i = v.indices.first(where: { v[$0] != $0 }) else { return "none" }
        return "at line \(i): \(v[max(0, i - 3)..<min(v.count, i + 3)])"
    }

    // MARK: 1. cold migration

    /// `vos migrate count --to b --json`: the counter goes on from b with no gap and no repeat,
    /// a has nothing left (registry and processes), b runs it under the PID the report gives, its
    /// log came along, and a's `vos nodes` lists it under b after a heartbeat.
    @Test func coldMigrationOfTheCounter() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let out = try startCounter(c, on: 0, name: "count")
        let onA = hostPIDs(c, 0, "count")
        try #require(!onA.isEmpty)
        #expect(waitUntil(5) { c.nodes(1).first { $0.name == "a" }?.capsules == ["count"] }, "b never heard a runs count")

        let r = try c.migrate("count", from: 0, to: "b", json: true)
        c.lan.adoptCapsules(1)
        try #require(r.status == 0, "vos migrate: \(r.stderr)\nnode a: \(c.logText(0))\nnode b: \(c.logText(1))")
        // One JSON object, nothing else.
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let report = try #require(object, "not one JSON object: \(r.stdout)")
        #expect(report["mode"] as? String == "cold")
        #expect(report["capsule"] as? String == "count")
        #expect(report["from"] as? String == "a")
        #expect(report["to"] as? String == "b")
        let downtime = try #require(report["downtimeMilliseconds"] as? Double, "\(report)")
        #expect(downtime > 0 && downtime < 10_000, "downtime \(downtime) ms")
        let sent = try #require((report["bytesSent"] as? NSNumber)?.uint64Value, "\(report)")
        #expect(sent > 100_000, "only \(sent) bytes sent")

        expectCounting(out, more: 50)

        // Gone from a: no registry entry, no process.
        #expect(c.lan.capsules(0).isEmpty, "vos ps on a: \(c.lan.capsules(0).map(\.name))")
        #expect(waitUntil(5) { onA.allSatisfy { !c.lan.f.isAlive($0) } }, "processes of the original still run on a")
        let logsOnA = try c.lan.vos(0, ["logs", "count"])
        #expect(logsOnA.status != 0, "a still has a log of count: \(logsOnA.stdout)")
        // Running on b, the init under the PID the report gave.
        let entry = c.lan.capsules(1).first { $0.name == "count" }
        #expect(entry?.state == "running", "vos ps on b: \(c.lan.capsules(1).map { "\($0.name) \($0.state)" })")
        let initPID = entry?.processes.first { $0.pid == 1 }?.hostPID
        #expect(initPID != nil && (report["destinationPID"] as? NSNumber)?.int32Value == initPID, "\(report), init \(initPID ?? -1)")
        let onB = Set(entry?.processes.map(\.hostPID) ?? [])
        #expect(onB.isDisjoint(with: onA), "a's PIDs \(onA), b's \(onB)")
        // The output written on a is b's log of the capsule now.
        let logs = try c.lan.vos(1, ["logs", "count"])
        #expect(logs.status == 0 && logs.stdout.contains("capsule count starts"), "vos logs on b: \(logs.status) \(logs.stdout) \(logs.stderr)")
        // The member list follows after a heartbeat.
        #expect(
            waitUntil(5) {
                let n = c.nodes(0)
                return n.first { $0.name == "b" }?.capsules == ["count"] && n.first { $0.name == "a" }?.capsules == []
            }, "vos nodes on a: \(c.nodes(0).map { "\($0.name): \($0.capsules)" })")

        // b can stop it like any capsule of its own.
        #expect(try c.lan.vos(1, ["stop", "count"]).status == 0)
    }

    // MARK: 2. security

    /// An event loop group whose one thread is in the LAN's client namespace, so its sockets are
    /// made there (the test process itself is in the host's namespace, off the LAN).
    func clientGroup(_ lan: SimulatedLAN) throws -> MultiThreadedEventLoopGroup {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let path = "/run/netns/\(lan.clientNamespace)"
        try group.next().submit {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SimulatedLANError("open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard vos_syscall6(308 /* setns */, Int(fd), 0x4000_0000 /* CLONE_NEWNET */, 0, 0, 0, 0) == 0 else {
                throw SimulatedLANError("setns \(path): \(String(cString: strerror(errno)))")
            }
        }.wait()
        return group
    }

    struct Hello: Codable { var version: Int; var node: String; var nonce: Data }
    struct Proof: Codable { var proof: Data }
    struct Incoming: Codable { var capsule: String; var mode: String; var from: String }

    /// A node of another cluster cannot join, and neither it (through VOSMigration's own API)
    /// nor a client forging the handshake can push an image or ask for anything: the handshake
    /// fails, a logs the refusal, and a's capsule and member list are untouched. A garbage
    /// token is refused by `vos node init`.
    @Test func anotherClustersNodeIsRefused() throws {
        let lan = try SimulatedLAN(nodes: 3)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let out = try startCounter(c, on: 0, name: "count")
        let before = hostPIDs(c, 0, "count")

        // Node c, a new cluster of its own, tries to join through a.
        try c.initialise(2)
        let joiner = try c.start(2, join: 0)
        #expect(waitUntil(20) { exitCode(joiner) != nil }, "node c still runs after joining a with another credential")
        let code = exitCode(joiner)
        #expect(code != nil && code != 0 && code! < 128, "node c's daemon ended with \(code.map(String.init) ?? "nothing")")
        let cLog = c.logText(2)
        #expect(cLog.contains("cannot join") && cLog.contains("credential"), "node c said: \(cLog)")

        // VOSMigration's API with another cluster's key: the handshake itself throws.
        let group = try clientGroup(lan)
        defer { try? group.syncShutdownGracefully() }
        let (host, port) = (lan.nodes[0].address, NodeCluster.port)
        let mallory = NodeIdentity(name: "mallory", key: ClusterKey.generate())
        for request in [try Message("incoming", Incoming(capsule: "intruder", mode: "cold", from: "mallory")),
                        try Message("join", ["name": "mallory"])] {
            let error = #expect(throws: (any Error).self, "\(request.type) with another cluster's key") {
                let link = try PeerLink.connect(node: host, port: port, as: mallory, group: group)
                defer { link.close() }
                _ = try link.request(request)
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains("credential"), "\(error.map { "\($0)" } ?? "")")
        }

        // A client that ignores a's proof and sends a forged one of its own, then its request.
        let forged = try PeerLink.connect(host: host, port: port, group: group)
        try forged.send(try Message("hello", Hello(version: 1, node: "mallory", nonce: Data((0..<32).map { _ in UInt8.random(in: 0...255) }))))
        let challenge = try forged.receive(expecting: "the challenge")
        #expect(challenge.type == "challenge")
        try? forged.send(try Message("proof", Proof(proof: Data(repeating: 7, count: 32))))
        try? forged.send(try Message("incoming", Incoming(capsule: "intruder", mode: "cold", from: "mallory")))
        // a hangs up: no welcome, no answer.
        let hangUp = #expect(throws: (any Error).self, "a answered a forged proof") { _ = try forged.receive(timeout: 5) }
        #expect(isHangUp(hangUp), "\(hangUp.map { "\($0)" } ?? "")")
        forged.close()
        #expect(waitUntil(5) { c.logText(0).contains("refused a connection") && c.logText(0).contains("mallory") },
                "node a's log: \(c.logText(0))")

        // Requests without any handshake: an image pushed at once, a join.
        for request in [try Message("incoming", Incoming(capsule: "intruder", mode: "cold", from: "mallory")),
                        try Message("join", ["name": "mallory", "address": "\(lan.clientAddress):7100"])] {
            let raw = try PeerLink.connect(host: host, port: port, group: group)
            try? raw.send(request)
            let e = #expect(throws: (any Error).self, "a answered a \(request.type) without a handshake") { _ = try raw.receive(timeout: 5) }
            #expect(isHangUp(e), "\(e.map { "\($0)" } ?? "")")
            raw.close()
        }

        // Nothing changed on a: its capsule runs on with the same processes, nothing arrived,
        // and neither c nor mallory became a member.
        #expect(c.lan.capsules(0).map(\.name) == ["count"])
        #expect(hostPIDs(c, 0, "count") == before)
        expectCounting(out)
        let members = c.nodes(0).map(\.name).sorted()
        #expect(members == ["a", "b"], "a's members: \(members)")

        // A garbage token is refused before anything is created.
        let bad = lan.f.path("garbage-node")
        let r = try lan.vos(2, ["node", "init", "--data", bad, "--token", "vos1-notatoken"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("token"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bad))
    }

    // MARK: 3. faults

    /// b fails in the middle of its restore: `vos migrate` fails naming b, the counter runs on
    /// a without a gap, b keeps nothing of it; a later migration to c works.
    @Test func destinationFailingToRestore() throws {
        let lan = try SimulatedLAN(nodes: 3)
        let c = try NodeCluster.start(lan, count: 3, env: [1: ["VOS_FAULT": "restore-after-memory"]])
        defer { c.teardown() }
        let out = try startCounter(c, on: 0, name: "count")
        let before = hostPIDs(c, 0, "count")

        let r = try c.migrate("count", from: 0, to: "b")
        c.lan.adoptCapsules(1)
        #expect(r.status != 0, "vos migrate succeeded: \(r.stdout)")
        #expect(r.stderr.contains("node b"), "\(r.stderr)")
        #expect(r.stderr.contains("keeps running"), "\(r.stderr)")
        #expect(r.stderr.contains("restore-after-memory"), "the cause is not in the error: \(r.stderr)")

        #expect(hostPIDs(c, 0, "count") == before, "a's capsule changed: \(c.lan.capsules(0).map(\.name))")
        #expect(c.lan.capsules(0).first?.state == "running")
        expectCounting(out)
        #expect(c.lan.capsules(1).isEmpty, "b kept: \(c.lan.capsules(1).map { "\($0.name) \($0.state)" })")
        let leftOnB = (try? FileManager.default.contentsOfDirectory(atPath: lan.nodes[1].stateDirectory + "/capsules")) ?? []
        #expect(leftOnB.isEmpty, "b's registry holds \(leftOnB)")

        // The capsule thawed on a is whole: it migrates to c.
        let again = try c.migrate("count", from: 0, to: "c")
        c.lan.adoptCapsules(2)
        #expect(again.status == 0, "migrate to c: \(again.stderr)")
        #expect(c.lan.capsules(2).first { $0.name == "count" }?.state == "running")
        expectCounting(out)
    }

    /// b's daemon is killed while 1 GiB streams to it: `vos migrate` fails with a clear error,
    /// memhog runs on at a with every page intact, and b holds nothing of it.
    @Test func destinationKilledDuringTheTransfer() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let r = try lan.vos(0, ["run", "--name", "hog", "--", Products.path("vos-test-memhog"), "1024"])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        lan.adoptCapsules(0)
        let log = lan.nodes[0].stateDirectory + "/capsules/hog/output.log"
        try #require(waitUntil(30) { lines(log).contains { $0.hasPrefix("ready ") } }, "memhog never got ready: \(lines(log).suffix(3))")
        let before = hostPIDs(c, 0, "hog")

        // vos migrate in the background, its output in files; b's daemon killed once it holds
        // 128 MiB of the image (its memfds), well before the 1 GiB is whole.
        let mout = lan.f.path("migrate.out"), merr = lan.f.path("migrate.err")
        let daemonB = try #require(c.daemons[1])
        let migrate = try lan.start(0, ["/bin/sh", "-c", "exec \"$@\" 2>\(merr)", "sh", Products.vos, "migrate", "hog",
                                        "--to", "b", "--data", c.data(0)], stdout: mout)
        try #require(waitUntil(60) { imageBytesHeld(by: daemonB) >= 128 << 20 || exitCode(migrate) != nil },
                     "no transfer began: \(lines(mout)) \(lines(merr)) \(c.logText(0))")
        let received = imageBytesHeld(by: daemonB)
        c.kill(1)
        print("destination killed with \(received >> 20) MiB of the image received")
        #expect(received < 1 << 30, "the transfer was over before the kill (\(received) bytes received)")
        #expect(waitUntil(60) { exitCode(migrate) != nil }, "vos migrate did not end")
        lan.adoptCapsules(1)
        let err = lines(merr).joined(separator: "\n")
        let code = exitCode(migrate)
        #expect(code != nil && code != 0 && code! < 128, "vos migrate ended with \(code.map(String.init) ?? "nothing"): \(lines(mout))")
        #expect(err.contains("node b") && err.contains("keeps running"), "vos migrate said: \(err)")
        print("destination killed: vos migrate said: \(err)")

        // Still on a, same processes, ticking, every page intact.
        #expect(hostPIDs(c, 0, "hog") == before)
        let hog = try #require(lan.capsules(0).first { $0.name == "hog" }?.processes.first { $0.pid == 2 }?.hostPID)
        let ticks = lines(log).filter { $0.hasPrefix("tick=") }.count
        #expect(waitUntil(10) { lines(log).filter { $0.hasPrefix("tick=") }.count >= ticks + 5 }, "memhog stopped ticking")
        kill(hog, SIGUSR1)
        #expect(waitUntil(30) { lines(log).contains { $0.hasPrefix("verify ") || $0.hasPrefix("CORRUPT") } })
        #expect(lines(log).contains("verify ok 262144"), "\(lines(log).filter { !$0.hasPrefix("tick=") })")
        let leftOnB = (try? FileManager.default.contentsOfDirectory(atPath: lan.nodes[1].stateDirectory + "/capsules")) ?? []
        #expect(leftOnB.isEmpty, "b's registry holds \(leftOnB)")
    }

    /// Unknown node and unknown capsule: clear errors, and the capsule stays where it was.
    @Test func unknownNodeOrCapsule() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let out = try startCounter(c, on: 0, name: "count")

        let noNode = try c.migrate("count", from: 0, to: "nowhere")
        #expect(noNode.status != 0)
        #expect(noNode.stderr.contains("no node named \"nowhere\"") && noNode.stderr.contains("b"), "\(noNode.stderr)")
        let noCapsule = try c.migrate("nothing", from: 0, to: "b")
        #expect(noCapsule.status != 0)
        #expect(noCapsule.stderr.contains("no capsule named \"nothing\""), "\(noCapsule.stderr)")
        #expect(c.lan.capsules(0).map(\.name) == ["count"])
        #expect(c.lan.capsules(1).isEmpty)
        expectCounting(out)

        // Without a daemon behind --data, vos migrate says so.
        let noDaemon = try lan.vos(0, ["migrate", "count", "--to", "b", "--data", lan.f.path("no-such-node")])
        #expect(noDaemon.status != 0)
        #expect(noDaemon.stderr.contains("no node daemon"), "\(noDaemon.stderr)")
    }
}

/// Bytes of the image parts a receiving daemon holds in memory now (its "vos-image:" memfds).
func imageBytesHeld(by pid: PID) -> UInt64 {
    let dir = "/proc/\(pid)/fd"
    var total: UInt64 = 0
    for fd in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(fd)"),
            target.hasPrefix("/memfd:vos-image:")
        else { continue }
        var st = stat()
        if stat("\(dir)/\(fd)", &st) == 0 { total += UInt64(st.st_blocks) * 512 }
    }
    return total
}

/// Whether an error says the peer hung up: an orderly close, a reset when it closed with our
/// unread frames still queued, or a send that found the connection gone (which one a client
/// sees depends on timing). Not a timeout: a peer that stays silent has not refused.
func isHangUp(_ error: (any Error)?) -> Bool {
    let text = "\(error.map { "\($0)" } ?? "")"
    return text.contains("closed") || text.contains("reset by peer") || text.contains("connection was lost")
}
