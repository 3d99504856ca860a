// Repeated measurements and their summary (median, min, max), timing, and the run plan.
import VOSLinux

/// Several runs of one figure. The median is what the table leads with: the machine is a shared
/// 2-vCPU VM (kernel-facts §9 saw ±40 % between runs), so single runs mean little.
struct Sample: Codable {
    var median: Double
    var min: Double
    var max: Double
    var runs: Int

    init(_ values: [Double]) {
        let s = values.sorted()
        runs = s.count
        min = s.first ?? 0
        max = s.last ?? 0
        if s.isEmpty {
            median = 0
        } else if s.count % 2 == 1 {
            median = s[s.count / 2]
        } else {
            median = (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
    }
}

/// Wall time of `body` in seconds (CLOCK_MONOTONIC).
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = Kernel.monotonicNanos()
    try body()
    return Double(Kernel.monotonicNanos() - start) / 1e9
}

/// The value of `body` and its wall time in milliseconds.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = Kernel.monotonicNanos()
    let value = try body()
    return (value, Double(Kernel.monotonicNanos() - start) / 1e6)
}

/// GB/s with GB = 10⁹ bytes, as in kernel-facts §9.
func gigabytesPerSecond(_ bytes: Int, _ seconds: Double) -> Double {
    seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
}

let mebibyte = 1 << 20
let gibibyte = 1 << 30

/// How much to measure: the full run, or one that fits in a minute (`--quick`).
struct Plan: Codable {
    var quick: Bool
    /// Bytes moved per ceiling measurement.
    var ceilingBytes: Int
    var ceilingRuns: Int
    /// memhog sizes in MiB, and checkpoint+restore runs for each.
    var memhogSizes: [Int]
    var memhogRuns: [Int]
    var smallRuns: Int
    var leaveRunningRuns: Int
    /// Capsules: start-overhead pairs, runtime-overhead pairs per program, tree checkpoint+restore runs.
    var capsuleStartRuns: Int
    var capsuleWorkRuns: Int
    var capsuleTreeRuns: Int
    /// Migration between two simulated nodes: MiB of the migrated programs and of each veth TCP run.
    var migrationMiB: Int

    static func make(quick: Bool) -> Plan {
        if quick {
            return Plan(
                quick: true, ceilingBytes: 256 * mebibyte, ceilingRuns: 3, memhogSizes: [256], memhogRuns: [3],
                smallRuns: 10, leaveRunningRuns: 3, capsuleStartRuns: 5, capsuleWorkRuns: 4, capsuleTreeRuns: 3,
                migrationMiB: 256)
        }
        return Plan(
            quick: false, ceilingBytes: gibibyte, ceilingRuns: 5, memhogSizes: [256, 1024], memhogRuns: [5, 3],
            smallRuns: 20, leaveRunningRuns: 5, capsuleStartRuns: 15, capsuleWorkRuns: 15, capsuleTreeRuns: 9,
            migrationMiB: 1024)
    }
}

/// What stops the benchmark: it refuses to report figures for a run that went wrong.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
