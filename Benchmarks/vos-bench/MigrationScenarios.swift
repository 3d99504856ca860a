// Migration between two node daemons over a simulated LAN built as demo.sh builds it (network
// namespaces: one "lan" with a bridge, two nodes each with a vos0 bridge holding the uplink and
// the node's address), with the veth TCP ceiling between the two node namespaces measured in the
// same run (this binary's hidden `tcp-endpoint` subcommand on each side). Live (vos-test-dirtier
// rewriting 1000 pages every 10 ms), lazy and cold (vos-test-memhog), each capsule verifying its
// whole memory on the destination afterwards. Namespaces, daemons and capsules are removed at
// the end, on failure and on SIGINT/SIGTERM.
import ArgumentParser
import Foundation
import Glibc
import VOSCapsule
import VOSLinux

struct MigrationRound: Codable {
    var round: Int
    var pages: UInt64
    var bytes: UInt64
    var milliseconds: Double
}

/// `vos migrate --json` (VOSMigration.MigrationReport; vos-bench does not link VOSMigration).
struct MigrationReportJSON: Codable {
    var capsule: String
    var from: String
    var to: String
    var mode: String
    var bytesSent: UInt64
    var downtimeMilliseconds: Double
    var totalMilliseconds: Double
    var transferGigabytesPerSecond: Double
    var destinationPID: Int32
    var rounds: [MigrationRound]
}

struct MigrationRun: Codable {
    var mode: String
    var program: String
    var report: MigrationReportJSON
    /// Wall time of the `vos migrate` command (process start and exit included).
    var commandMilliseconds: Double
    /// The program's answer to SIGUSR1 on the destination ("verify ok N" or "CORRUPT ...").
    var verification: String
    var verified: Bool { verification.hasPrefix("verify ok") }
}

struct MigrationResult: Codable {
    var sizeMiB: Int
    /// TCP between the two node namespaces (veth → bridge → veth → bridge → veth), GB/s per run.
    var vethTCPGigabytesPerSecond: Sample
    var vethTCPBytesPerRun: Int
    var live: MigrationRun
    var lazy: MigrationRun
    var cold: MigrationRun

    /// Best of the ceiling runs: what the link can do when nothing else gets in the way.
    var ceiling: Double { vethTCPGigabytesPerSecond.max }

    func goals() -> [Goal] {
        [
            Goal(name: "live migration \(sizeMiB) MiB (1000 pages / 10 ms), downtime ms",
                 measured: live.report.downtimeMilliseconds, target: "< 30", met: live.report.downtimeMilliseconds < 30),
            Goal(name: "lazy migration \(sizeMiB) MiB, freeze → running on destination, ms",
                 measured: lazy.report.downtimeMilliseconds, target: "< 10", met: lazy.report.downtimeMilliseconds < 10),
        ] + [live, lazy, cold].map { r in
            Goal(name: "\(r.mode) migration: memory verified on the destination", measured: r.verified ? 1 : 0,
                 target: "= 1", met: r.verified)
        }
    }

    func tableLines() -> [String] {
        var out: [String] = []
        out.append("")
        out.append(
            "Migration node a → node b over the simulated LAN (netns + veth + bridges, MTU 1500), "
                + "\(sizeMiB) MiB; veth TCP ceiling a → b: \(fmt(vethTCPGigabytesPerSecond)) GB/s "
                + "(\(vethTCPGigabytesPerSecond.runs) runs of \(bytes(UInt64(vethTCPBytesPerRun))), best "
                + String(format: "%.2f", ceiling) + ")")
        let rows: [[String]] =
            [["mode", "program", "total ms", "downtime ms", "sent", "GB/s (vos)", "× veth TCP (best)", "sent/total GB/s",
              "rounds", "command ms", "memory"]]
            + [live, lazy, cold].map { r in
                [
                    r.mode, r.program, String(format: "%.1f", r.report.totalMilliseconds),
                    String(format: "%.2f", r.report.downtimeMilliseconds), bytes(r.report.bytesSent),
                    String(format: "%.2f", r.report.transferGigabytesPerSecond),
                    ceiling > 0 ? String(format: "%.2f", r.report.transferGigabytesPerSecond / ceiling) : "-",
                    String(format: "%.2f", Double(r.report.bytesSent) / r.report.totalMilliseconds / 1e6),
                    "\(r.report.rounds.count)", String(format: "%.0f", r.commandMilliseconds), r.verification,
                ]
            }
        out += TextTable(rows).lines.map { "  " + $0 }
        if !live.report.rounds.isEmpty {
            out.append("  live pre-copy rounds:")
            out += TextTable(
                [["round", "pages", "bytes", "ms", "GB/s"]]
                    + live.report.rounds.map {
                        ["\($0.round)", "\($0.pages)", bytes($0.bytes), String(format: "%.1f", $0.milliseconds),
                         String(format: "%.2f", Double($0.bytes) / $0.milliseconds / 1e6)]
                    }
            ).lines.map { "    " + $0 }
        }
        out.append(
            "  GB/s (vos): the report's transferGigabytesPerSecond (bytes over the time spent sending: pre-copy rounds plus the frozen transfer); "
                + "sent/total: bytesSent over totalMilliseconds.")
        out.append(
            "  lazy: downtime = freeze → running on the destination; total = until every page has arrived. "
                + "cold: downtime = the whole transfer.")
        return out
    }
}

