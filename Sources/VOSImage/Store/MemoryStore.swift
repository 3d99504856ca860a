// An image held in memory, one memfd per part: what a node streams to another (and what the
// receiving node restores from) without a temporary file. Page files are memfds too, so the
// restore reads them with pread(2) exactly as it reads files.
import Glibc
import VOSLinux

public final class MemoryStore: ImageStore, @unchecked Sendable {
    public let location: String
    private var parts: [String: (fd: Int32, size: UInt64)] = [:]
    /// Part names in the order they were made (a stream sends them in this order).
    public private(set) var order: [String] = []

    public init(location: String) { self.location = location }

    deinit { discard() }

    public func size(of part: String) -> UInt64? { parts[part]?.size }

    public func contents(of part: String) -> [UInt8]? {
        guard let p = parts[part] else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(p.size))
        let ok = bytes.withUnsafeMutableBytes { b in
            b.count == 0 || (try? PageFile.preadAll(fd: p.fd, into: b.baseAddress!, count: b.count, at: 0, what: part)) != nil
        }
        return ok ? bytes : nil
    }

    public func write(_ part: String, _ bytes: [UInt8]) throws {
        let fd = try make(part, size: 0)
        try bytes.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let n = Glibc.write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 { throw SyscallError(call: "write", errno: .init(rawValue: errno), subject: "memfd \(part)") }
                done += n
            }
        }
        parts[part]?.size = UInt64(bytes.count)
    }

    public func createPages(_ part: String, size: UInt64) throws -> PageFile {
        let fd = try make(part, size: size)
        return try PageFile(duplicating: fd, name: "memfd \(part)", size: size, writable: true)
    }

    public func openPages(_ part: String, size: UInt64) throws -> PageFile {
        guard let p = parts[part] else { throw ImageError.missingPart(part, path: location) }
        return try PageFile(duplicating: p.fd, name: "memfd \(part)", size: size, writable: false)
    }

    /// A part's memfd, for streaming it out (read with pread; the store keeps ownership).
    public func descriptor(of part: String) -> Int32? { parts[part]?.fd }

    /// Makes an empty part of `size` bytes and returns its memfd, to be filled by a receiver.
    @discardableResult
    public func make(_ part: String, size: UInt64) throws -> Int32 {
        if let old = parts.removeValue(forKey: part) {
            close(old.fd)
            order.removeAll { $0 == part }
        }
        let fd = try MemfdCreate.create("vos-image:\(part)")
        if ftruncate(fd, off_t(size)) != 0 {
            let e = errno
            close(fd)
            throw SyscallError(call: "ftruncate", errno: .init(rawValue: e), subject: "memfd \(part) to \(size) bytes")
        }
        parts[part] = (fd, size)
        order.append(part)
        return fd
    }

    /// Grows (or makes) a part to at least `size` bytes; returns its memfd.
    public func reserve(_ part: String, size: UInt64) throws -> Int32 {
        guard let p = parts[part] else { return try make(part, size: size) }
        if size > p.size {
            if ftruncate(p.fd, off_t(size)) != 0 {
                throw SyscallError(call: "ftruncate", errno: .init(rawValue: errno), subject: "memfd \(part) to \(size) bytes")
            }
            parts[part]?.size = size
        }
        return p.fd
    }

    public func discard() {
        for p in parts.values { close(p.fd) }
        parts = [:]
        order = []
    }
}
