// vos-test-memhog driven from outside: start it, find its filled memory, make it verify itself.
import Glibc
import VOSLinux

struct Memhog {
    var pid: PID
    /// Start of the filled memory, as printed in "ready <pages> pages at 0x...".
    var address: RemoteAddress
    var bytes: Int
    var stdout: String

    /// Starts `vos-test-memhog mib` and waits until it has filled its memory.
    static func start(mib: Int, name: String) throws -> Memhog {
        let out = Scratch.path("\(name).out")
        let pid = try Children.shared.spawn(
            try Products.path("vos-test-memhog"), [String(mib)], stdout: out, stderr: Scratch.path("\(name).err"))
        // Filling 1 GiB with the pattern takes ~1 s; allow for a busy machine.
        guard let line = waitForLine(out, seconds: 120, where: { $0.hasPrefix("ready ") }) else {
            Children.shared.stop(pid)
            throw BenchError("vos-test-memhog \(mib) (pid \(pid)) never printed ready: \(lastLines(out))")
        }
        guard let hex = line.split(separator: " ").last, hex.hasPrefix("0x"),
            let raw = UInt64(hex.dropFirst(2), radix: 16)
        else {
            Children.shared.stop(pid)
            throw BenchError("cannot parse memhog's \"\(line)\"")
        }
        return Memhog(pid: pid, address: RemoteAddress(raw), bytes: mib * mebibyte, stdout: out)
    }

    /// Sends SIGUSR1 to `pid` (the original or a restored copy writing to the same file) and
    /// waits for a new "verify ok": memhog then checked every page of its pattern.
    func verify(pid: PID) throws {
        let before = count("verify ok")
        try Kernel.kill(pid, SIGUSR1)
        let deadline = Kernel.monotonicNanos() + 120_000_000_000
        while Kernel.monotonicNanos() < deadline {
            if count("CORRUPT") > 0 { throw BenchError("memhog pid \(pid) found corrupt memory: \(lastLines(stdout))") }
            if count("verify ok") > before { return }
            usleep(2000)
        }
        throw BenchError("memhog pid \(pid) did not verify within 120 s: \(lastLines(stdout))")
    }

    private func count(_ prefix: String) -> Int {
        let text = (try? String(contentsOfFile: stdout, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.count
    }

    /// memhog maps 256 MiB it never touches. Not necessarily next to its filled memory (recent
    /// kernels align large anonymous mappings to 2 MiB) and possibly merged with a neighbour,
    /// so look in every large anonymous VMA for 256 MiB of which no page is present.
    func untouchedRange() throws -> RemoteRange {
        let pages = 256 * mebibyte / Int(pageSize)
        let pagemap = try Pagemap(pid: pid)
        for r in try MemoryMap.read(pid: pid) where r.pageCount >= UInt64(pages) && r.isWritable && r.path.isEmpty {
            let entries = try pagemap.entries(start: r.start, pageCount: Int(r.pageCount))
            var runStart = 0
            for (i, e) in entries.enumerated() {
                if e & (Pagemap.present | Pagemap.swapped) != 0 {
                    runStart = i + 1
                } else if i + 1 - runStart == pages {
                    return RemoteRange(address: r.start + UInt64(runStart) * pageSize, length: UInt64(pages) * pageSize)
                }
            }
        }
        throw BenchError("cannot find memhog's 256 MiB of untouched memory (pid \(pid))")
    }
}
