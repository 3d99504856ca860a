// The PAGEMAP_SCAN ioctl (6.7) on /proc/PID/pagemap: page ranges of another process by category
// (written since the last write-protect, present, swapped...), optionally write-protecting what
// it reports in the same walk (PM_SCAN_WP_MATCHING on uffd-wp async ranges: probe 3). One ioctl
// answers at most `vectorLength` regions; the walk resumes at `walk_end` until the range is done.
import CVOSShim
import Glibc
import SystemPackage

public final class PagemapScan {
    /// `PAGE_IS_*`.
    public struct Categories: OptionSet, Sendable, Hashable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let wpAllowed = Categories(rawValue: VOS_PAGE_IS_WPALLOWED)
        public static let written = Categories(rawValue: VOS_PAGE_IS_WRITTEN)
        public static let file = Categories(rawValue: VOS_PAGE_IS_FILE)
        public static let present = Categories(rawValue: VOS_PAGE_IS_PRESENT)
        public static let swapped = Categories(rawValue: VOS_PAGE_IS_SWAPPED)
        public static let pfnZero = Categories(rawValue: VOS_PAGE_IS_PFNZERO)
        public static let huge = Categories(rawValue: VOS_PAGE_IS_HUGE)
        public static let softDirty = Categories(rawValue: VOS_PAGE_IS_SOFT_DIRTY)
    }

    /// `PM_SCAN_*`.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        /// Write-protect the pages reported (uffd-wp async ranges only).
        public static let writeProtectMatching = Flags(rawValue: VOS_PM_SCAN_WP_MATCHING)
        /// Fail with `EPERM` when the range holds a VMA not registered for uffd-wp async.
        public static let checkWPAsync = Flags(rawValue: VOS_PM_SCAN_CHECK_WPASYNC)
    }

    /// Pages `[start, end)`, all in the same categories.
    public struct Region: Sendable, Equatable {
        public var start: UInt64
        public var end: UInt64
        public var categories: Categories
        public var pageCount: UInt64 { (end - start) / pageSize }
    }

    public let pid: PID
    public let fd: Int32
    private let path: String
    private let vector: UnsafeMutableBufferPointer<vos_page_region>
    /// Ioctls issued by the last `scan` (more than one when the vector filled).
    public private(set) var lastIoctlCount = 0

    /// Opens `/proc/PID/pagemap`. `vectorLength` regions are answered per ioctl.
    public init(pid: PID, vectorLength: Int = 4096) throws(SyscallError) {
        path = "/proc/\(pid)/pagemap"
        let p = path
        fd = try checked("open", p) { open(p, O_RDONLY | O_CLOEXEC) }
        self.pid = pid
        vector = .allocate(capacity: vectorLength)
    }

    deinit {
        close(fd)
        vector.deallocate()
    }

    /// Regions of `[start, end)` whose categories hold all of `required`, at least one of
    /// `anyOf` (when not empty) — each after flipping `inverted` — reported with the `returned`
    /// categories. Adjacent regions with the same categories are merged.
    public func scan(start: UInt64, end: UInt64, flags: Flags = [], required: Categories = [], anyOf: Categories = [],
                     inverted: Categories = [], returned: Categories) throws(SyscallError) -> [Region] {
        var out: [Region] = []
        var cursor = start
        lastIoctlCount = 0
        while cursor < end {
            var arg = vos_pm_scan_arg(
                size: UInt64(MemoryLayout<vos_pm_scan_arg>.size), flags: flags.rawValue, start: cursor, end: end, walk_end: 0,
                vec: UInt64(UInt(bitPattern: vector.baseAddress)), vec_len: UInt64(vector.count), max_pages: 0,
                category_inverted: inverted.rawValue, category_mask: required.rawValue, category_anyof_mask: anyOf.rawValue,
                return_mask: returned.rawValue)
            let from = cursor
            let n = try checked("ioctl(PAGEMAP_SCAN)", "\(path) [\(RemoteAddress(from)), \(RemoteAddress(end)))") {
                vos_ioctl(fd, VOS_PAGEMAP_SCAN, &arg)
            }
            lastIoctlCount += 1
            for i in 0..<Int(n) {
                let r = vector[i]
                let region = Region(start: r.start, end: r.end, categories: Categories(rawValue: r.categories))
                if let last = out.last, last.end == region.start, last.categories == region.categories {
                    out[out.count - 1].end = region.end
                } else {
                    out.append(region)
                }
            }
            // The walk stops early only when the vector is full; walk_end says where.
            guard arg.walk_end > cursor else { break }
            cursor = arg.walk_end
        }
        return out
    }
}
