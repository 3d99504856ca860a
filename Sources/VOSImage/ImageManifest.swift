// manifest.json: what an image is, who wrote it where, and the size and checksum of every part.
import VOSLinux

public struct ImageManifest: Codable, Sendable {
    public static let magicValue = "VOS-IMAGE"
    public static let fileName = "manifest.json"

    public var magic: String
    public var formatVersion: FormatVersion
    public var toolVersion: String
    /// Seconds since the epoch.
    public var created: Double
    public var machine: MachineInfo
    /// Every file of the image but the manifest.
    public var parts: [Part]
    /// The checkpointed process, for a quick look without decoding the rest.
    public var pid: PID
    public var commandLine: [String]

    public struct Part: Codable, Sendable {
        public var name: String
        public var size: UInt64
        /// Checksums of consecutive chunks of the part (one for small parts), hex.
        public var chunks: [Chunk]
        public init(name: String, size: UInt64, chunks: [Chunk]) {
            self.name = name
            self.size = size
            self.chunks = chunks
        }
    }

    public struct Chunk: Codable, Sendable {
        public var offset: UInt64
        public var length: UInt64
        public var checksum: String
        public init(offset: UInt64, length: UInt64, checksum: UInt64) {
            self.offset = offset
            self.length = length
            self.checksum = Checksum.hex(checksum)
        }
        public init(offset: UInt64, length: UInt64, checksum: String) {
            self.offset = offset
            self.length = length
            self.checksum = checksum
        }
    }
}
