// Reading the threads test program's report lines.
import Foundation

struct ThreadsReport: Equatable {
    var counters: [Int]
    var signals: [Int]
    var killErrors: Int
    var lockFailures: Int

    /// "c=1,2,... s=0,1,... kerr=0 rfail=0"
    init?(_ line: String) {
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let c = fields["c"], let s = fields["s"], let k = fields["kerr"].flatMap({ Int($0) }),
              let r = fields["rfail"].flatMap({ Int($0) }) else { return nil }
        counters = c.split(separator: ",").compactMap { Int($0) }
        signals = s.split(separator: ",").compactMap { Int($0) }
        killErrors = k
        lockFailures = r
    }

    static func last(_ path: String) -> ThreadsReport? { lines(path).last.flatMap(ThreadsReport.init) }
}

/// The thread IDs of a process, sorted.
func threadIDs(_ pid: Int32) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { Int32($0) }.sorted()
}
