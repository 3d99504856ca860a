// A cluster of node daemons on a `SimulatedLAN`: node I's daemon runs in node I's network
// namespace (foreground, killed by PID at teardown), named "a", "b", ..., listening on its LAN
// address, with its data directory in the fixture. Its registry (DATA/state) is the LAN's
// `stateDirectory` of that node, so `lan.vos(i, ...)`, `lan.capsules(i)` and the LAN's teardown
// act on the daemon's own capsules.
import Foundation
import Glibc
import Testing
import VOSLinux

final class NodeCluster {
    let lan: SimulatedLAN
    static let port = 7100
    /// Daemons running now, by node index.
    private(set) var daemons: [Int: PID] = [:]

    init(_ lan: SimulatedLAN) { self.lan = lan }

    static func name(_ i: Int) -> String { String(UnicodeScalar(UInt8(97 + i))) }
    func name(_ i: Int) -> String { Self.name(i) }
    /// ADDR:PORT node i listens on.
    func listen(_ i: Int) -> String { "\(lan.nodes[i].address):\(Self.port)" }
    /// Node i's data directory: its registry is the LAN's state directory of node i.
    func data(_ i: Int) -> String { (lan.nodes[i].stateDirectory as NSString).deletingLastPathComponent }
    /// The daemon's stderr (its log).
    func log(_ i: Int) -> String { lan.f.path("daemon-\(name(i)).log") }
    func logText(_ i: Int) -> String { (try? String(contentsOfFile: log(i), encoding: .utf8)) ?? "" }

    /// `vos node init --data` for node i: with `token`, or a new cluster (returns its join token).
    @discardableResult
    func initialise(_ i: Int, token: String? = nil) throws -> String {
        // The LAN made the (empty) state directory; `node init` wants to make it itself.
        try? FileManager.default.removeItem(atPath: lan.nodes[i].stateDirectory)
        let r = try lan.vos(i, ["node", "init", "--data", data(i)] + (token.map { ["--token", $0] } ?? ["--join-token"]))
        try #require(r.status == 0, "vos node init on node \(i): \(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts node i's daemon in the foreground (stderr into `log(i)`), joining through `join`.
    /// `mountSetup`: shell commands run first in a mount namespace of the daemon's own (a
    /// machine whose files differ: a bind mount over one of them).
    @discardableResult
    func start(_ i: Int, join: Int? = nil, env: [String: String] = [:], arguments: [String] = [], mountSetup: String? = nil) throws -> PID {
        var args = [Products.vos, "node", "start", "--data", data(i), "--name", name(i), "--listen", listen(i)] + arguments
        if let join { args += ["--join", listen(join)] }
        // exec keeps the PID: the one we are given is the daemon's.
        let shell = ["/bin/sh", "-c", (mountSetup.map { "\($0) && " } ?? "") + "exec \"$@\" 2>>\(log(i))", "sh"]
        let wrapper = mountSetup == nil ? [] : ["/usr/bin/unshare", "--mount", "--propagation", "private"]
        let pid = try lan.start(i, wrapper + shell + args, env: env, stdout: log(i))
        daemons[i] = pid
        return pid
    }

    /// A cluster of `count` nodes: node 0 makes the credential, the others join through it.
    /// Returns once every daemon lists every node as alive. `env[i]` goes to node i's daemon,
    /// `arguments` to every `vos node start`.
    static func start(_ lan: SimulatedLAN, count: Int, env: [Int: [String: String]] = [:], arguments: [String] = [],
                      mountSetup: [Int: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> NodeCluster {
        let c = NodeCluster(lan)
        let token = try c.initialise(0)
        for i in 1..<count { try c.initialise(i, token: token) }
        try c.start(0, env: env[0] ?? [:], arguments: arguments, mountSetup: mountSetup[0])
        try #require(waitUntil(10) { FileManager.default.fileExists(atPath: c.data(0) + "/control.sock") },
                     "node a did not start: \(c.logText(0))", sourceLocation: sourceLocation)
        for i in 1..<count { try c.start(i, join: 0, env: env[i] ?? [:], arguments: arguments, mountSetup: mountSetup[i]) }
        let all = Set((0..<count).map(name))
        for i in 0..<count {
            try #require(
                waitUntil(15) {
                    let alive = Set(c.nodes(i).filter { $0.state == "alive" }.map(\.name))
                    return alive == all
                }, "node \(c.name(i)) does not see every node alive: \(c.nodes(i).map { "\($0.name) \($0.state ?? "?")" }); log: \(c.logText(i))",
                sourceLocation: sourceLocation)
        }
        return c
    }

    struct Node: Decodable {
        var name: String
        var address: String
        var state: String?
        var capsules: [String]
    }

    /// `vos nodes --json` on node i (nothing when it fails).
    func nodes(_ i: Int) -> [Node] {
        guard let r = try? lan.vos(i, ["nodes", "--data", data(i), "--json"]), r.status == 0 else { return [] }
        return (try? JSONDecoder().decode([Node].self, from: Data(r.stdout.utf8))) ?? []
    }

    /// `vos migrate NAME --to NODE` through node i.
    func migrate(_ name: String, from i: Int, to node: String, json: Bool = false) throws -> CommandResult {
        try lan.vos(i, ["migrate", name, "--to", node, "--data", data(i)] + (json ? ["--json"] : []))
    }

    /// SIGKILL of node i's daemon; returns once it is dead (left a zombie for the fixture's
    /// cleanup to reap, so its PID cannot be reused meanwhile).
    func kill(_ i: Int) {
        guard let pid = daemons.removeValue(forKey: i) else { return }
        Glibc.kill(pid, SIGKILL)
        _ = waitUntil(10) { !lan.f.isAlive(pid) }
    }

    /// Stops every daemon (by PID), then the LAN (every capsule of every node, the namespaces).
    func teardown() {
        for i in daemons.keys.sorted() { kill(i) }
        lan.teardown()
    }
}

/// The exit code of a child that has ended (128+signal when killed), nil while it runs. The
/// process is left a zombie for the fixture's cleanup (its PID cannot be reused meanwhile).
func exitCode(_ pid: PID) -> Int32? {
    var info = siginfo_t()
    guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid else { return nil }
    let status = info._sifields._sigchld.si_status
    return info.si_code == 1 /* CLD_EXITED */ ? status : 128 + status
}
