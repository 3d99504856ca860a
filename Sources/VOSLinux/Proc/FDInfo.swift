// /proc/PID/fdinfo/N: position, flags and the kind-specific lines (eventfd, timerfd, epoll...).

public struct FDInfo: Sendable {
    public var position: UInt64
    /// Open flags (octal in the file).
    public var flags: Int32
    public var lines: [String: String]
    /// `tfd:` lines of an epoll fd, one per registered target.
    public var epollTargets: [(fd: Int32, events: UInt32, data: UInt64)]

    public init(text: String) {
        var lines: [String: String] = [:]
        var targets: [(Int32, UInt32, UInt64)] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("tfd:") {
                // "tfd:        5 events:       19 data:                5  pos:0 ino:... sdev:..."
                let parts = line.split(separator: " ").filter { !$0.isEmpty }
                var fd: Int32 = -1, events: UInt32 = 0, data: UInt64 = 0
                var i = 0
                while i + 1 < parts.count {
                    switch parts[i] {
                    case "tfd:": fd = Int32(parts[i + 1]) ?? -1
                    case "events:": events = UInt32(parts[i + 1], radix: 16) ?? 0
                    case "data:": data = UInt64(parts[i + 1], radix: 16) ?? 0
                    default: break
                    }
                    i += 1
                }
                targets.append((fd, events, data))
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            lines[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        self.lines = lines
        self.epollTargets = targets
        position = UInt64(lines["pos"] ?? "0") ?? 0
        flags = Int32(lines["flags"] ?? "0", radix: 8) ?? 0
    }

    public static func read(pid: PID, fd: Int32) throws(SyscallError) -> FDInfo {
        FDInfo(text: try ProcFile.text("/proc/\(pid)/fdinfo/\(fd)"))
    }
}