/// The simulated LAN, its two node daemons and their capsules.
final class MigrationBench {
    nonisolated(unsafe) static var active: MigrationBench?

    let tag = "vb\(getpid() % 100_000)"
    let subnet = "10.79.\(getpid() % 200)"
    let nodes = ["a", "b"]
    private var namespaces: [String] = []
    private var daemons: [PID] = []
    let ip = "/usr/sbin/ip"
    let nsenter = "/usr/bin/nsenter"

    func namespace(_ n: String) -> String { "\(tag)-\(n)" }
    func address(_ node: String) -> String { "\(subnet).\(node == "a" ? 1 : 2)" }
    func data(_ node: String) -> String { Scratch.path("node-\(node)") }
    func state(_ node: String) -> String { data(node) + "/state" }
    func capsuleLog(_ node: String, _ name: String) -> String { state(node) + "/capsules/\(name)/output.log" }

    /// ARGS run through `nsenter --net=/run/netns/NS` (env VARS first when given).
    func inNode(_ node: String, env: [String] = [], _ executable: String, _ args: [String]) -> (String, [String]) {
        (nsenter, ["--net=/run/netns/\(namespace(node))", "--"] + (env.isEmpty ? [] : ["/usr/bin/env"] + env) + [executable] + args)
    }

    func buildLAN() throws {
        for n in ["lan"] + nodes {
            try run(ip, ["netns", "add", namespace(n)], log: "ip")
            namespaces.append(namespace(n))
            let (e, a) = inNode(n, "/bin/sh", ["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                                                  + "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
            try run(e, a, log: "ip")
        }
        let lan = namespace("lan")
        try run(ip, ["-n", lan, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"], log: "ip")
        try run(ip, ["-n", lan, "link", "set", "br0", "up"], log: "ip")
        for n in nodes {
            let ns = namespace(n)
            try run(ip, ["-n", lan, "link", "add", "n\(n)", "type", "veth", "peer", "name", "up0", "netns", ns], log: "ip")
            try run(ip, ["-n", lan, "link", "set", "n\(n)", "master", "br0", "up"], log: "ip")
            try run(ip, ["-n", ns, "link", "add", "vos0", "type", "bridge", "stp_state", "0", "forward_delay", "0"], log: "ip")
            try run(ip, ["-n", ns, "link", "set", "lo", "up"], log: "ip")
            try run(ip, ["-n", ns, "link", "set", "up0", "master", "vos0", "up"], log: "ip")
            try run(ip, ["-n", ns, "addr", "add", "\(address(n))/24", "dev", "vos0"], log: "ip")
            try run(ip, ["-n", ns, "link", "set", "vos0", "up"], log: "ip")
        }
    }

    /// The veth TCP ceiling: a sink in b, a source in a, both this binary; best of `runs`.
    func measureCeiling(bytes: Int, runs: Int) throws -> Sample {
        let me = try ProcFile.link("/proc/self/exe")
        var rates: [Double] = []
        for run in 0..<runs {
            let port = "\(7200 + run)"
            let log = Scratch.path("tcp-\(run)")
            let (se, sa) = inNode("b", me, ["tcp-endpoint", "sink", "--address", address("b"), "--port", port, "--bytes", "\(bytes)"])
            let sink = try Children.shared.spawn(se, sa, stdout: log + "-sink.out", stderr: log + "-sink.err")
            let (ce, ca) = inNode("a", me, ["tcp-endpoint", "source", "--address", address("b"), "--port", port, "--bytes", "\(bytes)"])
            let source = try Children.shared.spawn(ce, ca, stdout: log + "-source.out", stderr: log + "-source.err")
            try CapsuleBench.expectSuccess(source, "tcp-endpoint source", log: log + "-source")
            try CapsuleBench.expectSuccess(sink, "tcp-endpoint sink", log: log + "-sink")
            let text = (try? String(contentsOfFile: log + "-source.out", encoding: .utf8)) ?? ""
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("gbps=") }),
                  let rate = Double(line.dropFirst(5))
            else { throw BenchError("tcp-endpoint source printed no rate: \(text)") }
            rates.append(rate)
            progress("veth TCP a → b run \(run + 1)/\(runs): \(String(format: "%.2f", rate)) GB/s")
        }
        return Sample(rates)
    }

    func startNodes() throws {
        let vos = try Products.path("vos")
        let token = try run(vos, ["node", "init", "--data", data("a"), "--join-token"], log: "node-init")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try run(vos, ["node", "init", "--data", data("b"), "--token", token], log: "node-init")
        for n in nodes {
            var args = ["node", "start", "--data", data(n), "--name", n, "--listen", "\(address(n)):7100", "--detach"]
            if n != "a" { args += ["--join", "\(address("a")):7100"] }
            let (e, a) = inNode(n, env: ["VOS_STATE_DIR=\(state(n))"], vos, args)
            try run(e, a, log: "node-start-\(n)")
            let pidText = (try? String(contentsOfFile: data(n) + "/node.pid", encoding: .utf8)) ?? ""
            guard let pid = PID(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw BenchError("node \(n): no PID in \(data(n))/node.pid")
            }
            daemons.append(pid)
            Children.shared.adopt(pid)
            _ = try CapsuleBench.waitForFile(data(n) + "/control.sock", since: Kernel.monotonicNanos())
        }
        // Every daemon sees both nodes alive.
        struct Node: Decodable { var name: String; var state: String? }
        let deadline = Kernel.monotonicNanos() + 20_000_000_000
        for n in nodes {
            while true {
                let out = (try? run(vos, ["nodes", "--data", data(n), "--json"], log: "nodes")) ?? "[]"
                let list = (try? JSONDecoder().decode([Node].self, from: Data(out.utf8))) ?? []
                if Set(list.filter { $0.state == "alive" }.map(\.name)) == Set(nodes) { break }
                if Kernel.monotonicNanos() > deadline {
                    throw BenchError("node \(n) does not see both nodes alive: \(out)")
                }
                usleep(100_000)
            }
        }
        progress("nodes a (\(address("a")):7100) and b (\(address("b")):7100) up, each sees both alive")
    }

    /// A capsule of ARGS on node a; returns once its log has a line starting with "ready".
    func runCapsule(_ name: String, _ program: [String]) throws {
        let vos = try Products.path("vos")
        let (e, a) = inNode(
            "a", env: ["VOS_STATE_DIR=\(state("a"))", "VOS_BRIDGE=vos0", "VOS_BRIDGE_ADDRESS=\(address("a"))/24"],
            vos, ["run", "--name", name, "--"] + program)
        try run(e, a, log: "vos-run-\(name)")
        guard waitForLine(capsuleLog("a", name), seconds: 120, where: { $0.hasPrefix("ready") }) != nil else {
            throw BenchError("capsule \(name) never printed ready: \(lastLines(capsuleLog("a", name)))")
        }
    }

    /// `vos migrate NAME --to b [--live|--lazy] --json` inside node a's namespace.
    func migrate(_ name: String, mode: String) throws -> (MigrationReportJSON, Double) {
        let vos = try Products.path("vos")
        let flags = mode == "cold" ? [] : ["--\(mode)"]
        let (e, a) = inNode("a", env: ["VOS_STATE_DIR=\(state("a"))"], vos,
                            ["migrate", name, "--to", "b"] + flags + ["--json", "--data", data("a")])
        let (out, wall) = try timed { try run(e, a, log: "migrate-\(name)") }
        do {
            return (try JSONDecoder().decode(MigrationReportJSON.self, from: Data(out.utf8)), wall)
        } catch {
            throw BenchError("vos migrate \(name) --\(mode): unreadable JSON (\(error)): \(out.prefix(500))")
        }
    }

    /// SIGUSR1 to the capsule's program (PID 2 inside) on node b; its "verify ..." answer.
    func verifyOnB(_ name: String) throws -> String {
        let vos = try Products.path("vos")
        struct Process: Decodable { var pid: Int32; var hostPID: Int32 }
        struct Entry: Decodable { var name: String; var state: String; var processes: [Process] }
        let out = try run("/usr/bin/env", ["VOS_STATE_DIR=\(state("b"))", vos, "ps", "--json"], log: "ps-b")
        let entries = try JSONDecoder().decode([Entry].self, from: Data(out.utf8))
        guard let entry = entries.first(where: { $0.name == name }), entry.state == "running",
              let hostPID = entry.processes.first(where: { $0.pid == 2 })?.hostPID
        else { throw BenchError("capsule \(name) is not running on node b: \(out.prefix(500))") }
        let log = capsuleLog("b", name)
        let before = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").utf8.count
        kill(hostPID, SIGUSR1)
        let deadline = Kernel.monotonicNanos() + 60_000_000_000
        while Kernel.monotonicNanos() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let fresh = text.utf8.count > before ? String(decoding: text.utf8.dropFirst(before), as: UTF8.self) : ""
            if let line = fresh.split(separator: "\n").first(where: { $0.hasPrefix("verify ") || $0.hasPrefix("CORRUPT") }) {
                return String(line)
            }
            usleep(5000)
        }
        throw BenchError("capsule \(name) on b gave no verify answer within 60 s: \(lastLines(log))")
    }

    /// `vos stop NAME` on node b (where it went); what is left is killed by teardown().
    func stop(_ name: String, on node: String) {
        guard let vos = try? Products.path("vos") else { return }
        _ = try? run("/usr/bin/env", ["VOS_STATE_DIR=\(state(node))", vos, "stop", name], log: "stop-\(name)")
    }

    /// Capsules (every running init of both registries), daemons, namespaces. Idempotent.
    func teardown() {
        for n in nodes {
            let registry = CapsuleRegistry(root: state(n) + "/capsules")
            for record in registry.all() where record.isRunning {
                kill(record.initPID, SIGKILL)
                var status: Int32 = 0
                while waitpid(record.initPID, &status, 0) == -1 && errno == EINTR {}
            }
        }
        for pid in daemons { Children.shared.stop(pid) }
        daemons = []
        for ns in namespaces.reversed() { _ = try? run(ip, ["netns", "del", ns], log: "ip") }
        namespaces = []
    }

    /// A program to its end (stdout returned); fails with its stderr unless it exited 0.
    @discardableResult
    func run(_ executable: String, _ args: [String], log name: String) throws -> String {
        let log = Scratch.path("mig-\(name)")
        Scratch.remove(log + ".out")
        let pid = try Children.shared.spawn(executable, args, stdout: log + ".out", stderr: log + ".err")
        try CapsuleBench.expectSuccess(pid, "\(executable) \(args.joined(separator: " "))", log: log)
        return (try? String(contentsOfFile: log + ".out", encoding: .utf8)) ?? ""
    }
}

enum MigrationScenario {
    static func run(mib: Int, ceilingRuns: Int = 3) throws -> MigrationResult {
        let dirtier = try Products.path("vos-test-dirtier")
        let memhog = try Products.path("vos-test-memhog")
        let bench = MigrationBench()
        MigrationBench.active = bench
        defer {
            bench.teardown()
            MigrationBench.active = nil
        }
        try bench.buildLAN()
        let ceilingBytes = mib * mebibyte
        let ceiling = try bench.measureCeiling(bytes: ceilingBytes, runs: ceilingRuns)
        try bench.startNodes()

        func one(_ name: String, _ mode: String, _ program: [String]) throws -> MigrationRun {
            try bench.runCapsule(name, program)
            // `vos run` exited: the capsule's init is now our child (we are a subreaper). The
            // migration kills it on node a; reap it as soon as it dies, during the migration.
            let initPID = try CapsuleRegistry(root: bench.state("a") + "/capsules").load(name).initPID
            let reaper = Thread {
                var status: Int32 = 0
                for _ in 0..<60_000 {
                    let r = waitpid(initPID, &status, WNOHANG)
                    if r == initPID || (r == -1 && errno == ECHILD) { return }
                    usleep(5000)
                }
            }
            reaper.start()
            let (report, wall) = try bench.migrate(name, mode: mode)
            let verification = try bench.verifyOnB(name)
            bench.stop(name, on: "b")
            let rounds = report.rounds.map { "\($0.pages) pages/\(String(format: "%.0f", $0.milliseconds)) ms" }
            progress(
                "\(mode) migration of \(program.map { ($0 as NSString).lastPathComponent }.joined(separator: " ")): "
                    + "total \(ms(report.totalMilliseconds)), downtime \(ms(report.downtimeMilliseconds)), "
                    + String(format: "%.2f GB/s", report.transferGigabytesPerSecond)
                    + (rounds.isEmpty ? "" : ", rounds: \(rounds.joined(separator: ", "))") + "; on b: \(verification)")
            return MigrationRun(
                mode: mode, program: program.map { ($0 as NSString).lastPathComponent }.joined(separator: " "),
                report: report, commandMilliseconds: wall, verification: verification)
        }
        let live = try one("mem", "live", [dirtier, "\(mib)", "1000"])
        let lazy = try one("lazy", "lazy", [memhog, "\(mib)"])
        let cold = try one("cold", "cold", [memhog, "\(mib)"])
        return MigrationResult(
            sizeMiB: mib, vethTCPGigabytesPerSecond: ceiling, vethTCPBytesPerRun: ceilingBytes,
            live: live, lazy: lazy, cold: cold)
    }
}

/// `vos-bench tcp-endpoint sink|source`: one side of the veth TCP ceiling (hidden; started by
/// the migration scenario inside a node's namespace). The source prints "gbps=X": from its
/// connect until the sink acknowledged the last byte, 1 MiB send() calls.
struct TCPEndpoint: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tcp-endpoint", shouldDisplay: false)

