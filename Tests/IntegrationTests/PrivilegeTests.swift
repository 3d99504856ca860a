// Issue 10, item 6: least privilege. The node's control socket is root-only and a non-root user
// is told so in one line; checkpoint and restore refuse a non-root user up front; images, the
// node's data directory, the capsule registry and pid files are 0700/0600 whatever the umask.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct PrivilegeTests {
    static let refusedCheckpoint = "Error: vos checkpoint needs root (it runs as uid 65534): "
        + "it stops the process with ptrace and reads its memory and file descriptors\n"
    static let refusedRestore = "Error: vos restore needs root (it runs as uid 65534): "
        + "it rebuilds the process with ptrace, clone3 at its saved PIDs and PR_SET_MM_MAP\n"
    static func refusedNode(_ data: String) -> String {
        "Error: cannot reach the node daemon at \(data)/control.sock: permission denied (only root may control the node)\n"
    }

    /// `vos node init` and `vos node start` under umask 000: the data directory (and the ones
    /// made above it) 0700, cluster.key, node.pid and the control socket 0600. Root lists the
    /// nodes; nobody gets the one-line refusal from `vos nodes` and `vos migrate`, also once the
    /// directory is opened to others (the socket's own mode still refuses).
    @Test func nodeControlSocketIsRootOnly() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let nobodyVos = try f.vosForNobody()
        defer { f.removeNobodyCopy(nobodyVos) }
        let parent = f.path("nodes"), data = parent + "/a"

        let initialised = try f.vosUnderUmask000(["node", "init", "--data", data])
        try #require(initialised.status == 0, "vos node init: \(initialised.stderr)")
        for (p, m) in [(parent, 0o700), (data, 0o700), (data + "/state", 0o700), (data + "/cluster.key", 0o600)] as [(String, mode_t)] {
            #expect(permissions(p) == m, "\(p) is \(octal(permissions(p))), not \(octal(m))")
        }

        // A directory opened by hand is closed again when the daemon starts.
        chmod(data, 0o755)
        let port = try freeLoopbackPort()
        let daemon = try f.start(Fixture.umask000[0], Array(Fixture.umask000.dropFirst())
            + [Products.vos, "node", "start", "--data", data, "--name", "a", "--listen", "127.0.0.1:\(port)"])
        let log = f.path("stderr-0.txt")
        try #require(waitUntil(15) { FileManager.default.fileExists(atPath: data + "/node.pid") },
                     "the node daemon (pid \(daemon)) did not start: \(lines(log))")
        #expect(permissions(data) == 0o700, "the data directory is \(octal(permissions(data))) under the running daemon")
        #expect(fileType(data + "/control.sock") == S_IFSOCK)
        #expect(permissions(data + "/control.sock") == 0o600, "control.sock is \(octal(permissions(data + "/control.sock")))")
        #expect(permissions(data + "/node.pid") == 0o600, "node.pid is \(octal(permissions(data + "/node.pid")))")
        for e in entries(under: data) {
            #expect(e.mode & 0o077 == 0, "\(e.path) is \(octal(e.mode)): others may use it")
        }

        // Root controls the node as before.
        let listed = try f.vos(["nodes", "--data", data, "--json"])
        #expect(listed.status == 0 && listed.stdout.contains("\"name\":\"a\""), "vos nodes as root: \(listed.stderr)")

        // Nobody: refused, one line, no stack trace, nonzero exit; the daemon goes on serving root.
        func expectRefused(_ why: String) throws {
            for args in [["nodes", "--data", data], ["migrate", "c1", "--to", "b", "--data", data]] {
                let r = try f.vosAsNobody(nobodyVos, args)
                #expect(r.status == 1, "vos \(args[0]) as nobody (\(why)) exited \(r.status)")
                #expect(r.stderr == Self.refusedNode(data), "vos \(args[0]) as nobody (\(why)): \(r.stderr)")
                #expect(r.stdout.isEmpty, "vos \(args[0]) as nobody (\(why)) printed \(r.stdout)")
            }
        }
        try expectRefused("data directory 0700")
        chmod(data, 0o755)
        try expectRefused("data directory opened to 0755, socket 0600")
        chmod(data, 0o700)
        #expect(try f.vos(["nodes", "--data", data, "--json"]).status == 0, "the daemon stopped serving root: \(lines(log))")
        #expect(f.isAlive(daemon))
    }

    /// Nobody running `vos checkpoint` (of root's process or of one of its own) or `vos restore`
    /// gets one line saying root is needed; the target goes on running untouched and no image
    /// directory is made. Root's checkpoint and restore work as before.
    @Test func checkpointAndRestoreRefuseNonRoot() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let nobodyVos = try f.vosForNobody()
        defer { f.removeNobodyCopy(nobodyVos) }
        let out = f.path("counter.txt")
        let counter = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 5 })
        // A process nobody owns itself: the refusal does not depend on whose process it is.
        let own = try f.start(Nobody.setpriv[0], Array(Nobody.setpriv.dropFirst()) + ["/bin/sleep", "600"])
        try #require(waitUntil { (try? String(contentsOfFile: "/proc/\(own)/status", encoding: .utf8))?.contains("Uid:\t65534") ?? false })

        for target in [counter, own] {
            let image = f.path("by-nobody-\(target)")
            let r = try f.vosAsNobody(nobodyVos, ["checkpoint", "--pid", String(target), "--image", image])
            #expect(r.status == 1, "vos checkpoint as nobody exited \(r.status)")
            #expect(r.stderr == Self.refusedCheckpoint, "vos checkpoint of pid \(target) as nobody: \(r.stderr)")
            #expect(permissions(image) == nil, "an image directory was made: \(image)")
            let state = try String(contentsOfFile: "/proc/\(target)/stat", encoding: .utf8).split(separator: ")").last?.split(separator: " ").first
            #expect(state == "S" || state == "R", "pid \(target) is in state \(state ?? "?") after the refusal")
            let tracer = try String(contentsOfFile: "/proc/\(target)/status", encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("TracerPid:") }
            #expect(tracer == "TracerPid:\t0", "pid \(target): \(tracer ?? "no TracerPid")")
        }
        let before = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= before + 5 }, "the counter stopped counting after the refusals")

        // Root as before; then nobody may not restore that image (nor any other).
        let image = f.path("img")
        try f.checkpoint(counter, image)
        for dir in [image, f.path("no-such-image")] {
            let r = try f.vosAsNobody(nobodyVos, ["restore", dir, "--pidfile", f.path("nobody.pid")])
            #expect(r.status == 1, "vos restore as nobody exited \(r.status)")
            #expect(r.stderr == Self.refusedRestore, "vos restore \(dir) as nobody: \(r.stderr)")
            #expect(permissions(f.path("nobody.pid")) == nil)
        }
        let restored = try f.restore(image)
        let after = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= after + 5 }, "root's restore of pid \(restored) does not count")
        #expect(counterSequence(out).continuous)
    }

    /// Under umask 000: `vos checkpoint --pid` makes the image directory and every directory
    /// above it that it creates 0700 and every file 0600; `vos restore --pidfile` writes the pid
    /// file 0600 (one that existed 0666 too).
    @Test func processImageAndPidFileArePrivate() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let counter = try f.start(Products.path("vos-test-counter"), [out])
        try #require(waitUntil { counterSequence(out).values.count >= 5 })
        let images = f.path("images"), image = images + "/a/b"

        let r = try f.vosUnderUmask000(["checkpoint", "--pid", String(counter), "--image", image])
        try #require(r.status == 0, "checkpoint under umask 000: \(r.stderr)")
        f.reap(counter)
        let made = [images, images + "/a", image]
        for d in made { #expect(permissions(d) == 0o700, "\(d) is \(octal(permissions(d)))") }
        let files = entries(under: image)
        #expect(Set(files.map { ($0.path as NSString).lastPathComponent }).isSuperset(of: ["pages.img", "process.json"]),
                "image holds \(files.map(\.path))")
        for e in files {
            #expect(e.type == S_IFREG && e.mode == 0o600, "\(e.path) is \(octal(e.mode))")
        }

        let pidfile = f.path("restored.pid")
        let fd = open(pidfile, O_WRONLY | O_CREAT, 0o666)
        fchmod(fd, 0o666)
        close(fd)
        let rs = try f.vosUnderUmask000(["restore", image, "--pidfile", pidfile])
        try #require(rs.status == 0, "restore under umask 000: \(rs.stderr)")
        let pid = try #require(Int32(try String(contentsOfFile: pidfile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        f.adopt(pid)
        #expect(permissions(pidfile) == 0o600, "the pid file is \(octal(permissions(pidfile)))")
        #expect(entries(under: f.directory).allSatisfy { !$0.path.contains(".tmp-") }, "a temporary pid file was left")
        let after = counterSequence(out).values.count
        #expect(waitUntil { counterSequence(out).values.count >= after + 5 }, "the restored counter does not count")
    }

    /// Under umask 000: `vos run` makes the registry (state/, capsules/, the capsule's directory)
    /// 0700 with capsule.json and the log 0600; a capsule checkpoint (with memory objects, so blob
    /// files) is 0700/0600 all through; its restore rewrites capsule.json and the pid file 0600.
    @Test func capsuleRegistryAndImageArePrivate() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let report = f.path("shm.txt"), state = f.path("state")
        let run = try f.vosUnderUmask000(["run", "--name", "shm", "--", Products.path("vos-test-shm"), report])
        try #require(run.status == 0, "vos run under umask 000: \(run.stderr)")
        try f.adoptCapsule("shm")
        try #require(waitUntil { lines(report).count >= 3 }, "the capsule does not run: \(lines(report))")
        func expectPrivateRegistry(_ when: String) {
            let all = entries(under: state)
            #expect(permissions(state) == 0o700, "\(state) is \(octal(permissions(state))) \(when)")
            for name in ["capsules", "capsules/shm", "capsules/shm/capsule.json", "capsules/shm/output.log"] {
                #expect(all.contains { $0.path == state + "/" + name }, "no \(name) in the registry \(when)")
            }
            for e in all {
                let expected: mode_t = e.type == S_IFDIR ? 0o700 : 0o600
                #expect(e.mode == expected, "\(e.path) is \(octal(e.mode)) \(when)")
            }
        }
        expectPrivateRegistry("after vos run")

        let image = f.path("capsule-image")
        let c = try f.vosUnderUmask000(["checkpoint", "shm", "--image", image])
        try #require(c.status == 0, "capsule checkpoint under umask 000: \(c.stderr)")
        #expect(permissions(image) == 0o700, "\(image) is \(octal(permissions(image)))")
        let parts = entries(under: image)
        #expect(parts.contains { ($0.path as NSString).lastPathComponent.hasPrefix("blob-") }, "no blob in \(parts.map(\.path))")
        for e in parts {
            let expected: mode_t = e.type == S_IFDIR ? 0o700 : 0o600
            #expect(e.mode == expected, "\(e.path) is \(octal(e.mode))")
        }

        let pidfile = f.path("capsule.pid")
        let rs = try f.vosUnderUmask000(["restore", image, "--pidfile", pidfile])
        try #require(rs.status == 0, "capsule restore under umask 000: \(rs.stderr)")
        try f.adoptCapsule("shm")
        #expect(permissions(pidfile) == 0o600, "the pid file is \(octal(permissions(pidfile)))")
        expectPrivateRegistry("after the restore")
        let count = lines(report).count
        #expect(waitUntil { lines(report).count >= count + 3 }, "the restored capsule does not run")
        #expect(try f.vos(["stop", "shm"]).status == 0)
    }
}
