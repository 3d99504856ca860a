// Everything that can be wrong with an image on disk, each case its own message.

public enum ImageError: Error, CustomStringConvertible, Sendable {
    case missingPart(String, path: String)
    case unreadable(String, reason: String)
    case badMagic(found: String)
    case unsupportedVersion(found: FormatVersion, supported: FormatVersion)
    case truncated(part: String, expectedBytes: UInt64, foundBytes: UInt64)
    case checksumMismatch(part: String, detail: String)
    case undecodable(part: String, reason: String)
    case inconsistent(String)
    case cannotWrite(String, reason: String)

    public var description: String {
        switch self {
        case .missingPart(let p, let path): "image is incomplete: its \(p) (\(path)) is missing"
        case .unreadable(let p, let r): "cannot read image \(p): \(r)"
        case .badMagic(let m): "not a vOS image: the manifest's magic is \"\(m)\", expected \"\(ImageManifest.magicValue)\""
        case .unsupportedVersion(let f, let s):
            "image format \(f) was written by a newer vOS; this vOS reads format \(s.major).x and older"
        case .truncated(let p, let e, let f) where f > e: "image is damaged: \(p) has \(f) bytes, more than the \(e) the manifest says"
        case .truncated(let p, let e, let f): "image is truncated: \(p) has \(f) bytes, the manifest says \(e)"
        case .checksumMismatch(let p, let d): "image is corrupted: checksum of \(p) does not match (\(d))"
        case .undecodable(let p, let r): "image is corrupted: cannot decode \(p): \(r)"
        case .inconsistent(let d): "image is inconsistent: \(d)"
        case .cannotWrite(let p, let r): "cannot write image \(p): \(r)"
        }
    }
}
