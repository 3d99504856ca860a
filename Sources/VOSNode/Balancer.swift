// Load sharing (`vos node start --balance`): each node that balances looks after its own
// capsules only, so no two nodes ever decide for one capsule and no leader is needed. After each
// heartbeat, a node whose capsules have kept it above the threshold for `sustainBeats` samples
// moves one capsule live to the least loaded alive, uncordoned node, but only a capsule `x`
// with `mine - theirs > 2x` (afterwards the destination is still below this node, so the same
// capsule never has a reason to come back: no ping-pong). Then it waits `settleBeats` for the
// figures to show the move, and a capsule that arrived or moved within `capsuleCooldown`
// seconds stays put.
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
    private var overloadedBeats = 0
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
        var placement = Placement(members: members, excluding: mine.name)
        let me = Placement.load(mine)
        let share = { (c: CapsuleLoad) in Placement.share(c, on: me) }
        if me.score <= policy.above {
            overloadedBeats = 0
            return nil
        }
        overloadedBeats += 1
        guard overloadedBeats >= policy.sustainBeats else { return nil }
        let now = Double(monotonicNanos()) / 1e9
        lock.lock()
        let cooling = lastMove.filter { now - $0.value < policy.capsuleCooldown }.keys
        lock.unlock()
        // Largest movable capsule first: the fewest moves to even things out.
        let movable = (mine.capsuleLoads ?? []).filter { $0.state == "running" && $0.cpuPercent != nil && !cooling.contains($0.name) }
            .sorted { share($0) > share($1) }
        for c in movable {
            guard case .success(let dest) = placement.choose(for: c) else { return nil }
            if me.score - dest.score > 2 * share(c) {
                placement.place(c, on: dest.name)
                lock.lock()
                lastMove[c.name] = now
                lock.unlock()
                overloadedBeats = 0
                settleUntilBeat = beat + policy.settleBeats
                return (c, dest.name, String(format: "%@ at %.2f (above %.2f for %d s), %@ at %.2f, capsule %.2f",
                                             mine.name, me.score, policy.above, policy.sustainBeats, dest.name, dest.score, share(c)))
            }
        }
        return nil
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
