// Every process the benchmark starts or restores: spawned with no stray fd, killed by PID and
// reaped at the end, whatever happens; plus the scratch directory on /dev/shm.
import Dispatch
import Foundation
import Glibc
import VOSLinux

/// The package's own programs (vos-test-memhog, vos-test-counter), next to this binary.
enum Products {
    static let directory: String = {
        let exe = (try? ProcFile.link("/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent().path
    }()

    static func path(_ name: String) throws -> String {
        let p = directory + "/" + name
        guard access(p, X_OK) == 0 else {
            throw BenchError(
                "\(p) not found: build it in the same configuration first "
                    + "(swift build -c release --product \(name), with the same --scratch-path)")
        }
        return p
    }
}

/// The processes this run owns. Restored processes are our children (the stub is cloned by the
/// restorer in this process); anything re-parented reaches us because we are a subreaper.
final class Children: @unchecked Sendable {
    static let shared = Children()
    private let lock = NSLock()
    private var pids: Set<PID> = []

    /// Starts `executable` with stdin from /dev/null, stdout and stderr appended to files, and every
    /// other fd closed: vOS refuses to checkpoint a process holding an fd it does not support,
    /// and this process holds Dispatch's eventfd and epoll, sockets of the TCP ceiling, images...
    func spawn(_ executable: String, _ arguments: [String], stdout: String, stderr: String) throws -> PID {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        // An fd listed here but closed by the time the child runs (the directory stream of the
        // listing itself) is fine: glibc ignores EBADF for a close action.
        for fd in try ProcFile.numericEntries("/proc/self/fd") where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: PID = 0
        // Holding the lock keeps a concurrent stopAll() from missing a process being born.
        lock.lock()
        defer { lock.unlock() }
        let r = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard r == 0 else { throw SyscallError(call: "posix_spawn", errno: .init(rawValue: r), subject: executable) }
        pids.insert(pid)
        return pid
    }

    /// A process we did not spawn but must clean up (a restored one).
    func adopt(_ pid: PID) {
        lock.lock()
        pids.insert(pid)
        lock.unlock()
    }

    /// A process somebody else already reaped (a checkpoint that killed it reaps it): its PID
    /// may be reused, so we must never signal it again.
    func forget(_ pid: PID) {
        lock.lock()
        pids.remove(pid)
        lock.unlock()
    }

    /// SIGKILL by PID, then waitpid until it is gone.
    func stop(_ pid: PID) {
        lock.lock()
        let known = pids.remove(pid) != nil
        lock.unlock()
        guard known else { return }
        Self.killAndReap(pid)
    }

    func stopAll() {
        lock.lock()
        let all = pids
        pids = []
        lock.unlock()
        for pid in all { Self.killAndReap(pid) }
    }

    private static func killAndReap(_ pid: PID) {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }
}

/// The run's scratch directory: images and program output, on tmpfs.
enum Scratch {
    static let directory = "/dev/shm/vos-bench-\(getpid())"

    static func create() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    static func removeAll() { remove(directory) }
}

/// Ctrl-C or SIGTERM still kills our processes and removes the images.
enum Interruption {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                Children.shared.stopAll()
                CapsuleBench.cleanUp()
                MigrationBench.active?.teardown()
                Scratch.removeAll()
                fputs("vos-bench: interrupted, processes killed and \(Scratch.directory) removed\n", stderr)
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// Polls a program's output file every 2 ms until a line satisfies `match`; returns that line.
func waitForLine(_ path: String, seconds: Double, where match: (Substring) -> Bool) -> Substring? {
    let deadline = Kernel.monotonicNanos() + UInt64(seconds * 1e9)
    repeat {
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
            let line = text.split(separator: "\n").first(where: match)
        {
            return line
        }
        usleep(2000)
    } while Kernel.monotonicNanos() < deadline
    return nil
}

func lastLines(_ path: String, _ n: Int = 3) -> String {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").suffix(n).joined(separator: " | ")
}

/// Anonymous memory the process has touched: RssAnon of /proc/PID/status, in bytes.
func touchedAnonymousBytes(_ pid: PID) throws -> UInt64 {
    UInt64(try ProcStatus.read("/proc/\(pid)/status").number("RssAnon")) * 1024
}

/// Bytes of every file in an image directory.
func directoryBytes(_ path: String) -> UInt64 {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { sum, name in
        let size = (try? FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as? NSNumber)??
            .uint64Value
        return sum + (size ?? 0)
    }
}
