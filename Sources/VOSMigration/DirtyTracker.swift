// Which pages of a running process changed since the last look: the pre-copy rounds of a live
// migration. userfaultfd write-protect in async mode on every writable private VMA, read and
// re-armed from vos by PAGEMAP_SCAN (kernel-facts 3 and 14); the process is stopped only to
// create the userfaultfd, then runs on untraced. Covers probe 3's blind spots: round 0 takes
// populated pages from a query, not from the over-reporting first scan (1); private file pages
// whose private copy disappeared (MADV_DONTNEED) are found in /proc/PID/pagemap (2); VMAs that
// appear, grow or are replaced are registered and sent whole (4). Shared mappings (blind spot 3)
// are not tracked: they belong to the final, frozen copy.
import CVOSShim
import Glibc
import VOSLinux

public final class DirtyTracker {
    public let pid: PID
    private let uffd: Userfaultfd
    private let scanner: PagemapScan
    private let pagemapPath: String
    private let pagemapFD: Int32
    /// Writable private VMAs registered for write-protection, sorted.
    private var tracked: [TrackedVMA] = []
    private var armed = false
    private var stopped = false
    /// Swap areas when tracking started: a swapped pagemap entry of a lower type is a swapped
    /// private copy, a higher one a uffd-wp marker left where a page was dropped.
    private let swapAreas: UInt64

    /// Duration of the last round's scans and pagemap reads (ns), for the caller's downtime estimate.
    public private(set) var lastRoundNanos: UInt64 = 0

    struct TrackedVMA {
        var range: Range<UInt64>
        var isFile: Bool
        /// Private file VMAs only: per page, whether it held a private anonymous copy at the last round.
        var privateCopies: [Bool] = []
    }

    /// The ranges tracked now.
    public var trackedRanges: [RemoteRange] {
        tracked.map { RemoteRange(address: RemoteAddress($0.range.lowerBound), length: UInt64($0.range.count)) }
    }

