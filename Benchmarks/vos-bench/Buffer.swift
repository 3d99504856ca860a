// Anonymous memory owned by the benchmark, for the copy ceilings (unmapped on deinit).
import Glibc
import VOSLinux

final class Buffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int

    /// Maps `count` bytes; with `fill`, writes every page so that no later copy pays first touch.
    init(count: Int, fill: UInt8? = nil) throws {
        let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw SyscallError(call: "mmap", errno: .init(rawValue: errno), subject: "\(count) bytes")
        }
        base = p
        self.count = count
        if let fill { memset(base, Int32(fill), count) }
    }

    deinit { munmap(base, count) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A new file on /dev/shm of `count` bytes mapped MAP_SHARED for writing: the way the engine's
/// PageFile receives a dump. The file is unlinked at once (the mapping keeps it alive).
final class ShmMapping: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(path: String, count: Int) throws {
        let fd = try checked("open", path) { open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer {
            close(fd)
            unlink(path)
        }
        try checked("ftruncate", path) { ftruncate(fd, off_t(count)) }
        let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SyscallError(call: "mmap", errno: .init(rawValue: errno), subject: path)
        }
        base = p
        self.count = count
    }

    deinit { munmap(base, count) }
}
