// Writes an image (into a directory, or into memory: `ImageStore`): parts first, the manifest
// last, so an image without a manifest is recognisably incomplete. On failure `discard()`
// removes every part this writer created.
import Foundation
import VOSLinux

public final class ImageWriter {
    public let store: ImageStore
    private var parts: [ImageManifest.Part] = []

    /// For messages: the image directory, or what the memory image is.
    public var directory: String { store.location }

    /// Creates the directory if needed and proves it is writable before anything is frozen.
    public convenience init(directory: String) throws {
        self.init(store: try DirectoryStore(creating: directory))
    }

    public init(store: ImageStore) { self.store = store }

    private var blobCount = 0

    /// Memory objects saved so far, by key: a tree's processes share them.
    public var objects: [String: MappedObject] = [:]

    /// A fresh blob part name (unique across every process of the image).
    public func nextBlobName() -> String {
        defer { blobCount += 1 }
        return ImageLayout.blob(blobCount)
    }

    /// Creates a page file of `size` bytes, mapped for the dumpers to fill.
    public func createPageFile(name: String = ImageLayout.pages, size: UInt64) throws -> PageFile {
        try store.createPages(name, size: size)
    }

    /// Records a page file with the checksums its writers computed.
    public func addPageFile(name: String = ImageLayout.pages, size: UInt64, chunks: [ImageManifest.Chunk]) {
        parts.append(.init(name: name, size: size, chunks: chunks))
    }

    /// Writes one process record of a tree image.
    public func writeProcess(_ process: ProcessRecord, name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try writePart(name, Array(try encoder.encode(process)))
    }

    /// Writes a small part whole, with one checksum.
    public func writePart(_ name: String, _ bytes: [UInt8]) throws {
        try store.write(name, bytes)
        parts.append(.init(name: name, size: UInt64(bytes.count),
                           chunks: [.init(offset: 0, length: UInt64(bytes.count), checksum: Checksum.of(bytes))]))
    }

    /// Writes process.json and then the manifest.
    public func finish(process: ProcessRecord, machine: MachineInfo) throws {
        try writeProcess(process, name: ImageLayout.process)
        try writeManifest(root: process, machine: machine)
    }

    /// Writes tree.json and then the manifest (the process records are written already).
    public func finish(tree: TreeRecord, root: ProcessRecord, machine: MachineInfo) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try writePart(TreeRecord.fileName, Array(try encoder.encode(tree)))
        try writeManifest(root: root, machine: machine)
    }

    private func writeManifest(root process: ProcessRecord, machine: MachineInfo) throws {
        let encoder = JSONEncoder()
        let manifest = ImageManifest(
            magic: ImageManifest.magicValue, formatVersion: .current, toolVersion: FormatVersion.toolVersion,
            created: Date().timeIntervalSince1970, machine: machine, parts: parts, pid: process.pid,
            commandLine: process.commandLine)
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try store.write(ImageManifest.fileName, Array(try encoder.encode(manifest)))
    }

    /// Removes what this writer created (the directory too if it made it).
    public func discard() { store.discard() }

    static func reason(_ error: Error) -> String {
        if let e = error as? SyscallError { return e.description }
        if let e = error as? CocoaError, let u = e.underlying as? POSIXError { return String(cString: strerror(u.code.rawValue)) }
        return "\(error)"
    }
}

public enum ImageLayout {
    public static let process = "process.json"
    public static let pages = "pages.img"
    public static func blob(_ id: Int) -> String { "blob-\(id).img" }
}
