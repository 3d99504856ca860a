// The non-cooperative side of a userfaultfd (linux/userfaultfd.h, all in the 6.1 headers): the
// event features a post-copy server asks for, and every message kind decoded, because a process
// that runs while its pages arrive forks, unmaps, discards and moves memory under the server.
import CVOSShim
import Glibc
import SystemPackage

extension Userfaultfd.Features {
    public static let eventFork = Self(rawValue: 1 << 1)
    public static let eventRemap = Self(rawValue: 1 << 3)
    public static let eventRemove = Self(rawValue: 1 << 4)
    public static let eventUnmap = Self(rawValue: 1 << 6)
}

extension Userfaultfd {
    /// One `struct uffd_msg`, decoded by its event.
    public enum Event: Sendable, Equatable {
        /// A thread waits for the page at `address` (page-aligned).
        case pageFault(address: UInt64)
        /// The process forked: `fd` is a new userfaultfd, in vos's fd table, for the child's mm.
        case fork(fd: Int32)
        /// mremap moved `[from, from+length)` to `to`.
        case remap(from: UInt64, to: UInt64, length: UInt64)
        /// `MADV_DONTNEED`/`MADV_REMOVE`: the range is empty again and must read as zeros.
        case remove(start: UInt64, end: UInt64)
        /// munmap (or a mapping over it): the range is gone.
        case unmap(start: UInt64, end: UInt64)
        case other(UInt8)
    }

    /// Reads every pending message (the fd is non-blocking); an empty array when none is.
    public func readEvents() throws(SyscallError) -> [Event] {
        var out: [Event] = []
        var buffer = [vos_uffd_msg](repeating: vos_uffd_msg(), count: 64)
        let size = MemoryLayout<vos_uffd_msg>.stride
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
            if n == -1 {
                let e = vos_errno()
                if e == EAGAIN { return out }
                if e == EINTR { continue }
                throw SyscallError(call: "read(userfaultfd)", errno: Errno(rawValue: e), subject: subject)
            }
            guard n > 0, n % size == 0 else {
                throw SyscallError(call: "read(userfaultfd)", errno: .ioError, subject: "\(subject): read \(n) bytes, not whole messages")
            }
            for m in buffer.prefix(n / size) { out.append(Self.decode(m)) }
            if n < buffer.count * size { return out }
        }
    }

    static func decode(_ m: vos_uffd_msg) -> Event {
        switch m.event {
        case 0x12: return .pageFault(address: m.arg.1 & ~(UInt64(4096) - 1))
        case 0x13: return .fork(fd: Int32(truncatingIfNeeded: m.arg.0))
        case 0x14: return .remap(from: m.arg.0, to: m.arg.1, length: m.arg.2)
        case 0x15: return .remove(start: m.arg.0, end: m.arg.1)
        case 0x16: return .unmap(start: m.arg.0, end: m.arg.1)
        default: return .other(m.event)
        }
    }

    /// `UFFDIO_COPY` that reports instead of throwing what a post-copy server expects: the bytes
    /// copied and, if it stopped short, why (`EEXIST`: the page is there already; `EAGAIN`: an
    /// event must be read first; `ESRCH`: the process's memory is gone).
    public func copyReporting(to destination: UInt64, from source: UnsafeRawPointer, length: UInt64) -> (copied: UInt64, errno: Int32) {
        var c = vos_uffdio_copy(dst: destination, src: UInt64(UInt(bitPattern: source)), len: length, mode: 0, copy: 0)
        let r = vos_ioctl(fd.rawValue, VOS_UFFDIO_COPY, &c)
        let copied = c.copy > 0 ? UInt64(c.copy) : 0
        if r == -1 { return (copied, vos_errno()) }
        return (copied, copied < length ? EAGAIN : 0)
    }

    /// `UFFDIO_ZEROPAGE` for one page, reporting like `copyReporting`.
    public func zeroPageReporting(at address: UInt64) -> Int32 {
        var z = vos_uffdio_zeropage(range: vos_uffdio_range(start: address, len: 4096), mode: 0, zeropage: 0)
        return vos_ioctl(fd.rawValue, VOS_UFFDIO_ZEROPAGE, &z) == -1 ? vos_errno() : 0
    }
}
