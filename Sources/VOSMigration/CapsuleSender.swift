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
    public static func migrate(capsule name: String, mode: MigrationMode, to link: PeerLink, from me: String,
                               registry: CapsuleRegistry, progress: (MigrationEvent) -> Void) throws -> MigrationReport {
        let start = Kernel.monotonicNanos()
        let what = "cannot migrate capsule \"\(name)\" to \(link.peer)"
        let record = try registry.load(name)
        guard record.isRunning else { throw MigrationError(what, reason: "it is not running") }
        guard mode == .cold else { throw MigrationError(what, reason: "\(mode.rawValue) migration is not available yet") }
        do { _ = try link.request(try Message("incoming", Incoming(capsule: name, mode: mode, from: me))) } catch {
            throw MigrationError(what, cause: error)
        }

        let store = MemoryStore(location: "the memory image of capsule \(name)")
        let writer = ImageWriter(store: store)
        let (summary, held) = try TreeCheckpointer.checkpoint(
            root: record.initPID, writer: writer, ending: .hold,
            capsule: (record.name, record.hostname, record.command, record.tty),
            network: record.network.map { n in
                CheckpointNetwork(info: n, cut: { try CapsuleNetwork.setConnected(n, false) },
                                  reconnect: { try? CapsuleNetwork.setConnected(n, true) })
            })
        guard let held else { throw MigrationError(what, reason: "the checkpoint did not hold the capsule") }
        let frozenAt = Kernel.monotonicNanos() - UInt64(summary.frozenMilliseconds * 1e6)
        progress(MigrationEvent(phase: "frozen", message: "checkpointed \(formatBytes(summary.bytesStored)) in \(ms(summary.totalMilliseconds))",
                                bytes: nil, totalBytes: nil))
        do {
            let log = (FileManager.default.contents(atPath: registry.logPath(name))).map { [UInt8]($0) } ?? []
            try link.send(Message("log", payload: log))
            let total = store.order.reduce(UInt64(log.count)) { $0 + (store.size(of: $1) ?? 0) }
            var sent = UInt64(log.count)
            let sendStart = Kernel.monotonicNanos()
            for part in store.order {
                try sendPart(part, store: store, link: link) { n in
                    sent += n
                    progress(MigrationEvent(phase: "transfer", message: part, bytes: sent, totalBytes: total))
                }
            }
            let sendSeconds = Double(Kernel.monotonicNanos() - sendStart) / 1e9
            let reply = try link.request(try Message("restore", RestoreRequest(sourceLog: registry.logPath(name))), timeout: 120)
            let restored = try reply.decode(Restored.self)
            let runningAt = Kernel.monotonicNanos()
            // The copy runs: the original goes, and with it its network port and registry entry.
            held.kill()
            if let n = record.network { CapsuleNetwork.detach(n) }
            try? registry.remove(name)
            _ = try? link.request(Message("commit"), timeout: 10)
            return MigrationReport(
                capsule: name, from: me, to: link.peerName ?? link.peer, mode: mode, bytesSent: sent,
                downtimeMilliseconds: Double(runningAt - frozenAt) / 1e6,
                totalMilliseconds: Double(Kernel.monotonicNanos() - start) / 1e6,
                transferGigabytesPerSecond: sendSeconds > 0 ? Double(sent) / sendSeconds / 1e9 : 0,
                destinationPID: restored.hostPID)
        } catch {
            held.thaw()
            link.close()
            throw MigrationError(what, reason: "\(error); the capsule keeps running here")
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
