// Issue 10, item 4 (quick version): many checkpoint/restore cycles of the real python3 leave
// no trace: the sequence has no gap or repeat, and the restored process's fd table and memory
// map stay exactly what they were (nothing of vos left in it, nothing growing).
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct SoakTests {
    /// The fd table (number → link) and the mappings (range, permissions, path) of a process.
    func footprint(_ pid: Int32) throws -> (fds: [String], maps: [String]) {
        let fds = try ProcFile.numericEntries("/proc/\(pid)/fd").map { "\($0) -> \((try? ProcFile.link("/proc/\(pid)/fd/\($0)")) ?? "?")" }
        let maps = try ProcFile.text("/proc/\(pid)/maps").split(separator: "\n").map { line -> String in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return ([f[0], f[1]] + f.dropFirst(5)).joined(separator: " ")
        }
        return (fds, maps)
    }

    @Test func pythonTwentyCyclesLeaveNoTrace() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("py.txt")
        let script = "import time\nn = 0\nwith open('\(out)', 'a', buffering=1) as f:\n    while True:\n        f.write(f'n={n}\\n'); n += 1; time.sleep(0.005)\n"
        var pid = try f.start("/usr/bin/python3", ["-c", script])
        #expect(waitUntil { counterSequence(out).values.count >= 10 })
        let original = try footprint(pid)
        for cycle in 0..<20 {
            let image = f.path("img\(cycle)")
            try f.checkpoint(pid, image)
            pid = try f.restore(image)
            let n = counterSequence(out).values.count
            #expect(waitUntil { counterSequence(out).values.count >= n + 3 }, "cycle \(cycle): python3 does not run on")
            let now = try footprint(pid)
            #expect(now.fds == original.fds, "cycle \(cycle): the fd table changed: \(now.fds) vs \(original.fds)")
            #expect(now.maps == original.maps, "cycle \(cycle): the memory map changed")
            try FileManager.default.removeItem(atPath: image)
        }
        #expect(counterSequence(out).continuous, "a gap or a repeat over 20 cycles")
    }
}
