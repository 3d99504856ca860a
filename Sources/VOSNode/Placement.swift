// Where a drain puts each capsule: on the alive, schedulable node with the least load, where a
// node's load is what its capsules use (CPU in shares of its CPUs, plus resident memory in shares
// of its memory, from the heartbeats) and grows with every capsule placed on it during this
// drain, so one idle node does not take everything. Machine-wide figures (load average, free
// memory) are not part of the score: in the simulated cluster every node shares one kernel, and
// they would rank nodes by noise; free memory only rules out a node too full to take a capsule.
import Foundation

struct Placement {
    /// Which CPU figure decisions go by: a drain, the last interval's (a ~10 s average still
    /// holds a young capsule's start-up, which made a drain of just-started capsules lopsided);
    /// load sharing, the ~10 s average (sustained load; one interval is noisy by several
    /// percent on a busy machine, enough to fake an imbalance).
    enum CPUFigure { case lastInterval, average }

    struct Candidate {
        var name: String
        var cpus: Int
        var memoryTotalBytes: UInt64
        var memoryAvailableBytes: UInt64
        var cpuPercent: Double
        var memoryBytes: UInt64
        var capsules: Int

        /// 0 = idle; 1 = every CPU busy or all memory used, by capsules.
        var score: Double {
            cpuPercent / (100 * Double(max(cpus, 1))) + Double(memoryBytes) / Double(max(memoryTotalBytes, 1))
                + Double(capsules) * Placement.perCapsule
        }
    }

    private(set) var candidates: [Candidate]
    let figure: CPUFigure

    /// Every alive, uncordoned node but `excluding`, with the capsules it runs.
    init(members: [NodeInfo], excluding: String, figure: CPUFigure = .lastInterval) {
        self.figure = figure
        candidates = members.filter { $0.name != excluding && $0.state == "alive" && $0.cordoned != true }.map { Self.load($0, figure) }
    }

    /// A node's load from what it told in its heartbeat.
    static func load(_ n: NodeInfo, _ figure: CPUFigure = .lastInterval) -> Candidate {
        let running = (n.capsuleLoads ?? []).filter { $0.state == "running" }
        return Candidate(name: n.name, cpus: n.cpus, memoryTotalBytes: n.memoryTotalBytes ?? n.memoryAvailableBytes,
                         memoryAvailableBytes: n.memoryAvailableBytes,
                         cpuPercent: running.reduce(0) { $0 + $1.cpu(figure) },
                         memoryBytes: running.reduce(0) { $0 + $1.memoryBytes }, capsules: max(running.count, n.capsules.count))
    }

    /// Every capsule counts as if it used at least this much (half a percent of the node): idle
    /// capsules measure ~0 give or take a tick, and without it a drain would put them all on
    /// whichever node's figures were lowest by noise.
    static let perCapsule = 0.005

    /// What `capsule` adds to the score of `node`.
    static func share(_ capsule: CapsuleLoad, on node: Candidate, _ figure: CPUFigure = .lastInterval) -> Double {
        capsule.cpu(figure) / (100 * Double(max(node.cpus, 1))) + Double(capsule.memoryBytes) / Double(max(node.memoryTotalBytes, 1)) + perCapsule
    }

    /// The least loaded candidate with room for `capsule` (ties: fewer capsules, then name),
    /// or why there is none.
    func choose(for capsule: CapsuleLoad) -> Result<Candidate, NodeError> {
        guard !candidates.isEmpty else { return .failure(NodeError("no other alive, schedulable node to take it")) }
        let fitting = candidates.filter { $0.memoryAvailableBytes >= capsule.memoryBytes }
        guard let best = fitting.min(by: { ($0.score, $0.capsules, $0.name) < ($1.score, $1.capsules, $1.name) }) else {
            return .failure(NodeError("no schedulable node has \(capsule.memoryBytes >> 20) MiB of memory available for it"))
        }
        return .success(best)
    }

    /// Counts `capsule` on `node` for the choices that follow.
    mutating func place(_ capsule: CapsuleLoad, on node: String) {
        guard let i = candidates.firstIndex(where: { $0.name == node }) else { return }
        candidates[i].cpuPercent += capsule.cpu(figure)
        candidates[i].memoryBytes += capsule.memoryBytes
        candidates[i].memoryAvailableBytes -= min(capsule.memoryBytes, candidates[i].memoryAvailableBytes)
        candidates[i].capsules += 1
    }

    /// Biggest first: the greedy order that spreads best.
    static func order(_ capsules: [CapsuleLoad]) -> [CapsuleLoad] {
        capsules.sorted { a, b in
            let (x, y) = (Double(a.memoryBytes) / 1e9 + a.cpu() / 100, Double(b.memoryBytes) / 1e9 + b.cpu() / 100)
            return x != y ? x > y : a.name < b.name
        }
    }
}

extension CapsuleLoad {
    /// The CPU figure a decision goes by (0 before the capsule was sampled twice).
    func cpu(_ figure: Placement.CPUFigure = .lastInterval) -> Double {
        figure == .average ? cpuAveragePercent ?? cpuPercent ?? 0 : cpuPercent ?? 0
    }
}
