// `vos node init` and `vos node start`: a node's data directory and its daemon.
import ArgumentParser
import Foundation
import Glibc
import Logging
import VOSMigration
import VOSNode

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Set up and run this machine's node daemon.",
        subcommands: [NodeInit.self, NodeStart.self])
}

struct DataOption: ParsableArguments {
    @Option(help: "The node's data directory (default: $VOS_NODE_DATA, else /var/lib/vos/node).")
    var data: String?

    var node: NodeData { NodeData(directory: data ?? NodeData.defaultDirectory()) }
}

struct NodeInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node's data directory and, unless --token is given, a new cluster credential.")

    @OptionGroup var data: DataOption

    @Option(help: "Join an existing cluster: its token (printed by `vos node init --join-token` on one of its nodes).")
    var token: String?

    @Flag(help: "Print only the join token (of the directory's credential, made now if the directory is new).")
    var joinToken = false

    func run() throws {
        let node = data.node
        if joinToken && node.isInitialised {
            print(try node.key(token: nil).token)
            return
        }
        let key = try node.initialise(key: try token.map { try ClusterKey(token: $0) })
        if joinToken {
            print(key.token)
            return
        }
        print("node data in \(node.directory); cluster \(key.fingerprint)\(token == nil ? " (new)" : "")")
        print("join token for other nodes: \(key.token)")
        print("capsules of this node: VOS_STATE_DIR=\(node.stateDirectory) vos run ...")
    }
}

struct NodeStart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run the node daemon (in the foreground unless --detach).")

    @OptionGroup var data: DataOption

    @Option(help: "This node's name in the cluster.")
    var name: String

    @Option(help: "ADDR:PORT to listen on for other nodes.")
    var listen: String

    @Option(help: "ADDR:PORT of a node of the cluster to join through.")
    var join: String?

    @Option(help: "The cluster's join token (needed once, when the data directory has no credential yet).")
    var token: String?

    @Flag(help: "Run in the background; the log goes to DATA/node.log.")
    var detach = false

    @Flag(help: "Share load: move capsules live off this node while its capsules keep it above --balance-above.")
    var balance = false

    @Option(help: "With --balance: the node's load (CPU share of its CPUs plus memory share, by its capsules) above which it sheds capsules.")
    var balanceAbove = 0.75

    func run() throws {
        let node = data.node
        let key = try node.key(token: token)
        if detach {
            try Detach.start(node: node, arguments: Array(CommandLine.arguments.dropFirst()).filter { $0 != "--detach" })
            return
        }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let daemon = try NodeDaemon(data: node, name: name, listen: listen, key: key)
        daemon.balance = balance ? BalancePolicy(above: balanceAbove) : nil
        try daemon.run(join: join)
    }
}

/// `--detach`: the same command again, in a new session, its output into node.log; returns
/// once the daemon's control socket answers (or says why it ended).
enum Detach {
    static func start(node: NodeData, arguments: [String]) throws {
        unlink(node.controlSocket)
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, node.logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, 0x80 /* POSIX_SPAWN_SETSID */)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else { throw CleanError("cannot start the node daemon: posix_spawn(\(path)): \(String(cString: strerror(rc)))") }
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: node.controlSocket) {
                print("node daemon started (pid \(pid)); log: \(node.logPath)")
                return
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let log = (try? String(contentsOfFile: node.logPath, encoding: .utf8)) ?? ""
                throw CleanError("the node daemon ended at once: \(log.split(separator: "\n").last ?? "see \(node.logPath)")")
            }
            usleep(50_000)
        }
        throw CleanError("the node daemon (pid \(pid)) did not open \(node.controlSocket) within 10 s; see \(node.logPath)")
    }
}
