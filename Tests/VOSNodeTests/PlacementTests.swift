// The drain's placement: least loaded first, counting what it placed, never on the drained,
// a cordoned or an unreachable node, nor on one without the memory.
import Testing
@testable import VOSNode

struct PlacementTests {
    func node(_ name: String, state: String = "alive", cordoned: Bool = false, available: UInt64 = 8 << 30,
              _ capsules: [CapsuleLoad] = []) -> NodeInfo {
        NodeInfo(name: name, address: "10.0.0.1:7100", load: 0, cpus: 2, memoryAvailableBytes: available, capsules: capsules.map(\.name),
                 lastSeenSeconds: 0, state: state, cordoned: cordoned, memoryTotalBytes: 16 << 30, capsuleLoads: capsules)
    }

    func capsule(_ name: String, mib: UInt64, cpu: Double) -> CapsuleLoad {
        CapsuleLoad(name: name, state: "running", processes: 1, memoryBytes: mib << 20, cpuPercent: cpu)
    }

    func drain(_ members: [NodeInfo], _ capsules: [CapsuleLoad]) -> [String: String] {
        var p = Placement(members: members, excluding: "a")
        var out: [String: String] = [:]
        for c in Placement.order(capsules) {
            guard case .success(let n) = p.choose(for: c) else { continue }
            p.place(c, on: n.name)
            out[c.name] = n.name
        }
        return out
    }

    @Test func spreadsOverIdleNodes() {
        let six = (0..<3).map { capsule("web\($0)", mib: 20, cpu: 2) } + (0..<3).map { capsule("count\($0)", mib: 1, cpu: 0.1) }
        let placed = drain([node("a"), node("b"), node("c")], six)
        #expect(placed.count == 6)
        #expect(Set(placed.values) == ["b", "c"], "\(placed)")
        // The three servers cannot all share one node while the other has one.
        let webs = placed.filter { $0.key.hasPrefix("web") }.values
        #expect(webs.filter { $0 == "b" }.count >= 1 && webs.filter { $0 == "c" }.count >= 1, "\(placed)")
    }

    @Test func prefersTheLessLoadedNode() {
        let busy = node("b", [capsule("hog", mib: 4096, cpu: 180)])
        let placed = drain([node("a"), busy, node("c")], [capsule("x", mib: 10, cpu: 1), capsule("y", mib: 10, cpu: 1)])
        #expect(placed == ["x": "c", "y": "c"])
    }

    @Test func skipsDrainedCordonedUnreachableAndFullNodes() {
        let members = [node("a"), node("b", cordoned: true), node("c", state: "unreachable"), node("d", available: 1 << 20), node("e")]
        #expect(drain(members, [capsule("x", mib: 64, cpu: 1)]) == ["x": "e"])
        let none = Placement(members: [node("a"), node("b", cordoned: true)], excluding: "a")
        guard case .failure(let why) = none.choose(for: capsule("x", mib: 1, cpu: 0)) else {
            Issue.record("placed on a cordoned node")
            return
        }
        #expect(why.description.contains("no other alive, schedulable node"))
    }
}
