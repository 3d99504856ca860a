// Entry point of vos-bench (a main.swift rather than @main, so the target may hold other files).
// `tcp-endpoint` is a hidden helper (one side of the veth TCP ceiling), not a scenario.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "tcp-endpoint" {
    TCPEndpoint.main(Array(CommandLine.arguments.dropFirst(2)))
} else {
    VOSBench.main()
}
