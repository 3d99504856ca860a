// What a node tells the cluster about each of its capsules (in its heartbeat): state, memory,
// CPU over the last heartbeat interval. `vos ps --all` shows it; the drain places by it.
import Foundation
import Glibc
import VOSCapsule
import VOSLinux

public struct CapsuleLoad: Codable, Sendable, Equatable {
    public var name: String
    /// "running" or "exited".
    public var state: String
    public var processes: Int
    /// Sum of its processes' resident memory.
    public var memoryBytes: UInt64
    /// CPU time of its processes over the last sample interval, in percent of one CPU; nil
    /// until it has been sampled twice on this node (it just started or arrived).
    public var cpuPercent: Double?
    /// The same over the last ~10 s (one interval's figure is counted in 10 ms ticks: a 1 s
    /// window is noisy by a percent or more).
    public var cpuAveragePercent: Double?
    /// Unix time of its last checkpoint kept by the cluster (none yet: periodic checkpoints
    /// are not built).
    public var lastCheckpoint: Double?
    /// With `--net`: its address.
    public var ip: String?

    public init(name: String, state: String, processes: Int, memoryBytes: UInt64, cpuPercent: Double? = nil,
                cpuAveragePercent: Double? = nil, lastCheckpoint: Double? = nil, ip: String? = nil) {
        self.name = name
        self.state = state
        self.processes = processes
        self.memoryBytes = memoryBytes
        self.cpuPercent = cpuPercent
        self.cpuAveragePercent = cpuAveragePercent
        self.lastCheckpoint = lastCheckpoint
        self.ip = ip
    }
}

/// Samples the capsules of one registry; each call measures CPU since the call before.
final class LoadSampler: @unchecked Sendable {
    private let lock = NSLock()
    /// Per capsule: its init's host PID (a restored capsule is a new one), its last samples
    /// (CPU ticks, when), oldest first.
    private var previous: [String: (initPID: PID, samples: [(ticks: UInt64, at: UInt64)])] = [:]
    private static let window = 10
    private var latest: [CapsuleLoad] = []
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// The figures of the last `sample()`.
    var last: [CapsuleLoad] {
        lock.lock()
        defer { lock.unlock() }
        return latest
    }

    /// One pass over /proc: every process is assigned to the capsule whose PID namespace it is in.
    @discardableResult
    func sample(_ registry: CapsuleRegistry) -> [CapsuleLoad] {
        let records = registry.all()
        let running = records.filter(\.isRunning)
        var byNamespace: [String: String] = [:]
        for r in running { byNamespace[r.pidNamespace] = r.name }
        var ticks: [String: UInt64] = [:], rss: [String: UInt64] = [:], count: [String: Int] = [:]
        if !byNamespace.isEmpty {
            for pid in (try? ProcFile.numericEntries("/proc")) ?? [] {
                guard let ns = Namespaces.identity(of: pid, "pid"), let name = byNamespace[ns],
                      let stat = try? ProcStat.read("/proc/\(pid)/stat") else { continue }
                ticks[name, default: 0] += stat.number(14) + stat.number(15)  // utime + stime
                // Field 24: resident pages.
                rss[name, default: 0] += UInt64(max(stat.signedNumber(24), 0)) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
                count[name, default: 0] += 1
            }
        }
        let now = monotonicNanos()
        lock.lock()
        defer { lock.unlock() }
        var next: [String: (initPID: PID, samples: [(ticks: UInt64, at: UInt64)])] = [:]
        let before = Dictionary(latest.map { ($0.name, $0) }) { a, _ in a }
        let percent = { (from: (ticks: UInt64, at: UInt64), to: (ticks: UInt64, at: UInt64)) in
            Double(to.ticks - from.ticks) / self.ticksPerSecond / (Double(to.at - from.at) / 1e9) * 100
        }
        latest = records.map { r in
            var load = CapsuleLoad(name: r.name, state: r.isRunning ? "running" : "exited", processes: count[r.name] ?? 0,
                                   memoryBytes: rss[r.name] ?? 0, ip: r.network?.address)
            guard r.isRunning, let t = ticks[r.name] else { return load }
            let sample = (ticks: t, at: now)
            guard let p = previous[r.name], p.initPID == r.initPID, let last = p.samples.last, t >= last.ticks, now > last.at else {
                next[r.name] = (r.initPID, [sample])
                return load
            }
            // Ticks are 10 ms: a window much shorter than a heartbeat (an extra sample after a
            // move) would be mostly noise, so it keeps the last figures and samples.
            if now - last.at < 500_000_000 {
                load.cpuPercent = before[r.name]?.cpuPercent
                load.cpuAveragePercent = before[r.name]?.cpuAveragePercent
                next[r.name] = p
                return load
            }
            load.cpuPercent = percent(last, sample)
            load.cpuAveragePercent = percent(p.samples[0], sample)
            next[r.name] = (r.initPID, Array((p.samples + [sample]).suffix(Self.window)))
            return load
        }
        previous = next
        return latest
    }
}
