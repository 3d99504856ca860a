// The `vos` command line: one file per command; this one only lists them.
import ArgumentParser

public struct VOSCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vos",
        abstract: "Checkpoint, restore and move running Linux programs.",
        subcommands: [Run.self, PS.self, Logs.self, Attach.self, Stop.self, Remove.self, Checkpoint.self, Restore.self, Inspect.self, Check.self, NodeCommand.self, Nodes.self, Migrate.self, Drain.self, Cordon.self, Uncordon.self, Events.self,
                      CapsuleInitCommand.self, GuardCommand.self])

    public init() {}
}

/// `--json` for every command that prints a result.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the result as a JSON object.")
    var json = false
}
