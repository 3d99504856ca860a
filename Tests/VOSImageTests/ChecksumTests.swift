// The streaming checksum (Checksum.Accumulator) against the one-shot Checksum.of: the dump
// checksums a chunk piece by piece, the restore verifies it in one go, so they must agree.
import Testing
import VOSImage

struct ChecksumTests {
    /// Any split of any buffer, including pieces that are not multiples of the 32-byte block,
    /// gives the one-shot value.
    @Test func piecesGiveTheOneShotValue() {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<400 {
            let n = trial < 100 ? trial : Int.random(in: 0...20000, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var sum = Checksum.Accumulator()
            bytes.withUnsafeBytes { b in
                var i = 0
                while i < n {
                    let k = min(n - i, Int.random(in: 1...(trial % 2 == 0 ? 40 : 5000), using: &rng))
                    sum.add(UnsafeRawBufferPointer(rebasing: b[i..<i + k]))
                    i += k
                }
            }
            #expect(sum.value == Checksum.of(bytes), "\(n) bytes")
        }
    }

    /// Values recorded in images must never change: these were computed by the one-shot
    /// implementation that wrote the first images.
    @Test func valuesArePinned() {
        #expect(Checksum.hex(Checksum.of([])) == "6773cf2f9c6a9dff")
        #expect(Checksum.hex(Checksum.of(Array("vos".utf8))) == "77959aaab5ae8d73")
        let page = [UInt8](repeating: 0x5a, count: 4096)
        #expect(Checksum.hex(Checksum.of(page)) == "fa473752ca12a853")
        var sum = Checksum.Accumulator()
        page.withUnsafeBytes { b in
            sum.add(UnsafeRawBufferPointer(rebasing: b[0..<1000]))
            sum.add(UnsafeRawBufferPointer(rebasing: b[1000..<4096]))
        }
        #expect(Checksum.hex(sum.value) == "fa473752ca12a853")
    }
}
