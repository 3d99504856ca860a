// Simulated machines on one LAN, all on this host, for tests that move capsules between nodes.
// Everything lives in network namespaces made for the test run (nothing is created in the
// host's own network namespace); a node is a network namespace, its own vos state directory and
// its vos bridge:
//
//   client ns: eth0 .250 ── cl ┐
//   lan ns:                  br0 ── nI ── node I ns: up0 ── vos0 (.241+I, the node's address) ── capsules
//
// Capsules on a node's vos0 sit directly on the LAN (same subnet, same L2), like machines
// plugged into one switch, so a capsule keeping its IP and MAC on another node stays reachable
// once the LAN's bridge has learnt its new port. Namespaces made with `ip netns add` share the
// host's mount and PID namespaces: one file system (images move by path), one PID space.
import Foundation
import Glibc
import Testing
import VOSLinux

final class SimulatedLAN {
    /// One simulated machine.
    struct Node {
        /// Its network namespace (/run/netns/NAME).
        let namespace: String
        /// Its LAN address, carried by its vos bridge.
        let address: String
        /// Its own vos registry ($VOS_STATE_DIR).
        let stateDirectory: String
        /// Its port on the LAN bridge (in the lan namespace): where the LAN's FDB puts its capsules' MACs.
        let lanPort: String
    }

    /// Processes, scratch directory (images, scripts, outputs) and their cleanup.
    let f: Fixture
    /// "10.A.B": every address of this LAN is subnet + ".host", prefix /24.
    let subnet: String
    let lanNamespace: String
    let clientNamespace: String
    let nodes: [Node]
    /// The vos bridge's name inside every node namespace.
    let bridge = "vos0"
    private var made: [String] = []

    /// The client's address; node I has .241+I, so `vos run --net` without --ip starts at .1.
    var clientAddress: String { address(250) }
    func address(_ host: Int) -> String { "\(subnet).\(host)" }

    /// Builds `count` nodes (at most 9) and a client; anything half-built is torn down on failure.
    init(nodes count: Int, _ name: String = #function) throws {
        precondition((1...9).contains(count))
        let f = try Fixture(name)
        let pid = Int(getpid())
        let tag = "vl\(pid)-\(UInt16.random(in: 0...UInt16.max))"
        let subnet = "10.\(210 + pid % 40).\(pid / 40 % 250)"
        self.f = f
        self.subnet = subnet
        lanNamespace = tag + "-lan"
        clientNamespace = tag + "-client"
        nodes = (0..<count).map { i in
            Node(
                namespace: "\(tag)-node\(i)", address: "\(subnet).\(241 + i)",
                stateDirectory: f.path("node\(i)/state"), lanPort: "n\(i)")
        }
        do { try build() } catch {
            teardown()
            throw error
        }
    }

