// Byte fields of the image's JSON records are base64 strings: a JSON array of numbers costs
// ~1 ms per 2.4 KB xstate to encode or decode with Foundation, which showed up as most of a
// small process's checkpoint and restore time.
import Foundation

@propertyWrapper
public struct Base64: Codable, Sendable, Equatable {
    public var wrappedValue: [UInt8]

    public init(wrappedValue: [UInt8]) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        wrappedValue = try Base64.decode(try decoder.singleValueContainer().decode(String.self), decoder.codingPath)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(Data(wrappedValue).base64EncodedString())
    }

    static func decode(_ text: String, _ path: [any CodingKey]) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "not base64"))
        }
        return [UInt8](data)
    }
}

/// An optional byte field: absent from the JSON when nil.
@propertyWrapper
public struct OptionalBase64: Codable, Sendable, Equatable {
    public var wrappedValue: [UInt8]?

    public init(wrappedValue: [UInt8]?) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try Base64.decode(try c.decode(String.self), decoder.codingPath)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let v = wrappedValue { try c.encode(Data(v).base64EncodedString()) } else { try c.encodeNil() }
    }
}

/// A list of byte strings (siginfo records).
@propertyWrapper
public struct Base64List: Codable, Sendable, Equatable {
    public var wrappedValue: [[UInt8]]

    public init(wrappedValue: [[UInt8]]) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        wrappedValue = try decoder.singleValueContainer().decode([String].self).map { try Base64.decode($0, decoder.codingPath) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(wrappedValue.map { Data($0).base64EncodedString() })
    }
}

extension KeyedDecodingContainer {
    /// A missing optional byte field decodes as nil (synthesized Codable would require the key).
    public func decode(_ type: OptionalBase64.Type, forKey key: Key) throws -> OptionalBase64 {
        try decodeIfPresent(type, forKey: key) ?? OptionalBase64(wrappedValue: nil)
    }
}

extension KeyedEncodingContainer {
    /// A nil optional byte field is left out of the JSON.
    public mutating func encode(_ value: OptionalBase64, forKey key: Key) throws {
        if value.wrappedValue != nil { try encodeIfPresent(value, forKey: key) }
    }
}
