// Opens an image with checks in a fixed order: manifest present, decodable, magic, version;
// every part present with its recorded size; process.json checksum; decode. Page data is
// verified chunk by chunk by whoever reads it (`verify(chunk:)`), in parallel.
import Foundation
import VOSLinux

public final class ImageReader {
    public let store: ImageStore
    /// For messages: the image directory, or what the memory image is.
    public var directory: String { store.location }
    public let manifest: ImageManifest
    /// Every live process, the root first (one for a single-process image).
    public let processes: [ProcessImage]
    /// The tree's shape, for an image of a process tree.
    public let tree: TreeRecord?
    /// Files that live elsewhere on this machine than where they were saved (a migrated
    /// capsule's log): saved path → path to open.
    public var pathRewrites: [String: String] = [:]

    public func localPath(_ saved: String) -> String { pathRewrites[saved] ?? saved }

    /// The root process.
    public var process: ProcessRecord { processes[0].record }
    public var pages: PageFile? { processes[0].pages }
    public var pageChunks: [ImageManifest.Chunk] { processes[0].chunks }
    public func verify(chunk: ImageManifest.Chunk) throws { try processes[0].verify(chunk: chunk) }

    public convenience init(directory: String) throws {
        try self.init(store: try DirectoryStore(existing: directory))
    }

    /// `authenticated`: the store was filled from an authenticated node-to-node stream, whose
    /// page files may carry chunks without checksums (pages of a live migration).
    public init(store: ImageStore, authenticated: Bool = false) throws {
        self.store = store
        let location = store.location
        guard let manifestData = store.contents(of: ImageManifest.fileName) else {
            throw ImageError.missingPart("manifest", path: location + "/" + ImageManifest.fileName)
        }
        manifest = try Self.decodeManifest(Data(manifestData))

        for part in manifest.parts {
            guard !part.name.contains("/"), !part.name.hasPrefix(".") else {
                throw ImageError.inconsistent("part name \"\(part.name)\" escapes the image directory")
            }
            guard let size = store.size(of: part.name) else {
                throw ImageError.missingPart(part.name, path: location + "/" + part.name)
            }
            if size != part.size {
                throw ImageError.truncated(part: part.name, expectedBytes: part.size, foundBytes: size)
            }
        }
        let parts = manifest.parts
        func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
            guard let part = parts.first(where: { $0.name == name }) else {
                throw ImageError.inconsistent("the manifest lists no \(name)")
            }
            let bytes = try Self.readPart(store: store, part)
            do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
                throw ImageError.undecodable(part: name, reason: "\(error)")
            }
        }
        func processImage(record: String, pages: String) throws -> ProcessImage {
            let r = try decode(ProcessRecord.self, record)
            let pagePart = parts.first { $0.name == pages }
            let file = try pagePart.map { try store.openPages(pages, size: $0.size) }
            return try ProcessImage(record: r, pages: file, pagesPart: pages, chunks: pagePart?.chunks ?? [], authenticated: authenticated)
        }
        if parts.contains(where: { $0.name == TreeRecord.fileName }) {
            let tree = try decode(TreeRecord.self, TreeRecord.fileName)
            for m in tree.processes where m.pid < 1 || m.parent < 0 || m.processGroup < 0 || m.session < 0 {
                throw ImageError.inconsistent("process \(m.pid) of the tree has an ID out of range")
            }
            self.tree = tree
            processes = try tree.processes.filter { $0.zombieStatus == nil }.map {
                try processImage(record: TreeRecord.processPart($0.pid), pages: TreeRecord.pagesPart($0.pid))
            }
            guard !processes.isEmpty, tree.processes.first?.zombieStatus == nil else {
                throw ImageError.inconsistent("the tree has no live root process")
            }
        } else {
            tree = nil
            processes = [try processImage(record: ImageLayout.process, pages: ImageLayout.pages)]
        }
    }

    /// The manifest of an image in `store`, checked as `init` checks it.
    public static func manifest(store: ImageStore) throws -> ImageManifest {
        guard let data = store.contents(of: ImageManifest.fileName) else {
            throw ImageError.missingPart("manifest", path: store.location + "/" + ImageManifest.fileName)
        }
        return try decodeManifest(Data(data))
    }

    /// Decodes and checks magic and version, in that order.
    static func decodeManifest(_ data: Data) throws -> ImageManifest {
        struct Header: Decodable { var magic: String?; var formatVersion: FormatVersion? }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data) } catch {
            throw ImageError.undecodable(part: ImageManifest.fileName, reason: "not valid JSON (\(error))")
        }
        guard header.magic == ImageManifest.magicValue else { throw ImageError.badMagic(found: header.magic ?? "") }
        guard let version = header.formatVersion else {
            throw ImageError.undecodable(part: ImageManifest.fileName, reason: "no formatVersion")
        }
        if version.major > FormatVersion.current.major {
            throw ImageError.unsupportedVersion(found: version, supported: .current)
        }
        do { return try JSONDecoder().decode(ImageManifest.self, from: data) } catch {
            throw ImageError.undecodable(part: ImageManifest.fileName, reason: "\(error)")
        }
    }

    /// Reads a small part and verifies its checksums.
    public static func readPart(store: ImageStore, _ part: ImageManifest.Part) throws -> [UInt8] {
        guard let bytes = store.contents(of: part.name) else {
            throw ImageError.missingPart(part.name, path: store.location + "/" + part.name)
        }
        for chunk in part.chunks {
            let (end, overflow) = chunk.offset.addingReportingOverflow(chunk.length)
            guard !overflow, end <= UInt64(bytes.count) else {
                throw ImageError.truncated(part: part.name, expectedBytes: overflow ? UInt64.max : end, foundBytes: UInt64(bytes.count))
            }
            let sum = bytes.withUnsafeBytes { Checksum.of(UnsafeRawBufferPointer(rebasing: $0[Int(chunk.offset)..<Int(chunk.offset + chunk.length)])) }
            if Checksum.hex(sum) != chunk.checksum {
                throw ImageError.checksumMismatch(part: part.name, detail: "bytes \(chunk.offset)..<\(chunk.offset + chunk.length): computed \(Checksum.hex(sum)), recorded \(chunk.checksum)")
            }
        }
        return bytes
    }

    public func blob(_ name: String) throws -> [UInt8] {
        guard let part = manifest.parts.first(where: { $0.name == name }) else {
            throw ImageError.inconsistent("the manifest lists no part \(name)")
        }
        return try Self.readPart(store: store, part)
    }
}
