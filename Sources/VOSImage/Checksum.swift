// A fast 64-bit checksum over page data: four independent multiply-xor lanes over 8-byte words,
// so the CPU overlaps them (several GB/s per core in release builds). It detects corruption;
// it is not a cryptographic hash (images from peers are authenticated separately).

public enum Checksum {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F

    public static func of(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        var l0: UInt64 = 0x243F_6A88_85A3_08D3, l1: UInt64 = 0x1319_8A2E_0370_7344
        var l2: UInt64 = 0xA409_3822_299F_31D0, l3: UInt64 = 0x082E_FA98_EC4E_6C89
        let count = buffer.count
        var i = 0
        if let base = buffer.baseAddress {
            while i + 32 <= count {
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
        }
        var h = l0 &+ (l1 &* 3) &+ (l2 &* 5) &+ (l3 &* 7) &+ UInt64(count)
        while i < count {
            h = (h ^ UInt64(buffer[i])) &* p2
            i += 1
        }
        h ^= h >> 29
        h = h &* p2
        h ^= h >> 32
        return h
    }

    public static func of(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { of($0) } }

    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
