// `vos run --name NAME [--hostname H] [--tty] [--net [--ip A]] [--fs [--rootfs DIR] [--volume H:P]...] -- CMD ARGS...`
import ArgumentParser
import VOSCapsule
import VOSCheckpoint
import VOSImage

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

    @Flag(help: "Give the capsule a filesystem of its own: an overlay over the base whose writes stay the capsule's and travel with it.")
    var fs = false

    @Option(help: "With --fs: the read-only base (default: this machine's root).")
    var rootfs: String?

    @Option(name: .customLong("volume"), help: "With --fs: HOSTPATH:PATH, a host directory the capsule sees at PATH (shared, not copied). Repeatable.")
    var volumes: [String] = []

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        if ip != nil && !net { throw ValidationError("--ip needs --net") }
        if (rootfs != nil || !volumes.isEmpty) && !fs { throw ValidationError("--rootfs and --volume need --fs") }
        for v in volumes where v.split(separator: ":").count != 2 { throw ValidationError("--volume takes HOSTPATH:PATH, not \(v)") }
    }

    func run() throws {
        let cmd = command.first == "--" ? Array(command.dropFirst()) : command
        let filesystem = fs ? CapsuleFilesystem(base: rootfs ?? "/", volumes: volumes.map(Self.volume)) : nil
        let record = try CapsuleRunner.run(name: name, hostname: hostname, command: cmd, tty: tty, network: net ? (ip ?? "") : nil,
                                           filesystem: filesystem)
        print(record.name)
    }

    static func volume(_ text: String) -> CapsuleFilesystem.Volume {
        let parts = text.split(separator: ":").map(String.init)
        return CapsuleFilesystem.Volume(host: parts[0], path: parts[1])
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
    @Option var fsBase: String?
    @Option var fsLayers: String?
    @Option var fsState: String?
    @Option(name: .customLong("volume")) var volumes: [String] = []
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        let cmd = command.first == "--" ? Array(command.dropFirst()) : command
        let terminal = ttyInput.flatMap { i in ttyOutput.map { (input: i, output: $0) } }
        let root = fsBase.flatMap { base in
            fsLayers.flatMap { layers in
                fsState.map { CapsuleRoot(CapsuleFilesystem(base: base, volumes: volumes.map(Run.volume)), layers: layers, state: $0) }
            }
        }
        CapsuleInit.run(hostname: hostname, logPath: log, exitStatusPath: exitStatus, command: cmd, terminal: terminal, root: root)
    }
}
