// The terminal of a capsule started with --tty: a devpts instance of the capsule's own (so pty
// numbers are the capsule's and come back the same after a restore), a pty whose slave is the
// command's controlling terminal, and the init relaying between the master, the capsule log and
// two FIFOs in the registry directory that `vos attach` connects to.
import CVOSShim
import Glibc
import VOSLinux

public enum CapsuleTerminal {
    public static func inputPath(_ dir: String) -> String { dir + "/tty.in" }
    public static func outputPath(_ dir: String) -> String { dir + "/tty.out" }

    /// A devpts instance for the capsule's mount namespace, its ptmx on /dev/ptmx.
    static func mountDevpts() throws(SyscallError) {
        try checked("mount(devpts, newinstance)", "/dev/pts") {
            mount("devpts", "/dev/pts", "devpts", UInt(MS_NOSUID | MS_NOEXEC), "newinstance,ptmxmode=0666,mode=0620")
        }
        try checked("mount(MS_BIND)", "/dev/pts/ptmx on /dev/ptmx") { mount("/dev/pts/ptmx", "/dev/ptmx", nil, UInt(MS_BIND), nil) }
    }

    /// Opens a new pty: (master fd, slave path).
    static func openPty() throws(SyscallError) -> (master: Int32, slave: String) {
        let master = try checked("open", "/dev/ptmx") { open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK) }
        var unlock: Int32 = 0
        try checked("ioctl(TIOCSPTLCK)", "/dev/ptmx") { vos_ioctl(master, UInt(VOS_TIOCSPTLCK), &unlock) }
        var index: Int32 = 0
        try checked("ioctl(TIOCGPTN)", "/dev/ptmx") { vos_ioctl(master, UInt(VOS_TIOCGPTN), &index) }
        return (master, "/dev/pts/\(index)")
    }

    /// posix_spawn in a new session with the pty slave as stdin, stdout and stderr (opened
    /// after setsid, it becomes the controlling terminal).
    static func spawn(_ command: [String], slave: String) -> PID {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        if getenv("TERM") == nil { setenv("TERM", "xterm", 1) }
        return CapsuleInit.spawn(command, setsid: true, actions: &actions)
    }

    /// The init's loop for a --tty capsule: terminal output to the log (fd 1) and to the
    /// attach FIFO (dropped when nobody reads), attach input to the terminal; reaps orphans.
    static func relay(master: Int32, input: Int32, output: Int32, child: PID, exitStatusPath: String) -> Never {
        var mainStatus: Int32 = 0
        var mainAlive = true
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0), pollfd(fd: input, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 200)  // EINTR (also after a restore) just loops
            if fds[0].revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if n > 0 {
                    _ = buffer.withUnsafeBytes { write(1, $0.baseAddress, n) }
                    _ = buffer.withUnsafeBytes { write(output, $0.baseAddress, n) }
                }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n > 0 { _ = buffer.withUnsafeBytes { write(master, $0.baseAddress, n) } }
            }
            while true {
                var status: Int32 = 0
                let pid = waitpid(-1, &status, WNOHANG)
                if pid == child {
                    mainStatus = status
                    mainAlive = false
                    CapsuleInit.writeStatus(status, to: exitStatusPath)
                }
                if pid > 0 { continue }
                if pid < 0 && errno == ECHILD && !mainAlive {
                    exit((mainStatus & 0x7f) == 0 ? (mainStatus >> 8) & 0xff : 128 + (mainStatus & 0x7f))
                }
                break
            }
        }
    }
}