    private func build() throws {
        for ns in [lanNamespace, clientNamespace] + nodes.map(\.namespace) {
            try ip(["netns", "add", ns])
            made.append(ns)
            // Before any interface exists: no DAD or MLD frames announcing MACs by accident (probe 13).
            try inNamespace(ns, "/bin/sh", ["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                + "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
        }
        // No STP, no forward delay: a port forwards as soon as it is up (probe 13).
        let bridgeOptions = ["type", "bridge", "stp_state", "0", "forward_delay", "0"]
        try ip(["-n", lanNamespace, "link", "add", "br0"] + bridgeOptions)
        try ip(["-n", lanNamespace, "link", "set", "br0", "up"])
        // Every veth is made inside the lan namespace, its peer sent straight to the other one.
        try ip(["-n", lanNamespace, "link", "add", "cl", "type", "veth", "peer", "name", "eth0", "netns", clientNamespace])
        try ip(["-n", lanNamespace, "link", "set", "cl", "master", "br0", "up"])
        try ip(["-n", clientNamespace, "-batch", "-"], input: """
            link set lo up
            addr add \(clientAddress)/24 dev eth0
            link set eth0 up

            """)
        for node in nodes {
            try ip(["-n", lanNamespace, "link", "add", node.lanPort, "type", "veth", "peer", "name", "up0", "netns", node.namespace])
            try ip(["-n", lanNamespace, "link", "set", node.lanPort, "master", "br0", "up"])
            try ip(["-n", node.namespace, "link", "add", bridge] + bridgeOptions)
            try ip(["-n", node.namespace, "-batch", "-"], input: """
                link set lo up
                link set up0 master \(bridge) up
                addr add \(node.address)/24 dev \(bridge)
                link set \(bridge) up

                """)
            try FileManager.default.createDirectory(atPath: node.stateDirectory, withIntermediateDirectories: true)
        }
    }

    /// What vos needs to act as node `i`: its registry and its bridge with the node's LAN address.
    func environment(_ i: Int) -> [String: String] {
        ["VOS_STATE_DIR": nodes[i].stateDirectory, "VOS_BRIDGE": bridge, "VOS_BRIDGE_ADDRESS": nodes[i].address + "/24"]
    }

    /// Runs a command to completion inside node `i` (its network namespace and environment).
    @discardableResult
    func run(_ i: Int, _ command: [String], env: [String: String] = [:]) throws -> CommandResult {
        try inNamespace(nodes[i].namespace, command[0], Array(command.dropFirst()), env: environment(i).merging(env) { $1 })
    }

    /// vos (the one the tests built) on node `i`.
    @discardableResult
    func vos(_ i: Int, _ args: [String], env: [String: String] = [:]) throws -> CommandResult {
        try run(i, [Products.vos] + args, env: env)
    }

    /// Starts a long-running process inside node `i` (a node daemon, say), stdout into `stdout`
    /// (a fixture file by default); it is killed by PID at teardown.
    @discardableResult
    func start(_ i: Int, _ command: [String], env: [String: String] = [:], stdout: String? = nil) throws -> PID {
        try f.start(nsenter, ["--net=/run/netns/\(nodes[i].namespace)", "--"] + command,
                    environment: environment(i).merging(env) { $1 }, stdout: stdout)
    }

    /// Runs a command to completion in the client namespace.
    @discardableResult
    func runClient(_ command: [String]) throws -> CommandResult {
        try inNamespace(clientNamespace, command[0], Array(command.dropFirst()))
    }

    /// Starts a long-running process in the client namespace; killed by PID at teardown.
    @discardableResult
    func startClient(_ command: [String], stdout: String? = nil) throws -> PID {
        try f.start(nsenter, ["--net=/run/netns/\(clientNamespace)", "--"] + command, stdout: stdout)
    }

    /// The LAN bridge's port (a node's `lanPort`, or "cl") its FDB holds for `mac`, if any.
    func lanPort(of mac: String) -> String? {
        let bridgeTool = FileManager.default.fileExists(atPath: "/usr/sbin/bridge") ? "/usr/sbin/bridge" : "/sbin/bridge"
        let out = (try? execute(bridgeTool, ["-n", lanNamespace, "fdb", "show", "br", "br0"]))?.stdout ?? ""
        let line = out.split(separator: "\n").first { $0.lowercased().hasPrefix(mac.lowercased() + " ") }
        guard let words = line?.split(separator: " "), let dev = words.firstIndex(of: "dev") else { return nil }
        return dev + 1 < words.count ? String(words[dev + 1]) : nil
    }

    /// Remembers the processes of every capsule now running on node `i` for cleanup: once
    /// checkpointed or stopped they leave `vos ps`, but (re-parented to the test process, a
    /// subreaper) they still have to be reaped.
    func adoptCapsules(_ i: Int) {
        for e in capsules(i) { e.processes.forEach { f.adopt($0.hostPID) } }
    }

    /// `vos ps --json` of node `i` (nothing when it fails).
    func capsules(_ i: Int) -> [CapsuleEntry] {
        guard let r = try? vos(i, ["ps", "--json"]) else { return [] }
        return (try? JSONDecoder().decode([CapsuleEntry].self, from: Data(r.stdout.utf8))) ?? []
    }

    struct CapsuleEntry: Decodable {
        struct Process: Decodable { var pid: Int32; var hostPID: Int32 }
        var name: String
        var state: String
        var processes: [Process]
        var ip: String?
    }

    /// Stops every capsule of every node, kills every process started here (by PID), deletes the
    /// namespaces (their veths and bridges go with them) and the scratch directory. Idempotent.
    func teardown() {
        for (i, node) in nodes.enumerated() where FileManager.default.fileExists(atPath: node.stateDirectory) {
            let entries = capsules(i)
            entries.forEach { $0.processes.forEach { f.adopt($0.hostPID) } }
            for e in entries {
                _ = try? vos(i, ["stop", e.name])
                _ = try? vos(i, ["rm", e.name])
            }
        }
        f.cleanup()
        for ns in made.reversed() { _ = try? ip(["netns", "del", ns]) }
        made = []
    }

    deinit { teardown() }

    // MARK: commands

    private let nsenter = FileManager.default.fileExists(atPath: "/usr/bin/nsenter") ? "/usr/bin/nsenter" : "/bin/nsenter"
    private let ipPath = FileManager.default.fileExists(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"

    /// nsenter --net only: the mount and PID namespaces stay the host's (`ip netns exec` would
    /// also unshare the mount namespace, which a capsule started there would keep).
    private func inNamespace(_ ns: String, _ exe: String, _ args: [String], env: [String: String] = [:]) throws
        -> CommandResult
    {
        try execute(nsenter, ["--net=/run/netns/\(ns)", "--", exe] + args, env: env)
    }

    /// Unplugs node i from the LAN (its port on the LAN bridge deleted): the network between it
    /// and every other machine is cut.
    func cutLink(_ i: Int) throws { try ip(["-n", lanNamespace, "link", "del", nodes[i].lanPort]) }

    @discardableResult
    private func ip(_ args: [String], input: String? = nil) throws -> String {
        let r = try execute(ipPath, args, input: input)
        guard r.status == 0 else {
            throw SimulatedLANError("`ip \(args.joined(separator: " "))` failed: \(r.stderr)")
        }
        return r.stdout
    }

    private func execute(_ exe: String, _ args: [String], env: [String: String] = [:], input: String? = nil) throws
        -> CommandResult
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input == nil ? FileHandle(forReadingAtPath: "/dev/null") : inp
        try p.run()
        if let input {
            inp.fileHandleForWriting.write(Data(input.utf8))
            try? inp.fileHandleForWriting.close()
        }
        // stderr read meanwhile: a chatty command must not fill one pipe while we wait on the other.
        nonisolated(unsafe) var e = Data()
        let stderrRead = DispatchGroup()
        DispatchQueue.global().async(group: stderrRead) { e = err.fileHandleForReading.readDataToEndOfFile() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        stderrRead.wait()
        p.waitUntilExit()
        return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: e, as: UTF8.self))
    }
}

struct SimulatedLANError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
