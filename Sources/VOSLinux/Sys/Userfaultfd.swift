// A userfaultfd held by vos: the ioctls of linux/userfaultfd.h, typed. The fd may belong to
// another process's mm (created there by an injected userfaultfd() and pulled out with
// pidfd_getfd: probe 3); every ioctl then acts on that process's memory. Used for dirty tracking
// (MODE_WP with WP_ASYNC: the kernel resolves faults itself and PAGEMAP_SCAN reads the result)
// and for post-copy (MODE_MISSING: faults are read as events, UserfaultfdEvents.swift, and
// resolved with copy/zeropage).
import CVOSShim
import Glibc
import SystemPackage

public final class Userfaultfd: @unchecked Sendable {
    /// `UFFDIO_API` features (the `UFFD_FEATURE_*` bits).
    public struct Features: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let wpUnpopulated = Features(rawValue: VOS_UFFD_FEATURE_WP_UNPOPULATED)
        public static let wpAsync = Features(rawValue: VOS_UFFD_FEATURE_WP_ASYNC)
    }

    /// `UFFDIO_REGISTER_MODE_*`.
    public struct Mode: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let missing = Mode(rawValue: VOS_UFFDIO_REGISTER_MODE_MISSING)
        public static let writeProtect = Mode(rawValue: VOS_UFFDIO_REGISTER_MODE_WP)
        public static let minor = Mode(rawValue: VOS_UFFDIO_REGISTER_MODE_MINOR)
    }

    public private(set) var fd: FileDescriptor
    /// Whose memory this fd acts on, for error messages: "userfaultfd of pid 4242".
    public let subject: String
    /// What the kernel reported back from `UFFDIO_API` (every supported feature, not only the
    /// requested ones: probe 3) and the ioctls the fd accepts.
    public private(set) var features: Features = []
    public private(set) var ioctls: UInt64 = 0
    private var closed = false

    /// Takes ownership of `fd` (from `pidfd_getfd` or `create`).
    public init(adopting fd: FileDescriptor, subject: String) {
        self.fd = fd
        self.subject = subject
    }

    /// `userfaultfd(2)` for vos's own mm.
    public static func create(flags: Int32 = O_CLOEXEC | O_NONBLOCK) throws(SyscallError) -> Userfaultfd {
        let fd = try checked("userfaultfd", "self") { vos_syscall6(Int(VOS_SYS_userfaultfd), Int(flags), 0, 0, 0, 0, 0) }
        return Userfaultfd(adopting: FileDescriptor(rawValue: CInt(fd)), subject: "userfaultfd of pid \(getpid())")
    }

    deinit { close() }

    /// `UFFDIO_API` handshake; must come first and only once. Returns the features the kernel
    /// reported; throws `EINVAL`-style errors when a requested feature is unsupported.
    @discardableResult
    public func api(features requested: Features) throws(SyscallError) -> Features {
        var a = vos_uffdio_api(api: VOS_UFFD_API, features: requested.rawValue, ioctls: 0)
        try ioctl("UFFDIO_API(features 0x\(String(requested.rawValue, radix: 16)))", VOS_UFFDIO_API, &a)
        features = Features(rawValue: a.features)
        ioctls = a.ioctls
        return features
    }

    /// `UFFDIO_REGISTER`: returns the range ioctls allowed on it (`_UFFDIO_*` bits).
    @discardableResult
    public func register(_ range: RemoteRange, mode: Mode) throws(SyscallError) -> UInt64 {
        var r = vos_uffdio_register(range: Self.range(range), mode: mode.rawValue, ioctls: 0)
        try ioctl("UFFDIO_REGISTER(mode \(mode.rawValue))", VOS_UFFDIO_REGISTER, &r, at: range)
        return r.ioctls
    }

    /// `UFFDIO_UNREGISTER`: also drops the write-protect markers of the range.
    public func unregister(_ range: RemoteRange) throws(SyscallError) {
        var r = Self.range(range)
        try ioctl("UFFDIO_UNREGISTER", VOS_UFFDIO_UNREGISTER, &r, at: range)
    }

    /// `UFFDIO_WAKE`: wakes threads waiting on faults in the range.
    public func wake(_ range: RemoteRange) throws(SyscallError) {
        var r = Self.range(range)
        try ioctl("UFFDIO_WAKE", VOS_UFFDIO_WAKE, &r, at: range)
    }

    /// `UFFDIO_COPY`: fills missing pages at `destination` with `length` bytes from vos's
    /// memory. Returns the bytes copied: less than `length` only when the kernel stopped early
    /// (`EAGAIN` after a partial copy: call again for the rest). `EEXIST` (already mapped) is thrown.
    @discardableResult
    public func copy(to destination: RemoteAddress, from source: UnsafeRawPointer, length: UInt64,
                     wake: Bool = true, writeProtect: Bool = false) throws(SyscallError) -> UInt64 {
        var mode: UInt64 = wake ? 0 : VOS_UFFDIO_COPY_MODE_DONTWAKE
        if writeProtect { mode |= VOS_UFFDIO_COPY_MODE_WP }
        var c = vos_uffdio_copy(dst: destination.raw, src: UInt64(UInt(bitPattern: source)), len: length, mode: mode, copy: 0)
        let r = vos_ioctl(fd.rawValue, VOS_UFFDIO_COPY, &c)
        if r == -1 {
            let e = vos_errno()
            if e == EAGAIN && c.copy > 0 { return UInt64(c.copy) }
            throw SyscallError(call: "ioctl(UFFDIO_COPY)", errno: Errno(rawValue: e), subject: "\(subject) at \(destination), \(length) bytes")
        }
        return UInt64(c.copy)
    }

    /// `UFFDIO_ZEROPAGE`: maps zero pages over a missing range. Returns the bytes done.
    @discardableResult
    public func zeropage(_ range: RemoteRange, wake: Bool = true) throws(SyscallError) -> UInt64 {
        var z = vos_uffdio_zeropage(range: Self.range(range), mode: wake ? 0 : VOS_UFFDIO_ZEROPAGE_MODE_DONTWAKE, zeropage: 0)
        let r = vos_ioctl(fd.rawValue, VOS_UFFDIO_ZEROPAGE, &z)
        if r == -1 {
            let e = vos_errno()
            if e == EAGAIN && z.zeropage > 0 { return UInt64(z.zeropage) }
            throw SyscallError(call: "ioctl(UFFDIO_ZEROPAGE)", errno: Errno(rawValue: e), subject: "\(subject) at \(range.address), \(range.length) bytes")
        }
        return UInt64(z.zeropage)
    }

    /// `UFFDIO_WRITEPROTECT`: sets (`protect`) or clears write protection on a WP-registered range.
    public func writeProtect(_ range: RemoteRange, protect: Bool) throws(SyscallError) {
        var w = vos_uffdio_writeprotect(range: Self.range(range), mode: protect ? 1 : 0)
        try ioctl("UFFDIO_WRITEPROTECT", VOS_UFFDIO_WRITEPROTECT, &w, at: range)
    }

    /// Closes vos's reference. When it is the last one, every registration of the context goes
    /// with it (probe 3); never throws.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd.rawValue)
    }

    private static func range(_ r: RemoteRange) -> vos_uffdio_range {
        vos_uffdio_range(start: r.address.raw, len: r.length)
    }

    private func ioctl<T>(_ call: String, _ request: UInt, _ arg: inout T, at range: RemoteRange? = nil) throws(SyscallError) {
        let what = range.map { "\(subject) [\($0.address), \($0.address + $0.length))" } ?? subject
        try checked("ioctl(\(call))", what) { withUnsafeMutableBytes(of: &arg) { vos_ioctl(fd.rawValue, request, $0.baseAddress) } }
    }
}
