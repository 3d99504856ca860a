// Issue 3, item 1: a C counter continues with no gap and no repeat, across 20 cycles in a row.
import Foundation
import Testing

@Suite(.serialized)
struct CounterTests {
    /// The counter's sequence continues after restore, with no gap and no repeat.
    @Test func counterContinuesAfterRestore() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 20 })
        try f.checkpoint(pid, f.path("img"))
        let atCheckpoint = counterSequence(out).values.count
        #expect(!f.isAlive(pid), "the checkpoint kills the process by default")
        usleep(100_000)
        #expect(counterSequence(out).values.count == atCheckpoint, "nothing is written while the process is saved")
        let restored = try f.restore(f.path("img"))
        #expect(waitUntil { counterSequence(out).values.count >= atCheckpoint + 20 })
        let seq = counterSequence(out)
        #expect(seq.continuous, "sequence has a gap or repeat: \(seq.values.suffix(40))")
        #expect(f.isAlive(restored))
    }

    /// 20 checkpoint/restore cycles in a row on the same program keep the sequence continuous.
    @Test func twentyCyclesInARow() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        var pid = try f.start(Products.path("vos-test-counter"), [out])
        for cycle in 0..<20 {
            let before = counterSequence(out).values.count
            #expect(waitUntil { counterSequence(out).values.count >= before + 3 }, "cycle \(cycle): the counter does not advance")
            let image = f.path("img\(cycle)")
            try f.checkpoint(pid, image)
            pid = try f.restore(image)
        }
        let before = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= before + 10 })
        let seq = counterSequence(out)
        #expect(seq.continuous, "sequence has a gap or repeat")
    }

    /// --leave-running, then restore: two independent copies run side by side.
    @Test func leaveRunningGivesTwoCopies() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 10 })
        let r = try f.checkpoint(pid, f.path("img"), leaveRunning: true)
        #expect(r.stdout.contains("left running"))
        #expect(f.isAlive(pid))
        let copy = try f.restore(f.path("img"), newPID: true)
        #expect(copy != pid)
        let restoreOutput = try f.vos(["inspect", f.path("img")])
        #expect(restoreOutput.status == 0)
        // Both append to the same file: numbers from the checkpoint on are written twice.
        #expect(waitUntil {
            let v = counterSequence(out).values
            return Dictionary(grouping: v, by: { $0 }).values.filter { $0.count == 2 }.count >= 10
        })
        #expect(f.isAlive(pid) && f.isAlive(copy))
    }
}
