// Issue 10, item 4: many checkpoint/restore cycles in a row of the C counter and of the real
// python3 (quick: 20 each; VOS_SOAK=1: 200 each) leave no trace: the sequence has no gap or
// repeat, the restored process's fd table and memory map stay exactly what they were (nothing
// of vos left in it, nothing growing), and no process, stub or zombie is left behind.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct SoakTests {
    @Test func counterCyclesLeaveNoTrace() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        try soak(f, pid: pid, out: out, cycles: Soak.count(quick: 20, soak: 200))
    }

    @Test func pythonCyclesLeaveNoTrace() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("py.txt")
        let script = "import time\nn = 0\nwith open('\(out)', 'a', buffering=1) as f:\n    while True:\n        f.write(f'n={n}\\n'); n += 1; time.sleep(0.005)\n"
        let pid = try f.start("/usr/bin/python3", ["-c", script])
        try soak(f, pid: pid, out: out, cycles: Soak.count(quick: 20, soak: 200))
    }

    /// `cycles` checkpoints (killing the process) and restores of `pid`, which writes "n=K"
    /// lines into `out`; it must run on after each, with the fd table and memory map it had
    /// before the first; at the end the sequence is continuous and nothing else is left.
    func soak(_ f: Fixture, pid start: PID, out: String, cycles: Int,
              sourceLocation: SourceLocation = #_sourceLocation) throws {
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the program does not count", sourceLocation: sourceLocation)
        let zombiesBefore = zombies(childrenOf: [getpid()])
        let original = try footprint(start)
        let began = Date()
        var pid = start
        for cycle in 0..<cycles {
            let image = f.path("img")
            try f.checkpoint(pid, image, sourceLocation: sourceLocation)
            pid = try f.restore(image, sourceLocation: sourceLocation)
            try #require(pid == start, "cycle \(cycle): restored as \(pid), saved as \(start)", sourceLocation: sourceLocation)
            // It runs on: a few more lines (the file's size, cheaper than parsing 200 cycles' worth).
            let size = fileSize(out)
            try #require(waitUntil { fileSize(out) >= size + 30 }, "cycle \(cycle): the program does not run on", sourceLocation: sourceLocation)
            let now = try footprint(pid)
            try #require(now.fds == original.fds, "cycle \(cycle): the fd table changed: \(difference(original.fds, now.fds))",
                         sourceLocation: sourceLocation)
            try #require(now.maps == original.maps, "cycle \(cycle): the memory map changed: \(difference(original.maps, now.maps))",
                         sourceLocation: sourceLocation)
            try FileManager.default.removeItem(atPath: image)
            try? FileManager.default.removeItem(atPath: image + ".pid")
        }
        let seconds = Date().timeIntervalSince(began)
        let seq = counterSequence(out)
        #expect(seq.continuous, "a gap or a repeat over \(cycles) cycles: \(firstBreak(seq.values))", sourceLocation: sourceLocation)
        // Of everything started for this fixture (vos commands, stubs), only the program is left.
        #expect(processesMarked(f.directory) == [pid], "processes left: \(describe(processesMarked(f.directory)))",
                sourceLocation: sourceLocation)
        let left = lastingZombies(childrenOf: [getpid()]).subtracting(zombiesBefore)
        #expect(left.isEmpty, "zombies left: \(describe(left))", sourceLocation: sourceLocation)
        print("soak: \(cycles) checkpoint/restore cycles of \(original.fds.count) fds, \(original.maps.count) mappings in "
            + String(format: "%.1f s (%.0f ms per cycle), %d values counted", seconds, seconds * 1000 / Double(cycles), seq.values.count))
    }
}

func fileSize(_ path: String) -> UInt64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// Where a sequence 0, 1, 2... first breaks, with its neighbours.
func firstBreak(_ v: [Int]) -> String {
    guard let i = v.indices.first(where: { v[$0] != $0 }) else { return "none" }
    return "at line \(i): \(v[max(0, i - 3)..<min(v.count, i + 3)])"
}

/// PIDs with their state and command, for messages.
func describe(_ pids: Set<PID>) -> String {
    pids.sorted().map { pid in
        let stat = try? ProcStat.read("/proc/\(pid)/stat")
        return "\(pid) (\(stat?.comm ?? "?") \(stat?.state ?? "gone"))"
    }.joined(separator: ", ")
}
