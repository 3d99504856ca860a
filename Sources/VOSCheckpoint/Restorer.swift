// Restore of one process from an image: a stub is taken over by injected calls and becomes the
// checkpointed process (probe 11's order, with threads as in probe 12). On any failure the
// stub is killed: nothing half-built stays behind.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

public struct RestoreSummary: Codable, Sendable {
    public var pid: PID
    public var originalPID: PID
    /// True when the process and its threads have their saved IDs (always, unless `newPID`).
    public var keptPID: Bool
    public var threads: Int
    public var injectedCalls: Int
    public var milliseconds: Double
}

public enum Restorer {
    /// Restores under the saved PID and TIDs (an error names whoever holds one of them), or
    /// under new ones when `newPID` (glibc's cached TIDs are then fixed where they can be).
    public static func restore(imageDirectory: String, newPID: Bool = false) throws -> RestoreSummary {
        try restore(image: try open(imageDirectory), newPID: newPID)
    }

    /// Opens an image with the error a user reads when it is damaged.
    public static func open(_ imageDirectory: String) throws -> ImageReader {
        try step("cannot restore from \(imageDirectory)") { try ImageReader(directory: imageDirectory) }
    }

    public static func restore(image: ImageReader, newPID: Bool = false) throws -> RestoreSummary {
        try restore(image: image, newPID: newPID, start: Kernel.monotonicNanos(), lazy: nil)
    }

    /// Post-copy: the process runs as soon as it is built, its private anonymous memory filled
    /// on demand and in the background by the returned server from `source` (the image's own
    /// page file unless given: a migration passes the source node's pages). Call
    /// `server.waitUntilComplete()` to know when every page is in.
    public static func restoreLazily(image: ImageReader, newPID: Bool = false, options: LazyOptions = LazyOptions(),
                                     source: PageSource? = nil) throws -> (summary: RestoreSummary, server: LazyPageServer) {
        let start = Kernel.monotonicNanos()
        let server = try LazyPageServer(source: source ?? ImagePageSource(image: image), options: options, startNanos: start)
        return (try restore(image: image, newPID: newPID, start: start, lazy: server), server)
    }

    static func restore(image: ImageReader, newPID: Bool, start: UInt64, lazy: LazyPageServer?) throws -> RestoreSummary {
        let imageDirectory = image.directory
        guard image.tree == nil else {
            throw CheckpointError("cannot restore from \(imageDirectory)", reason: "it holds a process tree, not a single process")
        }
        let p = image.process
        // Before the stub exists: it inherits the context's pidfd of vos.
        let files = try step("cannot restore pid \(p.pid)") { try FileRestoreContext(image: image) }
        defer { files.closeAll() }
        let tracee = try step("cannot restore pid \(p.pid)") { try Stub.spawn(pid: p.pid, newPID: newPID) }
        let pid = tracee.tid
        do {
            let oldAffinity = Kernel.pinTogether(stub: pid)
            defer { if let oldAffinity { Kernel.restoreAffinity(oldAffinity) } }
            let built = try ProcessBuilder.build(tracee: tracee, image: image.processes[0], files: files, newPID: newPID, newSession: true,
                                                 lazy: lazy)
            try built.release()
            lazy?.released()
            return RestoreSummary(pid: pid, originalPID: p.pid, keptPID: !newPID, threads: p.threads.count,
                                  injectedCalls: built.injectedCalls, milliseconds: Double(Kernel.monotonicNanos() - start) / 1e6)
        } catch {
            Stub.discard(pid)
            lazy?.abort()
            if error is CheckpointError { throw error }
            throw CheckpointError("cannot restore pid \(p.pid) from \(imageDirectory)", cause: error)
        }
    }
}
