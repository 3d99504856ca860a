// `vos restore DIR [--pidfile FILE] [--new-pid] [--lazy] [--name NEWNAME] [--ignore-cpu FEATURE]... [--json]`
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

    @Flag(help: "Post-copy: resume at once and fill private anonymous memory on demand and in the background; vos stays in the foreground until every page is in.")
    var lazy = false

    @Option(help: "For a capsule image: the name of the restored capsule (default: the saved one).")
    var name: String?

    @Option(name: .customLong("ignore-cpu"), help: "Restore although this machine lacks a CPU feature the image's machine had (the program must not use it). Repeatable.")
    var ignoreCPU: [String] = []

    @OptionGroup var output: OutputOptions

    func run() throws {
        try requireRoot("restore", because: "it rebuilds the process with ptrace, clone3 at its saved PIDs and PR_SET_MM_MAP")
        // Wall time from before the image is read to the process running again.
        let start = Kernel.monotonicNanos()
        let reader = try Restorer.open(image)
        for warning in try MachineCompatibility.check(reader, ignoring: Set(ignoreCPU)) {
            FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
        }
        if reader.tree?.capsule != nil {
            if lazy { throw ValidationError("--lazy restores a single process; a capsule image is restored whole (without --lazy)") }
            return try restoreCapsule(reader, start: start)
        }
        var server: LazyPageServer?
        var s: RestoreSummary
        if lazy {
            (s, server) = try Restorer.restoreLazily(image: reader, newPID: newPID)
        } else {
            s = try Restorer.restore(image: reader, newPID: newPID)
        }
        s.milliseconds = Double(Kernel.monotonicNanos() - start) / 1e6
        if newPID && s.threads > 1 {
            FileHandle.standardError.write(Data(("warning: pid \(s.pid) has \(s.threads) threads restored under new thread IDs; "
                + "thread IDs the program cached (pthread_kill, robust and PI mutex owners) may be stale\n").utf8))
        }
        if let pidfile {
            do { try PrivateFiles.writeAtomically(pidfile, Array("\(s.pid)\n".utf8)) } catch {
                // vos must not exit while pages are missing: its uffd would go, and they would read as zeros.
                _ = try? server?.waitUntilComplete()
                throw CleanError("restored pid \(s.pid), but cannot write the pid file \(pidfile): \(error)")
            }
        }
        if let server { return try waitForPages(server, summary: s) }
        if output.json {
            print(try jsonString(s))
        } else {
            let which = s.keptPID ? "its original PID and thread IDs" : "a new PID; it was pid \(s.originalPID) when checkpointed"
            print("restored pid \(s.pid) (\(which)), \(s.threads) thread(s), in \(formatMillis(s.milliseconds))")
        }
    }

    /// `--lazy`: says when the process runs, then stays until its last page is in.
    func waitForPages(_ server: LazyPageServer, summary s: RestoreSummary) throws {
        // Were vos to die now, its uffd would close and the missing pages would read as zeros in
        // the running process: a Ctrl-C or SIGTERM waits for the last page instead.
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { signal(sig, SIG_IGN) }
        if !output.json {
            print("restored pid \(s.pid), running after \(formatMillis(s.milliseconds)); filling its memory lazily")
            fflush(stdout)
        }
        let r = try server.waitUntilComplete()
        if output.json {
            print(try jsonString(LazyRestoreOutput(s, r)))
        } else {
            print("pid \(s.pid): every page in after \(formatMillis(r.completeMilliseconds)): \(r.faultPages) page(s) on fault, "
                + "\(r.pushedPages) pushed, \(r.zeroPages) zero-filled, \(r.droppedPages) dropped (unmapped, discarded or exited), "
                + "\(r.userfaultfds) userfaultfd(s)")
        }
    }

    func restoreCapsule(_ reader: ImageReader, start: UInt64) throws {
        var (record, s) = try CapsuleImages.restore(image: reader, newName: name)
        s.milliseconds = Double(Kernel.monotonicNanos() - start) / 1e6
        if let pidfile {
            do { try PrivateFiles.writeAtomically(pidfile, Array("\(s.rootHostPID)\n".utf8)) } catch {
                throw CleanError("restored capsule \(record.name) (init pid \(s.rootHostPID)), but cannot write the pid file \(pidfile): \(error)")
            }
        }
        if output.json {
            print(try jsonString(s))
        } else {
            print("restored capsule \(record.name): \(s.processes) process(es) under their saved PIDs, \(s.threads) thread(s), "
                + "init is pid \(s.rootHostPID) on the host, in \(formatMillis(s.milliseconds))")
        }
    }
}

/// `vos restore --lazy --json`: the restore summary and the post-copy figures in one object.
struct LazyRestoreOutput: Encodable {
    var pid: PID, originalPID: PID, keptPID: Bool, threads: Int, injectedCalls: Int, milliseconds: Double
    var resumeMilliseconds: Double, completeMilliseconds: Double
    var faultPages: Int, pushedPages: Int, zeroPages: Int, droppedPages: Int, userfaultfds: Int

    init(_ s: RestoreSummary, _ r: LazyReport) {
        (pid, originalPID, keptPID, threads, injectedCalls, milliseconds) = (s.pid, s.originalPID, s.keptPID, s.threads, s.injectedCalls, s.milliseconds)
        (resumeMilliseconds, completeMilliseconds) = (r.resumeMilliseconds, r.completeMilliseconds)
        (faultPages, pushedPages, zeroPages, droppedPages, userfaultfds) = (r.faultPages, r.pushedPages, r.zeroPages, r.droppedPages, r.userfaultfds)
    }
}
