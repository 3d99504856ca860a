// /proc/PID/stat and /proc/PID/status: the fields the checkpoint needs, by name.

/// `/proc/PID/stat`, numbered as in proc(5).
public struct ProcStat: Sendable {
    public var fields: [String]   // fields[0] is field 3 (state): everything after "(comm)"
    public var comm: String

    public init(text: String) throws(ParseError) {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else {
            throw ParseError(what: "/proc/PID/stat", detail: "no (comm) in \"\(text.prefix(80))\"")
        }
        comm = String(text[text.index(after: open)..<close])
        fields = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard fields.count >= 50 else {
            throw ParseError(what: "/proc/PID/stat", detail: "only \(fields.count + 2) fields")
        }
    }

    /// Field `n` (1-based, as proc(5) numbers them) as a number.
    public func number(_ n: Int) -> UInt64 { UInt64(fields[n - 3]) ?? 0 }
    public func signedNumber(_ n: Int) -> Int64 { Int64(fields[n - 3]) ?? 0 }

    public var state: String { fields[0] }
    public var ppid: PID { PID(signedNumber(4)) }
    public var processGroup: PID { PID(signedNumber(5)) }
    public var session: PID { PID(signedNumber(6)) }
    public var lastCPU: Int32 { Int32(signedNumber(39)) }

    public static func read(_ path: String) throws -> ProcStat {
        try ProcStat(text: try ProcFile.text(path))
    }
}

/// `/proc/PID/status` as key → value.
public struct ProcStatus: Sendable {
    public var values: [String: String]

    public init(text: String) {
        var v: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            v[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        values = v
    }

    public func hex(_ key: String) -> UInt64 { UInt64(values[key] ?? "", radix: 16) ?? 0 }
    public func octal(_ key: String) -> UInt32 { UInt32(values[key] ?? "", radix: 8) ?? 0 }
    public func number(_ key: String) -> Int64 { Int64(values[key]?.split(separator: " ").first ?? "") ?? 0 }

    public static func read(_ path: String) throws(SyscallError) -> ProcStatus {
        ProcStatus(text: try ProcFile.text(path))
    }
}

/// A /proc text that did not have the expected shape.
public struct ParseError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var detail: String
    public init(what: String, detail: String) {
        self.what = what
        self.detail = detail
    }
    public var description: String { "cannot parse \(what): \(detail)" }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