    /// Sets tracking up on `pid`: briefly freezes it for two injected calls, then registers every
    /// writable private VMA from vos. On failure the process is left as it was: running, nothing
    /// registered, no fd added.
    public init(pid: PID) throws {
        self.pid = pid
        pagemapPath = "/proc/\(pid)/pagemap"
        let path = pagemapPath
        scanner = try PagemapScan(pid: pid)
        pagemapFD = try checked("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        swapAreas = UInt64(max(0, ((try? ProcFile.text("/proc/swaps")) ?? "").split(separator: "\n").count - 1))
        do {
            uffd = try TrackerSetup.pullUserfaultfd(pid: pid)
        } catch {
            close(pagemapFD)
            throw MigrationError("cannot track pid \(pid)", cause: error)
        }
        do {
            try uffd.api(features: [.wpAsync, .wpUnpopulated])
            let vmas = try Self.eligible(pid: pid)
            for vma in vmas where try register(vma.range) {
                tracked.append(vma)
            }
        } catch {
            stop()
            throw MigrationError("cannot track pid \(pid)", cause: error)
        }
    }

    deinit {
        stop()
        close(pagemapFD)
    }

    /// Round 0: every populated page of the tracked VMAs, and write-protection armed on all of
    /// them. A page written from now on shows up in `nextRound()`.
    public func firstRound() throws -> [PageRange] {
        guard !stopped else { throw MigrationError("dirty tracking of pid \(pid)", reason: "it was stopped") }
        let t0 = Kernel.monotonicNanos()
        defer { lastRoundNanos = Kernel.monotonicNanos() - t0 }
        var out: [Range<UInt64>] = []
        for i in tracked.indices { out += try arm(&tracked[i]) }
        armed = true
        return Intervals.pageRanges(out)
    }

    /// Pages written since the last round, plus VMAs that appeared or grew (whole) and private
    /// file pages that lost their private copy. Needs no stop: it works on a running process as
    /// well as on one frozen by ptrace (the final round of a migration).
    public func nextRound() throws -> [PageRange] {
        guard armed else { return try firstRound() }
        guard !stopped else { throw MigrationError("dirty tracking of pid \(pid)", reason: "it was stopped") }
        let t0 = Kernel.monotonicNanos()
        defer { lastRoundNanos = Kernel.monotonicNanos() - t0 }
        var out: [Range<UInt64>] = []

        // The layout now: drop what went, register what came.
        let current = try Self.eligible(pid: pid, quick: true)
        let old = Intervals.normalize(tracked.map(\.range))
        let now = Intervals.normalize(current.map(\.range))
        for gone in Intervals.subtract(old, now) {
            // Unmapped: nothing to do; made read-only or shared: its registration must still go.
            try? uffd.unregister(Self.remote(gone))
        }
        var added = Intervals.subtract(now, old)
        var next: [TrackedVMA] = []
        if !added.isEmpty {
            // Only new pieces need the VmFlags check (VM_IO, VM_PFNMAP): read smaps for them alone.
            let allowed = Intervals.normalize(try Self.eligible(pid: pid).map(\.range))
            added = Intervals.intersect(added, allowed)
        }
        for var vma in current {
            let fresh = Intervals.intersect([vma.range], added)
            let kept = Intervals.intersect([vma.range], old)
            if fresh.isEmpty && kept.isEmpty { continue }
            let registered = try fresh.filter { try register($0) }
            if !registered.isEmpty {
                // Grown or new: send its populated pages whole; keep only the old part's copy bits.
                vma.privateCopies = []
                out += try arm(&vma, only: registered)
            }
            for r in kept {
                do {
                    out += try scanWritten(r)
                } catch let e as SyscallError where e.errno == .notPermitted {
                    // A VMA in the range is not registered: it was replaced (munmap + mmap at the
                    // same place). Register it and send it whole.
                    if try register(r) { out += try arm(&vma, only: [r]) }
                }
            }
            if vma.isFile { out += try lostPrivateCopies(&vma, previous: tracked) }
            next.append(vma)
        }
        tracked = next
        return Intervals.pageRanges(out)
    }

    /// Unregisters every range and closes vos's userfaultfd: the process keeps no trace (no
    /// `uw` in its VmFlags, no write-protect bits). Never throws; idempotent.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        for vma in tracked { try? uffd.unregister(Self.remote(vma.range)) }
        tracked = []
        uffd.close()
    }

    /// Registers `r` for write-protection. False when it failed because the range is no
    /// longer one writable private mapping (unmapped or changed meanwhile: the process runs).
    private func register(_ r: Range<UInt64>) throws -> Bool {
        do {
            try uffd.register(Self.remote(r), mode: .writeProtect)
            return true
        } catch {
            let now = Intervals.normalize(try Self.eligible(pid: pid, quick: true).map(\.range))
            if Intervals.subtract([r], now).isEmpty { throw error }
            return false
        }
    }

    // MARK: scans

