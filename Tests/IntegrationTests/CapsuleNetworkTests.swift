// Issue 4, item 5: capsules with their own network (`vos run --net`). A listening server, TCP
// connections in both directions and a UDP binding survive checkpoint and restore; an address in
// use is refused. Every test uses a bridge of its own (10.200.N.0/24, named for the test run) and
// removes it, its veths and its capsules whatever happens.
import Foundation
import Glibc
import Testing

/// One test's network: a bridge and subnet nobody else uses, and the capsules made on it.
final class NetworkFixture {
    let f: Fixture
    let bridge: String
    let subnet: String
    private var capsules: [String] = []

    init(_ name: String = #function) throws {
        f = try Fixture(name)
        let n = Int(getpid() % 200) + 20
        bridge = "vt\(getpid())"
        subnet = "10.200.\(n)"
    }

    func address(_ host: Int) -> String { "\(subnet).\(host)" }

    /// The host end of the veth of the capsule at `address(host)` (vOS names it for the address).
    func veth(_ host: Int) -> String {
        "vh"
            + String(
                format: "%08x",
                (10 << 24) | (200 << 16) | (UInt32(subnet.split(separator: ".")[2])! << 8) | UInt32(host))
    }
    var gateway: String { address(1) }

    func vos(_ args: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try f.vos(
            args,
            environment: [
                "VOS_STATE_DIR": f.path("state"), "VOS_BRIDGE": bridge, "VOS_BRIDGE_ADDRESS": gateway + "/24",
            ].merging(environment) { $1 })
    }

    /// `vos run --net` that must succeed; the capsule's processes are adopted for cleanup.
    func run(_ name: String, ip: Int?, _ command: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        capsules.append(name)
        let r = try vos(
            ["run", "--name", name, "--net"] + (ip.map { ["--ip", address($0)] } ?? []) + ["--"] + command)
        try #require(r.status == 0, "vos run: \(r.stderr)", sourceLocation: sourceLocation)
        try adoptProcesses(name)
    }

    func checkpoint(
        _ name: String, image: String, leaveRunning: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r = try vos(["checkpoint", name, "--image", f.path(image)] + (leaveRunning ? ["--leave-running"] : []))
        try #require(r.status == 0, "checkpoint: \(r.stderr)", sourceLocation: sourceLocation)
    }

    func restore(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try vos(["restore", f.path(image)])
        try #require(r.status == 0, "restore: \(r.stderr)", sourceLocation: sourceLocation)
        for c in capsules { try? adoptProcesses(c) }
    }

    func adoptProcesses(_ name: String) throws {
        struct Entry: Decodable {
            struct P: Decodable { var hostPID: Int32 }
            var name: String
            var processes: [P]
        }
        let r = try vos(["ps", "--json"])
        let entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
        for p in entries.first(where: { $0.name == name })?.processes ?? [] { f.adopt(p.hostPID) }
    }

    /// Stops and removes every capsule, then deletes the bridge and any veth left on it.
    func cleanup() {
        for c in capsules.reversed() {
            _ = try? vos(["stop", c])
            _ = try? vos(["rm", c])
        }
        f.cleanup()
        for n in 2..<255 where FileManager.default.fileExists(atPath: "/sys/class/net/\(veth(n))") {
            _ = shell("/usr/sbin/ip", ["link", "del", veth(n)])
        }
        if FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)") {
            _ = shell("/usr/sbin/ip", ["link", "del", bridge])
        }
    }

    /// Writes a Python script into the fixture and returns its path.
    func script(_ name: String, _ text: String) throws -> String {
        let p = f.path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}

