// Issue 4: capsules — vos run, ps, logs, stop, rm, and their errors.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleTests {
    /// vos with its registry inside the fixture, so tests never see each other's capsules.
    struct PSEntry: Decodable {
        struct Process: Decodable { var pid: Int32; var hostPID: Int32; var command: String; var memoryKiB: Int64 }
        var name: String
        var state: String
        var hostname: String
        var processes: [Process]
    }

    func ps(_ f: Fixture) throws -> [PSEntry] {
        let r = try vos(f, ["ps", "--json"])
        try #require(r.status == 0, "vos ps: \(r.stderr)")
        return try JSONDecoder().decode([PSEntry].self, from: Data(r.stdout.utf8))
    }

    /// A capsule runs its command as PID 2 under a vos init (PID 1) with its own hostname;
    /// ps shows PIDs inside and outside; logs shows its output; stop and rm clean up.
    @Test func runPsLogsStopRm() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let script = "echo host=$(hostname) pid=$$; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"
        let r = try vos(f, ["run", "--name", "c1", "--hostname", "box1", "--", "/bin/sh", "-c", script])
        #expect(r.status == 0, "vos run: \(r.stderr)")
        #expect(r.stdout == "c1\n")
        #expect(waitUntil { ((try? vos(f, ["logs", "c1"]))?.stdout.contains("tick 3")) ?? false })
        let logs = try vos(f, ["logs", "c1"]).stdout
        #expect(logs.hasPrefix("host=box1 pid=2\n"), "log: \(logs.prefix(80))")

        let entry = try #require(try ps(f).first { $0.name == "c1" })
        #expect(entry.state == "running" && entry.hostname == "box1")
        let initProcess = try #require(entry.processes.first { $0.pid == 1 })
        f.adopt(initProcess.hostPID)
        #expect(initProcess.command.contains("capsule-init"))
        let shell = try #require(entry.processes.first { $0.pid == 2 })
        #expect(shell.command.hasPrefix("/bin/sh -c") && shell.hostPID != 2 && shell.memoryKiB > 0)
        // The capsule's /proc is its own: inside, the shell is PID 2 and sees few processes.
        let hostStatus = try String(contentsOfFile: "/proc/\(shell.hostPID)/status", encoding: .utf8)
        #expect(hostStatus.contains("NSpid:\t\(shell.hostPID)\t2"))

        let again = try vos(f, ["run", "--name", "c1", "--", "/bin/true"])
        #expect(again.status != 0 && again.stderr.contains("a capsule named \"c1\" already exists (running)"))
        let rmRunning = try vos(f, ["rm", "c1"])
        #expect(rmRunning.status != 0 && rmRunning.stderr.contains("is running; stop it first"))

        #expect(try vos(f, ["stop", "c1"]).status == 0)
        #expect(!f.isAlive(shell.hostPID))
        #expect(try ps(f).first { $0.name == "c1" }?.state == "exited")
        #expect(try vos(f, ["rm", "c1"]).status == 0)
        #expect(try ps(f).isEmpty)
    }

    @Test func missingCommandIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let r = try vos(f, ["run", "--name", "c2", "--", "no-such-command-here"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot run \"no-such-command-here\": command not found"))
        #expect(try ps(f).isEmpty, "a refused run left a registry entry")
    }

    @Test func badNameIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let r = try vos(f, ["run", "--name", "../escape", "--", "/bin/true"])
        #expect(r.status != 0 && r.stderr.contains("invalid capsule name"))
    }
}
