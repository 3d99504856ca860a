// Driving capsules from tests: vos with the fixture's own registry, and the capsule's
// processes as `vos ps` shows them.
import Foundation

/// vos with the registry inside the fixture (`Fixture.vos` sets VOS_STATE_DIR).
func vos(_ f: Fixture, _ args: [String]) throws -> CommandResult { try f.vos(args) }

/// Host PIDs of a capsule's processes by their PID inside it, from `vos ps --json`.
func hostPIDs(_ f: Fixture, _ name: String) throws -> [Int32: Int32] {
    struct Entry: Decodable {
        struct P: Decodable { var pid: Int32; var hostPID: Int32 }
        var name: String
        var processes: [P]
    }
    let r = try f.vos(["ps", "--json"])
    let entries = try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8))
    return Dictionary(uniqueKeysWithValues: (entries.first { $0.name == name }?.processes ?? []).map { ($0.pid, $0.hostPID) })
}

extension Fixture {
    /// Remembers every process of a capsule for cleanup (they are not the test's children).
    func adoptCapsule(_ name: String) throws {
        for host in try hostPIDs(self, name).values { adopt(host) }
    }
}
