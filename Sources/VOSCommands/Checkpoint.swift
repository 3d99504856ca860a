// `vos checkpoint --pid PID --image DIR` and `vos checkpoint NAME --image DIR` (a capsule).
import ArgumentParser
import Foundation
import VOSCapsule
import VOSCheckpoint
import VOSLinux

struct Checkpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Freeze a running process or capsule, save it to an image directory, then stop it (or let it go on).")

    @Argument(help: "A capsule to checkpoint whole (its init and every process in it).")
    var capsule: String?

    @Option(help: "A process to checkpoint.")
    var pid: Int32?

    @Option(help: "The image directory to write (created if missing).")
    var image: String

    @Flag(help: "Let it continue after the checkpoint instead of stopping it.")
    var leaveRunning = false

    @Flag(help: "For a capsule with its own filesystem: take the base's files it uses (executable, libraries) along in its upper layer, so it restores on a machine whose base differs.")
    var carryBase = false

    @Option(help: "For a capsule with its own filesystem: an earlier image of it; only the files changed since go into this one (its restore needs that image too).")
    var parent: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if (capsule == nil) == (pid == nil) { throw ValidationError("give either a capsule name or --pid PID") }
        if carryBase && capsule == nil { throw ValidationError("--carry-base is for a capsule with its own filesystem") }
        if parent != nil && capsule == nil { throw ValidationError("--parent is for a capsule with its own filesystem") }
    }

    func run() throws {
        try requireRoot("checkpoint", because: "it stops the process with ptrace and reads its memory and file descriptors")
        let s: CheckpointSummary
        if let capsule {
            s = try CapsuleImages.checkpoint(name: capsule, imageDirectory: image, leaveRunning: leaveRunning, carryBase: carryBase, parent: parent)
        } else {
            s = try Checkpointer.checkpoint(pid: pid ?? 0, imageDirectory: image, leaveRunning: leaveRunning)
        }
        if output.json {
            print(try jsonString(s))
        } else {
            let what = capsule.map { "capsule \($0)" } ?? "pid \(s.pid)"
            let fate = s.leftRunning ? "left running" : "stopped"
            print("checkpointed \(what) into \(s.image): \(s.pagesStored) pages (\(formatBytes(s.bytesStored))) stored, "
                + "\(s.threads) thread(s), \(s.files) fd(s), frozen \(formatMillis(s.frozenMilliseconds)), "
                + "total \(formatMillis(s.totalMilliseconds)); \(capsule == nil ? "process" : "capsule") \(fate)")
        }
    }
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return String(decoding: try e.encode(value), as: UTF8.self)
}

func formatBytes(_ n: UInt64) -> String {
    if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
    if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
    return String(format: "%.1f KiB", Double(n) / 1024)
}

func formatMillis(_ ms: Double) -> String { String(format: "%.2f ms", ms) }
