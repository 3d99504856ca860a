// Load sharing (`vos node start --balance`): each node that balances looks after its own
// capsules only, so no two nodes ever decide for one capsule and no leader is needed. After each
// heartbeat, a node above the threshold looks for a capsule `x` it could move to the least
// loaded alive, uncordoned node with `mine - theirs > 2x` (afterwards the destination is still
// below this node, so the capsule never has a reason to come back: no ping-pong); only when such
// a move has been warranted for `sustainBeats` heartbeats in a row, judged on ~10 s CPU averages,
// does it move one, live. Then it waits `settleBeats` for the figures to show the move, and a
// capsule that arrived or moved within `capsuleCooldown` seconds stays put.
import Foundation

public struct BalancePolicy: Sendable {
    /// Score (CPU share of the node's CPUs + memory share of its memory, by its capsules)
    /// above which a node tries to shed load.
    public var above: Double
    public var sustainBeats = 3
    public var settleBeats = 3
    public var capsuleCooldown: Double = 60

    public init(above: Double) { self.above = above }
}

final class Balancer: @unchecked Sendable {
    let policy: BalancePolicy
    /// Heartbeats in a row in which a move was warranted.
    private var warrantedBeats = 0
    private var settleUntilBeat = 0
    private var beat = 0
    /// Monotonic seconds each capsule last arrived here or was moved by this node.
    private var lastMove: [String: Double] = [:]
    private let lock = NSLock()

    init(policy: BalancePolicy) { self.policy = policy }

    /// A capsule arrived here (the receiver's side of a migration).
    func arrived(_ capsule: String) {
        lock.lock()
        lastMove[capsule] = Double(monotonicNanos()) / 1e9
        lock.unlock()
    }

    /// What to move now, if anything: the capsule, where, and why (for the event log).
    func decide(members: [NodeInfo]) -> (capsule: CapsuleLoad, to: String, why: String)? {
        beat += 1
        guard let mine = members.first, beat >= settleUntilBeat else { return nil }
        let placement = Placement(members: members, excluding: mine.name, figure: .average)
        let me = Placement.load(mine, .average)
        let share = { (c: CapsuleLoad) in Placement.share(c, on: me, .average) }
        guard me.score > policy.above else {
            warrantedBeats = 0
            return nil
        }
        let now = Double(monotonicNanos()) / 1e9
        lock.lock()
        let cooling = lastMove.filter { now - $0.value < policy.capsuleCooldown }.keys
        lock.unlock()
        // Largest movable capsule first: the fewest moves to even things out.
        let movable = (mine.capsuleLoads ?? []).filter { $0.state == "running" && $0.cpuPercent != nil && !cooling.contains($0.name) }
            .sorted { share($0) > share($1) }
        let move = movable.lazy.compactMap { c -> (CapsuleLoad, Placement.Candidate)? in
            guard case .success(let dest) = placement.choose(for: c), me.score - dest.score > 2 * share(c) else { return nil }
            return (c, dest)
        }.first
        guard let (c, dest) = move else {
            warrantedBeats = 0
            return nil
        }
        warrantedBeats += 1
        guard warrantedBeats >= policy.sustainBeats else { return nil }
        lock.lock()
        lastMove[c.name] = now
        lock.unlock()
        warrantedBeats = 0
        settleUntilBeat = beat + policy.settleBeats
        return (c, dest.name, String(format: "%@ at %.2f, %@ at %.2f, capsule %.2f (warranted for %d s; threshold %.2f)",
                                     mine.name, me.score, dest.name, dest.score, share(c), policy.sustainBeats, policy.above))
    }
}

extension NodeDaemon {
    /// One load-sharing decision after a heartbeat; the move itself runs on a thread of its own.
    func rebalance(_ balancer: Balancer) {
        guard !cordoned, !isBalancing, let d = balancer.decide(members: memberList()) else { return }
        isBalancing = true
        record(ClusterEvent(node: me.name, kind: .balanced, capsule: d.capsule.name, subject: d.to,
                            message: "capsule \(d.capsule.name) to move from \(me.name) to \(d.to): \(d.why)"))
        let mover = Thread { [self] in
            defer { isBalancing = false }
            do { _ = try migrateOut(capsule: d.capsule.name, to: d.to, mode: .live) { _ in } } catch {
                logger.warning("load sharing: \(error)")
            }
        }
        mover.name = "vos-balance"
        mover.start()
    }
}
