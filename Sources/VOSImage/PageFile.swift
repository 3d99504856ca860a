// pages.img: page data laid out page-aligned. Dumpers write it with pwrite() from small
// cache-warm buffers (`write(_:at:)`); readers map it. Filling it through a shared mapping
// instead, one copy fewer, measured 2-2.5x slower on tmpfs: every new page costs a fault and is
// zeroed before the copy overwrites it, and the populated mapping is slow to unmap (vos-bench).
import Glibc
import VOSLinux

public final class PageFile: @unchecked Sendable {
    public let path: String
    public let size: UInt64
    public let base: UnsafeMutableRawPointer?
    private let fd: Int32

    /// Creates the file with `size` bytes (a multiple of 4096) and maps it for writing. Fill it
    /// with `write(_:at:)`; storing through `base` is for small files only (SIGBUS if full).
    public static func create(path: String, size: UInt64) throws -> PageFile {
        let fd = try checked("open(O_CREAT)", path) { Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        do {
            // 0600 whatever the umask, and for a file that existed with another mode.
            try checked("fchmod(0600)", path) { fchmod(fd, 0o600) }
            // Not allocated up front: the dumpers' pwrite() reports a full file system as ENOSPC
            // (a store into the mapping would raise SIGBUS instead, hence `write(_:at:)`), and
            // posix_fallocate on tmpfs took ~245 ms per GiB before any copy could start; without
            // it the pwrite()s allocate the pages themselves and a checkpoint to /dev/shm is
            // 10-15 % faster overall (vos-bench A/B, BENCHMARKS.md).
            try checked("ftruncate", path) { ftruncate(fd, off_t(size)) }
            return try PageFile(path: path, fd: fd, size: size, writable: true)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Maps an existing file read-only.
    public static func open(path: String, size: UInt64) throws -> PageFile {
        let fd = try checked("open", path) { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        do { return try PageFile(path: path, fd: fd, size: size, writable: false) } catch {
            close(fd)
            throw error
        }
    }

    /// Maps a duplicate of `fd` (a memory image's memfd); the caller keeps its own descriptor.
    public convenience init(duplicating fd: Int32, name: String, size: UInt64, writable: Bool) throws {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if copy < 0 { throw SyscallError(call: "fcntl(F_DUPFD_CLOEXEC)", errno: .init(rawValue: errno), subject: name) }
        do { try self.init(path: name, fd: copy, size: size, writable: writable) } catch {
            close(copy)
            throw error
        }
    }

    private init(path: String, fd: Int32, size: UInt64, writable: Bool) throws {
        self.path = path
        self.fd = fd
        self.size = size
        if size == 0 {
            base = nil
            return
        }
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        let p = mmap(nil, Int(size), prot, MAP_SHARED, fd, 0)
        if p == MAP_FAILED {
            throw SyscallError(call: "mmap", errno: .init(rawValue: errno), subject: path)
        }
        base = p
    }

    deinit {
        if let base { munmap(base, Int(size)) }
        close(fd)
    }

    /// Writes `bytes` at `offset` with pwrite(2), retrying short writes. Throws on a file
    /// opened read-only (EBADF) and on a full file system.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(SyscallError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = try checked("pwrite", "\(path) at \(offset + UInt64(done))") {
                pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            guard n > 0 else { throw SyscallError(call: "pwrite", errno: .noSpace, subject: "\(path): wrote nothing") }
            done += n
        }
    }

    /// Reads `count` bytes at `offset` with pread(2) into `buffer`.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws(SyscallError) {
        try Self.preadAll(fd: fd, into: buffer, count: count, at: offset, what: path)
    }

    public static func preadAll(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64,
                                what: String) throws(SyscallError) {
        var done = 0
        while done < count {
            let n = try checked("pread", "\(what) at \(offset + UInt64(done))") {
                pread(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            }
            guard n > 0 else { throw SyscallError(call: "pread", errno: .ioError, subject: "\(what): ends before \(offset + UInt64(count))") }
            done += n
        }
    }

    public func bytes(at offset: UInt64, length: UInt64) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { $0 + Int(offset) }, count: Int(length))
    }
}
