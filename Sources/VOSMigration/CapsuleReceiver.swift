// The destination side of a capsule migration: take the image into memory (memfds, no file),
// restore it once whole, and tell the source it runs. If that message cannot be delivered the
// copy is removed again: the source will thaw its own. A commit that never comes keeps the
// copy (two copies can be stopped by hand; a lost capsule cannot be brought back).
import Foundation
import Glibc
import VOSCapsule
import VOSCheckpoint
import VOSImage
import VOSLinux

public enum CapsuleReceiver {
    /// Serves one migration that began with `first` ("incoming"). Returns the capsule's name
    /// once it runs here, or throws (having told the source why).
    @discardableResult
    /// `onMainThread` runs the restore on the process's main thread: a capsule's time namespace
    /// can only be set up there (NamespaceStub).
    public static func receive(_ first: Message, link: PeerLink, registry: CapsuleRegistry,
                               onMainThread: (@escaping () throws -> Void) throws -> Void,
                               log: (String) -> Void) throws -> String {
        let incoming = try first.decode(Incoming.self)
        let name = incoming.capsule
        do {
            try CapsuleRegistry.validate(name: name)
            if let existing = try? registry.load(name) {
                throw MigrationError("cannot take capsule \"\(name)\"",
                                     reason: "a capsule of that name already \(existing.isRunning ? "runs" : "exists") on this node")
            }
        } catch {
            link.fail(error)
            throw error
        }
        try link.send(Message("ready"))

        let store = MemoryStore(location: "the image of capsule \(name) received from \(link.peer)")
        var logBytes: [UInt8] = []
        var slots: [Int32: PageSlots] = [:]
        while true {
            let m = try link.receive(timeout: 60, expecting: "the image of capsule \(name)")
            switch m.type {
            case "pages": try receivePages(m, store: store, slots: &slots)
            case "log": logBytes = m.payload
            case "part": try receivePart(try m.decode(PartHeader.self), store: store, link: link)
            case "restore":
                let request = try m.decode(RestoreRequest.self)
                return try restore(name, mode: incoming.mode, request: request, store: store, log: logBytes, link: link,
                                   registry: registry, onMainThread: onMainThread, note: log)
            default:
                throw MigrationError("receiving capsule \(name) from \(link.peer)", reason: "unexpected \"\(m.type)\" message")
            }
        }
    }

    static func receivePart(_ h: PartHeader, store: MemoryStore, link: PeerLink) throws {
        guard h.size <= 1 << 40 else { throw MigrationError("refusing part \(h.name)", reason: "\(h.size) bytes is not a plausible size") }
        let fd = try store.make(h.name, size: h.size)
        var offset: UInt64 = 0
        while offset < h.size {
            let m = try link.receive(timeout: 60, expecting: "the data of \(h.name)")
            guard m.type == "data", UInt64(m.payload.count) <= h.size - offset, !m.payload.isEmpty else {
                throw MigrationError("receiving \(h.name) from \(link.peer)", reason: "a \"\(m.type)\" message of \(m.payload.count) bytes at offset \(offset)")
            }
            try m.payload.withUnsafeBytes { b in
                var done = 0
                while done < b.count {
                    let n = pwrite(fd, b.baseAddress! + done, b.count - done, off_t(offset) + off_t(done))
                    if n <= 0 { throw SyscallError(call: "pwrite", errno: .init(rawValue: errno), subject: "memfd \(h.name)") }
                    done += n
                }
            }
            offset += UInt64(m.payload.count)
        }
    }

    /// Pre-copied pages, written into the process's page file at the slots both ends agree on.
    static func receivePages(_ m: Message, store: MemoryStore, slots: inout [Int32: PageSlots]) throws {
        let h = try m.decode(PagesHeader.self)
        let part = TreeRecord.pagesPart(h.pid)
        var at = 0
        for r in h.ranges {
            guard r.count == 2, r[1] > 0, r[1] <= UInt64(chunkBytes) / pageSize, at + Int(r[1] * pageSize) <= m.payload.count else {
                throw MigrationError("refusing pre-copied pages of pid \(h.pid)", reason: "a range \(r) beyond the \(m.payload.count) bytes sent")
            }
            for piece in slots[h.pid, default: PageSlots()].place(address: r[0], pages: r[1]) {
                let fd = try store.reserve(part, size: (piece.slot + piece.pages) * pageSize)
                let length = Int(piece.pages * pageSize)
                try m.payload.withUnsafeBytes { b in
                    var done = 0
                    while done < length {
                        let n = pwrite(fd, b.baseAddress! + at + done, length - done, off_t(piece.slot * pageSize) + off_t(done))
                        if n <= 0 { throw SyscallError(call: "pwrite", errno: .init(rawValue: errno), subject: "memfd \(part)") }
                        done += n
                    }
                }
                at += length
            }
        }
    }

