// Issue 10, item 4: a --net capsule with a TCP client on the host attached, checkpointed and
// restored again and again (quick: 5 cycles; VOS_SOAK=1: 50). The client's one connection lives
// through every cycle with its echo sequence continuous, the capsule's processes keep the fd
// table and memory map they had, and nothing piles up: no other capsule, veth, process or zombie.
import Foundation
import Glibc
import Testing
import VOSLinux

extension SoakTests {
    @Test func capsuleWithTCPClientCycles() throws {
        let cycles = Soak.count(quick: 5, soak: 50)
        let n = try NetworkFixture()
        defer { n.cleanup() }
        let server = try n.script("server.py", echoServer)
        try n.run("echo", ip: 20, [python3, server, "0.0.0.0", "7000"])
        let out = n.f.path("client.txt")
        let clientScript = try n.script("client.py", echoClient)
        func echoes() -> (count: Int, continuous: Bool, error: String?) { CapsuleNetworkTests().echoes(out) }
        var client: PID = 0
        for _ in 0..<50 where echoes().count < 5 {  // the server may not listen yet
            try? FileManager.default.removeItem(atPath: out)
            client = try n.f.start(python3, [clientScript, n.address(20), "7000"], stdout: out)
            if !(waitUntil(2) { echoes().count >= 5 || !n.f.isAlive(client) } && echoes().count >= 5) {
                kill(client, SIGKILL)
                n.f.reap(client)
                usleep(100_000)
            }
        }
        try #require(echoes().count >= 5, "the client never got going: \(lines(out))")

        let original = try hostPIDs(n.f, "echo")
        let originalFootprint = try original.mapValues(footprint)
        let ports = bridgePorts(n.bridge)
        let zombiesBefore = zombies(childrenOf: [getpid()])
        let began = Date()
        var pids = original
        for cycle in 0..<cycles {
            try n.checkpoint("echo", image: "img")
            // The killed processes were re-parented to the test process (a subreaper), as to init
            // for a user: reaping them is ours.
            for p in pids.values { n.f.reap(p) }
            try n.restore("img")
            let before = echoes().count
            try #require(waitUntil(30) { echoes().count >= before + 10 || echoes().error != nil },
                         "cycle \(cycle): the client gets no more echoes: \(lines(out).suffix(3))")
            try #require(echoes().error == nil, "cycle \(cycle): \(echoes().error ?? "")")
            pids = try hostPIDs(n.f, "echo")
            try #require(Set(pids.keys) == Set(original.keys), "cycle \(cycle): the capsule's PIDs are \(pids.keys.sorted()), were \(original.keys.sorted())")
            for (inside, host) in pids {
                let now = try footprint(host), was = originalFootprint[inside]!
                try #require(now.fds == was.fds, "cycle \(cycle), PID \(inside): the fd table changed: \(difference(was.fds, now.fds))")
                try #require(now.maps == was.maps, "cycle \(cycle), PID \(inside): the memory map changed: \(difference(was.maps, now.maps))")
            }
            try FileManager.default.removeItem(atPath: n.f.path("img"))
        }
        let seconds = Date().timeIntervalSince(began)

        let e = echoes()
        #expect(e.continuous && e.error == nil && n.f.isAlive(client), "echoes continuous: \(e.continuous), error: \(e.error ?? "none")")
        let ps = try n.vos(["ps", "--json"]).stdout
        #expect((try? JSONSerialization.jsonObject(with: Data(ps.utf8)) as? [Any])?.count == 1, "vos ps lists: \(ps)")
        #expect(bridgePorts(n.bridge) == ports, "the bridge's ports were \(ports), are \(bridgePorts(n.bridge))")
        let expected = Set(pids.values).union([client])
        #expect(processesMarked(n.f.directory) == expected,
                "processes left: \(describe(processesMarked(n.f.directory).subtracting(expected)))")
        let left = lastingZombies(childrenOf: Set(pids.values).union([getpid()])).subtracting(zombiesBefore)
        #expect(left.isEmpty, "zombies left: \(describe(left))")
        print("soak: \(cycles) cycles of a --net capsule (\(pids.count) processes) with a TCP client attached in "
            + String(format: "%.1f s (%.0f ms per cycle), %d echoes, one connection", seconds, seconds * 1000 / Double(cycles), e.count))
    }
}

/// Interfaces plugged into a bridge of the host.
func bridgePorts(_ bridge: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(bridge)/brif")) ?? []).sorted()
}
