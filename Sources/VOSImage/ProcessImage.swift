// One process of an image: its record and its page data, verified chunk by chunk on use.
import VOSLinux

public final class ProcessImage: @unchecked Sendable {
    public let record: ProcessRecord
    public let pages: PageFile?
    public let pagesPart: String
    public let chunks: [ImageManifest.Chunk]

    init(record: ProcessRecord, pages: PageFile?, pagesPart: String, chunks: [ImageManifest.Chunk]) throws {
        self.record = record
        self.pages = pages
        self.pagesPart = pagesPart
        self.chunks = chunks
        try checkConsistency()
    }

    /// Verifies one chunk of the page file against its recorded checksum.
    public func verify(chunk: ImageManifest.Chunk) throws {
        guard let pages else { throw ImageError.inconsistent("no \(pagesPart) for a page chunk") }
        try check(chunk: chunk, computed: Checksum.of(pages.bytes(at: chunk.offset, length: chunk.length)))
    }

    /// Compares a checksum computed by whoever read the chunk with the recorded one.
    public func check(chunk: ImageManifest.Chunk, computed sum: UInt64) throws {
        if Checksum.hex(sum) != chunk.checksum {
            throw ImageError.checksumMismatch(
                part: pagesPart,
                detail: "bytes \(chunk.offset)..<\(chunk.offset + chunk.length): computed \(Checksum.hex(sum)), recorded \(chunk.checksum)")
        }
    }

    /// Page runs inside the page file and inside their VMA, chunks covering the file, a main thread.
    func checkConsistency() throws {
        let size = pages?.size ?? 0
        for m in record.memory {
            for run in m.runs {
                guard run.fileOffset % pageSize == 0, run.fileOffset + run.length <= size else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside \(pagesPart)")
                }
                guard run.address >= m.region.start, run.address + run.length <= m.region.end else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside its VMA \(m.region.start)-\(m.region.end)")
                }
            }
        }
        guard record.threads.first?.tid == record.pid else {
            throw ImageError.inconsistent("the first thread of pid \(record.pid) is not its main thread")
        }
        var covered: UInt64 = 0
        for c in chunks {
            guard c.offset == covered else { throw ImageError.inconsistent("page chunks of \(pagesPart) leave a gap at \(covered)") }
            covered += c.length
        }
        guard covered == size else { throw ImageError.inconsistent("page chunks cover \(covered) of \(size) bytes of \(pagesPart)") }
    }
}
