// An image directory: one file per part. Directories it makes are 0700 and its files 0600,
// whatever the umask (`PrivateFiles`): an image holds a process's whole memory.
import Foundation
import VOSLinux

public final class DirectoryStore: ImageStore {
    public let directory: String
    private var created: [String] = []
    /// Directories made for this image, outermost first.
    private var createdDirectories: [String] = []

    public var location: String { directory }

    /// For reading: the directory must exist.
    public init(existing directory: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ImageError.unreadable(directory, reason: "no such directory")
        }
        self.directory = directory
    }

    /// For writing: creates the directory if needed and proves it is writable before anything is frozen.
    public init(creating directory: String) throws {
        self.directory = directory
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ImageError.cannotWrite(directory, reason: "it exists and is not a directory") }
        } else {
            do {
                createdDirectories = try PrivateFiles.makeDirectories(directory)
            } catch {
                throw ImageError.cannotWrite(directory, reason: ImageWriter.reason(error))
            }
        }
        guard access(directory, W_OK) == 0 else {
            throw ImageError.cannotWrite(directory, reason: String(cString: strerror(errno)))
        }
    }

    public func path(_ part: String) -> String { directory + "/" + part }

    public func size(of part: String) -> UInt64? {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path(part)), let size = attrs[.size] as? NSNumber
        else { return nil }
        return size.uint64Value
    }

    public func contents(of part: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path(part)).map { [UInt8]($0) }
    }

    public func write(_ part: String, _ bytes: [UInt8]) throws {
        let p = path(part)
        created.append(p)
        do { try PrivateFiles.write(p, bytes) } catch {
            throw ImageError.cannotWrite(p, reason: ImageWriter.reason(error))
        }
    }

    public func createPages(_ part: String, size: UInt64) throws -> PageFile {
        created.append(path(part))
        do { return try PageFile.create(path: path(part), size: size) } catch {
            throw ImageError.cannotWrite(path(part), reason: ImageWriter.reason(error))
        }
    }

    public func openPages(_ part: String, size: UInt64) throws -> PageFile {
        try PageFile.open(path: path(part), size: size)
    }

    public func discard() {
        for p in created { unlink(p) }
        for d in createdDirectories.reversed() { rmdir(d) }
    }
}
