// Issue 4: a capsule's System V IPC objects (its own IPC namespace) come back as System V
// objects: the same segment, semaphore set and message queue, under the same ids and keys,
// shared again by the processes that shared them.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct SysVIPCTests {
    /// The fields of vos-test-sysv's report lines ("lone=... counter=..." lines), oldest first.
    func reports(_ path: String) -> [[String: String]] {
        lines(path).filter { $0.hasPrefix("lone=") }.map { line in
            var fields: [String: String] = [:]
            for kv in line.split(separator: " ") {
                let p = kv.split(separator: "=", maxSplits: 1)
                if p.count == 2 { fields[String(p[0])] = String(p[1]) }
            }
            return fields
        }
    }

    /// A process's System V mappings as /proc/PID/maps shows them (addresses, permissions,
    /// offset, segment id, "/SYSV<key> (deleted)").
    func sysvMappings(_ host: Int32) -> [String] {
        let text = String(decoding: (try? ProcFile.read("/proc/\(host)/maps")) ?? [], as: UTF8.self)
        return text.split(separator: "\n").filter { $0.contains("/SYSV") }.map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
    }

    func number(_ r: [String: String]?, _ key: String) -> Int { r.flatMap { $0[key] }.flatMap { Int($0) } ?? -1 }

    /// What names the objects: ids, what the keys lead to, size, mode, attachments, values.
    static let identity = ["shmid", "bykey", "size", "nattch", "mode", "semid", "sembykey", "sem1", "sem2", "sem1pid", "msgid", "msgbykey", "msgs", "note", "lone"]

    func start(_ f: Fixture, name: String, report: String) throws {
        let r = try vos(f, ["run", "--name", name, "--", Products.path("vos-test-sysv"), report])
        try #require(r.status == 0, "vos run: \(r.stderr)")
        let log = { ((try? f.vos(["logs", name]))?.stdout ?? "").suffix(500) }
        try #require(waitUntil { number(reports(report).last, "counter") >= 10 }, "vos-test-sysv does not run: \(log())")
        for h in try hostPIDs(f, name).values { f.adopt(h) }
    }

    /// The child's increments (under the semaphore lock) reach the parent through the segment
    /// after the restore; the ids, the keys, the segment's size, mode and attachments, the
    /// semaphores' values and the queued messages are those of before.
    @Test func objectsComeBackAsSystemVObjects() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("sysv.txt")
        try start(f, name: "sysv", report: report)
        var mappingsBefore: [Int32: [String]] = [:]
        for (pid, host) in try hostPIDs(f, "sysv") where pid > 1 { mappingsBefore[pid] = sysvMappings(host) }
        #expect(mappingsBefore[2]?.count == 6, "\(mappingsBefore)")
        let cp = try vos(f, ["checkpoint", "sysv", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let before = try #require(reports(report).last)
        #expect(before["bykey"] == before["shmid"] && before["sem1"] == "7" && before["sem2"] == "42" && before["sem1pid"] == "2" && before["msgs"] == "3", "\(before)")

        let rs = try vos(f, ["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        let hosts = try hostPIDs(f, "sysv")
        // The same attachments at the same addresses: System V mappings, not memfds, with the
        // reshaped one's hole and read-only page.
        for pid: Int32 in [2, 3] {
            let now = sysvMappings(try #require(hosts[pid]))
            #expect(now == mappingsBefore[pid], "pid \(pid): before \(mappingsBefore[pid] ?? [])\nafter \(now)")
        }
        for h in hosts.values { f.adopt(h) }
        let progressed = waitUntil {
            let now = reports(report).last
            return ["counter", "ro", "tail", "private"].allSatisfy { number(now, $0) >= number(before, $0) + 20 }
        }
        let after = try #require(reports(report).last)
        #expect(progressed, "before \(before)\nafter \(after): the parent no longer sees the child's increments")
        for key in Self.identity { #expect(after[key] == before[key], "\(key): before \(before[key] ?? "-"), after \(after[key] ?? "-")") }
        #expect(reports(report).allSatisfy { $0["consistent"] == "1" }, "an increment happened outside the lock")
        #expect(after["size"] == "65536" && after["mode"] == "640" && after["lone"] == "kept-by-the-namespace")

        // The queued messages, in order, with their types.
        let parent = try #require(hosts[2])
        kill(parent, SIGUSR1)
        let expected = ["msg type=1 text=one", "msg type=2 text=two", "msg type=3 text=three"]
        #expect(waitUntil { lines(report).filter { $0.hasPrefix("msg ") } == expected }, "\(lines(report).filter { $0.hasPrefix("msg ") })")
        #expect(try vos(f, ["stop", "sysv"]).status == 0)
    }

    /// Restored beside the running original: each capsule has its own IPC namespace, so both
    /// hold the same ids, and the copy goes on with its own segment once the original stops.
    @Test func restoreBesideTheRunningOriginal() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("sysv.txt")
        try start(f, name: "one", report: report)
        let cp = try vos(f, ["checkpoint", "one", "--image", f.path("img"), "--leave-running"])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let before = try #require(reports(report).last)
        let rs = try vos(f, ["restore", f.path("img"), "--name", "two"])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        for h in try hostPIDs(f, "two").values { f.adopt(h) }
        #expect(try hostPIDs(f, "one").count == 3 && hostPIDs(f, "two").count == 3)

        #expect(try vos(f, ["stop", "one"]).status == 0)
        usleep(200_000)
        let n = reports(report).count
        let goesOn = waitUntil {
            let since = reports(report).dropFirst(n)
            return since.count >= 5 && number(since.last, "counter") >= number(since.first, "counter") + 20
        }
        let after = try #require(reports(report).last)
        #expect(goesOn, "the restored capsule does not progress alone: \(after)")
        for key in Self.identity { #expect(after[key] == before[key], "\(key): before \(before[key] ?? "-"), after \(after[key] ?? "-")") }
        #expect(number(after, "counter") >= number(before, "counter"))
        #expect(try vos(f, ["stop", "two"]).status == 0)
    }
}
