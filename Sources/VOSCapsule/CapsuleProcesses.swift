// The processes of a capsule: every process in the init's PID namespace, with its PID inside
// and outside, as `vos ps` shows them and the checkpoint walks them.
import Foundation
import VOSLinux

public struct CapsuleProcess: Codable, Sendable {
    public var pid: PID
    public var hostPID: PID
    public var parentHostPID: PID
    public var command: String
    public var memoryKiB: Int64
    public var state: String
}

public enum CapsuleProcesses {
    public static func list(_ record: CapsuleRecord) -> [CapsuleProcess] {
        guard record.isRunning else { return [] }
        let all = (try? ProcFile.numericEntries("/proc")) ?? []
        return all.compactMap { host in
            guard Namespaces.identity(of: host, "pid") == record.pidNamespace,
                  let status = try? ProcStatus.read("/proc/\(host)/status"),
                  let inner = status.values["NSpid"]?.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap({ PID($0) })
            else { return nil }
            let cmd = ((try? ProcFile.read("/proc/\(host)/cmdline")) ?? []).map { $0 == 0 ? 32 : $0 }
            return CapsuleProcess(
                pid: inner, hostPID: host, parentHostPID: PID(status.number("PPid")),
                command: String(decoding: cmd, as: UTF8.self).trimmingCharacters(in: .whitespaces),
                memoryKiB: status.number("VmRSS"), state: status.values["State"] ?? "?")
        }.sorted { $0.pid < $1.pid }
    }
}
