// Distinct number types for distinct things: a tracee address is never dereferenced here.

/// A process or thread id as the caller's PID namespace sees it.
public typealias PID = Int32

/// An address in another process's address space.
public struct RemoteAddress: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    public static func + (a: Self, b: UInt64) -> Self { Self(a.raw &+ b) }
    public static func - (a: Self, b: UInt64) -> Self { Self(a.raw &- b) }
    public var description: String { "0x" + String(raw, radix: 16) }
    public init(from decoder: any Decoder) throws { raw = try decoder.singleValueContainer().decode(UInt64.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(raw)
    }
}

public let pageSize: UInt64 = 4096
