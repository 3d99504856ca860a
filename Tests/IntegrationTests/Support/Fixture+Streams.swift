// Standard streams for the fd tests: a program whose stdout is a pipe the test holds, and a
// `vos restore` whose stdout is a file (a restored process may inherit it and keep it open, so
// it cannot be a pipe read to end of file).
import Foundation
import Glibc
import Testing
import VOSLinux

/// A pipe whose read end the test keeps (non-blocking) and whose write end becomes a child's stdout.
final class HeldPipe {
    let readEnd: Int32
    private(set) var writeEnd: Int32
    private var received: [UInt8] = []
    private(set) var sawEndOfFile = false

    init() throws {
        var p: [Int32] = [0, 0]
        guard pipe(&p) == 0 else {
            throw SyscallError(call: "pipe", errno: .init(rawValue: errno), subject: "held pipe")
        }
        readEnd = p[0]
        writeEnd = p[1]
        // Close-on-exec on both (other children must not inherit them); posix_spawn's dup2
        // gives the child a copy without it.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
    }

    /// Drops the test's own write end once the child has its copy (else no end of file ever comes).
    func closeWriteEnd() {
        if writeEnd >= 0 { close(writeEnd) }
        writeEnd = -1
    }

    /// Everything received so far (reads what is queued now).
    var text: String {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(readEnd, &buf, buf.count)
            if n > 0 {
                received += buf.prefix(n)
                continue
            }
            if n == 0 { sawEndOfFile = true }
            break
        }
        return String(decoding: received, as: UTF8.self)
    }

    deinit {
        closeWriteEnd()
        close(readEnd)
    }
}

extension Fixture {
    /// Starts a program with stdin /dev/null, stdout the write end of `stdoutPipe`, stderr a
    /// file of the fixture, and no other fd; the process is killed and reaped by `cleanup()`.
    func start(_ executable: String, _ arguments: [String], stdoutPipe: HeldPipe) throws -> PID {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, path("stderr-piped.txt"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        for fd in (try? ProcFile.numericEntries("/proc/self/fd")) ?? [] where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: PID = 0
        let r = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard r == 0 else { throw SyscallError(call: "posix_spawn", errno: .init(rawValue: r), subject: executable) }
        adopt(pid)
        stdoutPipe.closeWriteEnd()
        return pid
    }

    /// `vos restore` with its stdout and stderr going to files; returns the restored PID.
    func restore(_ image: String, stdout: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PID {
        let pidfile = image + ".pid"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Products.vos)
        p.arguments = ["restore", image, "--pidfile", pidfile]
        FileManager.default.createFile(atPath: stdout, contents: nil)
        FileManager.default.createFile(atPath: stdout + ".stderr", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: stdout)
        p.standardError = FileHandle(forWritingAtPath: stdout + ".stderr")
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        try p.run()
        p.waitUntilExit()
        let stderr = (try? String(contentsOfFile: stdout + ".stderr", encoding: .utf8)) ?? ""
        try #require(p.terminationStatus == 0, "restore failed: \(stderr)", sourceLocation: sourceLocation)
        let text = try String(contentsOfFile: pidfile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(PID(text), sourceLocation: sourceLocation)
        adopt(pid)
        return pid
    }
}
