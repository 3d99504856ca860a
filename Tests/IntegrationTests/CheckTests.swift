// Issue 9: `vos check PID|NAME` says, without stopping anything, whether a process or capsule
// can be checkpointed and moved, listing every blocker with the resource it concerns.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CheckTests {
    /// A python3 server on loopback outside what is checked, and `client` connected to it.
    let loopbackClient = """
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        print("connected", flush=True)
        while True:
            time.sleep(1)

        """
    let loopbackServer = """
        import socket, sys, time
        l = socket.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("127.0.0.1", 0))
        l.listen(1)
        print(l.getsockname()[1], flush=True)
        c, _ = l.accept()
        while True:
            time.sleep(1)

        """

    @Test func blockersAreListedWithTheirResource() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        // An fd kind vOS does not support (inotify).
        let unsupported = try f.start(Products.path("vos-test-unsupported"), [f.path("u.txt")])
        try #require(waitUntil { lines(f.path("u.txt")).count >= 3 }, "vos-test-unsupported does not run")
        let a = try f.vos(["check", String(unsupported)])
        #expect(a.status == 2, "\(a.stdout) \(a.stderr)")
        #expect(a.stdout.contains("cannot be checkpointed") && a.stdout.contains("pid \(unsupported), fd ")
                && a.stdout.contains("inotify") && a.stdout.contains("blocks checkpoint"), "\(a.stdout)")
        #expect(TracerPID(unsupported) == 0)
        let before = lines(f.path("u.txt")).count
        #expect(waitUntil { lines(f.path("u.txt")).count > before + 5 }, "the checked process stopped")

        // A TCP connection to a peer outside what is checked.
        try loopbackServer.write(toFile: f.path("server.py"), atomically: true, encoding: .utf8)
        try loopbackClient.write(toFile: f.path("client.py"), atomically: true, encoding: .utf8)
        _ = try f.start("/usr/bin/python3", [f.path("server.py")], stdout: f.path("server.txt"))
        try #require(waitUntil { !(lines(f.path("server.txt")).first ?? "").isEmpty }, "the server does not listen")
        let port = lines(f.path("server.txt"))[0]
        let client = try f.start("/usr/bin/python3", [f.path("client.py"), port], stdout: f.path("client.txt"))
        try #require(waitUntil { lines(f.path("client.txt")).contains("connected") }, "the client does not connect")
        let b = try f.vos(["check", String(client), "--json"])
        #expect(b.status == 2, "\(b.stdout) \(b.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [String: Any]
        let blockers = result?["blockers"] as? [[String: Any]] ?? []
        #expect(result?["ready"] as? Bool == true && result?["movable"] as? Bool == false, "\(b.stdout)")
        #expect(blockers.contains { ($0["problem"] as? String ?? "").contains("→ 127.0.0.1:\(port)") && $0["scope"] as? String == "move" },
                "\(b.stdout)")
    }

    @Test func plainCapsuleIsReady() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let run = try f.vos(["run", "--name", "plain", "--", Products.path("vos-test-counter"), f.path("c.txt")])
        try #require(run.status == 0, "vos run: \(run.stderr)")
        try #require(waitUntil { lines(f.path("c.txt")).count >= 3 }, "the capsule does not count")
        let r = try f.vos(["check", "plain"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("plain: ready"), "\(r.stdout)")
        let missing = try f.vos(["check", "no-such-capsule"])
        #expect(missing.status != 0 && missing.stderr.contains("no capsule named \"no-such-capsule\""), "\(missing.stderr)")
        #expect(try f.vos(["stop", "plain"]).status == 0)
    }
}
