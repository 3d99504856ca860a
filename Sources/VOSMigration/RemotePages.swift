// Post-copy (`--lazy`) memory: the source sends no page with the image, only the layout; the
// destination resumes at once and asks for pages as they fault (and pushes the rest in the
// background), over the migration's own connection. The source reads them straight from its
// frozen copy, which stays until every page has arrived.
import Foundation
import VOSCheckpoint
import VOSImage
import VOSLinux

struct PageRequest: Codable {
    var pid: Int32
    var address: UInt64
    var count: Int
}

/// Source side, at the checkpoint: runs as usual, no page copied; the page file is only
/// declared (the destination makes it empty and never reads it).
final class DeferredPageSaver: PageSaver {
    /// A page server's background push asks for a few MiB at a time (one frame each).
    let maximumRequestBytes = 8 << 20
    /// Saved PID → host PID of the frozen processes whose pages will be asked for.
    private(set) var hosts: [Int32: PID] = [:]

    func save(hostPID: PID, savedPID: PID, memory: inout MemoryDump, writer: ImageWriter, pagesName: String) throws -> UInt64 {
        hosts[savedPID] = hostPID
        var chunks: [ImageManifest.Chunk] = []
        var offset: UInt64 = 0
        while offset < memory.totalBytes {
            let n = min(MemoryDump.chunkBytes, memory.totalBytes - offset)
            chunks.append(ImageManifest.Chunk(offset: offset, length: n, checksum: Checksum.authenticated))
            offset += n
        }
        writer.addPageFile(name: pagesName, size: memory.totalBytes, chunks: chunks)
        return 0
    }

    /// Answers one request from the frozen process's memory.
    func serve(_ r: PageRequest, link: PeerLink, buffer: inout [UInt8]) throws {
        guard let host = hosts[r.pid], r.count > 0, r.count <= maximumRequestBytes, r.count % Int(pageSize) == 0 else {
            throw MigrationError("serving pages", reason: "a request for \(r.count) bytes of pid \(r.pid) at 0x\(String(r.address, radix: 16))")
        }
        if buffer.count < r.count { buffer = [UInt8](repeating: 0, count: r.count) }
        let range = RemoteRange(address: RemoteAddress(r.address), length: UInt64(r.count))
        try buffer.withUnsafeMutableBytes { b in
            do { try ProcessMemory.read(pid: host, ranges: [range], into: b.baseAddress!) } catch {
                // A region without PROT_READ that holds data.
                try MemoryDump.forcedRead(path: "/proc/\(host)/mem", ranges: [range], into: b.baseAddress!)
            }
        }
        try link.send(Message("page-data", payload: r.count == buffer.count ? buffer : Array(buffer[0..<r.count])))
    }
}

/// Destination side: pages read from the source over the link (one request at a time; the
/// link is shared with the migration's own messages, sent through `send`).
final class RemotePageSource: PageSource, @unchecked Sendable {
    private let link: PeerLink
    private let runs: [PID: [PageRun]]
    private let lock = NSLock()

    init(image: ImageReader, link: PeerLink) {
        self.link = link
        var runs: [PID: [PageRun]] = [:]
        for p in image.processes { runs[p.record.pid] = p.record.memory.flatMap(\.runs).sorted { $0.address < $1.address } }
        self.runs = runs
    }

    func spans(pid: PID) throws -> [PageSpan] {
        guard let r = runs[pid] else { throw ImageError.inconsistent("the image holds no process \(pid)") }
        return r.map { PageSpan(address: $0.address.raw, pageCount: $0.pageCount) }
    }

    func read(pid: PID, address: UInt64, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        lock.lock()
        defer { lock.unlock() }
        try link.send(try Message("page-request", PageRequest(pid: pid, address: address, count: count)))
        let m = try link.receive(timeout: 30, expecting: "pages of pid \(pid) at 0x\(String(address, radix: 16))")
        guard m.type == "page-data", m.payload.count == count else {
            throw MigrationError("reading pages from \(link.peer)", reason: "got \"\(m.type)\" with \(m.payload.count) bytes for \(count)")
        }
        m.payload.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }

    /// A message of the migration itself, between page requests.
    func send(_ m: Message) throws {
        lock.lock()
        defer { lock.unlock() }
        try link.send(m)
    }

    func request(_ m: Message, timeout: TimeInterval) throws -> Message {
        lock.lock()
        defer { lock.unlock() }
        return try link.request(m, timeout: timeout)
    }
}
