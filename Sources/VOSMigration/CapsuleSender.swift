// The source side of a capsule migration: checkpoint into memory with the capsule held frozen,
// stream the image, and only once the destination runs the copy kill and forget the original.
// Any failure before that thaws the capsule: it runs on here as if nothing happened.
import Foundation
import Glibc
import VOSCapsule
import VOSCheckpoint
import VOSImage
import VOSLinux

public enum CapsuleSender {
    /// Pre-copy stops when a round sends fewer pages than this, sends no fewer than the one
    /// before, or after `maximumRounds`.
    static let smallRoundPages: UInt64 = 2000, maximumRounds = 10

    /// `carryBase`: the base files the capsule uses go along in its upper layer (`--carry-base`).
    public static func migrate(capsule name: String, mode: MigrationMode, to link: PeerLink, from me: String,
                               registry: CapsuleRegistry, carryBase: Bool = false,
                               progress: (MigrationEvent) -> Void) throws -> MigrationReport {
        let start = Kernel.monotonicNanos()
        let what = "cannot migrate capsule \"\(name)\" to \(link.peer)"
        let record = try registry.load(name)
        guard record.isRunning else { throw MigrationError(what, reason: "it is not running") }
        do { _ = try link.request(try Message("incoming", Incoming(capsule: name, mode: mode, from: me))) } catch {
            throw MigrationError(what, cause: error)
        }

        var rounds: [PreCopyRound] = []
        var preCopy: PreCopy?
        defer { preCopy?.stop() }
        let store = MemoryStore(location: "the memory image of capsule \(name)")
        // Live, with a filesystem of its own: the upper layer goes first, while the capsule runs;
        // the freeze then sends only what changed in it since.
        var upperBase: (snapshot: String, part: ImageManifest.Part)?
        var upperBaseBytes: UInt64 = 0
        defer { if let upperBase { try? FileManager.default.removeItem(atPath: upperBase.snapshot) } }
        if mode == .live, record.filesystem != nil, !carryBase {
            do {
                let snapshot = CapsuleLayers.directory(name, registry: registry) + "/upper.snar"
                try? FileManager.default.removeItem(atPath: snapshot)
                let t = Kernel.monotonicNanos()
                let bytes = try CapsuleLayers.archiveUpper(CapsuleLayers.directory(name, registry: registry), snapshot: snapshot)
                try store.write(CapsuleFilesystem.upperBasePart, bytes)
                upperBase = (snapshot, ImageManifest.Part(name: CapsuleFilesystem.upperBasePart, size: UInt64(bytes.count),
                                                          chunks: [.init(offset: 0, length: UInt64(bytes.count), checksum: Checksum.of(bytes))]))
                try sendPart(CapsuleFilesystem.upperBasePart, store: store, link: link) { upperBaseBytes += $0 }
                progress(MigrationEvent(phase: "pre-copy", message: "upper layer: \(formatBytes(upperBaseBytes)), \(ms(Double(Kernel.monotonicNanos() - t) / 1e6))"))
            } catch {
                link.close()
                throw MigrationError(what, reason: "\(error); the capsule keeps running here")
            }
        }
        if mode == .live {
            do {
                let p = try PreCopy(root: record.initPID, link: link)
                preCopy = p
                var previous = UInt64.max
                for i in 0..<maximumRounds {
                    let t = Kernel.monotonicNanos(), bytes = p.bytesSent
                    let pages = try p.round(i)
                    let r = PreCopyRound(round: i, pages: pages, bytes: p.bytesSent - bytes, milliseconds: Double(Kernel.monotonicNanos() - t) / 1e6)
                    rounds.append(r)
                    progress(MigrationEvent(phase: "pre-copy", message: "round \(i): \(pages) pages, \(formatBytes(r.bytes)), \(ms(r.milliseconds))"))
                    if i > 0 && (pages < smallRoundPages || pages >= previous) { break }
                    previous = pages
                }
            } catch {
                link.close()
                throw MigrationError(what, reason: "\(error); the capsule keeps running here")
            }
        }
        let deferred = mode == .lazy ? DeferredPageSaver() : nil
        let (summary, held) = try TreeCheckpointer.checkpoint(
            root: record.initPID, writer: ImageWriter(store: store), ending: .hold,
            capsule: (record.name, record.hostname, record.command, record.tty),
            network: record.network.map { n in
                CheckpointNetwork(info: n, interface: CapsuleNetwork.hostInterface(n), cut: { try CapsuleNetwork.setConnected(n, false) },
                                  reconnect: { try? CapsuleNetwork.setConnected(n, true) })
            },
            filesystem: try CapsuleImages.checkpointFilesystem(record, registry: registry, carryBase: carryBase, upperBase: upperBase),
            pages: preCopy?.saver() ?? deferred)
        guard let held else { throw MigrationError(what, reason: "the checkpoint did not hold the capsule") }
        let frozenAt = Kernel.monotonicNanos() - UInt64(summary.frozenMilliseconds * 1e6)
        progress(MigrationEvent(phase: "frozen", message: "checkpointed in \(ms(summary.totalMilliseconds))"))
        do {
            let log = (FileManager.default.contents(atPath: registry.logPath(name))).map { [UInt8]($0) } ?? []
            try link.send(Message("log", payload: log))
            let parts = store.order.filter { $0 != upperBase?.part.name }  // that one is there already
            let partBytes = parts.reduce(UInt64(log.count)) { $0 + (store.size(of: $1) ?? 0) }
            var sent = UInt64(log.count)
            let sendStart = Kernel.monotonicNanos()
            for part in parts {
                try sendPart(part, store: store, link: link) { n in
                    sent += n
                    progress(MigrationEvent(phase: "transfer", message: part, bytes: sent, totalBytes: partBytes))
                }
            }
            let request = try Message("restore", RestoreRequest(sourceLog: registry.logPath(name)))
            let restored: Restored
            var runningAt: UInt64
            if let deferred {
                (restored, runningAt, sent) = try servePages(deferred, link: link, request: request, sent: sent, progress: progress)
            } else {
                restored = try link.request(request, timeout: 120).decode(Restored.self)
                runningAt = Kernel.monotonicNanos()
            }
            // Pre-copy rounds and the frozen transfer: the time spent moving bytes, not waiting.
            let sendSeconds = (Double(Kernel.monotonicNanos() - sendStart) + rounds.reduce(0) { $0 + $1.milliseconds } * 1e6) / 1e9
            let total = sent + (preCopy?.bytesSent ?? 0) + upperBaseBytes
            // The copy runs (and, lazily restored, holds every page): the original goes, and
            // with it its network port and registry entry.
            held.kill()
            if let n = record.network { CapsuleNetwork.detach(n) }
            try? registry.remove(name)
            _ = try? link.request(Message("commit"), timeout: 10)
            return MigrationReport(
                capsule: name, from: me, to: link.peerName ?? link.peer, mode: mode, bytesSent: total,
                downtimeMilliseconds: Double(runningAt - frozenAt) / 1e6,
                totalMilliseconds: Double(Kernel.monotonicNanos() - start) / 1e6,
                transferGigabytesPerSecond: sendSeconds > 0 ? Double(total) / sendSeconds / 1e9 : 0,
                destinationPID: restored.hostPID, rounds: rounds)
        } catch {
            preCopy?.stop()
            held.thaw()
            link.close()
            throw MigrationError(what, reason: "\(error); the capsule keeps running here")
        }
    }

