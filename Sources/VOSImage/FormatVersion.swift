// The image format's version, apart from the tool's: a newer major is refused, a newer minor read.

public struct FormatVersion: Codable, Sendable, Equatable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// What this build writes and the highest major it reads.
    public static let current = FormatVersion(major: 1, minor: 0)
    public static let toolVersion = "0.1.0"

    public var description: String { "\(major).\(minor)" }
}
