// One process of an image: its record and its page data, verified chunk by chunk on use.
import VOSLinux

public final class ProcessImage: @unchecked Sendable {
    public let record: ProcessRecord
    public let pages: PageFile?
    public let pagesPart: String
    public let chunks: [ImageManifest.Chunk]
    /// The page data arrived over an authenticated node-to-node stream (see `Checksum.authenticated`).
    let authenticated: Bool

    init(record: ProcessRecord, pages: PageFile?, pagesPart: String, chunks: [ImageManifest.Chunk], authenticated: Bool = false) throws {
        self.record = record
        self.authenticated = authenticated
        self.pages = pages
        self.pagesPart = pagesPart
        self.chunks = chunks
        try checkConsistency()
    }

    /// Verifies one chunk of the page file against its recorded checksum.
    public func verify(chunk: ImageManifest.Chunk) throws {
        if try isAuthenticated(chunk) { return }
        guard let pages else { throw ImageError.inconsistent("no \(pagesPart) for a page chunk") }
        try check(chunk: chunk, computed: Checksum.of(pages.bytes(at: chunk.offset, length: chunk.length)))
    }

    /// Compares a checksum computed by whoever read the chunk with the recorded one.
    public func check(chunk: ImageManifest.Chunk, computed sum: UInt64) throws {
        if try isAuthenticated(chunk) { return }
        if Checksum.hex(sum) != chunk.checksum {
            throw ImageError.checksumMismatch(
                part: pagesPart,
                detail: "bytes \(chunk.offset)..<\(chunk.offset + chunk.length): computed \(Checksum.hex(sum)), recorded \(chunk.checksum)")
        }
    }

    /// A chunk without a checksum: only in a memory image a node received from an authenticated
    /// peer (every frame was AES-GCM authenticated on the way); anywhere else an error.
    func isAuthenticated(_ chunk: ImageManifest.Chunk) throws -> Bool {
        guard chunk.checksum == Checksum.authenticated else { return false }
        guard authenticated else {
            throw ImageError.checksumMismatch(part: pagesPart, detail: "bytes \(chunk.offset)..<\(chunk.offset + chunk.length) carry no checksum (only an image streamed between nodes may omit it)")
        }
        return true
    }

    /// Page runs inside the page file and inside their VMA, chunks covering the file, a main thread.
    /// Image numbers are never trusted: every size, address, count and ID is checked here, with
    /// arithmetic that cannot overflow, before anything uses it (a trap is a crash of vos).
    func checkConsistency() throws {
        let size = pages?.size ?? 0
        let userSpaceEnd: UInt64 = 0x7fff_ffff_f000
        for m in record.memory {
            let r = m.region
            guard r.start < r.end, r.end.raw <= userSpaceEnd, r.start.raw % pageSize == 0, r.end.raw % pageSize == 0 else {
                throw ImageError.inconsistent("VMA \(r.start)-\(r.end) is not a page-aligned range of user space")
            }
            for run in m.runs {
                let (length, over) = run.pageCount.multipliedReportingOverflow(by: pageSize)
                let (fileEnd, over2) = run.fileOffset.addingReportingOverflow(length)
                guard !over, !over2, run.fileOffset % pageSize == 0, fileEnd <= size else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside \(pagesPart)")
                }
                guard run.address >= r.start, run.address < r.end, run.address.raw % pageSize == 0, length <= r.end.raw - run.address.raw else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside its VMA \(r.start)-\(r.end)")
                }
            }
        }
        func inRange<T: BinaryInteger>(_ value: T, _ range: ClosedRange<T>, _ what: String) throws {
            guard range.contains(value) else { throw ImageError.inconsistent("\(what) \(value) is out of range") }
        }
        for t in record.threads { try inRange(t.tid, 1...Int32.max, "thread id") }
        for f in record.files { try inRange(f.fd, 0...(1 << 20), "fd") }
        for a in record.signalActions { try inRange(a.signal, 1...64, "signal") }
        for t in record.itimers { try inRange(t.which, 0...2, "interval timer") }
        for t in record.posixTimers { try inRange(t.id, 0...Int32.max, "POSIX timer id") }
        for l in record.limits { try inRange(l.resource, 0...15, "resource limit") }
        guard record.threads.first?.tid == record.pid else {
            throw ImageError.inconsistent("the first thread of pid \(record.pid) is not its main thread")
        }
        var covered: UInt64 = 0
        for c in chunks {
            guard c.offset == covered, c.length <= size - covered else {
                throw ImageError.inconsistent("page chunks of \(pagesPart) leave a gap or overrun at \(covered)")
            }
            covered += c.length
        }
        guard covered == size else { throw ImageError.inconsistent("page chunks cover \(covered) of \(size) bytes of \(pagesPart)") }
    }
}
