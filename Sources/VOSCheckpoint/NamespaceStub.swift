// The root stub of a process tree restored into new namespaces (a capsule's init), and the
// time namespace it is born into.
import CVOSShim
import Glibc
import VOSLinux

/// The root stub of a tree restored into new namespaces (a capsule's init).
enum NamespaceStub {
    /// clone3 into `namespaces`; the child makes its mounts private, mounts the new PID
    /// namespace's /proc and sets the hostname itself (async-signal-safe calls only: vos has
    /// other threads), reports over a pipe, then waits to be taken over. With `timeOffsets`, vos
    /// first enters a new time namespace for its children with those CLOCK_MONOTONIC and
    /// CLOCK_BOOTTIME offsets (they can only be set before any process is in it: probe 10).
    /// `devpts`: mount a devpts instance of its own (a capsule with a terminal).
    /// `root`: a capsule filesystem of its own, entered right after the mounts are made private.
    static func spawn(_ namespaces: NamespaceSet, hostname: String, timeOffsets: (monotonic: Int64, boottime: Int64)?,
                      devpts: Bool = false, root ownRoot: CapsuleRoot? = nil) throws -> Tracee {
        if let t = timeOffsets { try enterTimeNamespace(t) }
        var ready: [Int32] = [0, 0]
        try checked("pipe2", "the namespace stub's readiness pipe") { vos_pipe2(&ready, O_CLOEXEC) }
        defer { close(ready[0]) }
        let gate = try Stub.Gate()
        let exec = try Stub.Exec()
        let host = strdup(hostname)!, proc = strdup("proc")!, procPath = strdup("/proc")!, root = strdup("/")!
        let pts = strdup("devpts")!, ptsPath = strdup("/dev/pts")!, ptsOptions = strdup("newinstance,ptmxmode=0666,mode=0620")!
        let ptmx = strdup("/dev/pts/ptmx")!, ptmxPath = strdup("/dev/ptmx")!
        defer { for p in [host, proc, procPath, root, pts, ptsPath, ptsOptions, ptmx, ptmxPath] { free(p) } }
        var args = vos_clone_args()
        args.flags = namespaces.subtracting(.time).rawValue
        args.exit_signal = UInt64(SIGCHLD)
        let r = withUnsafeMutablePointer(to: &args) { vos_syscall6(435, Int(bitPattern: $0), MemoryLayout<vos_clone_args>.size, 0, 0, 0, 0) }
        if r == 0 {
            var step: UInt8 = 0
            if mount(nil, root, nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 { step = 1 }
            if step == 0, let failed = ownRoot?.apply(), failed != 0 { step = UInt8(min(100 + failed, 255)) }
            if step == 0 && mount(proc, procPath, proc, UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 { step = 2 }
            if step == 0 && sethostname(host, strlen(host)) != 0 { step = 3 }
            if step == 0 && devpts && mount(pts, ptsPath, pts, UInt(MS_NOSUID | MS_NOEXEC), ptsOptions) != 0 { step = 4 }
            if step == 0 && devpts && mount(ptmx, ptmxPath, nil, UInt(MS_BIND), nil) != 0 { step = 5 }
            write(ready[1], &step, 1)
            gate.pass()
            exec.run()
        }
        close(ready[1])
        if r < 0 { throw SyscallError(call: "clone3(CLONE_NEW*)", errno: .init(rawValue: vos_errno()), subject: "the namespace stub") }
        var step: UInt8 = 255
        _ = read(ready[0], &step, 1)
        if step != 0 {
            gate.open()
            Stub.discard(PID(r))
            let what = step > 100 ? ownRoot?.describe(step: Int(step) - 100) ?? "its root"
                : [1: "mount(/, MS_REC|MS_PRIVATE)", 2: "mount(proc, /proc)", 3: "sethostname(\(hostname))", 4: "mount(devpts, newinstance)", 5: "mount(/dev/pts/ptmx on /dev/ptmx)"][Int(step)] ?? "its setup"
            throw CheckpointError("cannot prepare the capsule's namespaces", reason: "\(what) failed in the new namespaces")
        }
        return try Stub.takeOver(PID(r), gate: gate)
    }

    /// unshare(CLONE_NEWTIME) for the calling thread's future children, with the offsets.
    static func enterTimeNamespace(_ t: (monotonic: Int64, boottime: Int64)) throws {
        try checked("unshare(CLONE_NEWTIME)", "vos") { vos_syscall6(272, Int(NamespaceSet.time.rawValue), 0, 0, 0, 0, 0) }
        func line(_ name: String, _ ns: Int64) -> String {
            let s = ns >= 0 ? ns / 1_000_000_000 : -((-ns + 999_999_999) / 1_000_000_000)
            return "\(name) \(s) \(ns - s * 1_000_000_000)\n"
        }
        let text = line("monotonic", t.monotonic) + line("boottime", t.boottime)
        // /proc/self is the thread group leader (there is no per-thread file): restores run on
        // vos's main thread, in the node daemon too (`MainThread`).
        let path = "/proc/self/timens_offsets"
        let fd = try checked("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        try checked("write", "\(path) (\(text.split(separator: "\n").joined(separator: ", ")))") {
            text.withCString { write(fd, $0, strlen($0)) }
        }
    }
}