/// Runs a program to completion (not vos): its status and output.
@discardableResult
func shell(_ executable: String, _ arguments: [String]) -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    guard (try? p.run()) != nil else {
        return CommandResult(status: -1, stdout: "", stderr: "cannot run \(executable)")
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CommandResult(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

/// The real python3 (not a shim script), so the capsule's process is python itself.
let python3: String = {
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] where access(candidate, X_OK) == 0 {
        return candidate
    }
    let r = shell("/usr/bin/env", ["python3", "-c", "import sys; print(sys.executable)"])
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}()

/// Echo client: connects to HOST PORT, sends "%08d\n" every 20 ms, checks every echo, prints
/// "ok N" per echo and "error ..." on the first failure.
let echoClient = """
    import socket, sys, time
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0
    try:
        while True:
            msg = b"%08d\\n" % n
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise Exception("connection closed")
                got += chunk
            if got != msg:
                raise Exception("echo %r for %r" % (got, msg))
            print("ok %d" % n, flush=True)
            n += 1
            time.sleep(0.02)
    except Exception as e:
        print("error after %d: %s" % (n, e), flush=True)

    """

/// Echo server: listens on HOST PORT, echoes one connection byte for byte.
let echoServer = """
    import socket, sys
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((sys.argv[1], int(sys.argv[2])))
    l.listen(4)
    c, _ = l.accept()
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)

    """

/// Bulk client: streams 4 MiB (8-byte big-endian counters) at about 1.6 MB/s on one thread and
/// checks the echo byte for byte on another; prints "got N" every 256 KiB, then "done N", or
/// "error ..." at the first wrong, missing or extra byte.
let bulkClient = """
    import socket, struct, sys, threading, time
    total = 4 << 20
    data = b"".join(struct.pack(">Q", k) for k in range(total // 8))
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
    def send():
        for i in range(0, total, 32768):
            s.sendall(data[i:i + 32768])
            time.sleep(0.02)
    threading.Thread(target=send, daemon=True).start()
    got = 0
    mark = 0
    try:
        while got < total:
            chunk = s.recv(65536)
            if not chunk:
                raise Exception("connection closed")
            if data[got:got + len(chunk)] != chunk:
                raise Exception("wrong bytes at offset %d" % got)
            got += len(chunk)
            if got >= mark + (256 << 10):
                mark = got
                print("got %d" % got, flush=True)
        print("done %d" % got, flush=True)
    except Exception as e:
        print("error after %d bytes: %s" % (got, e), flush=True)

    """

/// An echo server slower than the bulk client (about 1 MB/s): its receive queue fills up.
let slowEchoServer =
    "import time\n"
    + echoServer.replacingOccurrences(of: "c.sendall(d)", with: "c.sendall(d)\n    time.sleep(0.004)")

@Suite(.serialized)
struct CapsuleNetworkTests {
    /// "ok N" lines of an echo client's output, and whether they are 0, 1, 2... with no gap or repeat.
    func echoes(_ path: String) -> (count: Int, continuous: Bool, error: String?) {
        let l = lines(path)
        let values = l.compactMap { $0.hasPrefix("ok ") ? Int($0.dropFirst(3)) : nil }
        return (
            values.count, values.enumerated().allSatisfy { $0.offset == $0.element }, l.first { $0.hasPrefix("error") }
        )
    }

    /// Whether a process of the image has an established TCP connection saved for TCP_REPAIR.
    func imageHoldsConnection(_ image: String) -> Bool {
        let parts = (try? FileManager.default.contentsOfDirectory(atPath: image)) ?? []
        return parts.filter { $0.hasPrefix("process-") }.contains {
            ((try? String(contentsOfFile: image + "/" + $0, encoding: .utf8)) ?? "").contains("sendSequence")
        }
    }

    /// An HTTP GET from the host; the body, or nil when nothing answers within 3 s.
    func get(_ url: String) -> String? {
        let r = shell(
            python3,
            [
                "-c",
                "import urllib.request, sys; "
                    + "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())",
                url,
            ])
        return r.status == 0 ? r.stdout : nil
    }

    /// `python3 -m http.server` in a --net capsule answers from the host, then again after the
    /// capsule is checkpointed (and stopped) and restored with the same address.
    @Test func httpServerAnswersAfterRestore() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        let www = n.f.path("www")
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "hello from the capsule\n".write(toFile: www + "/index.txt", atomically: true, encoding: .utf8)
        try n.run("web", ip: 10, [python3, "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", www])
        let url = "http://\(n.address(10)):8000/index.txt"
        // http.server resolves its address's name before it listens: the capsule reaches no DNS
        // server (no route out of the bridge), so that takes the resolver's timeouts (~10 s here).
        #expect(waitUntil(60) { get(url) == "hello from the capsule\n" }, "no answer before the checkpoint")

        try n.checkpoint("web", image: "img")
        #expect(get(url) == nil, "the checkpointed capsule still answers")
        try n.restore("img")
        #expect(waitUntil(15) { get(url) == "hello from the capsule\n" }, "no answer after the restore")
        let ps = try n.vos(["ps"]).stdout
        #expect(ps.contains("ip \(n.address(10))"), "\(ps)")
    }

    /// A client on the host connected to an echo server in the capsule keeps its connection
    /// across checkpoint and restore: every message echoed once, in order, none lost.
    @Test func hostClientKeepsConnection() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        let server = try n.script("server.py", echoServer)
        try n.run("echo", ip: 20, [python3, server, "0.0.0.0", "7000"])
        let out = n.f.path("client.txt")
        let client = try n.script("client.py", echoClient)
        var started = false
        for _ in 0..<50 where !started {  // the server may not listen yet
            try? FileManager.default.removeItem(atPath: out)
            let pid = try n.f.start(python3, [client, n.address(20), "7000"], stdout: out)
            started = waitUntil(2) { echoes(out).count >= 5 || !n.f.isAlive(pid) } && echoes(out).count >= 5
            if !started {
                kill(pid, SIGKILL)
                n.f.reap(pid)
                usleep(100_000)
            }
        }
        try #require(started, "the client never got going: \(lines(out))")
        #expect(waitUntil { echoes(out).count >= 20 })

        // A checkpoint that leaves the capsule running hands the connection back out of repair mode.
        try n.checkpoint("echo", image: "img0", leaveRunning: true)
        let running = echoes(out).count
        #expect(
            waitUntil(15) { echoes(out).count >= running + 20 || echoes(out).error != nil }, "\(lines(out).suffix(3))")

        try expectConnectionSurvives(n, capsule: "echo", echoes: out)
    }

    /// Issue 10: vos killed (kill -9) after it cut the capsule's network and put its connection
    /// in repair mode: its guardian brings both back, and the client's exchange goes on.
    @Test func killedCheckpointGivesTheConnectionBack() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        let server = try n.script("server.py", echoServer)
        try n.run("echo", ip: 21, [python3, server, "0.0.0.0", "7000"])
        let out = n.f.path("client.txt")
        let client = try n.script("client.py", echoClient)
        try #require(waitUntil(10) { shell("/usr/bin/python3", ["-c", "import socket; socket.create_connection(('\(n.address(21))', 7001), 1)"]).stderr.contains("refused") },
                     "the capsule is not reachable")
        _ = try n.f.start(python3, [client, n.address(21), "7000"], stdout: out)
        try #require(waitUntil { echoes(out).count >= 20 }, "the client never got going: \(lines(out))")
        for leaveRunning in [true, false] {
            let r = try n.vos(["checkpoint", "echo", "--image", n.f.path("img-\(leaveRunning)")] + (leaveRunning ? ["--leave-running"] : []),
                              environment: ["VOS_DIE_AT": "checkpoint-sockets-dumped"])
            #expect(r.status == SIGKILL, "vos was not killed: \(r.status) \(r.stderr)")
            let count = echoes(out).count
            #expect(waitUntil(15) { echoes(out).count >= count + 20 || echoes(out).error != nil },
                    "the exchange stopped after the killed checkpoint: \(lines(out).suffix(3))")
            #expect(echoes(out).error == nil && echoes(out).continuous, "\(lines(out).suffix(3))")
            let state = try String(contentsOfFile: "/sys/class/net/\(n.veth(21))/operstate", encoding: .utf8)
            #expect(state.hasPrefix("up"), "the capsule's veth is \(state)")
        }
    }

    /// A stream in flight in both directions (queues full of unread, unsent and unacknowledged
    /// bytes at the checkpoint) arrives whole and in order after the restore.
    @Test func bulkStreamSurvives() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        // A server slower than the client: its receive queue holds unread bytes at the checkpoint.
        let server = try n.script("server.py", slowEchoServer)
        try n.run("bulk", ip: 70, [python3, server, "0.0.0.0", "7002"])
        let out = n.f.path("client.txt")
        let client = try n.script("bulk.py", bulkClient)
        func progress() -> (count: Int, done: Bool, error: String?) {
            let l = lines(out)
            return (
                l.filter { $0.hasPrefix("got ") }.count, l.contains { $0.hasPrefix("done ") },
                l.first { $0.hasPrefix("error") }
            )
        }
        var started = false
        for _ in 0..<50 where !started {  // the server may not listen yet
            try? FileManager.default.removeItem(atPath: out)
            let pid = try n.f.start(python3, [client, n.address(70), "7002"], stdout: out)
            started = waitUntil(3) { progress().count >= 2 || !n.f.isAlive(pid) } && progress().count >= 2
            if !started {
                kill(pid, SIGKILL)
                n.f.reap(pid)
                usleep(100_000)
            }
        }
        try #require(started, "the client never got going: \(lines(out))")
        try n.checkpoint("bulk", image: "img")
        #expect(imageHoldsConnection(n.f.path("img")), "the image holds no established TCP connection")
        usleep(300_000)
        try n.restore("img")
        #expect(waitUntil(60) { progress().done || progress().error != nil }, "\(lines(out).suffix(3))")
        #expect(progress().error == nil, "\(progress().error ?? "")")
        #expect(progress().done)
    }

    /// The same stream started by a client in the capsule towards a slow server on the host: the
    /// capsule's send queue holds bytes never sent and bytes not yet acknowledged at the checkpoint.
    @Test func bulkStreamFromCapsuleSurvives() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        try n.run("idle", ip: 41, ["/bin/sleep", "1000"])  // makes the bridge
        let server = try n.script("server.py", slowEchoServer)
        try n.f.start(python3, [server, n.gateway, "7003"])
        let out = n.f.path("client.txt")
        let client = try n.script("bulk.py", "import time; time.sleep(0.5)\n" + bulkClient)
        try n.run("bulk", ip: 71, ["/bin/sh", "-c", "exec \(python3) \(client) \(n.gateway) 7003 > \(out)"])
        func progress() -> (count: Int, done: Bool, error: String?) {
            let l = lines(out)
            return (
                l.filter { $0.hasPrefix("got ") }.count, l.contains { $0.hasPrefix("done ") },
                l.first { $0.hasPrefix("error") }
            )
        }
        #expect(waitUntil(15) { progress().count >= 2 || progress().error != nil }, "\(lines(out))")
        try n.checkpoint("bulk", image: "img")
        #expect(imageHoldsConnection(n.f.path("img")), "the image holds no established TCP connection")
        usleep(300_000)
        try n.restore("img")
        #expect(waitUntil(60) { progress().done || progress().error != nil }, "\(lines(out).suffix(3))")
        #expect(progress().error == nil, "\(progress().error ?? "")")
        #expect(progress().done)
    }

    /// The reverse: a client in the capsule connected to a server on the host (the bridge's
    /// address) keeps its connection across checkpoint and restore.
    @Test func capsuleClientKeepsConnection() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        // The bridge exists once a capsule ran: start an idle one first, then the host server.
        try n.run("idle", ip: 40, ["/bin/sleep", "1000"])
        let server = try n.script("server.py", echoServer)
        try n.f.start(python3, [server, n.gateway, "7001"])
        let out = n.f.path("client.txt")
        let client = try n.script("client.py", "import time; time.sleep(0.5)\n" + echoClient)
        try n.run("caller", ip: 30, ["/bin/sh", "-c", "exec \(python3) \(client) \(n.gateway) 7001 > \(out)"])
        #expect(waitUntil(15) { echoes(out).count >= 20 || echoes(out).error != nil }, "\(lines(out))")
        try #require(echoes(out).error == nil, "\(echoes(out).error ?? "")")

        try expectConnectionSurvives(n, capsule: "caller", echoes: out)
    }

    /// Stops the capsule with a checkpoint whose image holds the established connection,
    /// restores it after half a second, and expects the client's echo sequence to go on: 30 more
    /// echoes, no error, no gap or repeat.
    func expectConnectionSurvives(_ n: NetworkFixture, capsule: String, echoes out: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        try n.checkpoint(capsule, image: "img")
        let before = echoes(out).count
        #expect(imageHoldsConnection(n.f.path("img")), "the image holds no established TCP connection", sourceLocation: sourceLocation)
        usleep(500_000)
        try n.restore("img")
        #expect(waitUntil(30) { echoes(out).count >= before + 30 || echoes(out).error != nil }, sourceLocation: sourceLocation)
        let e = echoes(out)
        #expect(e.error == nil, "\(e.error ?? "")", sourceLocation: sourceLocation)
        #expect(
            e.continuous && e.count >= before + 30, "\(e.count) echoes (\(before) before), continuous: \(e.continuous)",
            sourceLocation: sourceLocation)
    }

    /// A UDP socket keeps its binding: datagrams to the capsule's address and port are answered
    /// before and after checkpoint and restore.
    @Test func udpBindingKept() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        let server = try n.script(
            "udp.py",
            """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 9999))
            while True:
                d, a = s.recvfrom(2048)
                s.sendto(b"echo:" + d, a)

            """)
        try n.run("udp", ip: 50, [python3, server])
        func ask(_ text: String) -> String? {
            let r = shell(
                python3,
                [
                    "-c",
                    """
                    import socket, sys
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.settimeout(0.5)
                    s.sendto(sys.argv[1].encode(), (sys.argv[2], 9999))
                    sys.stdout.write(s.recvfrom(2048)[0].decode())
                    """, text, n.address(50),
                ])
            return r.status == 0 ? r.stdout : nil
        }
        #expect(waitUntil(15) { ask("before") == "echo:before" })
        try n.checkpoint("udp", image: "img")
        try n.restore("img")
        #expect(waitUntil(15) { ask("after") == "echo:after" })
    }

    /// An address another running capsule has is refused with a clear error, by `vos run --ip`
    /// and by a restore beside the still-running original.
    @Test func addressInUse() throws {
        let n = try NetworkFixture()
        defer { n.cleanup() }
        try n.run("first", ip: 60, ["/bin/sleep", "1000"])
        let r = try n.vos(["run", "--name", "second", "--net", "--ip", n.address(60), "--", "/bin/sleep", "1000"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("address \(n.address(60)) is in use by the running capsule \"first\""), "\(r.stderr)")
        #expect(try n.vos(["ps"]).stdout.contains("second") == false)

        try n.checkpoint("first", image: "img", leaveRunning: true)
        let rs = try n.vos(["restore", n.f.path("img"), "--name", "copy"])
        #expect(rs.status != 0)
        #expect(
            rs.stderr.contains("its address \(n.address(60)) is in use by the running capsule \"first\""),
            "\(rs.stderr)")

        let bad = try n.vos(["run", "--name", "third", "--net", "--ip", "10.201.0.5/24", "--", "/bin/sleep", "1000"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("is not a host address of the bridge"), "\(bad.stderr)")

        // vos stop takes the capsule's veth away.
        #expect(FileManager.default.fileExists(atPath: "/sys/class/net/\(n.veth(60))"))
        #expect(try n.vos(["stop", "first"]).status == 0)
        #expect(waitUntil(5) { !FileManager.default.fileExists(atPath: "/sys/class/net/\(n.veth(60))") })
    }
}
