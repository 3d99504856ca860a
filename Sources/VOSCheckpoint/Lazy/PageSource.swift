// Where a lazily restored process's pages come from: the local image (`ImagePageSource`) or,
// for migration, the source node serving them over the network. A page server reads from one
// thread per source today, but a fork gives a second userfaultfd served from the same source,
// and a network source may answer several readers: implementations must be thread-safe.
import Dispatch
import VOSImage
import VOSLinux

/// Stored pages of one process, as the image's page runs list them: saved addresses, in the
/// saved process's address space.
public struct PageSpan: Sendable, Equatable {
    public var address: UInt64
    public var pageCount: UInt64
    public init(address: UInt64, pageCount: UInt64) {
        self.address = address
        self.pageCount = pageCount
    }
}

public protocol PageSource: AnyObject, Sendable {
    /// Every stored run of the process saved as `pid` (its PID in the image), ascending.
    func spans(pid: PID) throws -> [PageSpan]
    /// Fills `into` with `count` bytes (whole pages) saved at `address` in `pid`'s memory. The
    /// range lies inside one span of `spans(pid:)`. Throws when the bytes cannot be had or fail
    /// verification: the page server then kills the process rather than let it run on zeros.
    func read(pid: PID, address: UInt64, count: Int, into: UnsafeMutableRawPointer) throws
}

/// Pages from a local image's page file, each 16 MiB checksum chunk verified the first time any
/// of its bytes is read (a fault then pays for one chunk, ~2 ms, once).
public final class ImagePageSource: PageSource, @unchecked Sendable {
    private struct Process {
        var image: ProcessImage
        var runs: [PageRun]  // ascending by address
        var verified: [Bool]
    }
    private var processes: [PID: Process] = [:]
    private let lock = DispatchQueue(label: "vos.lazy.image-page-source")

    public init(image: ImageReader) {
        for p in image.processes {
            let runs = p.record.memory.flatMap(\.runs).sorted { $0.address < $1.address }
            processes[p.record.pid] = Process(image: p, runs: runs, verified: Array(repeating: false, count: p.chunks.count))
        }
    }

    public func spans(pid: PID) throws -> [PageSpan] {
        try lock.sync { try process(pid).runs.map { PageSpan(address: $0.address.raw, pageCount: $0.pageCount) } }
    }

    public func read(pid: PID, address: UInt64, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        let (image, offset, chunks) = try lock.sync { () throws -> (ProcessImage, UInt64, [Int]) in
            let p = try process(pid)
            // The last run starting at or below `address`.
            var lo = 0, hi = p.runs.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if p.runs[mid].address.raw <= address { lo = mid + 1 } else { hi = mid }
            }
            guard lo > 0, case let run = p.runs[lo - 1], address + UInt64(count) <= run.address.raw + run.length else {
                throw ImageError.inconsistent("pid \(pid) has no stored pages at 0x\(String(address, radix: 16)) (+\(count) bytes)")
            }
            let offset = run.fileOffset + (address - run.address.raw)
            let end = offset + UInt64(count)
            let chunks = p.image.chunks.indices.filter { i in
                !p.verified[i] && p.image.chunks[i].offset < end && offset < p.image.chunks[i].offset + p.image.chunks[i].length
            }
            return (p.image, offset, chunks)
        }
        guard let pages = image.pages else { throw ImageError.inconsistent("pid \(pid) has page runs but no \(image.pagesPart)") }
        for i in chunks {
            try image.verify(chunk: image.chunks[i])
            lock.sync { processes[pid]?.verified[i] = true }
        }
        try pages.read(into: buffer, count: count, at: offset)
    }

    private func process(_ pid: PID) throws -> Process {
        guard let p = processes[pid] else { throw ImageError.inconsistent("the image holds no process \(pid)") }
        return p
    }
}
