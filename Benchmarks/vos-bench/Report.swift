// Everything one run measured, with the machine it ran on and the goals of issue 5 checked;
// encoded as JSON as is (ReportTable.swift renders the text table).
import Foundation
import Glibc
import VOSLinux

struct Machine: Codable {
    var cpuModel: String
    var cpus: Int
    var memoryBytes: UInt64
    var kernel: String

    static func current() -> Machine {
        func firstLine(_ path: String, _ prefix: String) -> Substring? {
            ((try? ProcFile.text(path)) ?? "").split(separator: "\n").first { $0.hasPrefix(prefix) }
        }
        let model =
            firstLine("/proc/cpuinfo", "model name")?.split(separator: ":", maxSplits: 1).last
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let kib =
            firstLine("/proc/meminfo", "MemTotal:")?.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String {
            withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return Machine(
            cpuModel: model, cpus: ProcessInfo.processInfo.activeProcessorCount, memoryBytes: kib * 1024,
            kernel: "\(field(u.sysname)) \(field(u.release)) \(field(u.version)) \(field(u.machine))")
    }
}

struct Goal: Codable {
    var name: String
    var measured: Double
    var target: String
    var met: Bool
}

struct Report: Codable {
    var date: String
    var command: String
    var machine: Machine
    var plan: Plan
    var loadAverageBefore: String
    var loadAverageAfter: String
    var ceilings: Ceilings
    var large: [LargeResult]
    var largeLeaveRunning: LeaveRunningResult
    var small: SmallResult
    var capsules: CapsuleResult
    var migration: MigrationResult?
    var goals: [Goal] = []

    static func loadAverage() -> String {
        ((try? ProcFile.text("/proc/loadavg")) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// The goals of issue 5, checked on the largest memhog measured.
    mutating func checkGoals() {
        guard let big = large.last else { return }
        let checkpoint = big.checkpointGigabytesPerSecond.median / ceilings.median("readvReused")
        let restore = big.restoreGigabytesPerSecond.median / ceilings.median("memcpy")
        let frozen = small.frozenMilliseconds.median
        let restored = small.restoreMilliseconds.median
        goals = [
            Goal(
                name: "checkpoint \(big.sizeMiB) MiB, × process_vm_readv (reused buffer)", measured: checkpoint,
                target: "≥ 0.70", met: checkpoint >= 0.7),
            Goal(
                name: "restore \(big.sizeMiB) MiB, × memcpy ceiling", measured: restore, target: "≥ 0.50",
                met: restore >= 0.5),
            Goal(name: "small process frozen, ms", measured: frozen, target: "< 5", met: frozen < 5),
            Goal(name: "small process restored, ms", measured: restored, target: "< 10", met: restored < 10),
        ] + capsules.work.map { w in
            Goal(name: "capsule runtime, \(w.mode)-bound, inside / outside", measured: w.ratio, target: "≤ 1.01",
                 met: w.ratio <= 1.01)
        } + (migration?.goals() ?? [])
    }

    func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}
