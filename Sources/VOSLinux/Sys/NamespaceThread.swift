// Running a few calls inside another process's namespace without moving vos: a thread of its
// own joins it with setns(2) and exits after the work, so no other thread (a Dispatch worker,
// the tracer thread) ever runs in it. Fit for namespaces a thread may join alone (IPC, UTS,
// net); not for mount or user namespaces, which setns refuses to a multithreaded process.
import CVOSShim
import Glibc

public enum NamespaceThread {
    /// Runs `body` on a new thread that first joins `/proc/PID/ns/KIND` (`setns(fd, kind)`),
    /// waits for it and returns its result. The thread ends with `body`: the change ends with it.
    public static func run<T>(in pid: PID, _ kind: String, _ flag: NamespaceSet, _ body: () throws -> T) throws -> T {
        let path = "/proc/\(pid)/ns/\(kind)"
        let fd = try checked("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        return try withoutActuallyEscaping(body) { (body) throws -> T in
            var result: Result<T, Error>?
            let work = Work {
                do {
                    try checked("setns(\(kind))", path) { vos_syscall6(308, Int(fd), Int(flag.rawValue), 0, 0, 0, 0) }
                    result = .success(try body())
                } catch {
                    result = .failure(error)
                }
            }
            var thread = pthread_t()
            let context = Unmanaged.passRetained(work).toOpaque()
            let r = pthread_create(&thread, nil, { context in
                Unmanaged<Work>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
            guard r == 0 else {
                Unmanaged<Work>.fromOpaque(context).release()
                throw SyscallError(call: "pthread_create", errno: .init(rawValue: r), subject: "a thread for \(path)")
            }
            pthread_join(thread, nil)
            guard let result else { throw SyscallError(call: "pthread_join", errno: .init(rawValue: ESRCH), subject: path) }
            return try result.get()
        }
    }

    private final class Work {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
}
