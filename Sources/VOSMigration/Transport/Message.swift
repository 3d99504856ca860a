// One message between nodes (or between the CLI and its node): a type, a JSON header and
// binary payload (image bytes, pages). Encoded as
// [u8 type length][type][u32 header length][header JSON][payload].
import Foundation

public struct Message: Sendable {
    public var type: String
    public var header: [UInt8]
    public var payload: [UInt8]

    public init(_ type: String, payload: [UInt8] = []) {
        self.type = type
        header = Array("{}".utf8)
        self.payload = payload
    }

    public init<T: Encodable>(_ type: String, _ value: T, payload: [UInt8] = []) throws {
        self.type = type
        header = Array(try JSONEncoder().encode(value))
        self.payload = payload
    }

    public func decode<T: Decodable>(_: T.Type) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(header)) } catch {
            throw MigrationError("malformed \"\(type)\" message", reason: "\(error)")
        }
    }

    func encoded() -> [UInt8] {
        let t = Array(type.utf8.prefix(255))
        var out: [UInt8] = []
        out.reserveCapacity(1 + t.count + 4 + header.count + payload.count)
        out.append(UInt8(t.count))
        out += t
        withUnsafeBytes(of: UInt32(header.count).bigEndian) { out += $0 }
        out += header
        out += payload
        return out
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Message {
        let bad = MigrationError("malformed message", reason: "\(bytes.count) bytes do not hold a type and a header")
        guard let n = bytes.first.map(Int.init), bytes.count >= 1 + n + 4 else { throw bad }
        let type = String(decoding: bytes[1..<(1 + n)], as: UTF8.self)
        let h = bytes[(1 + n)..<(5 + n)].reduce(0) { $0 << 8 | Int($1) }
        guard bytes.count >= 5 + n + h else { throw bad }
        var m = Message(type)
        m.header = Array(bytes[(5 + n)..<(5 + n + h)])
        m.payload = Array(UnsafeRawBufferPointer(rebasing: bytes[(5 + n + h)...]))
        return m
    }
}

/// A refusal or failure reported by the other end, carried as a message.
public struct RemoteFailure: Codable, Sendable {
    public var error: String
    public init(error: String) { self.error = error }
}

/// What the other end reported as its failure.
public struct RemoteError: Error, CustomStringConvertible, Sendable {
    public var peer: String
    public var text: String
    public var description: String { "\(peer): \(text)" }
}
