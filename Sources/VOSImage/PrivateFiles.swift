// Files and directories only their owner (root) can read: images, a node's data directory, the
// capsule registry, pid files. The mode is set explicitly (mkdir/open then fchmod/chmod), so
// what vos creates is 0700 (directories) and 0600 (files) whatever the caller's umask.
import Glibc
import VOSLinux

public enum PrivateFiles {
    public static let directoryMode: mode_t = 0o700
    public static let fileMode: mode_t = 0o600

    /// `mkdir -p` where every directory made here is 0700; directories that exist are left as
    /// they are. Returns the directories made, outermost first (for a cleanup, in reverse).
    @discardableResult
    public static func makeDirectories(_ path: String) throws -> [String] {
        var made: [String] = []
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") where !component.isEmpty {
            prefix += "/" + component
            if mkdir(prefix, directoryMode) == 0 {
                made.append(prefix)
                try checked("chmod(0700)", prefix) { chmod(prefix, directoryMode) }
                continue
            }
            let e = errno
            var s = stat()
            guard e == EEXIST, stat(prefix, &s) == 0 else {
                throw SyscallError(call: "mkdir", errno: .init(rawValue: e), subject: prefix)
            }
            if s.st_mode & S_IFMT != S_IFDIR {
                throw SyscallError(call: "mkdir", errno: .init(rawValue: ENOTDIR), subject: "\(prefix) (it exists and is not a directory)")
            }
        }
        return made
    }

    /// Creates (or truncates) `path` as a 0600 file and writes `bytes`. A symbolic link at
    /// `path` is refused (O_NOFOLLOW), not followed.
    public static func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = try checked("open(O_CREAT, 0600)", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, fileMode) }
        defer { close(fd) }
        try fill(fd, path, bytes)
    }

    /// Replaces `path` with a 0600 file holding `bytes`: written to a new file beside it, then
    /// renamed over it (a reader sees the old contents or the new, never a part).
    public static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        var template = Array((path + ".tmp-XXXXXX").utf8CString)
        let fd = try checked("mkstemp", path + ".tmp-XXXXXX") { template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) } }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let temporary = String(cString: template)
        do {
            defer { close(fd) }
            try fill(fd, temporary, bytes)
            try checked("rename", "\(temporary) to \(path)") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    private static func fill(_ fd: Int32, _ path: String, _ bytes: [UInt8]) throws {
        // An existing file keeps its mode through O_TRUNC; a new one got 0600 minus the umask.
        try checked("fchmod(0600)", path) { fchmod(fd, fileMode) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "write", errno: .init(rawValue: errno), subject: path)
            }
            done += n
        }
    }
}
