// /proc/PID/limits: readable for any process (prlimit on another user's process needs
// CAP_SYS_RESOURCE, which root lacks on these machines).

public struct ResourceLimit: Codable, Sendable, Equatable {
    /// RLIMIT_* number.
    public var resource: Int32
    public var name: String
    /// `UInt64.max` is "unlimited".
    public var soft: UInt64
    public var hard: UInt64

    public init(resource: Int32, name: String, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.name = name
        self.soft = soft
        self.hard = hard
    }
}

public enum Limits {
    /// Row titles of /proc/PID/limits in RLIMIT_* order (fs/proc/base.c `lnames`).
    static let names = [
        "Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
        "Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
        "Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
        "Max realtime priority", "Max realtime timeout",
    ]

    public static func parse(_ text: String) -> [ResourceLimit] {
        var out: [ResourceLimit] = []
        for line in text.split(separator: "\n").dropFirst() {
            guard let idx = names.firstIndex(where: { line.hasPrefix($0) }) else { continue }
            let cols = line.dropFirst(names[idx].count).split(separator: " ")
            guard cols.count >= 2 else { continue }
            func value(_ s: Substring) -> UInt64 { s == "unlimited" ? UInt64.max : (UInt64(s) ?? 0) }
            out.append(ResourceLimit(resource: Int32(idx), name: names[idx], soft: value(cols[0]), hard: value(cols[1])))
        }
        return out
    }

    public static func read(pid: PID) throws(SyscallError) -> [ResourceLimit] {
        parse(try ProcFile.text("/proc/\(pid)/limits"))
    }
}
