// Throughput ceilings measured in the same run as the scenarios (the machine is shared, so
// figures from another day are no yardstick): memory copies, cross-process copies, tmpfs, TCP.
import Dispatch
import Foundation
import Glibc
import VOSImage
import VOSLinux

struct Ceiling: Codable {
    var key: String
    var label: String
    var gigabytesPerSecond: Sample
}

struct Ceilings: Codable {
    var bytesPerRun: Int
    var rows: [Ceiling] = []

    func median(_ key: String) -> Double { rows.first { $0.key == key }?.gigabytesPerSecond.median ?? 0 }

    /// Chunk size of every cross-process copy: the engine's MemoryDump.chunkBytes (16 MiB;
    /// kernel-facts §9: 1 MiB is no slower, 16 MiB no faster).
    static let chunk = 16 * mebibyte

    static func measure(_ plan: Plan) throws -> Ceilings {
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        var c = Ceilings(bytesPerRun: plan.ceilingBytes)
        let n = plan.ceilingBytes
        let runs = plan.ceilingRuns
        func add(_ key: String, _ label: String, bytes: Int = n, _ times: [Double]) {
            c.rows.append(
                Ceiling(key: key, label: label, gigabytesPerSecond: Sample(times.map { gigabytesPerSecond(bytes, $0) }))
            )
            progress("ceiling \(label): \(String(format: "%.2f", c.median(key))) GB/s")
        }

        let src = try Buffer(count: n, fill: 1)
        do {
            let dst = try Buffer(count: n, fill: 2)
            add("memcpy", "memcpy, both buffers pre-faulted", try repeated(runs) { _ = memcpy(dst.base, src.base, n) })
        }
        add(
            "checksum", "Checksum.of (VOSImage), one thread",
            try repeated(runs) { checksumSink ^= Checksum.of(src.bytes) })

        let hog = try Memhog.start(mib: n / mebibyte, name: "ceiling-hog")
        defer { Children.shared.stop(hog.pid) }
        let reused = try Buffer(count: chunk, fill: 3)
        add(
            "readvReused", "process_vm_readv, 16 MiB iovecs into one reused buffer",
            try repeated(runs) { try readRemote(hog, threads: 1) { _ in reused.base } })
        do {
            let dst = try Buffer(count: n, fill: 4)
            add(
                "readvPrefaulted", "process_vm_readv into a pre-faulted buffer",
                try repeated(runs) { try readRemote(hog, threads: 1) { dst.base + $0 } })
        }
        add(
            "readvFresh", "process_vm_readv into a fresh (never touched) buffer",
            try repeated(runs) {
                let dst = try Buffer(count: n)
                try readRemote(hog, threads: 1) { dst.base + $0 }
            })
        add(
            "readvShmMap",
            "process_vm_readv into a shared mapping of a new /dev/shm file, \(cpus) threads (old dump path)",
            try repeated(runs) {
                let dst = try ShmMapping(path: Scratch.path("ceiling-map"), count: n)
                try readRemote(hog, threads: cpus) { dst.base + $0 }
            })
        add(
            "dumpPath",
            "readv 1 MiB into a reused buffer, pwrite() to a new /dev/shm file, \(cpus) threads (the dump path)",
            try repeated(runs) { try readAndWrite(hog, threads: cpus, path: Scratch.path("ceiling-dump")) })
        Children.shared.stop(hog.pid)

        for threads in Set([1, cpus]).sorted() {
            let (bytes, times) = try writeFresh(runs: runs, threads: threads, source: src)
            add(
                threads == 1 ? "writevFresh" : "writevFreshAll",
                threads == 1
                    ? "process_vm_writev into fresh memory of another process, 1 thread"
                    : "process_vm_writev into fresh memory of another process, \(threads) threads (the fill path)",
                bytes: bytes, times)
        }
        let (writes, reads) = try tmpfs(runs: runs, bytes: n)
        add("tmpfsWrite", "write() 1 MiB calls to a new file on /dev/shm", writes)
        add("tmpfsRead", "read() it back, 1 MiB calls into one reused buffer", reads)
        add(
            "tmpfsWriteFiles", "write() 1 MiB calls, \(cpus) threads, one new /dev/shm file each",
            try repeated(runs) { try writeFiles(threads: cpus, bytes: n) })
        add("tcpLoopback", "TCP over loopback, two threads, 1 MiB sends", try TCPCeiling.measure(runs: runs, bytes: n))
        return c
    }

    /// Copies all of memhog's filled memory out with process_vm_readv, 16 MiB per call, chunk i
    /// going to `destination(offset)`; with 2 threads, chunks are shared out as the engine does.
    static func readRemote(_ hog: Memhog, threads: Int, destination: (Int) -> UnsafeMutableRawPointer) throws {
        let count = hog.bytes / chunk
        let targets = (0..<count).map { destination($0 * chunk) }
        try parallel(count, threads: threads) { i in
            let range = RemoteRange(address: hog.address + UInt64(i * chunk), length: UInt64(chunk))
            try ProcessMemory.read(pid: hog.pid, ranges: [range], into: targets[i])
        }
    }

