// Real processes for the integration tests: programs built by the package, vos itself, and
// cleanup of everything a test started, whatever happens (LIFO, by PID).
import Foundation
import Glibc
import Testing
import VOSLinux

/// Where SwiftPM put the built products (next to the test bundle).
enum Products {
    static let directory: String = {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // The test binary may sit inside a .xctest bundle directory.
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("vos").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }
    static var vos: String { path("vos") }
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// One test's processes and scratch directory; `cleanup()` kills and reaps every process it
/// knows of (started ones and restored ones) and removes the directory.
final class Fixture {
    let directory: String
    private var pids: [PID] = []

    init(_ name: String = #function) throws {
        _ = subreaperOnce
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("vos-tests")
        let dir = base.appendingPathComponent("\(name.filter { $0.isLetter || $0.isNumber })-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        directory = dir.path
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Starts a program with stdin from /dev/null, stdout/stderr into files of the fixture, and
    /// no other fd (posix_spawn closing everything else: the test runner holds sockets and pipes).
    @discardableResult
    func start(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdout: String? = nil) throws -> PID {
        let outPath = stdout ?? path("stdout-\(pids.count).txt")
        let pid = try spawn(executable, arguments, environment: environment, stdout: outPath, stderr: path("stderr-\(pids.count).txt"))
        pids.append(pid)
        return pid
    }

    /// Remembers a process that the test did not start itself (a restored one) for cleanup.
    func adopt(_ pid: PID) { pids.append(pid) }

    /// Runs vos to completion, with the capsule registry inside the fixture (VOS_STATE_DIR).
    /// `wrapper`: a command that runs vos (its arguments then vos's path and `arguments`).
    func vos(_ arguments: [String], environment: [String: String] = [:], wrapper: [String] = []) throws -> CommandResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: wrapper.first ?? Products.vos)
        p.arguments = wrapper.isEmpty ? arguments : Array(wrapper.dropFirst()) + [Products.vos] + arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["VOS_STATE_DIR": path("state")].merging(environment) { $1 }) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// `vos checkpoint --pid` that must succeed.
    @discardableResult
    func checkpoint(_ pid: PID, _ image: String, leaveRunning: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        var args = ["checkpoint", "--pid", String(pid), "--image", image]
        if leaveRunning { args.append("--leave-running") }
        let r = try vos(args)
        #expect(r.status == 0, "checkpoint failed: \(r.stderr)", sourceLocation: sourceLocation)
        if !leaveRunning && r.status == 0 { reap(pid) }
        return r
    }

    /// `vos restore` that must succeed; returns the restored PID (adopted for cleanup).
    func restore(_ image: String, newPID: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws -> PID {
        let pidfile = image + ".pid"
        let r = try vos(["restore", image, "--pidfile", pidfile] + (newPID ? ["--new-pid"] : []))
        try #require(r.status == 0, "restore failed: \(r.stderr)", sourceLocation: sourceLocation)
        let text = try String(contentsOfFile: pidfile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(PID(text), sourceLocation: sourceLocation)
        adopt(pid)
        return pid
    }

    /// Reaps a process this test is the parent (or subreaper) of, if it has exited.
    func reap(_ pid: PID) {
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(5000)
        }
    }

    func isAlive(_ pid: PID) -> Bool {
        guard let s = try? ProcStat.read("/proc/\(pid)/stat") else { return false }
        return s.state != "Z" && s.state != "X"
    }

    func cleanup() {
        // Every process of every capsule in the fixture's registry, even those a failed test
        // never got to adopt.
        if FileManager.default.fileExists(atPath: path("state")), let ps = try? vos(["ps", "--json"]) {
            for host in ps.stdout.components(separatedBy: "\"hostPID\":").dropFirst().compactMap({ PID($0.prefix { $0.isNumber }) }) {
                pids.append(host)
            }
        }
        for pid in pids.reversed() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            for _ in 0..<100 {
                let r = waitpid(pid, &status, WNOHANG)
                if r == pid || (r == -1 && errno == ECHILD) { break }
                usleep(10000)
            }
        }
        pids = []
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { cleanup() }
}

/// Restored processes are detached from vos: when vos exits they are re-parented to us.
private let subreaperOnce: Void = { _ = try? Kernel.becomeSubreaper() }()

/// posix_spawn with fds 0-2 from the given files and every other fd closed.
func spawn(_ executable: String, _ arguments: [String], environment: [String: String]?, stdout: String, stderr: String) throws -> PID {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    for fd in (try? ProcFile.numericEntries("/proc/self/fd")) ?? [] where fd > 2 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
    let env = (environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } } ?? ProcessInfo.processInfo.environment)
        .map { "\($0.key)=\($0.value)" }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    // Start like from a shell: nothing blocked, default dispositions (the test runner blocks some).
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t(), all = sigset_t()
    sigemptyset(&empty)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: PID = 0
    let r = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
    guard r == 0 else { throw SyscallError(call: "posix_spawn", errno: .init(rawValue: r), subject: executable) }
    return pid
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass.
func waitUntil(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10000)
    }
    return try condition()
}

/// Lines of a text file (empty when it does not exist yet).
func lines(_ path: String) -> [String] {
    guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return s.split(separator: "\n").map(String.init)
}

/// The numbers of "n=<k>" lines, and whether they run 0, 1, 2... with no gap and no repeat.
func counterSequence(_ path: String, prefix: String = "n=") -> (values: [Int], continuous: Bool) {
    let values = lines(path).compactMap { $0.hasPrefix(prefix) ? Int($0.dropFirst(prefix.count)) : nil }
    return (values, values.enumerated().allSatisfy { $0.offset == $0.element })
}
