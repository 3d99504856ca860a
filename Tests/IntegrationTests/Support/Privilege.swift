// Running vos as another user (nobody, through setpriv) or under a permissive umask, and the
// modes of what it made, for PrivilegeTests.
import Foundation
import Glibc
import Testing

enum Nobody {
    static let uid: uid_t = 65534
    /// util-linux's setpriv: real and effective uid/gid 65534, no supplementary groups.
    static let setpriv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    /// Whether others (nobody) may execute `path`: every directory above it searchable and the
    /// file itself executable by others.
    static func canExecute(_ path: String) -> Bool {
        var s = stat()
        guard stat(path, &s) == 0, s.st_mode & 0o001 != 0 else { return false }
        var dir = (path as NSString).deletingLastPathComponent
        while !dir.isEmpty {
            guard stat(dir, &s) == 0, s.st_mode & 0o001 != 0 else { return false }
            if dir == "/" { break }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return true
    }
}

extension Fixture {
    /// A vos binary nobody can execute: the built one when its directories let others through,
    /// else a copy in a 0755 directory under /tmp (the same binary: its libraries come from the
    /// toolchain's absolute RUNPATH). The copy's directory goes with `cleanup`'s caller: see
    /// `removeNobodyCopy`.
    func vosForNobody() throws -> String {
        let built = URL(fileURLWithPath: Products.vos).resolvingSymlinksInPath().path
        if Nobody.canExecute(built) { return built }
        var template = Array("/tmp/vos-nobody-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        chmod(dir, 0o755)
        let copy = dir + "/vos"
        try FileManager.default.copyItem(atPath: built, toPath: copy)
        chmod(copy, 0o755)
        try #require(Nobody.canExecute(copy), "the copy \(copy) of vos is not executable by others")
        return copy
    }

    /// Removes the copy `vosForNobody` may have made (never the built binary).
    func removeNobodyCopy(_ path: String) {
        if path.hasPrefix("/tmp/vos-nobody-") { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    }

    /// Runs `argv` to completion with the fixture's registry (VOS_STATE_DIR) in its environment.
    func command(_ argv: [String], environment: [String: String] = [:]) throws -> CommandResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
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

    /// vos (as root) with umask 000 set in the process that runs it.
    func vosUnderUmask000(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try command(Self.umask000 + [Products.vos] + arguments, environment: environment)
    }

    /// `sh -c 'umask 000; exec "$0" "$@"' PROGRAM ARGS...`: the program keeps sh's PID.
    static let umask000 = ["/bin/sh", "-c", "umask 000; exec \"$0\" \"$@\""]

    /// `vos` run as nobody.
    func vosAsNobody(_ executable: String, _ arguments: [String]) throws -> CommandResult {
        try command(Nobody.setpriv + [executable] + arguments)
    }
}

/// The permission bits (and set-id/sticky bits) of `path`, not following a final symlink.
func permissions(_ path: String) -> mode_t? {
    var s = stat()
    guard lstat(path, &s) == 0 else { return nil }
    return s.st_mode & 0o7777
}

func fileType(_ path: String) -> mode_t? {
    var s = stat()
    guard lstat(path, &s) == 0 else { return nil }
    return s.st_mode & S_IFMT
}

func octal(_ m: mode_t?) -> String { m.map { String($0, radix: 8) } ?? "missing" }

/// Every entry under `root` (not `root` itself), depth first, with its mode and type.
func entries(under root: String) -> [(path: String, mode: mode_t, type: mode_t)] {
    var out: [(String, mode_t, mode_t)] = []
    for name in ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted() {
        let p = root + "/" + name
        guard let m = permissions(p), let t = fileType(p) else { continue }
        out.append((p, m, t))
        if t == S_IFDIR { out += entries(under: p) }
    }
    return out
}

/// A TCP port on 127.0.0.1 free right now (bound to port 0, read back, closed).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0, "socket: \(String(cString: strerror(errno)))")
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    try #require(bound, "bind/getsockname on 127.0.0.1:0: \(String(cString: strerror(errno)))")
    return Int(UInt16(bigEndian: a.sin_port))
}
