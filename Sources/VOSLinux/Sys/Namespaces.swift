// Creating processes in new namespaces (clone3) and the calls a namespace's init makes.
import CVOSShim
import Glibc

/// `CLONE_NEW*` flags.
public struct NamespaceSet: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let mount = NamespaceSet(rawValue: 0x0002_0000)
    public static let uts = NamespaceSet(rawValue: 0x0400_0000)
    public static let ipc = NamespaceSet(rawValue: 0x0800_0000)
    public static let pid = NamespaceSet(rawValue: 0x2000_0000)
    public static let net = NamespaceSet(rawValue: 0x4000_0000)
    /// clone3 only (its value is CSIGNAL's range in clone).
    public static let time = NamespaceSet(rawValue: 0x80)
}

public enum Namespaces {
    /// clone3 with `namespaces`; the child execs `executable` at once (only async-signal-safe
    /// calls between clone and exec: vos has other threads). Returns the child's PID here.
    public static func spawn(_ namespaces: NamespaceSet, executable: String, arguments: [String],
                             environment: [String]) throws(SyscallError) -> PID {
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        let path = strdup(executable)
        defer { free(path) }
        var args = vos_clone_args()
        args.flags = namespaces.rawValue
        args.exit_signal = UInt64(SIGCHLD)
        let r = withUnsafeMutablePointer(to: &args) { vos_syscall6(435, Int(bitPattern: $0), MemoryLayout<vos_clone_args>.size, 0, 0, 0, 0) }
        if r == 0 {
            argv.withUnsafeBufferPointer { a in envp.withUnsafeBufferPointer { e in _ = execve(path!, a.baseAddress!, e.baseAddress!) } }
            _exit(127)
        }
        if r < 0 { throw SyscallError(call: "clone3(CLONE_NEW*)", errno: .init(rawValue: vos_errno()), subject: executable) }
        return PID(r)
    }

    /// Makes the calling process's root mount tree private (mounts made in this mount namespace
    /// do not leak to the host) and mounts a /proc for its PID namespace.
    public static func mountPrivateProc() throws(SyscallError) {
        try checked("mount(MS_REC|MS_PRIVATE)", "/") { mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) }
        try checked("mount(proc)", "/proc") { mount("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) }
    }

    public static func setHostname(_ name: String) throws(SyscallError) {
        try checked("sethostname", name) { sethostname(name, name.utf8.count) }
    }

    /// `readlink /proc/PID/ns/KIND`, e.g. "pid:[4026532281]".
    public static func identity(of pid: PID, _ kind: String) -> String? {
        try? ProcFile.link("/proc/\(pid)/ns/\(kind)")
    }
}
