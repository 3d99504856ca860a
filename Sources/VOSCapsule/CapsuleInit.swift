// The capsule init: vos itself in an internal mode, PID 1 of the capsule's namespaces. It
// mounts the capsule's /proc, sets the hostname, starts the command with its output in the
// capsule log, and reaps every orphan until the last process is gone.
import CVOSShim
import Glibc
import VOSCheckpoint
import VOSLinux

public enum CapsuleInit {
    /// `terminal`: the attach FIFOs of a --tty capsule (its command then runs on a pty).
    /// `root`: the capsule's own filesystem, entered first; `logPath` and `exitStatusPath` are
    /// then paths inside it (under /.vos).
    public static func run(hostname: String, logPath: String, exitStatusPath: String, command: [String],
                           terminal: (input: String, output: String)? = nil, root: CapsuleRoot? = nil) -> Never {
        _ = vosCloseFrom(3)
        if let root {
            let failed = root.apply()
            if failed != 0 { fail("vos capsule init: \(root.describe(step: failed)) failed: \(String(cString: strerror(errno)))") }
        }
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if log >= 0 { dup2(log, 1); dup2(log, 2) }
        if null >= 0 { dup2(null, 0) }
        if log >= 0 { close(log) }
        if null >= 0 { close(null) }
        do {
            try Namespaces.mountPrivateProc()
            try Namespaces.setHostname(hostname)
        } catch {
            fail("vos capsule init: \(error)")
        }
        if let terminal {
            do {
                try CapsuleTerminal.mountDevpts()
                let pty = try CapsuleTerminal.openPty()
                // Read-write, so that neither open blocks and neither end ever sees EOF.
                let input = open(terminal.input, O_RDWR | O_NONBLOCK | O_CLOEXEC)
                let output = open(terminal.output, O_RDWR | O_NONBLOCK | O_CLOEXEC)
                guard input >= 0, output >= 0 else { fail("vos capsule init: cannot open the attach FIFOs: \(String(cString: strerror(errno)))") }
                let child = CapsuleTerminal.spawn(command, slave: pty.slave)
                CapsuleTerminal.relay(master: pty.master, input: input, output: output, child: child, exitStatusPath: exitStatusPath)
            } catch {
                fail("vos capsule init: \(error)")
            }
        }
        let child = spawn(command)
        var mainStatus: Int32 = 0
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid == child {
                mainStatus = status
                writeStatus(status, to: exitStatusPath)
            }
            if pid < 0 && errno == ECHILD { break }
        }
        exit((mainStatus & 0x7f) == 0 ? (mainStatus >> 8) & 0xff : 128 + (mainStatus & 0x7f))
    }

    /// posix_spawnp of the command with nothing blocked and default dispositions (the init
    /// itself ignores nothing, but a command must not inherit vos's state); `setsid` and
    /// `actions` for a command on a terminal.
    static func spawn(_ command: [String], setsid: Bool = false, actions: UnsafePointer<posix_spawn_file_actions_t>? = nil) -> PID {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (setsid ? VOS_POSIX_SPAWN_SETSID : 0)))
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: PID = 0
        let r = posix_spawnp(&pid, command[0], actions, &attr, argv, environ)
        if r != 0 { fail("vos capsule init: cannot start \(command[0]): \(String(cString: strerror(r)))") }
        return pid
    }

    static func writeStatus(_ status: Int32, to path: String) {
        let text = (status & 0x7f) == 0 ? "exited \((status >> 8) & 0xff)\n" : "killed by signal \(status & 0x7f)\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    static func fail(_ message: String) -> Never {
        _ = (message + "\n").withCString { write(2, $0, strlen($0)) }
        exit(127)
    }
}

func vosCloseFrom(_ fd: Int32) -> Int { vos_syscall6(436, Int(fd), Int(UInt32.max), 0, 0, 0, 0) }