    static func restore(_ name: String, mode: MigrationMode, request: RestoreRequest, store: MemoryStore, log logBytes: [UInt8], link: PeerLink,
                        registry: CapsuleRegistry, onMainThread: (@escaping () throws -> Void) throws -> Void,
                        note: (String) -> Void) throws -> String {
        nonisolated(unsafe) var result: (CapsuleRecord, TreeRestoreSummary)?
        var server: LazyPageServer?
        var remote: RemotePageSource?
        do {
            if mode == .lazy {
                // The page files are only declared: their pages come from the source on demand.
                for part in try ImageReader.manifest(store: store).parts where store.size(of: part.name) == nil {
                    _ = try store.make(part.name, size: part.size)
                }
            }
            let image = try ImageReader(store: store, authenticated: true)
            for warning in try MachineCompatibility.check(image) { note("warning: \(warning)") }
            image.pathRewrites[request.sourceLog] = registry.logPath(name)
            // Live: memory is here already, but copying it all before the capsule runs would
            // be the downtime: it runs at once and fills itself from the received pages.
            if mode != .cold {
                let source: PageSource
                if mode == .lazy {
                    remote = RemotePageSource(image: image, link: link)
                    source = remote!
                } else {
                    source = ImagePageSource(image: image)
                }
                server = try LazyPageServer(source: source, startNanos: monotonicNow())
            }
            try onMainThread { [server] in
                result = try CapsuleImages.restore(image: image, newName: name, registry: registry, prepare: { directory in
                    // The output so far, at the same size: the restored fds' offsets point at its end.
                    do { try PrivateFiles.write(registry.logPath(name), logBytes) } catch {
                        throw MigrationError("cannot write \(registry.logPath(name))", cause: error)
                    }
                }, lazy: server)
            }
        } catch {
            link.fail(error)
            throw error
        }
        guard let (record, summary) = result else { throw MigrationError("restoring capsule \(name)", reason: "the restore did not run") }
        do {
            let restored = try Message("restored", Restored(hostPID: record.initPID, milliseconds: summary.milliseconds))
            if let remote {
                try remote.send(restored)
                // The source keeps its copy until every page is here (if it goes away first,
                // the page server has killed this copy: it cannot run without its pages).
                _ = try server!.waitUntilComplete()
            } else {
                try link.send(restored)
            }
        } catch {
            // The source cannot hear that the copy runs: it thaws its own, so this one goes.
            note("capsule \(name) from \(link.peer): \(error); removing the copy here")
            kill(record.initPID, SIGKILL)
            for _ in 0..<200 where record.isRunning { usleep(10_000) }
            if let n = record.network { CapsuleNetwork.release(n, of: name, registry: registry) }
            try? registry.remove(name)
            throw error
        }
        if let remote {
            // Every page is here: the source may remove its copy now, and a lost commit must
            // not cost this one.
            do {
                _ = try remote.request(Message("complete"), timeout: 30)
                try? link.send(Message("committed"))
            } catch {
                note("capsule \(name) runs here with every page; the source did not confirm it removed its copy: \(error)")
            }
            return name
        }
        if let server {
            // The pages are in this node's memory: fill them in while the capsule runs.
            Thread.detachNewThread { [store] in
                _ = try? server.waitUntilComplete()
                store.discard()
            }
        }
        // Once the source heard it, it has removed its copy: a lost commit must not cost this one.
        do {
            let commit = try link.receive(timeout: 30, expecting: "the commit")
            try? link.send(Message(commit.type == "commit" ? "committed" : "unexpected"))
        } catch {
            note("capsule \(name) runs here; the source did not confirm it removed its copy: \(error)")
        }
        return name
    }
}

func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