    /// process_vm_writev of 256 MiB into memory of another process that was never touched: each
    /// run needs a new process (vos-test-memhog 1 holds exactly such a region).
    static func writeFresh(runs: Int, threads: Int, source: Buffer) throws -> (Int, [Double]) {
        var times: [Double] = []
        var bytes = 0
        for run in 0..<runs {
            let hog = try Memhog.start(mib: 1, name: "ceiling-fresh-\(threads)-\(run)")
            defer { Children.shared.stop(hog.pid) }
            let range = try hog.untouchedRange()
            bytes = Int(range.length)
            times.append(
                try seconds {
                    try parallel(bytes / chunk, threads: threads) { i in
                        let r = RemoteRange(address: range.address + UInt64(i * chunk), length: UInt64(chunk))
                        try ProcessMemory.write(pid: hog.pid, ranges: [r], from: source.base + i * chunk)
                    }
                })
        }
        return (bytes, times)
    }

    /// What MemoryDump.copy does: each worker reads 1 MiB at a time into its own buffer and
    /// pwrite()s it at its place in one file of the final size, as PageFile.create makes it.
    /// (No checksum: that ceiling is measured on its own.)
    static func readAndWrite(_ hog: Memhog, threads: Int, path: String) throws {
        let fd = try checked("open", path) { open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer {
            close(fd)
            unlink(path)
        }
        try checked("ftruncate", path) { ftruncate(fd, off_t(hog.bytes)) }
        let buffers = try (0..<threads).map { _ in try Buffer(count: mebibyte, fill: 0) }
        let count = hog.bytes / mebibyte
        try parallel(threads, threads: threads) { w in
            for i in stride(from: w, to: count, by: threads) {
                let range = RemoteRange(address: hog.address + UInt64(i * mebibyte), length: UInt64(mebibyte))
                try ProcessMemory.read(pid: hog.pid, ranges: [range], into: buffers[w].base)
                let n = try checked("pwrite", path) { pwrite(fd, buffers[w].base, mebibyte, off_t(i * mebibyte)) }
                guard n == mebibyte else { throw BenchError("short pwrite to \(path): \(n)") }
            }
        }
    }

    /// `threads` writers, each to a file of its own: tmpfs takes the inode lock for every
    /// write(), so writers of one file take turns (the bound of the dump path).
    static func writeFiles(threads: Int, bytes: Int) throws {
        let buffers = try (0..<threads).map { _ in try Buffer(count: mebibyte, fill: 7) }
        try parallel(threads, threads: threads) { w in
            let path = Scratch.path("ceiling-files-\(w)")
            let fd = try checked("open", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
            defer {
                close(fd)
                unlink(path)
            }
            for _ in 0..<(bytes / threads / mebibyte) {
                let n = try checked("write", path) { write(fd, buffers[w].base, mebibyte) }
                guard n == mebibyte else { throw BenchError("short write to \(path): \(n)") }
            }
        }
    }

    /// write() to a new /dev/shm file (open to close), then read() it back, 1 MiB per call.
    static func tmpfs(runs: Int, bytes: Int) throws -> (writes: [Double], reads: [Double]) {
        let path = Scratch.path("ceiling.dat")
        let buffer = try Buffer(count: mebibyte, fill: 5)
        var writes: [Double] = []
        var reads: [Double] = []
        for _ in 0..<runs {
            defer { unlink(path) }
            writes.append(
                try seconds {
                    let fd = try checked("open", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
                    defer { close(fd) }
                    for _ in 0..<(bytes / mebibyte) {
                        let n = try checked("write", path) { write(fd, buffer.base, mebibyte) }
                        guard n == mebibyte else { throw BenchError("short write to \(path): \(n)") }
                    }
                })
            reads.append(
                try seconds {
                    let fd = try checked("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
                    defer { close(fd) }
                    var total = 0
                    while total < bytes {
                        let n = try checked("read", path) { read(fd, buffer.base, mebibyte) }
                        guard n > 0 else { throw BenchError("\(path) ended after \(total) bytes") }
                        total += n
                    }
                })
        }
        return (writes, reads)
    }
}

/// Runs `body` `runs` times; returns the wall time of each run in seconds.
func repeated(_ runs: Int, _ body: () throws -> Void) throws -> [Double] {
    try (0..<runs).map { _ in try seconds(body) }
}

/// Runs body(0..<count) on `threads` threads (Dispatch's pool, as the engine's copy does) and
/// rethrows the first failure.
func parallel(_ count: Int, threads: Int, _ body: (Int) throws -> Void) throws {
    if threads == 1 {
        for i in 0..<count { try body(i) }
        return
    }
    var failures = [Error?](repeating: nil, count: count)
    failures.withUnsafeMutableBufferPointer { out in
        DispatchQueue.concurrentPerform(iterations: count) { i in
            do { try body(i) } catch { out[i] = error }
        }
    }
    if let e = failures.compactMap({ $0 }).first { throw e }
}

/// Keeps the optimiser from dropping a checksum nobody reads.
nonisolated(unsafe) var checksumSink: UInt64 = 0

func progress(_ line: String) {
    fputs("vos-bench: \(line)\n", stderr)
}
