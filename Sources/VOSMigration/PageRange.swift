// Page ranges a dirty-tracking round reports, and the interval arithmetic the tracker needs
// to diff address-space layouts between rounds.
import VOSLinux

/// `pageCount` pages starting at `address` (page-aligned) in the tracked process.
public struct PageRange: Sendable, Equatable, CustomStringConvertible {
    public var address: UInt64
    public var pageCount: UInt64

    public init(address: UInt64, pageCount: UInt64) {
        self.address = address
        self.pageCount = pageCount
    }

    public var end: UInt64 { address + pageCount * pageSize }
    public var bytes: UInt64 { pageCount * pageSize }
    public var remote: RemoteRange { RemoteRange(address: RemoteAddress(address), length: bytes) }
    public var description: String { "\(RemoteAddress(address))+\(pageCount)p" }
}

extension Array where Element == PageRange {
    public var pageCount: UInt64 { reduce(0) { $0 + $1.pageCount } }
}

/// Sorted, disjoint, non-adjacent half-open address intervals.
enum Intervals {
    static func normalize(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        for r in ranges.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<Swift.max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// `a` minus `b`, both normalized.
    static func subtract(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var j = 0
        for r in a {
            var lo = r.lowerBound
            while j < b.count && b[j].upperBound <= lo { j += 1 }
            var k = j
            while k < b.count && b[k].lowerBound < r.upperBound {
                if b[k].lowerBound > lo { out.append(lo..<b[k].lowerBound) }
                lo = Swift.max(lo, b[k].upperBound)
                k += 1
            }
            if lo < r.upperBound { out.append(lo..<r.upperBound) }
        }
        return out
    }

    /// `a` ∩ `b`, both normalized.
    static func intersect(_ a: [Range<UInt64>], _ b: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let lo = Swift.max(a[i].lowerBound, b[j].lowerBound), hi = Swift.min(a[i].upperBound, b[j].upperBound)
            if lo < hi { out.append(lo..<hi) }
            if a[i].upperBound < b[j].upperBound { i += 1 } else { j += 1 }
        }
        return out
    }

    static func pageRanges(_ ranges: [Range<UInt64>]) -> [PageRange] {
        normalize(ranges).map { PageRange(address: $0.lowerBound, pageCount: UInt64($0.count) / pageSize) }
    }
}
