// The messages of a migration between two nodes, in order:
//   source → "incoming" (Incoming)              destination → "ready"
//   source → "log" (payload: the capsule's output so far)
//   source → "part" (PartHeader) then "data" frames until the part is whole, for every part
//   source → "restore" (RestoreRequest)          destination → "restored" (Restored) or "failed"
//   source → "commit" once its own copy is gone  destination → "committed"
// The source never removes its copy before "restored"; the destination removes its copy if it
// cannot tell the source it runs (the source then thaws its own).
import Foundation
import VOSCheckpoint

public enum MigrationMode: String, Codable, Sendable, CaseIterable {
    case cold, live, lazy
}

struct Incoming: Codable {
    var capsule: String
    var mode: MigrationMode
    var from: String
}

struct PartHeader: Codable {
    var name: String
    var size: UInt64
}

struct RestoreRequest: Codable {
    /// The capsule's log on the source: its processes hold it open, and it is the new node's
    /// log of the capsule that they must hold.
    var sourceLog: String
}

public struct Restored: Codable, Sendable {
    public var hostPID: Int32
    public var milliseconds: Double
}

/// One step of a migration, for the CLI's progress and the JSON result.
public struct MigrationEvent: Codable, Sendable {
    public var phase: String
    public var message: String
    public var bytes: UInt64?
    public var totalBytes: UInt64?

    public init(phase: String, message: String, bytes: UInt64? = nil, totalBytes: UInt64? = nil) {
        self.phase = phase
        self.message = message
        self.bytes = bytes
        self.totalBytes = totalBytes
    }
}

public struct MigrationReport: Codable, Sendable {
    // Lazy: the copy runs at "restored"; the report comes once every page has arrived.
    public var capsule: String
    public var from: String
    public var to: String
    public var mode: MigrationMode
    /// Image bytes sent (memory and the rest).
    public var bytesSent: UInt64
    /// Freeze to the copy running on the destination.
    public var downtimeMilliseconds: Double
    public var totalMilliseconds: Double
    public var transferGigabytesPerSecond: Double
    public var destinationPID: Int32
    public var rounds: [PreCopyRound] = []
}

public struct PreCopyRound: Codable, Sendable {
    public var round: Int
    public var pages: UInt64
    public var bytes: UInt64
    public var milliseconds: Double
}

/// Data frames carry at most this much (the frame limit leaves room for headers): small enough
/// for the copies of one frame (read, encode, seal, socket) to stay in the CPU's cache.
let chunkBytes = 1 << 20
