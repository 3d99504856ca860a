// Reading /proc files whole: they are small, generated on read, and must be read in one go.
import Glibc
import SystemPackage

public enum ProcFile {
    /// Reads a whole file (procfs reports size 0, so read until EOF).
    public static func read(_ path: String) throws(SyscallError) -> [UInt8] {
        let fd = try checked("open", path) { vos_open_readonly(path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try checked("read", path) { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    public static func text(_ path: String) throws(SyscallError) -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// `readlink(2)`.
    public static func link(_ path: String) throws(SyscallError) -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = try checked("readlink", path) { readlink(path, &buf, 4096) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Numeric entries of a /proc directory (tasks, fds), sorted.
    public static func numericEntries(_ path: String) throws(SyscallError) -> [Int32] {
        guard let dir = opendir(path) else {
            throw SyscallError(call: "opendir", errno: Errno(rawValue: errno), subject: path)
        }
        defer { closedir(dir) }
        var out: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if let n = Int32(name) { out.append(n) }
        }
        return out.sorted()
    }
}

private func vos_open_readonly(_ path: String) -> Int32 { open(path, O_RDONLY | O_CLOEXEC) }
