// A fast 64-bit checksum over page data: four independent multiply-xor lanes over 8-byte words,
// so the CPU overlaps them (several GB/s per core in release builds). It detects corruption;
// it is not a cryptographic hash (images from peers are authenticated separately).

public enum Checksum {
    /// The checksum field of a chunk whose bytes were authenticated in transit instead.
    public static let authenticated = "authenticated-in-transit"
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F

    public static func of(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        var a = Accumulator()
        a.add(buffer)
        return a.value
    }

    public static func of(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { of($0) } }

    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// The same checksum fed piece by piece: `value` after adding pieces equals `of` their
    /// concatenation, however they are split. Lets a dumper checksum a chunk through a small
    /// cache-warm buffer.
    public struct Accumulator {
        private var l0: UInt64 = 0x243F_6A88_85A3_08D3, l1: UInt64 = 0x1319_8A2E_0370_7344
        private var l2: UInt64 = 0xA409_3822_299F_31D0, l3: UInt64 = 0x082E_FA98_EC4E_6C89
        private var count = 0
        /// Bytes after the last whole 32-byte block (fewer than 32). Empty unless a piece's
        /// length is not a multiple of 32, which page data never is.
        private var pending: [UInt8] = []

        public init() {}

        public mutating func add(_ buffer: UnsafeRawBufferPointer) {
            guard let base = buffer.baseAddress, buffer.count > 0 else { return }
            count += buffer.count
            var i = 0
            if !pending.isEmpty {
                let take = min(32 - pending.count, buffer.count)
                pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
                i = take
                guard pending.count == 32 else { return }
                pending.withUnsafeBytes { absorb($0.baseAddress!, 32) }
                pending.removeAll(keepingCapacity: true)
            }
            i += absorb(base + i, buffer.count - i)
            if i < buffer.count { pending.append(contentsOf: UnsafeRawBufferPointer(start: base + i, count: buffer.count - i)) }
        }

        /// Mixes every whole 32-byte block of `base[0..<n]` into the lanes; returns the bytes used.
        @inline(__always)
        private mutating func absorb(_ base: UnsafeRawPointer, _ n: Int) -> Int {
            // Lanes in locals so that they stay in registers through the loop.
            var l0 = self.l0, l1 = self.l1, l2 = self.l2, l3 = self.l3
            var i = 0
            while i + 32 <= n {
                l0 = (l0 ^ base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* p1
                l1 = (l1 ^ base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)) &* p1
                l2 = (l2 ^ base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)) &* p1
                l3 = (l3 ^ base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)) &* p1
                l0 = (l0 << 31) | (l0 >> 33)
                l1 = (l1 << 31) | (l1 >> 33)
                l2 = (l2 << 31) | (l2 >> 33)
                l3 = (l3 << 31) | (l3 >> 33)
                i += 32
            }
            self.l0 = l0
            self.l1 = l1
            self.l2 = l2
            self.l3 = l3
            return i
        }

        /// The checksum of everything added so far.
        public var value: UInt64 {
            var h = l0 &+ (l1 &* 3) &+ (l2 &* 5) &+ (l3 &* 7) &+ UInt64(count)
            for byte in pending { h = (h ^ UInt64(byte)) &* p2 }
            h ^= h >> 29
            h = h &* p2
            h ^= h >> 32
            return h
        }
    }
}
