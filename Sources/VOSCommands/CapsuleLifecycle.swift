// `vos logs NAME [-f]`, `vos stop NAME`, `vos rm NAME`.
import ArgumentParser
import Foundation
import Glibc
import VOSCapsule

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a capsule's output (of a command started without --tty).")

    @Argument(help: "The capsule.") var name: String
    @Flag(name: .shortAndLong, help: "Keep printing new output until the capsule exits.") var follow = false

    func run() throws {
        let registry = CapsuleRegistry()
        let record = try registry.load(name)
        guard let handle = FileHandle(forReadingAtPath: registry.logPath(name)) else { return }
        while true {
            let data = handle.availableData
            if !data.isEmpty { FileHandle.standardOutput.write(data); continue }
            if !follow || !record.isRunning { return }
            usleep(100_000)
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop every process of a capsule.")

    @Argument(help: "The capsule.") var name: String

    func run() throws {
        let record = try CapsuleRegistry().load(name)
        guard record.isRunning else { throw CleanError("capsule \"\(name)\" is not running") }
        // Killing the init of a PID namespace kills every process in it.
        guard kill(record.initPID, SIGKILL) == 0 else {
            throw CleanError("cannot stop capsule \"\(name)\": kill(\(record.initPID)): \(String(cString: strerror(errno)))")
        }
        for _ in 0..<500 where record.isRunning { usleep(10_000) }
        if let n = record.network { CapsuleNetwork.release(n, of: name) }
        print(name)
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a stopped capsule.")

    @Argument(help: "The capsule.") var name: String

    func run() throws {
        let registry = CapsuleRegistry()
        let record = try registry.load(name)
        if record.isRunning { throw CleanError("capsule \"\(name)\" is running; stop it first with `vos stop \(name)`") }
        if let n = record.network { CapsuleNetwork.release(n, of: name) }
        try registry.remove(name)
        print(name)
    }
}
