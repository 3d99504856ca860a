// Soak mode and the leak checks of long runs (issue 10, item 4). `VOS_SOAK=1` selects the full
// counts; without it the quick ones that CI runs. The checks look at what a user would: the
// processes left, zombies, a process's fd table and memory map, a daemon's memory.
import Foundation
import Glibc
import VOSLinux

enum Soak {
    static let enabled = ProcessInfo.processInfo.environment["VOS_SOAK"] == "1"
    static func count(quick: Int, soak: Int) -> Int { enabled ? soak : quick }
}

/// Every process on the host that carries `marker` in its command line or its environment.
/// With a fixture's directory as the marker: whatever vos or a test program started for that
/// fixture (the directory is in their arguments, and in VOS_STATE_DIR of every vos the fixture
/// runs, inherited by stubs, capsule inits and capsule commands), wherever it was re-parented.
func processesMarked(_ marker: String) -> Set<PID> {
    let needle = Array(marker.utf8)
    let mine = getpid()
    var found: Set<PID> = []
    for pid in (try? ProcFile.numericEntries("/proc")) ?? [] where pid != mine {
        for part in ["cmdline", "environ"] {
            guard let bytes = try? ProcFile.read("/proc/\(pid)/\(part)"), bytes.count >= needle.count else { continue }
            if contains(bytes, needle) {
                found.insert(pid)
                break
            }
        }
    }
    return found
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
    }
    return false
}

/// Zombies whose parent is one of `parents` (a zombie's command line and environment are gone,
/// so it is found by its parent: the test process, a subreaper, or a capsule's init).
func zombies(childrenOf parents: Set<PID>) -> Set<PID> {
    var found: Set<PID> = []
    for pid in (try? ProcFile.numericEntries("/proc")) ?? [] {
        guard let s = try? ProcStat.read("/proc/\(pid)/stat"), s.state == "Z", parents.contains(s.ppid) else { continue }
        found.insert(pid)
    }
    return found
}

/// Zombies of `parents` still there after `seconds` (a child that has just exited and is
/// being reaped is not a leak; one nobody reaps is).
func lastingZombies(childrenOf parents: Set<PID>, seconds: Double = 2) -> Set<PID> {
    let first = zombies(childrenOf: parents)
    guard !first.isEmpty else { return [] }
    var left = first
    _ = waitUntil(seconds) {
        left = first.intersection(zombies(childrenOf: parents))
        return left.isEmpty
    }
    return left
}

/// The fd table (number → target, kernel object numbers such as socket:[123] dropped: a restored
/// socket or pipe is a new object) and the mappings (range, permissions, path) of a process.
func footprint(_ pid: PID) throws -> (fds: [String], maps: [String]) {
    let fds = try ProcFile.numericEntries("/proc/\(pid)/fd").map { fd -> String in
        let target = (try? ProcFile.link("/proc/\(pid)/fd/\(fd)")) ?? "?"
        return "\(fd) -> \(target.replacingOccurrences(of: #"\[[0-9]+\]$"#, with: "", options: .regularExpression))"
    }
    let maps = try ProcFile.text("/proc/\(pid)/maps").split(separator: "\n").map { line -> String in
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        return ([f[0], f[1]] + f.dropFirst(5)).joined(separator: " ")
    }
    return (fds, maps)
}

/// A line-by-line difference of two lists, for messages: what went, what came.
func difference(_ before: [String], _ after: [String]) -> String {
    let gone = before.filter { !after.contains($0) }, new = after.filter { !before.contains($0) }
    return "gone \(gone), new \(new)"
}

/// Resident memory (VmRSS) of a process, in bytes.
func residentBytes(_ pid: PID) -> Int64 {
    ((try? ProcStatus.read("/proc/\(pid)/status"))?.number("VmRSS") ?? 0) * 1024
}

/// Number of open fds of a process.
func fdCount(_ pid: PID) -> Int { ((try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? []).count }

func mebibytes(_ bytes: Int64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
