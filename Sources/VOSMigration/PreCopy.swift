// The source side of a live migration's memory: every process of the capsule tracked with a
// DirtyTracker; pre-copy rounds send what changed while it runs; then, frozen, the checkpoint
// saves memory through `LivePageSaver`, which sends only pages dirtied since the last round
// and pages never sent, and points the image's page runs at the destination's slots.
import Foundation
import VOSCapsule
import VOSCheckpoint
import VOSImage
import VOSLinux

final class PreCopy {
    struct Process {
        var tracker: DirtyTracker
        var savedPID: PID
        var slots = PageSlots()
        /// Pages sent and not written since (as of the last scan).
        var clean = Set<UInt64>()
    }
    private(set) var processes: [PID: Process] = [:]
    let link: PeerLink
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes, alignment: Int(pageSize))
    var bytesSent: UInt64 = 0

    /// Starts tracking every live process of the tree under `root`.
    init(root: PID, link: PeerLink) throws {
        self.link = link
        do {
            for m in try ProcessTree.discover(root: root) where !m.isZombie {
                processes[m.hostPID] = Process(tracker: try DirtyTracker(pid: m.hostPID), savedPID: m.shape.pid)
            }
        } catch {
            stop()
            throw MigrationError("cannot track the memory of the capsule's processes", cause: error)
        }
    }

    deinit { buffer.deallocate() }

    func stop() {
        for p in processes.values { p.tracker.stop() }
    }

    /// One pre-copy round (round 0 sends everything present); returns the pages sent.
    func round(_ index: Int) throws -> UInt64 {
        var pages: UInt64 = 0
        for host in processes.keys.sorted() {
            let ranges = index == 0 ? try processes[host]!.tracker.firstRound() : try processes[host]!.tracker.nextRound()
            for r in ranges { for i in 0..<r.pageCount { processes[host]!.clean.remove(r.address + i * pageSize) } }
            pages += try send(host: host, ranges: ranges.map { ($0.address, $0.pageCount) }, readable: nil)
        }
        return pages
    }

    /// Reads `ranges` from the process and sends them in batches of up to `chunkBytes`. A range
    /// that cannot be read (unmapped meanwhile) is skipped: it is not clean, so the frozen
    /// checkpoint saves whatever is there by then.
    @discardableResult
    func send(host: PID, ranges: [(UInt64, UInt64)], readable: ((UInt64) -> Bool)?) throws -> UInt64 {
        var batch: [(UInt64, UInt64)] = []
        var bytes = 0
        var sent: UInt64 = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            var ok: [(UInt64, UInt64)] = []
            var at = 0
            for (a, n) in batch {
                let len = Int(n * pageSize)
                let r = RemoteRange(address: RemoteAddress(a), length: UInt64(len))
                do {
                    if readable?(a) == false {
                        try MemoryDump.forcedRead(path: "/proc/\(host)/mem", ranges: [r], into: buffer + at)
                    } else {
                        try ProcessMemory.read(pid: host, ranges: [r], into: buffer + at)
                    }
                    ok.append((a, n))
                    at += len
                } catch { continue }
            }
            if !ok.isEmpty {
                var p = processes[host]!
                for (a, n) in ok {
                    _ = p.slots.place(address: a, pages: n)
                    for i in 0..<n { p.clean.insert(a + i * pageSize) }
                    sent += n
                }
                processes[host] = p
                let header = PagesHeader(pid: p.savedPID, ranges: ok.map { [$0.0, $0.1] })
                try link.send(try Message("pages", header, payload: Array(UnsafeRawBufferPointer(start: buffer, count: at))))
                bytesSent += UInt64(at)
            }
            batch = []
            bytes = 0
        }
        for (address, count) in ranges {
            var a = address, left = count
            while left > 0 {
                let room = UInt64((chunkBytes - bytes) / Int(pageSize))
                let take = min(left, room)
                batch.append((a, take))
                bytes += Int(take * pageSize)
                a += take * pageSize
                left -= take
                if bytes == chunkBytes { try flush() }
            }
        }
        try flush()
        return sent
    }

    /// The checkpoint's memory, with the tree frozen.
    func saver() -> PageSaver { LivePageSaver(preCopy: self) }

    fileprivate func finalSave(hostPID: PID, memory: inout MemoryDump, writer: ImageWriter, pagesName: String) throws -> UInt64? {
        guard processes[hostPID] != nil else { return nil }
        // The final round: pages written since the last one are not clean any more.
        for r in try processes[hostPID]!.tracker.nextRound() {
            for i in 0..<r.pageCount { processes[hostPID]!.clean.remove(r.address + i * pageSize) }
        }
        let before = bytesSent
        for i in memory.records.indices {
            let record = memory.records[i]
            var missing: [(UInt64, UInt64)] = []
            for run in record.runs {
                var page = run.address.raw
                let end = run.address.raw + run.length
                while page < end {
                    if processes[hostPID]!.clean.contains(page) { page += pageSize; continue }
                    var stop = page + pageSize
                    while stop < end && !processes[hostPID]!.clean.contains(stop) { stop += pageSize }
                    missing.append((page, (stop - page) / pageSize))
                    page = stop
                }
            }
            let readable = record.region.isReadable
            try send(host: hostPID, ranges: missing, readable: { _ in readable })
            // Every stored page now has a slot at the destination: the runs point there.
            var runs: [PageRun] = []
            for run in record.runs {
                for piece in processes[hostPID]!.slots.place(address: run.address.raw, pages: run.pageCount) {
                    runs.append(PageRun(address: RemoteAddress(piece.address), pageCount: piece.pages, fileOffset: piece.slot * pageSize))
                }
            }
            memory.records[i].runs = runs
        }
        let size = processes[hostPID]!.slots.count * pageSize
        var chunks: [ImageManifest.Chunk] = []
        var offset: UInt64 = 0
        while offset < size {
            let n = min(MemoryDump.chunkBytes, size - offset)
            chunks.append(ImageManifest.Chunk(offset: offset, length: n, checksum: Checksum.authenticated))
            offset += n
        }
        writer.addPageFile(name: pagesName, size: size, chunks: chunks)
        return bytesSent - before
    }
}

private final class LivePageSaver: PageSaver {
    let preCopy: PreCopy
    init(preCopy: PreCopy) { self.preCopy = preCopy }

    func save(hostPID: PID, savedPID: PID, memory: inout MemoryDump, writer: ImageWriter, pagesName: String) throws -> UInt64 {
        if let sent = try preCopy.finalSave(hostPID: hostPID, memory: &memory, writer: writer, pagesName: pagesName) { return sent }
        // A process born after tracking began: saved whole, as a part of the image.
        return try ImagePageSaver().save(hostPID: hostPID, savedPID: savedPID, memory: &memory, writer: writer, pagesName: pagesName)
    }
}
