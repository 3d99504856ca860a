// The report as text: one block per scenario, columns fitted to their contents.
import Foundation

extension Report {
    func table() -> String {
        var out: [String] = []
        func line(_ s: String = "") { out.append(s) }
        func block(_ title: String, _ rows: [[String]]) {
            line()
            line(title)
            out += TextTable(rows).lines.map { "  " + $0 }
        }
        line("vos-bench\(plan.quick ? " --quick" : "")  \(date)")
        line("command: \(command)")
        line("machine: \(machine.cpuModel), \(machine.cpus) CPUs, \(bytes(machine.memoryBytes)); \(machine.kernel)")
        line("load average before: \(loadAverageBefore); after: \(loadAverageAfter)")
        line("figures: median [min – max] over the runs; GB/s = 10^9 bytes/s; images on /dev/shm")

        block(
            "Small process: \(small.program), \(small.frozenMilliseconds.runs) runs "
                + "(each restored copy kept counting with no gap)",
            [
                ["frozen during the checkpoint", fmt(small.frozenMilliseconds) + " ms"],
                ["checkpoint wall time", fmt(small.checkpointMilliseconds) + " ms"],
                ["restore wall time", fmt(small.restoreMilliseconds) + " ms"],
                [
                    "restorer (this process) at the time",
                    "\(bytes(small.restorerResidentBytes)) resident, "
                        + "\(small.restorerMappings) mappings (the restore stub starts as its fork)",
                ],
            ])

        block(
            "Ceilings (\(bytes(UInt64(ceilings.bytesPerRun))) per run, \(plan.ceilingRuns) runs; "
                + "writes into fresh process memory: 256 MiB per run)",
            [["", "GB/s"]] + ceilings.rows.map { [$0.label, fmt($0.gigabytesPerSecond)] })

        block(
            "Checkpoint of vos-test-memhog, killed after (total: wall time of Checkpointer.checkpoint; "
                + "frozen: from the seize to the kill)",
            [["size", "stored", "total ms", "frozen ms", "GB/s", "× readv reused", "× dump path", "× tmpfs write"]]
                + large.map { r in
                    let g = r.checkpointGigabytesPerSecond.median
                    return [
                        "\(r.sizeMiB) MiB", bytes(r.bytesStored), fmt(r.checkpointTotalMilliseconds),
                        fmt(r.checkpointFrozenMilliseconds), fmt(r.checkpointGigabytesPerSecond),
                        ratio(g, "readvReused"), ratio(g, "dumpPath"), ratio(g, "tmpfsWrite"),
                    ]
                })

        block(
            "Restore of the same images (wall time of Restorer.restore, opening the image included, until the process "
                + "runs again; each restored copy then verified every page)",
            [["size", "ms", "GB/s", "× memcpy", "× fill path", "verified"]]
                + large.map { r in
                    let g = r.restoreGigabytesPerSecond.median
                    return [
                        "\(r.sizeMiB) MiB", fmt(r.restoreMilliseconds), fmt(r.restoreGigabytesPerSecond),
                        ratio(g, "memcpy"), ratio(g, "writevFreshAll"),
                        "\(r.verifiedRestores)/\(r.restoreMilliseconds.runs)",
                    ]
                })

        block(
            "Image size / touched anonymous memory (RssAnon before the checkpoint)",
            large.map { r in
                [
                    "vos-test-memhog \(r.sizeMiB)", "image \(bytes(r.imageBytes))",
                    "RssAnon \(bytes(r.touchedAnonymousBytes))",
                    String(format: "%.4f", r.imageToTouched.median),
                ]
            } + [
                [
                    small.program, "image \(bytes(small.imageBytes)) (pages \(bytes(small.bytesStored)))",
                    "RssAnon \(bytes(small.touchedAnonymousBytes))",
                    String(format: "%.3f (pages only %.3f)", small.imageToTouched.median, small.pagesToTouched.median),
                ]
            ])

        block(
            "Stopped by a checkpoint with leaveRunning: true (the process then still ran and verified)",
            [["", "frozen ms", "total ms", "runs"]]
                + [largeLeaveRunning, small.leaveRunning].map { l in
                    [l.program, fmt(l.frozenMilliseconds), fmt(l.totalMilliseconds), "\(l.frozenMilliseconds.runs)"]
                })

        block(
            "Capsule start (\(capsules.start.capsuleMilliseconds.runs) runs, interleaved): from before posix_spawn "
                + "until `sh -c ': > MARKER; exec sleep 1000'` has made its marker",
            [
                ["`vos run --name N -- sh ...` (binary), marker exists", fmt(capsules.start.capsuleMilliseconds) + " ms"],
                ["  `vos run` has exited (capsule registered)", fmt(capsules.start.vosRunExitMilliseconds) + " ms"],
                ["the same sh, posix_spawn, marker exists", fmt(capsules.start.bareMilliseconds) + " ms"],
                ["overhead of the capsule (difference of medians)", String(format: "%.2f ms", capsules.start.overheadMilliseconds)],
            ])

        block(
            "Capsule runtime: vos-test-work's own elapsed time, as a capsule's command vs posix_spawn'd, interleaved",
            [["program", "runs", "outside ms", "inside ms", "inside / outside"]]
                + capsules.work.map { w in
                    [
                        "\(w.mode) (\(w.iterations) iterations)", "\(w.outsideMilliseconds.runs)",
                        fmt(w.outsideMilliseconds), fmt(w.insideMilliseconds), String(format: "%.4f", w.ratio),
                    ]
                })

        let t = capsules.tree
        block(
            "Capsule of \(t.processes) processes (init, sh, 9 sleep), checkpointed (stopped) and restored, "
                + "\(t.frozenMilliseconds.runs) runs",
            [
                ["frozen during the checkpoint", fmt(t.frozenMilliseconds) + " ms"],
                ["checkpoint (engine total)", fmt(t.checkpointMilliseconds) + " ms"],
                ["`vos checkpoint` command wall time", fmt(t.checkpointCommandMilliseconds) + " ms"],
                ["restore (vos restore's figure, until all run)", fmt(t.restoreMilliseconds) + " ms"],
                ["`vos restore` command wall time", fmt(t.restoreCommandMilliseconds) + " ms"],
                ["restores with all \(t.processes) processes running", "\(t.verifiedRestores)/\(t.frozenMilliseconds.runs)"],
            ])

        if let migration { out += migration.tableLines() }

        block(
            "Goals",
            [["", "measured", "goal", ""]]
                + goals.map { g in
                    // A ratio against 1.01 needs more than two decimals to say anything.
                    let measured = String(format: g.target.hasPrefix("≤ 1.") ? "%.4f" : "%.2f", g.measured)
                    return [g.name, measured, g.target, g.met ? "met" : "MISSED"]
                })
        return out.joined(separator: "\n")
    }

    private func ratio(_ value: Double, _ key: String) -> String {
        let c = ceilings.median(key)
        return c > 0 ? String(format: "%.2f", value / c) : "-"
    }
}

/// Left-aligned columns, each as wide as its widest cell, two spaces apart.
struct TextTable {
    var lines: [String]

    init(_ rows: [[String]]) {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        lines = rows.map { row in
            row.enumerated().map { c, cell in
                c == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count + 2)
            }.joined().replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }
}

/// "12.3 [11.0 – 14.2]": three significant figures or so.
func fmt(_ s: Sample) -> String {
    func f(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.2f", v)
    }
    return "\(f(s.median)) [\(f(s.min)) – \(f(s.max))]"
}

func bytes(_ n: UInt64) -> String {
    if n >= 1 << 30 { return String(format: "%.2f GiB", Double(n) / Double(1 << 30)) }
    if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
    return String(format: "%.1f KiB", Double(n) / 1024)
}
