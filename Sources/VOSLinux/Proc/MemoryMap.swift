// /proc/PID/smaps parsed into one entry per VMA, with the VmFlags the restore needs.

public struct MemoryRegion: Codable, Sendable, Equatable {
    public var start: RemoteAddress
    public var end: RemoteAddress
    /// "rw-p" as in maps.
    public var permissions: String
    public var offset: UInt64
    public var device: String
    public var inode: UInt64
    /// The path, a bracketed name like "[heap]", or "" for anonymous memory.
    public var path: String
    /// Two-letter VmFlags from smaps ("gd", "nh", "sd"...).
    public var flags: [String]

    public init(start: RemoteAddress, end: RemoteAddress, permissions: String, offset: UInt64, device: String, inode: UInt64,
                path: String, flags: [String]) {
        self.start = start
        self.end = end
        self.permissions = permissions
        self.offset = offset
        self.device = device
        self.inode = inode
        self.path = path
        self.flags = flags
    }

    public var size: UInt64 { end.raw - start.raw }
    public var pageCount: UInt64 { size / pageSize }
    public var isReadable: Bool { permissions.hasPrefix("r") }
    public var isWritable: Bool { permissions.dropFirst().hasPrefix("w") }
    public var isExecutable: Bool { permissions.dropFirst(2).hasPrefix("x") }
    public var isShared: Bool { permissions.hasSuffix("s") }
    public var isFile: Bool { path.hasPrefix("/") && inode != 0 }
    /// `[vdso]`, `[vvar]`, `[vvar_vclock]`, `[vsyscall]`: mappings the kernel provides.
    public var isSpecial: Bool { ["[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"].contains(path) }
    public var isDeletedFile: Bool { path.hasSuffix(" (deleted)") }

    public func hasFlag(_ f: String) -> Bool { flags.contains(f) }
}

public enum MemoryMap {
    /// Parses smaps text. Lines of the form "start-end perms offset dev inode path" open a VMA;
    /// "VmFlags:" closes it; other lines are statistics we do not need.
    public static func parse(smaps text: String) -> [MemoryRegion] {
        var regions: [MemoryRegion] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("VmFlags:") {
                if !regions.isEmpty {
                    regions[regions.count - 1].flags = line.dropFirst(8).split(separator: " ").map(String.init)
                }
                continue
            }
            if let region = parseHeader(line) { regions.append(region) }
        }
        return regions
    }

    /// One maps-format line, or nil when the line is a statistics line.
    static func parseHeader(_ line: Substring) -> MemoryRegion? {
        guard line.contains("-"), let first = line.first, first.isHexDigit else { return nil }
        var fields: [Substring] = []
        var rest = line[...]
        for _ in 0..<5 {
            rest = rest.drop(while: { $0 == " " })
            guard let sp = rest.firstIndex(of: " ") else { fields.append(rest); rest = ""; break }
            fields.append(rest[..<sp])
            rest = rest[sp...]
        }
        guard fields.count == 5, fields[0].contains("-"), fields[1].count == 4 else { return nil }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16),
              let off = UInt64(fields[2], radix: 16), let inode = UInt64(fields[4])
        else { return nil }
        let path = String(rest.drop(while: { $0 == " " }))
        return MemoryRegion(
            start: RemoteAddress(s), end: RemoteAddress(e), permissions: String(fields[1]), offset: off,
            device: String(fields[3]), inode: inode, path: path, flags: [])
    }

    /// The layout with VmFlags (/proc/PID/smaps: a checkpoint needs the flags).
    public static func read(pid: PID) throws(SyscallError) -> [MemoryRegion] {
        parse(smaps: try ProcFile.text("/proc/\(pid)/smaps"))
    }

    /// The layout without VmFlags (/proc/PID/maps: several times cheaper to produce and parse).
    public static func readRanges(pid: PID) throws(SyscallError) -> [MemoryRegion] {
        parse(smaps: try ProcFile.text("/proc/\(pid)/maps"))
    }
}