    /// Write-protects `ranges` of `vma` (all of it by default) and returns their populated pages.
    /// Populated = PRESENT|SWAPPED queried before the first write-protecting scan (after it,
    /// uffd-wp markers on untouched ptes also count as SWAPPED: blind spot 1) ∪ PRESENT after
    /// it (a page populated between the two is not lost), ∩ what that scan reported.
    private func arm(_ vma: inout TrackedVMA, only ranges: [Range<UInt64>]? = nil) throws -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        for r in ranges ?? [vma.range] {
            let before = try scanner.scan(start: r.lowerBound, end: r.upperBound, flags: [.checkWPAsync],
                                          anyOf: [.present, .swapped], returned: [.present, .swapped])
            let written = try scanWritten(r)
            let after = try scanner.scan(start: r.lowerBound, end: r.upperBound, flags: [.checkWPAsync],
                                         required: [.present], returned: [.present])
            let populated = Intervals.normalize(before.map { $0.start..<$0.end } + after.map { $0.start..<$0.end })
            out += Intervals.intersect(populated, Intervals.normalize(written))
        }
        if vma.isFile { vma.privateCopies = try privateCopies(vma.range) }
        return out
    }

    /// Pages of `r` written since they were last protected; protects them again.
    private func scanWritten(_ r: Range<UInt64>) throws -> [Range<UInt64>] {
        try scanner.scan(start: r.lowerBound, end: r.upperBound, flags: [.writeProtectMatching, .checkWPAsync],
                         required: [.written], returned: [.written]).map { $0.start..<$0.end }
    }

    /// Blind spot 2: a private file page dropped by MADV_DONTNEED reads the file again, with no
    /// write to report. Its pagemap entry shows it: the private (anonymous) copy is gone.
    private func lostPrivateCopies(_ vma: inout TrackedVMA, previous: [TrackedVMA]) throws -> [Range<UInt64>] {
        let now = try privateCopies(vma.range)
        defer { vma.privateCopies = now }
        var out: [Range<UInt64>] = []
        // The previous round's bits, wherever the VMA was then (it may have been split or merged).
        for old in previous where old.isFile && !old.privateCopies.isEmpty {
            let lo = max(old.range.lowerBound, vma.range.lowerBound), hi = min(old.range.upperBound, vma.range.upperBound)
            guard lo < hi else { continue }
            for page in stride(from: lo, to: hi, by: Int(pageSize)) {
                let was = old.privateCopies[Int((page - old.range.lowerBound) / pageSize)]
                let isNow = now[Int((page - vma.range.lowerBound) / pageSize)]
                if was && !isNow { out.append(page..<page + pageSize) }
            }
        }
        return out
    }

    /// Per page of `r`: does it hold a private anonymous copy (present and not a file page, or
    /// swapped out to a real swap area)?
    private func privateCopies(_ r: Range<UInt64>) throws -> [Bool] {
        let count = Int(UInt64(r.count) / pageSize)
        var entries = [UInt64](repeating: 0, count: count)
        let bytes = count * 8
        var done = 0
        while done < bytes {
            let path = pagemapPath, fd = pagemapFD
            let n = try checked("pread", "\(path) at \(RemoteAddress(r.lowerBound))") {
                entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, bytes - done, off_t(r.lowerBound / pageSize * 8) + off_t(done)) }
            }
            if n == 0 { break }
            done += n
        }
        return entries.map { e in
            if e & Pagemap.fileOrShared != 0 { return false }
            if e & Pagemap.present != 0 { return true }
            // Swap entry: bits 0-4 hold its type; uffd-wp markers and migration entries use types
            // above every real swap area.
            return e & Pagemap.swapped != 0 && (e & 0x1f) < swapAreas
        }
    }

    // MARK: layout

    /// Writable private VMAs: anonymous ones, [heap], [stack] and private file mappings. Not
    /// shared ones (blind spot 3), not [vsyscall]/[vdso]/[vvar], not VM_IO/VM_PFNMAP/mixed-map
    /// device memory (needs smaps: skipped when `quick`).
    static func eligible(pid: PID, quick: Bool = false) throws -> [TrackedVMA] {
        let regions = quick ? try MemoryMap.readRanges(pid: pid) : try MemoryMap.read(pid: pid)
        return regions.filter { r in
            r.isWritable && !r.isShared && !r.isSpecial && !r.hasFlag("io") && !r.hasFlag("pf") && !r.hasFlag("mm")
        }.map { TrackedVMA(range: $0.start.raw..<$0.end.raw, isFile: $0.isFile) }
    }

    static func remote(_ r: Range<UInt64>) -> RemoteRange {
        RemoteRange(address: RemoteAddress(r.lowerBound), length: UInt64(r.count))
    }
}
