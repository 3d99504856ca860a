// Images are untrusted input: thousands of mutated records (hostile numbers with valid
// checksums, so they get past the checksum check) must each be refused with an ImageError or
// accepted, never crash vos.
import Foundation
import Testing
import VOSImage

@Suite(.serialized)
struct HostileImageTests {
    /// A small deterministic generator, so a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    static let hostile = ["-1", "0", "4096", "4095", "-2147483648", "2147483647", "9223372036854775807",
                          "18446744073709551615", "140737488351232", "1e300", "\"x\"", "null", "[]"]

    /// 5 seeds × 2000 mutated images (10 000 inputs).
    @Test(arguments: [42, 7, 1999, 31337, 4242] as [UInt64])
    func mutatedNumbersNeverCrash(seed: UInt64) throws {
        let dir = try ImageFormatTests().makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let processPath = dir + "/process.json", manifestPath = dir + "/manifest.json"
        let original = try String(contentsOfFile: processPath, encoding: .utf8)
        let manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let numbers = try NSRegularExpression(pattern: "-?[0-9]+")
        let matches = numbers.matches(in: original, range: NSRange(original.startIndex..., in: original))
        var rng = Generator(state: seed)
        var refused = 0
        for _ in 0..<2000 {
            var text = original
            // Replace 1-3 numbers (from the end, so earlier ranges stay valid).
            let picks = Set((0..<Int.random(in: 1...3, using: &rng)).map { _ in Int.random(in: 0..<matches.count, using: &rng) })
            for index in picks.sorted(by: >) {
                guard let range = Range(matches[index].range, in: text) else { continue }
                text.replaceSubrange(range, with: Self.hostile.randomElement(using: &rng)!)
            }
            let bytes = Array(text.utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: processPath))
            // Give it a valid size and checksum, so that only the decoder and the sanity checks stand.
            var m = manifest
            m = m.replacingOccurrences(of: "\(original.utf8.count)", with: "\(bytes.count)")
            m = m.replacingOccurrences(of: Checksum.hex(Checksum.of(Array(original.utf8))), with: Checksum.hex(Checksum.of(bytes)))
            try m.write(toFile: manifestPath, atomically: false, encoding: .utf8)
            do { _ = try ImageReader(directory: dir) } catch is ImageError { refused += 1 }
        }
        #expect(refused > 1000, "most hostile mutations must be refused, only \(refused) were")
    }
}