    /// Lazy: asks for the restore, then answers page requests until the destination has every
    /// page ("complete"). Returns when that is so, with the moment it reported running.
    static func servePages(_ pages: DeferredPageSaver, link: PeerLink, request: Message, sent: UInt64,
                           progress: (MigrationEvent) -> Void) throws -> (Restored, UInt64, UInt64) {
        try link.send(request)
        var buffer: [UInt8] = []
        var restored: Restored?
        var runningAt: UInt64 = 0
        var sent = sent
        while true {
            let m = try link.receive(timeout: 60, expecting: restored == nil ? "the restore" : "page requests")
            switch m.type {
            case "page-request":
                let r = try m.decode(PageRequest.self)
                try pages.serve(r, link: link, buffer: &buffer)
                sent += UInt64(r.count)
            case "restored":
                restored = try m.decode(Restored.self)
                runningAt = Kernel.monotonicNanos()
                progress(MigrationEvent(phase: "running", message: "the capsule runs on \(link.peer); pages follow"))
            case "complete":
                guard let restored else { throw MigrationError("serving pages", reason: "complete before restored") }
                return (restored, runningAt, sent)
            default:
                throw MigrationError("serving pages to \(link.peer)", reason: "unexpected \"\(m.type)\"")
            }
        }
    }

    /// A part's bytes straight from its memfd, `chunkBytes` at a time.
    static func sendPart(_ part: String, store: MemoryStore, link: PeerLink, sent: (UInt64) -> Void) throws {
        guard let fd = store.descriptor(of: part), let size = store.size(of: part) else { return }
        try link.send(try Message("part", PartHeader(name: part, size: size)))
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        var offset: UInt64 = 0
        while offset < size {
            let n = Int(min(UInt64(chunkBytes), size - offset))
            try buffer.withUnsafeMutableBytes { try PageFile.preadAll(fd: fd, into: $0.baseAddress!, count: n, at: offset, what: part) }
            try link.send(Message("data", payload: n == chunkBytes ? buffer : Array(buffer[0..<n])))
            offset += UInt64(n)
            sent(UInt64(n))
        }
    }

    static func ms(_ v: Double) -> String { String(format: "%.1f ms", v) }
}

func formatBytes(_ n: UInt64) -> String {
    if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
    if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
    return String(format: "%.1f KiB", Double(n) / 1024)
}
