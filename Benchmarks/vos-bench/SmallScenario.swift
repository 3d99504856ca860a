// A small process (vos-test-counter): where fixed costs (freeze, injected syscalls, image
// files, stub creation) dominate instead of memory bandwidth.
import Foundation
import Glibc
import VOSCheckpoint
import VOSLinux

struct SmallResult: Codable {
    var program: String
    var frozenMilliseconds: Sample
    var checkpointMilliseconds: Sample
    var restoreMilliseconds: Sample
    var bytesStored: UInt64
    var imageBytes: UInt64
    var touchedAnonymousBytes: UInt64
    var imageToTouched: Sample
    var pagesToTouched: Sample
    var leaveRunning: LeaveRunningResult
    /// This process's own size while it restored: the restore stub starts as a fork of it and
    /// must unmap all of it, so the small restore grows with it.
    var restorerResidentBytes: UInt64
    var restorerMappings: Int
}

enum SmallScenario {
    static func run(runs: Int) throws -> SmallResult {
        let counter = try Products.path("vos-test-counter")
        let resident = UInt64(try ProcStatus.read("/proc/self/status").number("VmRSS")) * 1024
        let mappings = try ProcFile.text("/proc/self/maps").split(separator: "\n").count
        var frozen: [Double] = []
        var total: [Double] = []
        var restore: [Double] = []
        var imageRatio: [Double] = []
        var pagesRatio: [Double] = []
        var stored: UInt64 = 0
        var imageBytes: UInt64 = 0
        var touched: UInt64 = 0
        for run in 0..<runs {
            let out = Scratch.path("counter-\(run).txt")
            let pid = try Children.shared.spawn(
                counter, [out], stdout: Scratch.path("counter-\(run).out"), stderr: Scratch.path("counter-\(run).err"))
            defer { Children.shared.stop(pid) }
            guard waitForLine(out, seconds: 10, where: { $0 == "n=2" }) != nil else {
                throw BenchError("vos-test-counter (pid \(pid)) did not start counting: \(lastLines(out))")
            }
            touched = try touchedAnonymousBytes(pid)
            let image = Scratch.path("image-counter-\(run)")
            defer { Scratch.remove(image) }

            let (c, checkpointMs) = try timedCheckpoint(pid: pid, image: image, leaveRunning: false)
            Children.shared.forget(pid)
            frozen.append(c.frozenMilliseconds)
            total.append(checkpointMs)
            stored = c.bytesStored
            imageBytes = directoryBytes(image)
            imageRatio.append(Double(imageBytes) / Double(touched))
            pagesRatio.append(Double(stored) / Double(touched))
            let before = counted(out).count

            let (r, restoreMs) = try timedRestore(image: image)
            restore.append(restoreMs)
            try expectContinues(out, after: before, pid: r.pid)
            Children.shared.stop(r.pid)
        }
        progress(
            "counter: frozen \(ms(Sample(frozen).median)), checkpoint \(ms(Sample(total).median)), "
                + "restore \(ms(Sample(restore).median)) (medians of \(runs), every restored copy kept counting)"
        )
        return SmallResult(
            program: "vos-test-counter", frozenMilliseconds: Sample(frozen), checkpointMilliseconds: Sample(total),
            restoreMilliseconds: Sample(restore), bytesStored: stored, imageBytes: imageBytes,
            touchedAnonymousBytes: touched,
            imageToTouched: Sample(imageRatio), pagesToTouched: Sample(pagesRatio),
            leaveRunning: try leaveRunning(runs: runs),
            restorerResidentBytes: resident, restorerMappings: mappings)
    }

    /// One counter checkpointed `runs` times with leaveRunning: true.
    static func leaveRunning(runs: Int) throws -> LeaveRunningResult {
        let out = Scratch.path("counter-live.txt")
        let pid = try Children.shared.spawn(
            try Products.path("vos-test-counter"), [out], stdout: Scratch.path("counter-live.out"),
            stderr: Scratch.path("counter-live.err"))
        defer { Children.shared.stop(pid) }
        guard waitForLine(out, seconds: 10, where: { $0 == "n=2" }) != nil else {
            throw BenchError("vos-test-counter (pid \(pid)) did not start counting: \(lastLines(out))")
        }
        var frozen: [Double] = []
        var total: [Double] = []
        for run in 0..<runs {
            let image = Scratch.path("image-counter-live-\(run)")
            defer { Scratch.remove(image) }
            let (c, checkpointMs) = try timedCheckpoint(pid: pid, image: image, leaveRunning: true)
            frozen.append(c.frozenMilliseconds)
            total.append(checkpointMs)
        }
        try expectContinues(out, after: counted(out).count, pid: pid)
        return LeaveRunningResult(
            program: "vos-test-counter", frozenMilliseconds: Sample(frozen), totalMilliseconds: Sample(total))
    }

    /// The "n=<k>" values written so far (a line still being written is left out).
    static func counted(_ path: String) -> [Int] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()  // after the final newline, or a partial line
        return lines.compactMap { $0.hasPrefix("n=") ? Int($0.dropFirst(2)) : nil }
    }

    /// The counter must write at least three more numbers, continuing 0, 1, 2... with no gap
    /// and no repeat: proof that the process runs on from where it was.
    static func expectContinues(_ path: String, after count: Int, pid: PID) throws {
        let deadline = Kernel.monotonicNanos() + 10_000_000_000
        while Kernel.monotonicNanos() < deadline {
            let values = counted(path)
            if values.count >= count + 3 {
                guard values.enumerated().allSatisfy({ $0.offset == $0.element }) else {
                    throw BenchError("counter pid \(pid) broke its sequence: \(lastLines(path, 6))")
                }
                return
            }
            usleep(2000)
        }
        throw BenchError("counter pid \(pid) did not continue counting: \(lastLines(path))")
    }
}
