// The directories of a capsule's own filesystem on this node: $VOS_STATE_DIR/layers/NAME/
// {upper,work,root}, beside the registry rather than in it (the registry directory is bound
// into the capsule at /.vos, which must not show the capsule its own layers). The upper layer
// goes into an image as a tar archive: GNU tar keeps overlay whiteouts (0/0 character devices),
// the opaque-directory xattrs, owners and modes.
import Foundation
import Glibc
import VOSImage

public enum CapsuleLayers {
    public static func directory(_ name: String, registry: CapsuleRegistry) -> String {
        (registry.root as NSString).deletingLastPathComponent + "/layers/" + name
    }

    /// Fresh, empty layers for `name` (whatever was there before is gone).
    @discardableResult
    public static func make(_ name: String, registry: CapsuleRegistry) throws -> String {
        let dir = directory(name, registry: registry)
        remove(name, registry: registry)
        for sub in ["upper", "work", "root"] { try PrivateFiles.makeDirectories(dir + "/" + sub) }
        // The upper directory's mode is the capsule's "/": as open as a root directory.
        chmod(dir + "/upper", 0o755)
        return dir
    }

    public static func remove(_ name: String, registry: CapsuleRegistry) {
        try? FileManager.default.removeItem(atPath: directory(name, registry: registry))
    }

    static let tarOptions = ["--xattrs", "--xattrs-include=trusted.*", "--xattrs-include=user.*", "--numeric-owner", "--sparse"]

    /// The upper layer as a tar archive, with the files `carried` from the base (paths as the
    /// capsule sees them, read under `base`) added at their places.
    /// `snapshot`: GNU tar's listed-incremental state file: the first archive made with it holds
    /// everything, each next one what changed since (deleted files included).
    public static func archiveUpper(_ layers: String, carrying carried: [String] = [], base: String = "/",
                                    snapshot: String? = nil) throws -> [UInt8] {
        let extra = carried.isEmpty ? [] : ["--directory=\(base)"] + carried.map { String($0.drop { $0 == "/" }) }
        let incremental = snapshot.map { ["--listed-incremental=\($0)"] } ?? []
        return try tar(["--create", "--file=-", "--directory=\(layers)/upper"] + tarOptions + incremental + ["."] + extra, input: nil,
                       what: "archiving the upper layer \(layers)/upper")
    }

    /// Fills the upper layer from an archive made by `archiveUpper`. Read as listed-incremental
    /// (a series is extracted in order, each removing what was deleted before it); a plain
    /// archive has no directory listings and extracts as it is.
    public static func extractUpper(_ archive: [UInt8], into layers: String) throws {
        _ = try tar(["--extract", "--file=-", "--directory=\(layers)/upper", "--same-permissions", "--same-owner",
                     "--listed-incremental=/dev/null"] + tarOptions,
                    input: archive, what: "extracting the upper layer into \(layers)/upper")
    }

    static func tar(_ arguments: [String], input: [UInt8]?, what: String) throws -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input == nil ? FileHandle(forReadingAtPath: "/dev/null") : stdin
        do { try p.run() } catch { throw CapsuleError("\(what): cannot run /bin/tar: \(error)") }
        if let input {
            // Written from another thread: tar may write to stderr meanwhile.
            let writer = Thread {
                stdin.fileHandleForWriting.write(Data(input))
                try? stdin.fileHandleForWriting.close()
            }
            writer.start()
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let message = String(decoding: errors, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "exit status \(p.terminationStatus)"
            throw CapsuleError("\(what): tar failed: \(message)")
        }
        return Array(output)
    }
}
