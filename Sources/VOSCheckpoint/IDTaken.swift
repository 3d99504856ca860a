// The error for a saved PID or TID that another process holds now, naming the holder.
import VOSLinux

/// The error for a saved PID or TID that another process holds now.
enum IDTaken {
    static func error(_ id: PID, what: String) -> CheckpointError {
        CheckpointError(
            "cannot restore \(what) \(id)",
            reason: "\(what) \(id) is taken by \(holder(of: id)); restore inside a capsule (its PIDs live in a namespace of "
                + "their own), or pass --new-pid to restore with new IDs")
    }

    /// "pid 123 (cmd args)" for the process that owns `id` (a process or one of its threads).
    static func holder(of id: PID) -> String {
        let tgid = ProcStatus.number(pid: id, "Tgid")
        let owner = tgid > 0 ? PID(tgid) : id
        let cmd = ProcessState.commandLine(pid: owner).joined(separator: " ")
        let state = (try? ProcStat.read("/proc/\(owner)/stat").state) == "Z" ? ", a zombie not yet reaped by its parent" : ""
        return "pid \(owner) (\(cmd.isEmpty ? "?" : cmd)\(state))"
    }
}