    @Argument var role: String
    @Option var address: String
    @Option var port: Int
    @Option var bytes: Int

    func run() throws {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr(address)
        sa.sin_port = in_port_t(UInt16(port).bigEndian)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        func withAddress<T>(_ body: (UnsafePointer<sockaddr>) throws -> T) rethrows -> T {
            try withUnsafePointer(to: &sa) { try $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        }
        let buffer = try Buffer(count: mebibyte, fill: 6)
        switch role {
        case "sink":
            let listener = try checked("socket", "listener") { socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
            var one: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            try withAddress { a in try checked("bind", address) { bind(listener, a, length) } }
            try checked("listen", address) { listen(listener, 1) }
            let s = try checked("accept", address) { accept(listener, nil, nil) }
            var got = 0
            while got < bytes {
                let n = try checked("recv", address) { recv(s, buffer.base, mebibyte, 0) }
                guard n > 0 else { throw BenchError("connection closed after \(got) bytes") }
                got += n
            }
            var ack: UInt8 = 1
            try checked("send", "ack") { send(s, &ack, 1, 0) }
            close(s)
            close(listener)
        case "source":
            // The sink may not listen yet: retry (a fresh socket each time) for 10 s.
            let deadline = Kernel.monotonicNanos() + 10_000_000_000
            let start: UInt64
            var s: Int32 = -1
            while true {
                s = try checked("socket", "sender") { socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
                let t = Kernel.monotonicNanos()
                if withAddress({ connect(s, $0, length) }) == 0 { start = t; break }
                let e = errno
                close(s)
                guard e == ECONNREFUSED, Kernel.monotonicNanos() < deadline else {
                    throw SyscallError(call: "connect", errno: .init(rawValue: e), subject: "\(address):\(port)")
                }
                usleep(2000)
            }
            var sent = 0
            while sent < bytes {
                let n = try checked("send", address) { send(s, buffer.base, min(mebibyte, bytes - sent), 0) }
                sent += n
            }
            var ack: UInt8 = 0
            let n = try checked("recv", "ack") { recv(s, &ack, 1, Int32(MSG_WAITALL)) }
            guard n == 1 else { throw BenchError("the sink did not acknowledge") }
            let elapsed = Double(Kernel.monotonicNanos() - start) / 1e9
            close(s)
            print("gbps=\(gigabytesPerSecond(bytes, elapsed))")
        default:
            throw ValidationError("role: sink or source")
        }
    }
}
