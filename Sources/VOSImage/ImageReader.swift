// Opens an image with checks in a fixed order: manifest present, decodable, magic, version;
// every part present with its recorded size; process.json checksum; decode. Page data is
// verified chunk by chunk by whoever reads it (`verify(chunk:)`), in parallel.
import Foundation
import VOSLinux

public final class ImageReader {
    public let directory: String
    public let manifest: ImageManifest
    public let process: ProcessRecord
    public let pages: PageFile?

    public init(directory: String) throws {
        self.directory = directory
        let manifestPath = directory + "/" + ImageManifest.fileName
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ImageError.unreadable(directory, reason: "no such directory")
        }
        guard let manifestData = FileManager.default.contents(atPath: manifestPath) else {
            throw ImageError.missingPart("manifest", path: manifestPath)
        }
        manifest = try Self.decodeManifest(manifestData)

        for part in manifest.parts {
            let p = directory + "/" + part.name
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: p), let size = attrs[.size] as? NSNumber else {
                throw ImageError.missingPart(part.name, path: p)
            }
            if size.uint64Value != part.size {
                throw ImageError.truncated(part: part.name, expectedBytes: part.size, foundBytes: size.uint64Value)
            }
        }
        guard let processPart = manifest.parts.first(where: { $0.name == ImageLayout.process }) else {
            throw ImageError.inconsistent("the manifest lists no \(ImageLayout.process)")
        }
        let processBytes = try Self.readPart(directory: directory, processPart)
        do {
            process = try JSONDecoder().decode(ProcessRecord.self, from: Data(processBytes))
        } catch {
            throw ImageError.undecodable(part: ImageLayout.process, reason: "\(error)")
        }
        if let pagePart = manifest.parts.first(where: { $0.name == ImageLayout.pages }) {
            pages = try PageFile.open(path: directory + "/" + ImageLayout.pages, size: pagePart.size)
        } else {
            pages = nil
        }
        try checkConsistency()
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
    public static func readPart(directory: String, _ part: ImageManifest.Part) throws -> [UInt8] {
        let p = directory + "/" + part.name
        guard let data = FileManager.default.contents(atPath: p) else { throw ImageError.missingPart(part.name, path: p) }
        let bytes = [UInt8](data)
        for chunk in part.chunks {
            guard chunk.offset + chunk.length <= UInt64(bytes.count) else {
                throw ImageError.truncated(part: part.name, expectedBytes: chunk.offset + chunk.length, foundBytes: UInt64(bytes.count))
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
        return try Self.readPart(directory: directory, part)
    }

    public var pageChunks: [ImageManifest.Chunk] {
        manifest.parts.first(where: { $0.name == ImageLayout.pages })?.chunks ?? []
    }

    /// Verifies one chunk of pages.img against its recorded checksum.
    public func verify(chunk: ImageManifest.Chunk) throws {
        guard let pages else { throw ImageError.inconsistent("no \(ImageLayout.pages) for a page chunk") }
        let sum = Checksum.of(pages.bytes(at: chunk.offset, length: chunk.length))
        if Checksum.hex(sum) != chunk.checksum {
            throw ImageError.checksumMismatch(
                part: ImageLayout.pages,
                detail: "bytes \(chunk.offset)..<\(chunk.offset + chunk.length): computed \(Checksum.hex(sum)), recorded \(chunk.checksum)")
        }
    }

    /// Sanity of what decoded: page runs inside pages.img and inside their VMA, a main thread.
    func checkConsistency() throws {
        let size = pages?.size ?? 0
        for m in process.memory {
            for run in m.runs {
                guard run.fileOffset % pageSize == 0, run.fileOffset + run.length <= size else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside \(ImageLayout.pages)")
                }
                guard run.address >= m.region.start, run.address + run.length <= m.region.end else {
                    throw ImageError.inconsistent("page run at \(run.address) lies outside its VMA \(m.region.start)-\(m.region.end)")
                }
            }
        }
        guard process.threads.first?.tid == process.pid else {
            throw ImageError.inconsistent("the first thread is not the main thread \(process.pid)")
        }
        var covered: UInt64 = 0
        for c in pageChunks { guard c.offset == covered else { throw ImageError.inconsistent("page chunks leave a gap at \(covered)") }; covered += c.length }
        guard covered == size else { throw ImageError.inconsistent("page chunks cover \(covered) of \(size) bytes") }
    }
}
