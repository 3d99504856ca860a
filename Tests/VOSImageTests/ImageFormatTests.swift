// The image format as a contract: round trip, and each kind of damage gives its own error.
import Foundation
import Testing
import VOSImage
import VOSLinux

@Suite(.serialized)
struct ImageFormatTests {
    /// A small image; `rich` adds one of most record kinds, for the hostile-input tests.
    func makeImage(rich: Bool = false) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vos-image-\(UInt32.random(in: 0...UInt32.max))").path
        let w = try ImageWriter(directory: dir)
        let pages = try w.createPageFile(size: 2 * pageSize)
        memset(pages.base!, 0x5a, Int(2 * pageSize))
        let sum = Checksum.of(pages.bytes(at: 0, length: 2 * pageSize))
        w.addPageFile(size: 2 * pageSize, chunks: [.init(offset: 0, length: 2 * pageSize, checksum: sum)])
        let region = MemoryRegion(start: RemoteAddress(0x10000), end: RemoteAddress(0x13000), permissions: "rw-p", offset: 0,
                                  device: "00:00", inode: 0, path: "", flags: ["rd", "wr"])
        var regs = Registers()
        regs.rip = 0x401000
        let thread = ThreadRecord(tid: 77, name: "prog", registers: regs, xstate: [1, 2, 3], signalMask: 0, rseq: nil,
                                  robustListHead: 0, robustListLength: 0, clearChildTID: 0, affinity: [1], pendingSignals: [],
                                  alternateStack: nil)
        let mm = MMFields(startCode: 0, endCode: 0, startData: 0, endData: 0, startBrk: 0, brk: 0, startStack: 0, argStart: 0,
                          argEnd: 0, envStart: 0, envEnd: 0, auxv: [0, 0])
        var file = FileRecord(fd: 3, kind: "pipe", flags: 0, position: 0, path: "pipe:[1]")
        file.pipeInode = 1
        file.pipeCapacity = 65536
        file.pipeData = [1, 2, 3]
        file.epollTargets = [EpollTarget(fd: 4, events: 1, data: 2)]
        let p = ProcessRecord(pid: 77, commandLine: ["prog", "--x"], executable: "/bin/prog", name: "prog", threads: [thread],
                              memory: [MemoryRecord(region: region, runs: [PageRun(address: RemoteAddress(0x11000), pageCount: 2, fileOffset: 0)])],
                              mm: mm, files: rich ? [file] : [],
                              signalActions: rich ? [SignalAction(signal: 10, handler: 0x401000, flags: 0, restorer: 0, mask: 0)] : [],
                              sharedPendingSignals: [], itimers: rich ? [IntervalTimer(which: 0, valueMicros: 5, intervalMicros: 5)] : [],
                              posixTimers: rich ? [PosixTimer(id: 1, clock: 1, signal: 14, notify: 0, notifyThread: 77, sigevValue: 0,
                                                              valueNanos: 5, intervalNanos: 5)] : [],
                              cwd: "/", umask: 0o22,
                              limits: rich ? [ResourceLimit(resource: 7, name: "Max open files", soft: 1024, hard: 4096)] : [],
                              parentDeathSignal: 0, frozenAtMonotonicNanos: 1)
        try w.finish(process: p, machine: MachineInfo(kernelRelease: "6.18", architecture: "x86_64", cpuModel: "test", cpuFeatures: ["avx"]))
        return dir
    }

    func expectError(_ dir: String, _ check: (ImageError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try ImageReader(directory: dir)
            Issue.record("the damaged image was accepted", sourceLocation: sourceLocation)
        } catch let e as ImageError {
            #expect(check(e), "unexpected error: \(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not an ImageError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func roundTrip() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try ImageReader(directory: dir)
        #expect(r.process.pid == 77 && r.process.commandLine == ["prog", "--x"])
        #expect(r.process.threads[0].registers.rip == 0x401000)
        #expect(r.manifest.formatVersion == .current)
        for c in r.pageChunks { try r.verify(chunk: c) }
    }

    @Test func badMagic() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try edit(dir + "/manifest.json") { $0.replacingOccurrences(of: "VOS-IMAGE", with: "CRIU-IMG") }
        expectError(dir) { if case .badMagic(found: "CRIU-IMG") = $0 { true } else { false } }
    }

    @Test func newerMajor() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try edit(dir + "/manifest.json") { $0.replacingOccurrences(of: "\"major\" : 1", with: "\"major\" : 2") }
        expectError(dir) { if case .unsupportedVersion(let f, _) = $0 { f.major == 2 } else { false } }
        #expect(ImageError.unsupportedVersion(found: .init(major: 2, minor: 0), supported: .current).description
            == "image format 2.0 was written by a newer vOS; this vOS reads format 1.x and older")
    }

    @Test func newerMinorIsRead() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try edit(dir + "/manifest.json") { $0.replacingOccurrences(of: "\"minor\" : 0", with: "\"minor\" : 9") }
        #expect(try ImageReader(directory: dir).manifest.formatVersion.minor == 9)
    }

    @Test func flippedChecksum() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/process.json"))
        var bytes = [UInt8](data)
        bytes[10] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/process.json"))
        expectError(dir) { if case .checksumMismatch(part: "process.json", _) = $0 { true } else { false } }
    }

    @Test func truncatedPart() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(truncate(dir + "/pages.img", 100) == 0)
        expectError(dir) { if case .truncated(part: "pages.img", expectedBytes: 8192, foundBytes: 100) = $0 { true } else { false } }
    }

    @Test func garbageManifest() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([0xff, 0x00, 0x7b]).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        expectError(dir) { if case .undecodable(part: "manifest.json", _) = $0 { true } else { false } }
    }

    @Test func pageRunOutsideItsFile() throws {
        let dir = try makeImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Rewrite process.json with a run beyond pages.img, with a matching checksum.
        let r = try ImageReader(directory: dir)
        var p = r.process
        p.memory[0].runs[0].fileOffset = 1 << 20
        let w = try ImageWriter(directory: dir)
        let sum = Checksum.of(r.pages!.bytes(at: 0, length: 2 * pageSize))
        w.addPageFile(size: 2 * pageSize, chunks: [.init(offset: 0, length: 2 * pageSize, checksum: sum)])
        try w.finish(process: p, machine: r.manifest.machine)
        expectError(dir) { if case .inconsistent = $0 { true } else { false } }
    }

    @Test func checksumDetectsEverySingleBitFlip() {
        var bytes = [UInt8](repeating: 0, count: 96)
        let base = Checksum.of(bytes)
        for i in 0..<bytes.count * 8 {
            bytes[i / 8] ^= 1 << UInt8(i % 8)
            #expect(Checksum.of(bytes) != base)
            bytes[i / 8] ^= 1 << UInt8(i % 8)
        }
    }

    func edit(_ path: String, _ change: (String) -> String) throws {
        let s = try String(contentsOfFile: path, encoding: .utf8)
        try change(s).write(toFile: path, atomically: true, encoding: .utf8)
    }
}
