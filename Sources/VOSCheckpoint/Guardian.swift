// What the kernel does not undo when vos is killed mid-checkpoint: ptrace's detach lets the
// process run on (and its return frames take its threads home), but TCP sockets left in repair
// mode stay silent and a capsule's cut veth stays down. A guardian undoes those two: a second
// vos process (`vos guard`), started before either is changed, that waits on a pipe for this
// one's "done" and, if the pipe ends without it (vos died), waits for vos to be gone (its
// tracees detached), takes the sockets out of repair and brings the veth back up.
import CVOSShim
import Glibc
import VOSLinux

public final class Guardian {
    /// The program run as `PROGRAM guard ...`: the vos CLI sets it to itself. nil: no guardian
    /// (vOS used as a library, where no such command exists).
    nonisolated(unsafe) public static var program: String?

    private let pid: PID
    private var pipe: Int32

    /// Starts a guardian of `pids` (their TCP sockets) and `interface` (a capsule's host veth).
    /// nil when there is no guardian program or it cannot start: the checkpoint goes on without.
    static func start(pids: [PID], interface: String?) -> Guardian? {
        guard let program = Self.program else { return nil }
        var ends: [Int32] = [0, 0]
        guard vos_pipe2(&ends, O_CLOEXEC) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var arguments = [program, "guard", "--parent", String(getpid())] + pids.flatMap { ["--pid", String($0)] }
        if let interface { arguments += ["--interface", interface] }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, program, &actions, nil, argv, environ)
        close(ends[0])
        guard rc == 0 else {
            close(ends[1])
            return nil
        }
        return Guardian(pid: child, pipe: ends[1])
    }

    private init(pid: PID, pipe: Int32) {
        self.pid = pid
        self.pipe = pipe
    }

    /// The checkpoint ended as planned (whatever that was): the guardian leaves without a change.
    func dismiss() {
        guard pipe >= 0 else { return }
        _ = "done\n".withCString { write(pipe, $0, 5) }
        close(pipe)
        pipe = -1
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }

    deinit { dismiss() }

    /// The guardian's side: returns true when vos said "done"; false once vos died without
    /// saying it and is gone (its tracees detached).
    public static func awaitParent(_ parent: PID) -> Bool {
        var said = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16)
        while true {
            let n = read(0, &buffer, buffer.count)
            if n > 0 { said += buffer.prefix(n); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        if said.starts(with: Array("done".utf8)) { return true }
        // The pipe ends while vos exits, before the kernel detaches its tracees: wait until its
        // pidfd says it is gone (a process that is gone already has nothing to wait for).
        if let pidfd = try? Kernel.pidfdOpen(parent) {
            var p = pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)
            while poll(&p, 1, -1) < 0 && errno == EINTR {}
            try? pidfd.close()
        }
        return false
    }

    /// Takes every established TCP socket of `pids` out of repair mode.
    public static func releaseSockets(of pids: [PID]) {
        TCPSocket.leaveRepair(pids: pids)
    }
}
