// Dirty-page tracking for live pre-copy (issue 6): a running program's memory copied round by
// round from what the tracker reports must equal the program's memory byte for byte at the
// freeze, and stopping the tracker must leave the program exactly as it was.
import Foundation
import Glibc
import Testing
import VOSCheckpoint
import VOSLinux
import VOSMigration

@Suite(.serialized)
struct DirtyTrackerTests {
    /// Pre-copy of a program rewriting 200 random pages every 10 ms: rounds while it runs, one
    /// more after it maps a new region and drops private file pages, a final one while frozen by
    /// ptrace; the local copy then equals every tracked VMA. stop() leaves no trace.
    @Test func localPreCopyEqualsMemoryAtFreeze() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("dirtier.txt")
        let pid = try f.start(Products.path("vos-test-dirtier"), ["64", "200"], stdout: out)
        try #require(waitUntil { lines(out).contains { $0.hasPrefix("ready") } })

        var t0 = Kernel.monotonicNanos()
        let tracker = try DirtyTracker(pid: pid)
        let setupMs = ms(since: t0)
        #expect(userfaultfdsHeld(by: pid) == 0, "the process's own userfaultfd fd is closed again")
        #expect((try ProcStatus.read("/proc/\(pid)/status")).number("TracerPid") == 0, "the process runs untraced between rounds")
        #expect(f.isAlive(pid))

        let mirror = Mirror(pid: pid)
        t0 = Kernel.monotonicNanos()
        let round0 = try tracker.firstRound()
        let scan0 = ms(since: t0)
        try mirror.copy(round0)
        #expect(round0.pageCount >= 64 * 256, "round 0 holds at least the 64 MiB buffer: \(round0.pageCount) pages")
        var log = "setup \(fmt(setupMs)) ms; round 0: \(round0.pageCount) pages, scan \(fmt(scan0)) ms"
        for k in 1...3 {
            usleep(50_000)
            let r = try tracker.nextRound()
            try mirror.copy(r)
            log += "; round \(k): \(r.pageCount) pages in \(r.count) ranges, scan \(fmt(Double(tracker.lastRoundNanos) / 1e6)) ms"
            #expect(r.pageCount > 0, "round \(k): the program writes 200 pages every 10 ms")
            #expect(r.pageCount < round0.pageCount)
        }
        // A new region and private file pages dropped back to the file's content.
        let mappedBefore = lines(out).filter { $0.hasPrefix("mapped") }.count
        kill(pid, SIGUSR2)
        try #require(waitUntil { lines(out).filter { $0.hasPrefix("mapped") }.count > mappedBefore })
        let r4 = try tracker.nextRound()
        try mirror.copy(r4)
        log += "; round 4 (new 4 MiB region): \(r4.pageCount) pages"
        #expect(r4.pageCount >= 1024)

        // The final round, frozen by ptrace like a checkpoint's freeze.
        let frozen = try FrozenProcess(pid: pid)
        t0 = Kernel.monotonicNanos()
        let last = try tracker.nextRound()
        let lastScan = ms(since: t0)
        try mirror.copy(last)
        let downtime = ms(since: t0)
        log += "; final round frozen: \(last.pageCount) pages, scan \(fmt(lastScan)) ms, scan+copy \(fmt(downtime)) ms"
        let (compared, mismatches) = try mirror.compare(tracker.trackedRanges)
        frozen.thaw()
        print("dirty tracker, 64 MiB rewriting 200 pages/10 ms: \(log); compared \(compared) pages")
        #expect(mismatches.isEmpty, "pages differing from the process at the freeze: \(mismatches.prefix(10)) (\(mismatches.count))")
        #expect(compared >= 64 * 256 + 256 + 1024)

