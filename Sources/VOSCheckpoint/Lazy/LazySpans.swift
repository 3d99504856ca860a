// What one userfaultfd still owes its process: stored page runs, where they are now (mremap
// moves them) and where they were saved (what the source knows), with a bit per page copied.
// Pages cut out by MADV_DONTNEED or munmap leave the set: they must read as zeros, or are gone.

struct LazySpan {
    /// Current address of the first page, in the process being served.
    var start: UInt64
    /// Its saved address (the page source's key).
    var source: UInt64
    var pages: Int
    var done: [UInt64]
    var remaining: Int
    /// No page below this one is pending (faults and pushes only ever set bits).
    var hint = 0

    init(start: UInt64, source: UInt64, pages: Int) {
        self.start = start
        self.source = source
        self.pages = pages
        self.done = Array(repeating: 0, count: (pages + 63) / 64)
        self.remaining = pages
    }

    var end: UInt64 { start + UInt64(pages) * 4096 }

    func isDone(_ page: Int) -> Bool { done[page >> 6] & (1 << UInt64(page & 63)) != 0 }

    mutating func markDone(_ page: Int, count: Int) {
        for p in page..<(page + count) where !isDone(p) {
            done[p >> 6] |= 1 << UInt64(p & 63)
            remaining -= 1
        }
    }

    /// The first pending page at or after `hint` and how many pending pages follow it (at most `limit`).
    mutating func nextPending(limit: Int) -> (page: Int, count: Int)? {
        var p = hint
        while p < pages {
            if p & 63 == 0 && done[p >> 6] == ~0 { p += 64; continue }
            if !isDone(p) { break }
            p += 1
        }
        hint = p
        guard p < pages else { return nil }
        var n = 1
        while n < limit && p + n < pages && !isDone(p + n) { n += 1 }
        return (p, n)
    }

    /// Pages `first..<first+count` as a span of their own (bits kept).
    func slice(_ first: Int, _ count: Int) -> LazySpan {
        var s = LazySpan(start: start + UInt64(first) * 4096, source: source + UInt64(first) * 4096, pages: count)
        for p in 0..<count where isDone(first + p) { s.markDone(p, count: 1) }
        return s
    }
}

struct LazySpans {
    private(set) var spans: [LazySpan] = []

    init(_ spans: [LazySpan]) { self.spans = spans.sorted { $0.start < $1.start } }

    var remaining: Int { spans.reduce(0) { $0 + $1.remaining } }

    /// The same stored pages, none copied yet: what a child forked now may lack (copies that
    /// raced with the fork may or may not have reached it; EEXIST sorts that out).
    func forChild() -> LazySpans {
        LazySpans(spans.map { LazySpan(start: $0.start, source: $0.source, pages: $0.pages) })
    }

    /// Index of the span holding `address`, and the page in it.
    func locate(_ address: UInt64) -> (span: Int, page: Int)? {
        var lo = 0, hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if spans[mid].start <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, address < spans[lo - 1].end else { return nil }
        return (lo - 1, Int((address - spans[lo - 1].start) / 4096))
    }

    subscript(i: Int) -> LazySpan {
        get { spans[i] }
        set { spans[i] = newValue }
    }

    var indices: Range<Int> { spans.indices }

    /// Removes `[start, end)` from every span and returns the pieces removed.
    @discardableResult
    mutating func cut(_ start: UInt64, _ end: UInt64) -> [LazySpan] {
        var kept: [LazySpan] = []
        var removed: [LazySpan] = []
        for s in spans {
            guard s.start < end, start < s.end else { kept.append(s); continue }
            let a = Int((max(start, s.start) - s.start) / 4096)
            let b = Int((min(end, s.end) - s.start) / 4096)
            if a > 0 { kept.append(s.slice(0, a)) }
            removed.append(s.slice(a, b - a))
            if b < s.pages { kept.append(s.slice(b, s.pages - b)) }
        }
        spans = kept
        return removed
    }

    /// mremap moved `[from, from+length)` to `to` (whatever was at `to` is gone).
    mutating func remap(from: UInt64, to: UInt64, length: UInt64) {
        var moved = cut(from, from + length)
        cut(to, to + length)
        for i in moved.indices { moved[i].start = moved[i].start - from + to }
        spans = (spans + moved).sorted { $0.start < $1.start }
    }
}
