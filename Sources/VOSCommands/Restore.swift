// `vos restore DIR [--pidfile FILE] [--new-pid] [--name NEWNAME] [--json]`
import ArgumentParser
import Foundation
import VOSCapsule
import VOSCheckpoint
import VOSImage
import VOSLinux

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a checkpointed process or capsule back from its image; it runs detached from vos.")

    @Argument(help: "The image directory.")
    var image: String

    @Option(help: "Also write the restored process's PID to this file.")
    var pidfile: String?

    @Flag(help: "Restore with a new PID and new thread IDs instead of the saved ones (needed beside a still-running original outside a capsule).")
    var newPID = false

    @Option(help: "For a capsule image: the name of the restored capsule (default: the saved one).")
    var name: String?

    @OptionGroup var output: OutputOptions

    func run() throws {
        // Wall time from before the image is read to the process running again.
        let start = Kernel.monotonicNanos()
        let reader = try Restorer.open(image)
        if reader.tree?.capsule != nil { return try restoreCapsule(reader, start: start) }
        var s = try Restorer.restore(image: reader, newPID: newPID)
        s.milliseconds = Double(Kernel.monotonicNanos() - start) / 1e6
        if newPID && s.threads > 1 {
            FileHandle.standardError.write(Data(("warning: pid \(s.pid) has \(s.threads) threads restored under new thread IDs; "
                + "thread IDs the program cached (pthread_kill, robust and PI mutex owners) may be stale\n").utf8))
        }
        if let pidfile {
            do { try "\(s.pid)\n".write(toFile: pidfile, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("restored pid \(s.pid), but cannot write the pid file \(pidfile): \(error.localizedDescription)")
            }
        }
        if output.json {
            print(try jsonString(s))
        } else {
            let which = s.keptPID ? "its original PID and thread IDs" : "a new PID; it was pid \(s.originalPID) when checkpointed"
            print("restored pid \(s.pid) (\(which)), \(s.threads) thread(s), in \(formatMillis(s.milliseconds))")
        }
    }

    func restoreCapsule(_ reader: ImageReader, start: UInt64) throws {
        var (record, s) = try CapsuleImages.restore(image: reader, newName: name)
        s.milliseconds = Double(Kernel.monotonicNanos() - start) / 1e6
        if let pidfile { try "\(s.rootHostPID)\n".write(toFile: pidfile, atomically: true, encoding: .utf8) }
        if output.json {
            print(try jsonString(s))
        } else {
            print("restored capsule \(record.name): \(s.processes) process(es) under their saved PIDs, \(s.threads) thread(s), "
                + "init is pid \(s.rootHostPID) on the host, in \(formatMillis(s.milliseconds))")
        }
    }
}
