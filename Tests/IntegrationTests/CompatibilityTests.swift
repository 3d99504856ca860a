// Issue 9 (CPU and kernel): an image records the CPU features and xsave components of the
// machine it was saved on; a restore on a machine lacking one refuses, naming it, unless
// `--ignore-cpu` names it; a different kernel major version is a warning.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct CompatibilityTests {
    /// The cpuinfo flags of this machine.
    var flagsHere: Set<String> {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
    }

    /// A checkpointed counter, its output file and the last value before the checkpoint.
    func savedCounter(_ f: Fixture) throws -> (image: String, out: String, last: Int) {
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 10 }, "the counter does not count")
        try f.checkpoint(pid, f.path("img"))
        return (f.path("img"), out, counterSequence(out).values.last!)
    }

    /// Rewrites the image's manifest.json, changing its "machine" object.
    func editMachine(_ image: String, _ change: (inout [String: Any]) -> Void) throws {
        let path = image + "/manifest.json"
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var machine = try #require(manifest["machine"] as? [String: Any])
        change(&machine)
        manifest["machine"] = machine
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
    }

    /// The PID a restore wrote to IMAGE.pid, adopted for cleanup.
    func adopt(_ f: Fixture, _ image: String) throws -> PID {
        let text = try String(contentsOfFile: image + ".pid", encoding: .utf8)
        let pid = try #require(PID(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        f.adopt(pid)
        return pid
    }

    @Test func missingFeatureIsRefusedUnlessIgnored() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (image, out, last) = try savedCounter(f)
        let lacking = try #require(["avx512f", "amx_tile", "avx512_fp16", "sha_ni", "vaes", "avx2"].first { !flagsHere.contains($0) },
                                   "this machine has every feature the test could claim")
        try editMachine(image) { m in m["cpuFeatures"] = (m["cpuFeatures"] as? [String] ?? []) + [lacking] }

        let refused = try f.vos(["restore", image])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("saved on a CPU with \(lacking), which this machine") && refused.stderr.contains("--ignore-cpu \(lacking)"),
                "\(refused.stderr)")
        #expect(!refused.stderr.contains("Fatal error") && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(lines(out).count == counterSequence(out).values.count && counterSequence(out).values.last == last,
                "a refused restore ran the program")

        let r = try f.vos(["restore", image, "--pidfile", image + ".pid", "--ignore-cpu", lacking])
        try #require(r.status == 0, "\(r.stderr)")
        let pid = try adopt(f, image)
        #expect(waitUntil { (counterSequence(out).values.last ?? 0) >= last + 10 }, "pid \(pid) does not count on")
        #expect(counterSequence(out).continuous)
    }

    @Test func missingXsaveComponentIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (image, _, _) = try savedCounter(f)
        var here: UInt64 = 0
        try editMachine(image) { m in
            here = (m["xsaveFeatures"] as? NSNumber)?.uint64Value ?? 0
            m["xsaveFeatures"] = NSNumber(value: here | 1 << 18)  // AMX tile data
        }
        try #require(here != 0, "the image records no xsave components")
        try #require(here & (1 << 18) == 0, "this machine has AMX: nothing to claim")
        let refused = try f.vos(["restore", image])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("amx_tile"), "\(refused.stderr)")
    }

    @Test func otherKernelMajorIsAWarning() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let (image, out, last) = try savedCounter(f)
        try editMachine(image) { m in m["kernelRelease"] = "5.10.0-old" }
        let r = try f.vos(["restore", image, "--pidfile", image + ".pid"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: the image was saved on Linux 5.10.0-old"), "\(r.stderr)")
        _ = try adopt(f, image)
        #expect(waitUntil { (counterSequence(out).values.last ?? 0) >= last + 10 })
    }
}
