// `vos run --name NAME [--hostname H] -- CMD ARGS...`
import ArgumentParser
import VOSCapsule

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a command in a new capsule (its own PID, UTS, IPC, mount and time namespaces).")

    @Option(help: "The capsule's name.")
    var name: String

    @Option(help: "The hostname inside the capsule (default: the name).")
    var hostname: String?

    @Flag(help: "Run the command on a terminal of the capsule's own; connect to it with `vos attach NAME`.")
    var tty = false

    @Flag(help: "Give the capsule its own network: eth0 on the vOS bridge ($VOS_BRIDGE, default vos0) with an address of its own.")
    var net = false

    @Option(help: "With --net: the capsule's address, ADDR or ADDR/PREFIX in the bridge's subnet (default: the first free one).")
    var ip: String?

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        if ip != nil && !net { throw ValidationError("--ip needs --net") }
    }

    func run() throws {
        let cmd = command.first == "--" ? Array(command.dropFirst()) : command
        let record = try CapsuleRunner.run(name: name, hostname: hostname, command: cmd, tty: tty, network: net ? (ip ?? "") : nil)
        print(record.name)
    }
}

/// The capsule init (internal: `vos run` starts it as PID 1 of the capsule).
struct CapsuleInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "capsule-init", shouldDisplay: false)

    @Option var hostname: String
    @Option var log: String
    @Option var exitStatus: String
    @Option var ttyInput: String?
    @Option var ttyOutput: String?
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        let cmd = command.first == "--" ? Array(command.dropFirst()) : command
        let terminal = ttyInput.flatMap { i in ttyOutput.map { (input: i, output: $0) } }
        CapsuleInit.run(hostname: hostname, logPath: log, exitStatusPath: exitStatus, command: cmd, terminal: terminal)
    }
}
