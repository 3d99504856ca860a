// `vos checkpoint --pid PID --image DIR [--leave-running] [--json]`
import ArgumentParser
import Foundation
import VOSCheckpoint
import VOSLinux

struct Checkpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Freeze a running process, save it to an image directory, then stop it (or let it go on).")

    @Option(help: "The process to checkpoint.")
    var pid: Int32

    @Option(help: "The image directory to write (created if missing).")
    var image: String

    @Flag(help: "Let the process continue after the checkpoint instead of killing it.")
    var leaveRunning = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let s = try Checkpointer.checkpoint(pid: pid, imageDirectory: image, leaveRunning: leaveRunning)
        if output.json {
            print(try jsonString(s))
        } else {
            let fate = s.leftRunning ? "left running" : "stopped"
            print("checkpointed pid \(s.pid) into \(s.image): \(s.pagesStored) pages (\(formatBytes(s.bytesStored))) stored, "
                + "\(s.threads) thread(s), \(s.files) fd(s), frozen \(formatMillis(s.frozenMilliseconds)), "
                + "total \(formatMillis(s.totalMilliseconds)); process \(fate)")
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
