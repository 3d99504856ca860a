// The local capsule registry: one directory per capsule under $VOS_STATE_DIR/capsules
// (default /var/lib/vos), holding capsule.json, the log and the init's exit status; directories
// 0700 and files 0600 whatever the umask.
import Foundation
import Glibc
import VOSImage
import VOSLinux

public struct CapsuleError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

public struct CapsuleRegistry: Sendable {
    public let root: String

    public init(root: String? = nil) {
        self.root = root ?? ProcessInfo.processInfo.environment["VOS_STATE_DIR"].map { $0 + "/capsules" } ?? "/var/lib/vos/capsules"
    }

    public func directory(_ name: String) -> String { root + "/" + name }
    public func logPath(_ name: String) -> String { directory(name) + "/output.log" }
    public func exitStatusPath(_ name: String) -> String { directory(name) + "/exit-status" }

    /// Names are file names in the registry: letters, digits, '-', '_', '.'; not starting with '.'.
    public static func validate(name: String) throws {
        let ok = !name.isEmpty && name.count <= 64 && !name.hasPrefix(".")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        if !ok { throw CapsuleError("invalid capsule name \"\(name)\": use 1-64 letters, digits, '-', '_' or '.'") }
    }

    /// Reserves `name`: fails if a capsule of that name exists. The entry is made whole under a
    /// temporary name, saying which vos reserved it, then renamed into place; so an entry left
    /// by a vos killed before it saved the capsule is told from one being made right now, and
    /// taken over.
    public func reserve(_ name: String) throws {
        try Self.validate(name: name)
        try PrivateFiles.makeDirectories(root)
        let temporary = root + "/.reserving-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: temporary)
        try PrivateFiles.makeDirectories(temporary)
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try PrivateFiles.write(temporary + "/reserved-by", Array(Self.identity(of: getpid()).utf8))
        for attempt in 0..<2 {
            if rename(temporary, directory(name)) == 0 { return }
            guard errno == EEXIST || errno == ENOTEMPTY else {
                throw CapsuleError("cannot create \(directory(name)): \(String(cString: strerror(errno)))")
            }
            if attempt == 0 && isAbandoned(name) {
                try? FileManager.default.removeItem(atPath: directory(name))
                continue
            }
            break
        }
        let state = (try? load(name)).map { $0.isRunning ? "running" : "exited" } ?? "being created"
        throw CapsuleError("a capsule named \"\(name)\" already exists (\(state)); remove it with `vos rm \(name)` or pick another name")
    }

    /// An entry without capsule.json whose reserving vos is gone.
    func isAbandoned(_ name: String) -> Bool {
        let dir = directory(name)
        guard !FileManager.default.fileExists(atPath: dir + "/capsule.json"),
            let owner = FileManager.default.contents(atPath: dir + "/reserved-by").map({ String(decoding: $0, as: UTF8.self) })
        else { return false }
        return owner != Self.identity(of: PID(owner.split(separator: " ").first ?? "") ?? 0)
    }

    /// "PID STARTTIME" (clock ticks after boot): a PID used again by another process differs.
    static func identity(of pid: PID) -> String {
        (try? ProcStat.read("/proc/\(pid)/stat")).map { "\(pid) \($0.number(22))" } ?? ""
    }

    public func save(_ record: CapsuleRecord) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try PrivateFiles.writeAtomically(directory(record.name) + "/capsule.json", Array(try e.encode(record)))
    }

    public func load(_ name: String) throws -> CapsuleRecord {
        try Self.validate(name: name)
        guard let data = FileManager.default.contents(atPath: directory(name) + "/capsule.json") else {
            throw CapsuleError("no capsule named \"\(name)\" (see `vos ps`)")
        }
        do { return try JSONDecoder().decode(CapsuleRecord.self, from: data) } catch {
            throw CapsuleError("the registry entry of capsule \"\(name)\" is damaged: \(error)")
        }
    }

    public func all() -> [CapsuleRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.sorted().compactMap { try? load($0) }
    }

    public func remove(_ name: String) throws {
        try Self.validate(name: name)
        try FileManager.default.removeItem(atPath: directory(name))
        CapsuleLayers.remove(name, registry: self)
    }
}
