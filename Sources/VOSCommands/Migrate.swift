// `vos migrate NAME --to NODE [--live | --lazy] [--carry-base]`: move a capsule through the local node daemon.
import ArgumentParser
import Foundation
import Glibc
import VOSMigration
import VOSNode

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move a running capsule to another node of the cluster.")

    @Argument(help: "The capsule (running on this node).") var name: String
    @Option(help: "The node to move it to.") var to: String
    @Flag(help: "Pre-copy memory while the capsule runs; freeze only for the last pages.") var live = false
    @Flag(help: "Resume on the destination at once; memory follows on demand.") var lazy = false
    @Flag(help: "For a capsule with its own filesystem: take the base's files it uses along in its upper layer (for a destination whose base differs).")
    var carryBase = false
    @OptionGroup var data: DataOption
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if live && lazy { throw ValidationError("--live and --lazy exclude each other") }
    }

    func run() throws {
        let mode: MigrationMode = live ? .live : lazy ? .lazy : .cold
        let bar = !output.json && isatty(1) != 0
        let report: MigrationReport
        do {
            report = try NodeClient(data: data.node).migrate(capsule: name, to: to, mode: mode, carryBase: carryBase) { e in
                if output.json { return }
                if let total = e.totalBytes, let done = e.bytes, bar {
                    let width = 30, filled = total == 0 ? width : Int(Double(width) * Double(done) / Double(total))
                    let line = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                        + "\(formatBytes(done)) of \(formatBytes(total))"
                    FileHandle.standardOutput.write(Data(("\r" + line).utf8))
                } else if e.totalBytes == nil {
                    print((bar ? "\r" : "") + "\(e.phase): \(e.message)")
                }
            }
        } catch let e as RemoteError {
            if bar { print() }
            throw CleanError(e.text)
        } catch {
            if bar { print() }
            throw CleanError("\(error)")
        }
        if bar { print() }
        if output.json {
            print(try jsonString(report))
            return
        }
        for r in report.rounds {
            print("round \(r.round): \(r.pages) pages, \(formatBytes(r.bytes)), \(formatMillis(r.milliseconds))")
        }
        print("migrated capsule \(report.capsule) from \(report.from) to \(report.to) (\(report.mode.rawValue)): "
            + "\(formatBytes(report.bytesSent)) sent at \(String(format: "%.2f", report.transferGigabytesPerSecond)) GB/s, "
            + "downtime \(formatMillis(report.downtimeMilliseconds)), total \(formatMillis(report.totalMilliseconds)); "
            + "pid \(report.destinationPID) on \(report.to)")
    }
}