        tracker.stop()
        #expect(vmasWithUW(pid) == 0, "no VMA keeps VmFlags uw after stop()")
        #expect(userfaultfdsHeld(by: pid) == 0)
        let ticks = progressTicks(out)
        #expect(waitUntil { progressTicks(out) > ticks }, "the program keeps running")
        kill(pid, SIGUSR1)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("verify ok") } }, "its own verification: \(lines(out).suffix(3))")
        #expect(!lines(out).contains { $0.hasPrefix("CORRUPT") })
    }

    /// A program that writes nothing has nothing dirty, round after round.
    @Test func idleProcessReportsNothing() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("dirtier.txt")
        let pid = try f.start(Products.path("vos-test-dirtier"), ["256", "0"], stdout: out)
        try #require(waitUntil { lines(out).contains { $0.hasPrefix("ready") } })
        let tracker = try DirtyTracker(pid: pid)
        defer { tracker.stop() }
        let round0 = try tracker.firstRound()
        let scan0 = Double(tracker.lastRoundNanos) / 1e6
        #expect(round0.pageCount >= 256 * 256)
        var scans: [Double] = []
        for k in 1...3 {
            usleep(20_000)
            let r = try tracker.nextRound()
            scans.append(Double(tracker.lastRoundNanos) / 1e6)
            #expect(r.isEmpty, "round \(k) of an idle program: \(r)")
        }
        print("dirty tracker, idle 256 MiB: round 0 \(round0.pageCount) pages in \(fmt(scan0)) ms; empty rounds \(scans.map(fmt)) ms")
        tracker.stop()
        #expect(vmasWithUW(pid) == 0)
        kill(pid, SIGUSR1)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("verify ok") } })
    }

    /// A region mapped after tracking started is reported whole in the next round, and private
    /// file pages that went back to the file's content (MADV_DONTNEED) are reported too.
    @Test func newMappingIsReported() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("dirtier.txt")
        let pid = try f.start(Products.path("vos-test-dirtier"), ["16", "0"], stdout: out)
        try #require(waitUntil { lines(out).contains { $0.hasPrefix("ready") } })
        let filePages = try #require(lines(out).first { $0.hasPrefix("ready") }?.split(separator: " ").last.flatMap { UInt64($0.dropFirst(2), radix: 16) })
        let tracker = try DirtyTracker(pid: pid)
        defer { tracker.stop() }
        _ = try tracker.firstRound()
        #expect(try tracker.nextRound().isEmpty)
        kill(pid, SIGUSR2)
        try #require(waitUntil { lines(out).contains { $0.hasPrefix("mapped") } })
        let line = try #require(lines(out).first { $0.hasPrefix("mapped") })
        let address = try #require(UInt64(line.dropFirst("mapped 0x".count), radix: 16))
        usleep(50_000)  // until the program is back in sigsuspend: the round must see all it did
        let r = try tracker.nextRound()
        let newRegion = PageRange(address: address, pageCount: 1024)
        #expect(covers(r, newRegion), "the new 4 MiB region at \(RemoteAddress(address)) is reported whole: \(r)")
        #expect(covers(r, PageRange(address: filePages, pageCount: 8)), "the 8 dropped private file pages are reported: \(r)")
        #expect(tracker.trackedRanges.contains { $0.address.raw <= address && address + 4 << 20 <= $0.address.raw + $0.length })
        #expect(try tracker.nextRound().isEmpty, "and then nothing again")
        tracker.stop()
        #expect(vmasWithUW(pid) == 0)
        kill(pid, SIGUSR1)
        #expect(waitUntil { lines(out).contains { $0.hasPrefix("verify ok") } })
    }
}

/// The destination of a local pre-copy: the bytes of every page reported so far.
private final class Mirror {
    let pid: PID
    var pages: [UInt64: [UInt8]] = [:]
    init(pid: PID) { self.pid = pid }

    func copy(_ ranges: [PageRange]) throws {
        let total = Int(ranges.pageCount * pageSize)
        guard total > 0 else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 4096)
        defer { buffer.deallocate() }
        try ProcessMemory.read(pid: pid, ranges: ranges.map(\.remote), into: buffer.baseAddress!)
        var offset = 0
        for r in ranges {
            for i in 0..<r.pageCount {
                pages[r.address + i * pageSize] = Array(buffer[offset..<offset + Int(pageSize)])
                offset += Int(pageSize)
            }
        }
    }

    /// Compares every page of `ranges` in the process with the copy; a page never reported must
    /// read as it would at a destination that maps the same layout: zeros for anonymous memory,
    /// the file's bytes for a file mapping.
    func compare(_ ranges: [RemoteRange]) throws -> (pages: Int, mismatches: [RemoteAddress]) {
        let regions = try MemoryMap.readRanges(pid: pid)
        var mismatches: [RemoteAddress] = []
        var count = 0
        for r in ranges {
            var actual = [UInt8](repeating: 0, count: Int(r.length))
            try actual.withUnsafeMutableBytes { try ProcessMemory.read(pid: pid, ranges: [r], into: $0.baseAddress!) }
            for i in 0..<Int(r.length / pageSize) {
                let page = r.address.raw + UInt64(i) * pageSize
                let expected = try pages[page] ?? baseline(page, regions)
                let same = actual.withUnsafeBytes { a in expected.withUnsafeBytes { memcmp(a.baseAddress! + i * 4096, $0.baseAddress!, 4096) == 0 } }
                if !same { mismatches.append(RemoteAddress(page)) }
                count += 1
            }
        }
        return (count, mismatches)
    }

    private func baseline(_ page: UInt64, _ regions: [MemoryRegion]) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(pageSize))
        guard let vma = regions.first(where: { $0.start.raw <= page && page < $0.end.raw }), vma.isFile else { return bytes }
        let path = "/proc/\(pid)/map_files/\(String(vma.start.raw, radix: 16))-\(String(vma.end.raw, radix: 16))"
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return bytes }
        defer { close(fd) }
        _ = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4096, off_t(vma.offset + page - vma.start.raw)) }
        return bytes
    }
}

private func covers(_ ranges: [PageRange], _ r: PageRange) -> Bool {
    var page = r.address
    while page < r.end {
        guard ranges.contains(where: { $0.address <= page && page < $0.end }) else { return false }
        page += pageSize
    }
    return true
}

private func userfaultfdsHeld(by pid: PID) -> Int {
    let fds = (try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? []
    return fds.filter { fd in
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/\(pid)/fd/\(fd)", &buf, 255)
        return n > 0 && String(cString: buf).contains("userfaultfd")
    }.count
}

private func vmasWithUW(_ pid: PID) -> Int {
    ((try? MemoryMap.read(pid: pid)) ?? []).filter { $0.hasFlag("uw") }.count
}

private func progressTicks(_ path: String) -> Int {
    lines(path).last { $0.hasPrefix("progress") }.flatMap { line in
        line.split(separator: " ").first { $0.hasPrefix("ticks=") }.flatMap { Int($0.dropFirst(6)) }
    } ?? 0
}

private func ms(since t0: UInt64) -> Double { Double(Kernel.monotonicNanos() - t0) / 1e6 }
private func fmt(_ v: Double) -> String { String(format: "%.2f", v) }
