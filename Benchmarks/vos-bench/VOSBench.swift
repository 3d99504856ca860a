// The vos-bench command: measures the ceilings, then checkpoint and restore, and reports.
import ArgumentParser
import Foundation
import VOSLinux

struct VOSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vos-bench",
        abstract: "Measure checkpoint and restore against this machine's copy, tmpfs and TCP ceilings.",
        discussion:
            "Needs root (ptrace, process_vm_readv, namespaces) and release builds of vos, vos-test-memhog, "
            + "vos-test-counter, vos-test-work and vos-test-dirtier "
            + "next to this binary."
    )

    @Flag(help: "Fewer runs, 256 MiB ceilings and migrations, no 1 GiB case.")
    var quick = false

    @Flag(help: "Only the migration scenario (two node daemons on a simulated LAN; 256 MiB with --quick, else 1 GiB).")
    var migration = false

    @Flag(help: "Print the report as JSON on stdout (the table then goes to stderr).")
    var json = false

    func run() throws {
        // Restored processes are our children (the restore stub is cloned here); whatever they
        // leave orphaned must come back to us to be reaped, not to init.
        try Kernel.becomeSubreaper()
        try Scratch.create()
        Interruption.install()
        defer {
            MigrationBench.active?.teardown()
            Children.shared.stopAll()
            CapsuleBench.cleanUp()
            Scratch.removeAll()
        }
        let plan = Plan.make(quick: quick)
        if migration {
            let m = try MigrationScenario.run(mib: plan.migrationMiB)
            let text =
                "vos-bench --migration\(quick ? " --quick" : "")  \(ISO8601DateFormatter().string(from: Date()))\n"
                + "command: \(CommandLine.arguments.joined(separator: " "))\n"
                + "load average: \(Report.loadAverage())"
                + m.tableLines().joined(separator: "\n") + "\n\nGoals\n"
                + TextTable(m.goals().map { [$0.name, String(format: "%.2f", $0.measured), $0.target, $0.met ? "met" : "MISSED"] })
                .lines.map { "  " + $0 }.joined(separator: "\n")
            if json {
                fputs(text + "\n", stderr)
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .prettyPrinted]
                print(String(decoding: try e.encode(m), as: UTF8.self))
            } else {
                print(text)
            }
            return
        }
        let loadBefore = Report.loadAverage()
        // The small process first, while this process is as small as a fresh `vos restore`:
        // the restore stub starts as a fork of it (see SmallResult.restorerResidentBytes).
        let small = try SmallScenario.run(runs: plan.smallRuns)
        let ceilings = try Ceilings.measure(plan)
        let large = try zip(plan.memhogSizes, plan.memhogRuns).map { try LargeScenario.run(mib: $0, runs: $1) }
        let largeLive = try LeaveRunningScenario.memhog(mib: 256, runs: plan.leaveRunningRuns)
        let capsules = try CapsuleScenarios.run(plan)
        let migration = try MigrationScenario.run(mib: plan.migrationMiB)

        var report = Report(
            date: ISO8601DateFormatter().string(from: Date()), command: CommandLine.arguments.joined(separator: " "),
            machine: .current(), plan: plan, loadAverageBefore: loadBefore, loadAverageAfter: Report.loadAverage(),
            ceilings: ceilings, large: large, largeLeaveRunning: largeLive, small: small,
            capsules: capsules, migration: migration)
        report.checkGoals()
        if json {
            fputs(report.table() + "\n", stderr)
            print(try report.json())
        } else {
            print(report.table())
        }
    }
}
