// Bulk access to another process's memory: process_vm_readv / process_vm_writev in large
// batches (probe 9: ~6-8 GB/s, 1.7x /proc/PID/mem), and /proc/PID/mem for the odd forced write.
import CVOSShim
import Glibc

public struct RemoteRange: Sendable, Equatable {
    public var address: RemoteAddress
    public var length: UInt64
    public init(address: RemoteAddress, length: UInt64) {
        self.address = address
        self.length = length
    }
}

public enum ProcessMemory {
    /// The kernel's IOV_MAX: at most this many remote iovecs per call.
    static let maxIovecs = 1024

    /// Copies `ranges` of `pid`'s memory, in order, into `buffer`. Throws if any byte could not
    /// be read (a short count means the target's mapping changed or a page is inaccessible).
    public static func read(pid: PID, ranges: [RemoteRange], into buffer: UnsafeMutableRawPointer) throws(SyscallError) {
        try transfer(pid: pid, ranges: ranges, buffer: buffer, write: false)
    }

    /// Copies `buffer` into `ranges` of `pid`'s memory, in order.
    public static func write(pid: PID, ranges: [RemoteRange], from buffer: UnsafeRawPointer) throws(SyscallError) {
        try transfer(pid: pid, ranges: ranges, buffer: UnsafeMutableRawPointer(mutating: buffer), write: true)
    }

    private static func transfer(pid: PID, ranges: [RemoteRange], buffer: UnsafeMutableRawPointer, write: Bool) throws(SyscallError) {
        let call = write ? "process_vm_writev" : "process_vm_readv"
        var remote: [iovec] = ranges.map {
            iovec(iov_base: UnsafeMutableRawPointer(bitPattern: UInt($0.address.raw)), iov_len: Int($0.length))
        }
        var first = 0  // first iovec not fully transferred
        var offset = 0  // bytes of `buffer` done
        while first < remote.count {
            let n = min(maxIovecs, remote.count - first)
            let total = remote[first..<first + n].reduce(0) { $0 + $1.iov_len }
            var local = iovec(iov_base: buffer + offset, iov_len: total)
            let got = try checked(call, "pid \(pid) at \(RemoteAddress(UInt64(UInt(bitPattern: remote[first].iov_base))))") {
                remote.withUnsafeBufferPointer { rp in
                    write
                        ? vos_process_vm_writev(pid, &local, 1, rp.baseAddress! + first, UInt(n))
                        : vos_process_vm_readv(pid, &local, 1, rp.baseAddress! + first, UInt(n))
                }
            }
            if got == 0 {
                let at = RemoteAddress(UInt64(UInt(bitPattern: remote[first].iov_base)))
                throw SyscallError(call: call, errno: .badAddress, subject: "pid \(pid) at \(at) (nothing transferred)")
            }
            offset += got
            // The kernel stops at the first inaccessible page; skip what was done and retry from there.
            var skip = got
            while skip > 0 && skip >= remote[first].iov_len {
                skip -= remote[first].iov_len
                first += 1
            }
            if skip > 0 {
                remote[first].iov_base = remote[first].iov_base.map { $0 + skip }
                remote[first].iov_len -= skip
            }
        }
    }
}

/// `/proc/PID/pagemap`: one 64-bit entry per page (bit 63 present, 62 swapped, 61 file page
/// or shared anonymous). Read once per VMA.
public struct Pagemap: ~Copyable {
    public let fd: Int32
    public let pid: PID

    public init(pid: PID) throws(SyscallError) {
        let path = "/proc/\(pid)/pagemap"
        fd = try checked("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        self.pid = pid
    }

    deinit { close(fd) }

    public static let present: UInt64 = 1 << 63
    public static let swapped: UInt64 = 1 << 62
    public static let fileOrShared: UInt64 = 1 << 61

    /// Entries for `pageCount` pages starting at `start`.
    public func entries(start: RemoteAddress, pageCount: Int) throws(SyscallError) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: pageCount)
        let bytes = pageCount * 8
        var done = 0
        while done < bytes {
            let n = try checked("pread", "/proc/\(pid)/pagemap at \(start)") {
                out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, bytes - done, off_t(start.raw / pageSize * 8) + off_t(done)) }
            }
            if n == 0 { break }
            done += n
        }
        return out
    }
}
