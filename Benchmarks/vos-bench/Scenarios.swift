// The engine measured through its library API: checkpoint and restore of a large process
// (memhog), with every restored copy verifying its own memory before the figures count.
import Foundation
import Glibc
import VOSCheckpoint
import VOSLinux

struct LargeResult: Codable {
    var sizeMiB: Int
    /// Of the last run (the same in every run, give or take a page of stack or heap).
    var bytesStored: UInt64
    var imageBytes: UInt64
    var touchedAnonymousBytes: UInt64
    var checkpointTotalMilliseconds: Sample
    var checkpointFrozenMilliseconds: Sample
    /// bytesStored over the checkpoint's total time.
    var checkpointGigabytesPerSecond: Sample
    /// Until the restored process runs again.
    var restoreMilliseconds: Sample
    var restoreGigabytesPerSecond: Sample
    /// Whole image (pages.img, process.json, manifest) over RssAnon before the checkpoint.
    var imageToTouched: Sample
    var verifiedRestores: Int
}

enum LargeScenario {
    static func run(mib: Int, runs: Int) throws -> LargeResult {
        var total: [Double] = []
        var frozen: [Double] = []
        var ckptRate: [Double] = []
        var restore: [Double] = []
        var restoreRate: [Double] = []
        var ratio: [Double] = []
        var stored: UInt64 = 0
        var imageBytes: UInt64 = 0
        var touched: UInt64 = 0
        for run in 0..<runs {
            let hog = try Memhog.start(mib: mib, name: "memhog-\(mib)-\(run)")
            // After the checkpoint the restored copy usually gets this same PID back.
            defer { Children.shared.stop(hog.pid) }
            touched = try touchedAnonymousBytes(hog.pid)
            let image = Scratch.path("image-\(mib)-\(run)")
            defer { Scratch.remove(image) }

            let (c, checkpointMs) = try timedCheckpoint(pid: hog.pid, image: image, leaveRunning: false)
            Children.shared.forget(hog.pid)  // killed and reaped by the checkpoint
            stored = c.bytesStored
            imageBytes = directoryBytes(image)
            total.append(checkpointMs)
            frozen.append(c.frozenMilliseconds)
            ckptRate.append(gigabytesPerSecond(Int(c.bytesStored), checkpointMs / 1e3))
            ratio.append(Double(imageBytes) / Double(touched))

            let (r, restoreMs) = try timedRestore(image: image)
            restore.append(restoreMs)
            restoreRate.append(gigabytesPerSecond(Int(c.bytesStored), restoreMs / 1e3))
            try hog.verify(pid: r.pid)
            Children.shared.stop(r.pid)
            progress(
                "memhog \(mib) MiB run \(run + 1)/\(runs): checkpoint \(ms(checkpointMs)) "
                    + "(frozen \(ms(c.frozenMilliseconds))), "
                    + "restore \(ms(restoreMs)), restored copy verified")
        }
        return LargeResult(
            sizeMiB: mib, bytesStored: stored, imageBytes: imageBytes, touchedAnonymousBytes: touched,
            checkpointTotalMilliseconds: Sample(total), checkpointFrozenMilliseconds: Sample(frozen),
            checkpointGigabytesPerSecond: Sample(ckptRate), restoreMilliseconds: Sample(restore),
            restoreGigabytesPerSecond: Sample(restoreRate), imageToTouched: Sample(ratio), verifiedRestores: runs)
    }
}

struct LeaveRunningResult: Codable {
    var program: String
    /// How long the process was stopped by a checkpoint that let it go on.
    var frozenMilliseconds: Sample
    var totalMilliseconds: Sample
}

enum LeaveRunningScenario {
    /// Checkpoints one memhog `runs` times, letting it go on each time; then it must still run
    /// and its memory must still verify.
    static func memhog(mib: Int, runs: Int) throws -> LeaveRunningResult {
        let hog = try Memhog.start(mib: mib, name: "memhog-live-\(mib)")
        defer { Children.shared.stop(hog.pid) }
        var frozen: [Double] = []
        var total: [Double] = []
        for run in 0..<runs {
            let image = Scratch.path("image-live-\(mib)-\(run)")
            defer { Scratch.remove(image) }
            let (c, checkpointMs) = try timedCheckpoint(pid: hog.pid, image: image, leaveRunning: true)
            frozen.append(c.frozenMilliseconds)
            total.append(checkpointMs)
        }
        try hog.verify(pid: hog.pid)
        progress(
            "memhog \(mib) MiB left running: frozen \(ms(Sample(frozen).median)) (median of \(runs)), "
                + "memory verified after"
        )
        return LeaveRunningResult(
            program: "vos-test-memhog \(mib)", frozenMilliseconds: Sample(frozen), totalMilliseconds: Sample(total))
    }
}

/// A checkpoint through the library API and its wall time in ms.
func timedCheckpoint(pid: PID, image: String, leaveRunning: Bool) throws -> (CheckpointSummary, Double) {
    try timed { try Checkpointer.checkpoint(pid: pid, imageDirectory: image, leaveRunning: leaveRunning) }
}

/// A restore and its wall time in ms, opening and checking the image included (the summary's
/// own milliseconds start after the image is open). The restored process is adopted at once.
func timedRestore(image: String) throws -> (RestoreSummary, Double) {
    let (summary, wall) = try timed { try Restorer.restore(imageDirectory: image) }
    Children.shared.adopt(summary.pid)
    return (summary, wall)
}

func ms(_ v: Double) -> String { String(format: "%.2f ms", v) }
