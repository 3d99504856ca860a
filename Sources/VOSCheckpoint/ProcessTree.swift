// A process tree as /proc shows it from the host: every descendant of a root, with the IDs its
// own PID namespace gives it (NSpid, NSpgid, NSsid: the last value of each).
import VOSImage
import VOSLinux

public struct TreeMember {
    public var hostPID: PID
    public var shape: TreeProcess
    public var isZombie: Bool { shape.zombieStatus != nil }
}

public enum ProcessTree {
    /// The root and all its descendants, parents before children.
    public static func discover(root: PID) throws -> [TreeMember] {
        var children: [PID: [PID]] = [:]
        for pid in try ProcFile.numericEntries("/proc") {
            guard let stat = try? ProcStat.read("/proc/\(pid)/stat") else { continue }
            children[stat.ppid, default: []].append(pid)
        }
        var order: [PID] = [root]
        var i = 0
        while i < order.count {
            order += (children[order[i]] ?? []).sorted()
            i += 1
        }
        var inner: [PID: PID] = [:]
        var members: [TreeMember] = []
        for host in order {
            guard let status = try? ProcStatus.read("/proc/\(host)/status"), let stat = try? ProcStat.read("/proc/\(host)/stat") else {
                continue  // gone meanwhile
            }
            let pid = lastID(status, "NSpid") ?? host
            inner[host] = pid
            let zombie = stat.state == "Z" ? Int32(truncatingIfNeeded: stat.signedNumber(52)) : nil
            members.append(TreeMember(hostPID: host, shape: TreeProcess(
                pid: pid, parent: host == root ? 0 : (inner[stat.ppid] ?? 0),
                processGroup: lastID(status, "NSpgid") ?? PID(stat.processGroup),
                session: lastID(status, "NSsid") ?? PID(stat.session), zombieStatus: zombie)))
        }
        return members
    }

    /// The last (innermost) value of a namespace ID line of status.
    static func lastID(_ status: ProcStatus, _ key: String) -> PID? {
        status.values[key]?.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { PID($0) }
    }

    /// Thread IDs as the process's own PID namespace sees them, by host TID.
    static func innerThreadIDs(hostPID: PID) -> [PID: PID] {
        var map: [PID: PID] = [:]
        for tid in (try? ProcFile.numericEntries("/proc/\(hostPID)/task")) ?? [] {
            if let s = try? ProcStatus.read("/proc/\(hostPID)/task/\(tid)/status"), let inner = lastID(s, "NSpid") { map[tid] = inner }
        }
        return map
    }
}

extension ProcessRecord {
    /// Rewrites host IDs into the IDs of the process's own PID namespace.
    mutating func translateIDs(_ map: [PID: PID]) {
        pid = map[pid] ?? pid
        for i in threads.indices { threads[i].tid = map[threads[i].tid] ?? threads[i].tid }
        for i in posixTimers.indices { posixTimers[i].notifyThread = map[posixTimers[i].notifyThread] ?? posixTimers[i].notifyThread }
    }
}
