// Issue 10, item 3: images are untrusted input. A seeded fuzzer mutates a rich image (10 000
// inputs; 100 000 with VOS_SOAK=1): hostile numbers and byte-level damage (bit flips, cut,
// doubled or inserted spans, truncation) in process.json, with its size and checksum made valid
// again so that the decoder and the sanity checks stand alone, and in manifest.json. Each input
// must be refused with an ImageError or accepted, never crash vos, within a bounded time and
// without a large allocation (the test process's peak resident memory is watched).
import Foundation
import Glibc
import Testing
import VOSImage

@Suite(.serialized)
struct HostileImageTests {
    static let soak = ProcessInfo.processInfo.environment["VOS_SOAK"] == "1"
    static let seeds: [UInt64] = [42, 7, 1999, 31337, 4242]
    static let inputsPerSeed = (soak ? 100_000 : 10_000) / seeds.count
    /// Slowest acceptable input (the decoder must not hang on any of them).
    static let timeBound = 2.0
    /// Peak resident growth that would mean the decoder believed a size or count of the input.
    static let allocationBound: Int64 = 64 << 20

    /// A small deterministic generator, so a failure can be replayed (seed and input index).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    static let hostile = ["-1", "0", "4096", "4095", "-2147483648", "2147483647", "9223372036854775807",
                          "18446744073709551615", "140737488351232", "4000000000", "1e300", "\"x\"", "\"../../etc/passwd\"",
                          "null", "[]", "{}"]
    static let structural = Array("{}[]\",:0-.\\e".utf8)

    /// Replaces 1-3 of the numbers of `text` with hostile values.
    static func hostileNumbers(_ text: String, _ matches: [NSTextCheckingResult], _ rng: inout Generator) -> [UInt8] {
        var text = text
        let picks = Set((0..<Int.random(in: 1...3, using: &rng)).map { _ in Int.random(in: 0..<matches.count, using: &rng) })
        for index in picks.sorted(by: >) {  // from the end, so earlier ranges stay valid
            guard let range = Range(matches[index].range, in: text) else { continue }
            text.replaceSubrange(range, with: hostile.randomElement(using: &rng)!)
        }
        return Array(text.utf8)
    }

    /// 1-4 byte-level edits: a bit flipped, a structural character put in, a span cut, doubled
    /// or filled with a hostile number, or the end cut off.
    static func damaged(_ original: [UInt8], _ rng: inout Generator) -> [UInt8] {
        var b = original
        for _ in 0..<Int.random(in: 1...4, using: &rng) where !b.isEmpty {
            let at = Int.random(in: 0..<b.count, using: &rng)
            let span = at..<min(b.count, at + Int.random(in: 1...64, using: &rng))
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: b[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1: b[at] = structural.randomElement(using: &rng)!
            case 2: b.removeSubrange(span)
            case 3:
                let copy = Array(b[span])
                b.insert(contentsOf: copy, at: span.upperBound)
            case 4: b.replaceSubrange(span, with: Array(hostile.randomElement(using: &rng)!.utf8))
            default: b.removeSubrange(at...)
            }
        }
        return b
    }

    @Test(arguments: seeds)
    func mutatedImagesAreRefusedOrReadInBoundedTimeAndMemory(seed: UInt64) throws {
        let made = try ImageFormatTests().makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: made) }
        // In memory (tmpfs) when there is one: two files are rewritten per input, and on a busy
        // disk the writes, not the decoder, would take most of the time.
        var dir = made
        if FileManager.default.fileExists(atPath: "/dev/shm") {
            dir = "/dev/shm/vos-fuzz-\(getpid())-\(seed)"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.copyItem(atPath: made, toPath: dir)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let processPath = dir + "/process.json", manifestPath = dir + "/manifest.json"
        let processText = try String(contentsOfFile: processPath, encoding: .utf8)
        let manifestText = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let manifest = try JSONDecoder().decode(ImageManifest.self, from: Data(manifestText.utf8))
        let numbers = try NSRegularExpression(pattern: "-?[0-9]+")
        let processNumbers = numbers.matches(in: processText, range: NSRange(processText.startIndex..., in: processText))
        let manifestNumbers = numbers.matches(in: manifestText, range: NSRange(manifestText.startIndex..., in: manifestText))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]

        var rng = Generator(state: seed)
        var refused = 0, slowest = 0.0, slowestInput = -1
        let rssBefore = memoryStatus("VmRSS")
        resetPeakMemory()
        for input in 0..<Self.inputsPerSeed {
            // Four kinds in turn: numbers or bytes, of process.json (made valid for the manifest)
            // or of manifest.json (process.json intact).
            var processBytes = Array(processText.utf8), manifestBytes = Array(manifestText.utf8)
            switch input % 4 {
            case 0: processBytes = Self.hostileNumbers(processText, processNumbers, &rng)
            case 1: processBytes = Self.damaged(processBytes, &rng)
            case 2: manifestBytes = Self.hostileNumbers(manifestText, manifestNumbers, &rng)
            default: manifestBytes = Self.damaged(manifestBytes, &rng)
            }
            if input % 4 < 2 {
                var m = manifest
                let i = try #require(m.parts.firstIndex { $0.name == "process.json" })
                m.parts[i].size = UInt64(processBytes.count)
                m.parts[i].chunks = [.init(offset: 0, length: UInt64(processBytes.count), checksum: Checksum.of(processBytes))]
                manifestBytes = Array(try encoder.encode(m))
            }
            try Data(processBytes).write(to: URL(fileURLWithPath: processPath))
            try Data(manifestBytes).write(to: URL(fileURLWithPath: manifestPath))

            let start = DispatchTime.now().uptimeNanoseconds
            do { _ = try ImageReader(directory: dir) } catch is ImageError { refused += 1 } catch {
                Issue.record("seed \(seed), input \(input): not an ImageError: \(error)")
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds > slowest { (slowest, slowestInput) = (seconds, input) }
        }
        let peakGrowth = memoryStatus("VmHWM") - rssBefore
        print("fuzz: seed \(seed): \(Self.inputsPerSeed) inputs, \(refused) refused, slowest \(String(format: "%.1f ms", slowest * 1000)) "
            + "(input \(slowestInput)), peak memory +\(peakGrowth >> 10) KiB")
        #expect(slowest < Self.timeBound, "seed \(seed), input \(slowestInput) took \(slowest) s")
        #expect(peakGrowth < Self.allocationBound, "the peak resident memory grew by \(peakGrowth >> 20) MiB while decoding")
        // Most of them must be refused: a decoder that accepts anything would pass the rest.
        #expect(refused > Self.inputsPerSeed / 2, "only \(refused) of \(Self.inputsPerSeed) mutated images were refused")
    }

    /// A field of /proc/self/status, in bytes.
    func memoryStatus(_ key: String) -> Int64 {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
        return (Int64(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Resets VmHWM to the current resident size, so it shows the peak from now on.
    func resetPeakMemory() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }
}
