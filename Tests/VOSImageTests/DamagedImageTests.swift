// Issue 10, item 3: each kind of damage gives its own clear error text, as a user reads it
// (bad magic, a newer major version, a flipped bit of process.json, a short pages.img and a page
// run outside its file are in ImageFormatTests): a truncated record, a record cut with a valid
// checksum, a part larger than recorded, a flipped bit in the pages, a part path escaping the
// image directory, a page count of billions, a chunk length beyond its part.
import Foundation
import Testing
import VOSImage
import VOSLinux

@Suite(.serialized)
struct DamagedImageTests {
    let format = ImageFormatTests()

    /// The error text `ImageReader` gives for the image, or nil when it reads it.
    func refusal(_ dir: String) -> String? {
        do { _ = try ImageReader(directory: dir) } catch let e as ImageError { return e.description } catch {
            return "not an ImageError: \(error)"
        }
        return nil
    }

    func editManifest(_ dir: String, _ change: (inout ImageManifest) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/manifest.json")
        var m = try JSONDecoder().decode(ImageManifest.self, from: Data(contentsOf: url))
        change(&m)
        try JSONEncoder().encode(m).write(to: url)
    }

    func size(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
    }

    @Test func truncatedRecord() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = try size(dir + "/process.json")
        #expect(truncate(dir + "/process.json", off_t(full / 2)) == 0)
        #expect(refusal(dir) == "image is truncated: process.json has \(full / 2) bytes, the manifest says \(full)")
    }

    /// Cut in half and the manifest made to agree (size and checksum): the JSON itself is cut.
    @Test func recordCutWithValidChecksum() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/process.json")).prefix(300))
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/process.json"))
        try editManifest(dir) { m in
            let i = m.parts.firstIndex { $0.name == "process.json" }!
            m.parts[i].size = 300
            m.parts[i].chunks = [.init(offset: 0, length: 300, checksum: Checksum.of(bytes))]
        }
        let text = refusal(dir)
        #expect(text?.hasPrefix("image is corrupted: cannot decode process.json: ") == true, "\(text ?? "accepted")")
    }

    @Test func partLargerThanRecorded() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = try size(dir + "/pages.img")
        let h = try #require(FileHandle(forWritingAtPath: dir + "/pages.img"))
        h.seekToEndOfFile()
        h.write(Data(repeating: 0, count: 4096))
        try h.close()
        #expect(refusal(dir) == "image is damaged: pages.img has \(full + 4096) bytes, more than the \(full) the manifest says")
    }

    /// Pages are verified chunk by chunk when read (a restore reads them all before the process runs).
    @Test func bitFlippedPages() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try #require(FileHandle(forUpdatingAtPath: dir + "/pages.img"))
        h.seek(toFileOffset: 5000)
        let byte = h.readData(ofLength: 1)[0]
        h.seek(toFileOffset: 5000)
        h.write(Data([byte ^ 0x10]))
        try h.close()
        let r = try ImageReader(directory: dir)
        do {
            for c in r.pageChunks { try r.verify(chunk: c) }
            Issue.record("the flipped bit went unnoticed")
        } catch let e as ImageError {
            #expect(e.description.hasPrefix("image is corrupted: checksum of pages.img does not match (bytes 0..<8192: computed "), "\(e)")
        }
    }

    @Test func partPathEscapingTheImage() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try editManifest(dir) { m in m.parts[m.parts.firstIndex { $0.name == "pages.img" }!].name = "../../etc/shadow" }
        #expect(refusal(dir) == "image is inconsistent: part name \"../../etc/shadow\" escapes the image directory")
    }

    /// A page run of 4 billion pages (16 TiB) with a valid checksum: refused, nothing allocated for it.
    @Test func pageCountOfBillions() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try ImageReader(directory: dir)
        var p = r.process
        p.memory[0].runs[0].pageCount = 4_000_000_000
        let w = try ImageWriter(directory: dir)
        w.addPageFile(size: 2 * pageSize, chunks: r.pageChunks)
        try w.finish(process: p, machine: r.manifest.machine)
        #expect(refusal(dir) == "image is inconsistent: page run at \(p.memory[0].runs[0].address) lies outside pages.img")
    }

    @Test func chunkLengthBeyondItsPart() throws {
        let dir = try format.makeImage(rich: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let full = try size(dir + "/process.json")
        try editManifest(dir) { m in
            let i = m.parts.firstIndex { $0.name == "process.json" }!
            m.parts[i].chunks[0].length = UInt64.max
        }
        #expect(refusal(dir) == "image is truncated: process.json has \(full) bytes, the manifest says \(UInt64.max)")
    }
}
