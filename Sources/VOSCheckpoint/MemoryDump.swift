// Memory: which pages to store (pagemap), and copying them into pages.img.
//
// Stored: pages of private mappings that are present and anonymous (never-written file pages
// come back from the file), swapped pages, and present pages of shared anonymous memory.
// Copied by one worker per CPU, chunk by chunk: process_vm_readv into a small buffer of the
// worker's, checksummed while it is still in cache, then pwrite() into pages.img.
import Dispatch
import Glibc
import VOSImage
import VOSLinux

public struct MemoryDump {
    /// Largest piece of work one worker takes at a time, and the unit of checksums in the
    /// manifest: restore splits an image the same way, so this must not change.
    public static let chunkBytes: UInt64 = 16 << 20
    /// What a worker reads and writes at once: small enough to stay in its CPU's cache between
    /// the read, the checksum and the write (256 KiB-2 MiB measured alike, 16 MiB 25 % slower).
    static let pieceBytes: UInt64 = 1 << 20

    public var records: [MemoryRecord] = []
    public var totalBytes: UInt64 = 0

    /// Decides the layout and the page runs (no page is copied yet).
    init(pid: PID, regions: [MemoryRegion]) throws {
        let pagemap = try Pagemap(pid: pid)
        var offset: UInt64 = 0
        for region in regions where region.path != "[vsyscall]" {
            var runs: [PageRun] = []
            if Self.mayHoldPages(region) {
                let entries = try pagemap.entries(start: region.start, pageCount: Int(region.pageCount))
                var i = 0
                while i < entries.count {
                    guard Self.isStored(entries[i]) else { i += 1; continue }
                    var j = i + 1
                    while j < entries.count && Self.isStored(entries[j]) { j += 1 }
                    runs.append(PageRun(address: region.start + UInt64(i) * pageSize, pageCount: UInt64(j - i), fileOffset: offset))
                    offset += UInt64(j - i) * pageSize
                    i = j
                }
            }
            records.append(MemoryRecord(region: region, runs: runs))
        }
        totalBytes = offset
    }

    /// Special mappings and shared mappings never hold pages of their own to save: a shared
    /// object is saved whole (MappedObjects), a shared file is in the file.
    static func mayHoldPages(_ r: MemoryRegion) -> Bool { !r.isSpecial && !r.isShared }

    public static func isStored(_ entry: UInt64) -> Bool {
        if entry & Pagemap.swapped != 0 { return true }
        return entry & Pagemap.present != 0 && entry & Pagemap.fileOrShared == 0
    }

    /// A unit of copying: some runs (or parts of runs), contiguous in pages.img.
    struct Chunk {
        var ranges: [RemoteRange] = []
        var fileOffset: UInt64 = 0
        var length: UInt64 = 0
        var forced = false  // the VMA is not readable: go through /proc/PID/mem
    }

    func chunks() -> [Chunk] {
        var out: [Chunk] = []
        var current = Chunk()
        for record in records {
            let forced = !record.region.isReadable
            for run in record.runs {
                var address = run.address
                var remaining = run.length
                var fileOffset = run.fileOffset
                while remaining > 0 {
                    if current.length == Self.chunkBytes || (current.length > 0 && current.forced != forced) {
                        out.append(current)
                        current = Chunk(fileOffset: fileOffset)
                    }
                    if current.length == 0 {
                        current.fileOffset = fileOffset
                        current.forced = forced
                    }
                    let take = min(remaining, Self.chunkBytes - current.length)
                    current.ranges.append(RemoteRange(address: address, length: take))
                    current.length += take
                    address = address + take
                    fileOffset += take
                    remaining -= take
                }
            }
        }
        if current.length > 0 { out.append(current) }
        return out
    }

    /// Copies every stored page into `file` and returns the per-chunk checksums.
    func copy(pid: PID, into file: PageFile) throws -> [ImageManifest.Chunk] {
        let work = chunks()
        guard !work.isEmpty else { return [] }
        var results = [Result<UInt64, Error>](repeating: .success(0), count: work.count)
        let memPath = "/proc/\(pid)/mem"
        let buffers = BufferPool(bytes: Int(Self.pieceBytes))
        results.withUnsafeMutableBufferPointer { out in
            let outBase = out.baseAddress!
            DispatchQueue.concurrentPerform(iterations: work.count) { i in
                let c = work[i]
                let buffer = buffers.take()
                defer { buffers.give(buffer) }
                do {
                    var sum = Checksum.Accumulator()
                    var offset = c.fileOffset
                    for piece in Self.pieces(of: c.ranges, size: Self.pieceBytes) {
                        if c.forced {
                            try Self.forcedRead(path: memPath, ranges: piece.ranges, into: buffer)
                        } else {
                            try ProcessMemory.read(pid: pid, ranges: piece.ranges, into: buffer)
                        }
                        let bytes = UnsafeRawBufferPointer(start: buffer, count: Int(piece.length))
                        sum.add(bytes)
                        try file.write(bytes, at: offset)
                        offset += piece.length
                    }
                    outBase[i] = .success(sum.value)
                } catch {
                    outBase[i] = .failure(error)
                }
            }
        }
        return try zip(work, results).map { c, r in ImageManifest.Chunk(offset: c.fileOffset, length: c.length, checksum: try r.get()) }
    }

    /// `ranges` cut into consecutive pieces of at most `size` bytes (a range may span pieces).
    static func pieces(of ranges: [RemoteRange], size: UInt64) -> [(ranges: [RemoteRange], length: UInt64)] {
        var out: [(ranges: [RemoteRange], length: UInt64)] = []
        var current: [RemoteRange] = []
        var length: UInt64 = 0
        for r in ranges {
            var address = r.address
            var remaining = r.length
            while remaining > 0 {
                let take = min(remaining, size - length)
                current.append(RemoteRange(address: address, length: take))
                length += take
                address = address + take
                remaining -= take
                if length == size {
                    out.append((current, length))
                    current = []
                    length = 0
                }
            }
        }
        if length > 0 { out.append((current, length)) }
        return out
    }

    /// Reads pages of a VMA without PROT_READ (an `mprotect(PROT_NONE)`d region that holds data):
    /// /proc/PID/mem reads with FOLL_FORCE, which process_vm_readv does not.
    public static func forcedRead(path: String, ranges: [RemoteRange], into dest: UnsafeMutableRawPointer) throws {
        let fd = try checked("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var at = 0
        for r in ranges {
            var done = 0
            while done < Int(r.length) {
                let n = try checked("pread", "\(path) at \(r.address)") {
                    pread(fd, dest + at + done, Int(r.length) - done, off_t(Int64(bitPattern: r.address.raw)) + off_t(done))
                }
                guard n > 0 else { throw SyscallError(call: "pread", errno: .ioError, subject: "\(path) at \(r.address): end of memory") }
                done += n
            }
            at += Int(r.length)
        }
    }
}

/// Page-aligned buffers that the dump workers reuse: a fresh buffer per chunk would pay a page
/// fault per 4 KiB on first touch (kernel-facts §9: process_vm_readv into fresh memory runs at
/// a quarter of the speed into warm memory).
final class BufferPool: @unchecked Sendable {
    private let bytes: Int
    private var free: [UnsafeMutableRawPointer] = []
    private let queue = DispatchQueue(label: "vos.memory-dump.buffers")

    init(bytes: Int) { self.bytes = bytes }

    deinit { for b in free { b.deallocate() } }

    func take() -> UnsafeMutableRawPointer {
        queue.sync { free.popLast() } ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Int(pageSize))
    }

    func give(_ buffer: UnsafeMutableRawPointer) { queue.sync { free.append(buffer) } }
}
