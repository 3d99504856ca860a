// Issue 9: a capsule with a filesystem of its own (`vos run --fs`): its writes land in its
// upper layer only, volumes are the host's directories, and the upper layer travels in its
// image and with a migration (cold and live): the log file it appends to is whole on the
// destination, the program goes on appending, and the source's copy is gone.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleFilesystemTests {
    /// A log path in the base that no other test or run uses (it must not exist on the host).
    func logPath() -> String { "/var/tmp/vos-fs-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log" }

    /// The counter appending "n=K" to `log` inside capsule `name`.
    func counter(_ log: String) -> [String] { ["--", Products.path("vos-test-counter"), log] }

    /// The capsule's upper layer on the node whose state directory is `state`.
    func upper(_ state: String, _ name: String) -> String { state + "/layers/\(name)/upper" }

    @Test func writesStayInTheCapsuleAndComeBackFromItsImage() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let log = logPath()
        let volume = f.path("shared")
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        // The counter inherits fd 3, open on the volume: the restore checks that file is unchanged.
        let r = try f.vos(["run", "--name", "fsc", "--fs", "--volume", "\(volume):/mnt/shared", "--", "/bin/sh", "-c",
                           "exec 3>>/mnt/shared/hello; echo through the volume >&3; exec \(Products.path("vos-test-counter")) \(log)"])
        try #require(r.status == 0, "vos run --fs: \(r.stderr)")
        let inUpper = upper(f.path("state"), "fsc") + log
        try #require(waitUntil { counterSequence(inUpper).values.count >= 20 },
                     "the counter does not count in its upper layer: \((try? f.vos(["logs", "fsc"]).stdout) ?? "")")
        #expect(!FileManager.default.fileExists(atPath: log), "the capsule's write reached the host's \(log)")
        #expect((try? String(contentsOfFile: volume + "/hello", encoding: .utf8)) == "through the volume\n", "the volume is not the host's directory")

        let cp = try f.vos(["checkpoint", "fsc", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let inspect = try f.vos(["inspect", f.path("img")]).stdout
        #expect(inspect.contains("fs-upper.tar") || FileManager.default.fileExists(atPath: f.path("img/fs-upper.tar")), "no upper layer in the image")
        let saved = counterSequence(inUpper).values.last ?? -1
        // The layers go with the capsule: restore from the image alone.
        #expect(try f.vos(["rm", "fsc"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: inUpper), "vos rm left the upper layer")

        let rs = try f.vos(["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        for h in try hostPIDs(f, "fsc").values { f.adopt(h) }
        #expect(waitUntil { (counterSequence(inUpper).values.last ?? 0) >= saved + 20 }, "the restored counter does not append")
        let seq = counterSequence(inUpper)
        #expect(seq.continuous && seq.values.first == 0, "the log lost or repeated lines: \(firstBreak(seq.values))")
        #expect(!FileManager.default.fileExists(atPath: log))
        #expect(try f.vos(["stop", "fsc"]).status == 0)
    }

    /// Issue 9, test 5: `checkpoint --parent` stores only the files changed since: a 100 MiB
    /// file written once is in the first image's upper layer and not in the second's, and a
    /// restore from the second (its parent beside it) has it whole, the log going on.
    @Test func incrementalCheckpointStoresOnlyChangedFiles() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let log = logPath()
        let r = try f.vos(["run", "--name", "inc", "--fs", "--", "/bin/sh", "-c",
                           "head -c 104857600 /dev/urandom > /var/tmp/big; exec \(Products.path("vos-test-counter")) \(log)"])
        try #require(r.status == 0, "vos run --fs: \(r.stderr)")
        let inUpper = upper(f.path("state"), "inc") + log
        try #require(waitUntil(20) { counterSequence(inUpper).values.count >= 20 }, "the counter does not count")
        let big = upper(f.path("state"), "inc") + "/var/tmp/big"
        let bigBytes = try #require(FileManager.default.contents(atPath: big))

        let first = try f.vos(["checkpoint", "inc", "--image", f.path("full"), "--leave-running"])
        try #require(first.status == 0, "checkpoint: \(first.stderr)")
        let second = try f.vos(["checkpoint", "inc", "--image", f.path("incremental"), "--parent", f.path("full")])
        try #require(second.status == 0, "checkpoint --parent: \(second.stderr)")
        let fullUpper = fileSize(f.path("full/fs-upper.tar")), incrementalUpper = fileSize(f.path("incremental/fs-upper.tar"))
        #expect(fullUpper > 100 << 20, "the first image's upper layer holds \(fullUpper) bytes")
        #expect(incrementalUpper < 1 << 20, "the incremental image's upper layer holds \(incrementalUpper) bytes")
        print("upper layer: full checkpoint \(fullUpper) bytes, incremental \(incrementalUpper) bytes")

        let saved = counterSequence(inUpper).values.last ?? 0
        #expect(try f.vos(["rm", "inc"]).status == 0)
        let rs = try f.vos(["restore", f.path("incremental")])
        try #require(rs.status == 0, "restore of the incremental image: \(rs.stderr)")
        for h in try hostPIDs(f, "inc").values { f.adopt(h) }
        #expect(FileManager.default.contents(atPath: big) == bigBytes, "the 100 MiB file did not come back whole")
        #expect(waitUntil { (counterSequence(inUpper).values.last ?? 0) >= saved + 20 }, "the restored counter does not append")
        #expect(counterSequence(inUpper).continuous)
        #expect(try f.vos(["stop", "inc"]).status == 0)
    }

    /// A file the capsule holds open on a volume changed before the restore (volumes are shared
    /// storage, not copied): refused, naming it.
    @Test func changedVolumeFileIsRefused() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let volume = f.path("shared")
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        let r = try f.vos(["run", "--name", "vol", "--fs", "--volume", "\(volume):/srv/data", "--", "/bin/sh", "-c",
                           "exec 3>>/srv/data/held; echo first >&3; exec \(Products.path("vos-test-counter")) /var/tmp/vos-vol-\(getpid()).log"])
        try #require(r.status == 0, "vos run --fs: \(r.stderr)")
        try #require(waitUntil { (try? String(contentsOfFile: volume + "/held", encoding: .utf8)) == "first\n" }, "the capsule did not write its volume")
        usleep(200_000)
        let cp = try f.vos(["checkpoint", "vol", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        _ = waitUntil(5) { _ = reapChildren(); return processesMarked(f.directory).isEmpty }
        let handle = try #require(FileHandle(forWritingAtPath: volume + "/held"))
        handle.seekToEndOfFile()
        handle.write(Data("changed meanwhile\n".utf8))
        try handle.close()
        let refused = try f.vos(["restore", f.path("img")])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("a file it held open on a volume is not the same here: /srv/data/held: 24 bytes"), "\(refused.stderr)")
        #expect(processesMarked(f.directory).isEmpty, "a refused restore left processes")
    }

    /// python3 in a capsule, restored where the interpreter's file differs (a bind mount over it
    /// in the restore's own mount namespace, as on a machine with another build): refused,
    /// naming the file; from an image made with --carry-base, it runs.
    @Test func differentBaseIsRefusedUnlessCarried() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let log = logPath()
        let script = "import time\nn = 0\nwith open('\(log)', 'a', buffering=1) as f:\n    while True:\n        f.write(f'n={n}\\n'); n += 1; time.sleep(0.01)\n"
        let r = try f.vos(["run", "--name", "py", "--fs", "--", "/usr/bin/python3", "-c", script])
        try #require(r.status == 0, "vos run --fs: \(r.stderr)")
        let inUpper = upper(f.path("state"), "py") + log
        try #require(waitUntil { counterSequence(inUpper).values.count >= 10 }, "python3 does not count")
        for carry in [false, true] {
            let image = f.path(carry ? "carried" : "plain")
            let cp = try f.vos(["checkpoint", "py", "--image", image, "--leave-running"] + (carry ? ["--carry-base"] : []))
            try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        }
        #expect(try f.vos(["stop", "py"]).status == 0)
        _ = waitUntil(5) { _ = reapChildren(); return processesMarked(f.directory).isEmpty }
        let saved = counterSequence(inUpper).values.last ?? 0

        // Another python3.11 in this "machine's" base: a different file at the same path.
        let other = f.path("python3.11")
        try Data(repeating: 0x90, count: 4096).write(to: URL(fileURLWithPath: other))
        func restoreOnOtherBase(_ image: String) throws -> CommandResult {
            try f.vos(["restore", image], wrapper:
                ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount --bind \"$0\" /usr/bin/python3.11 && exec \"$@\"", other])
        }
        let refused = try restoreOnOtherBase(f.path("plain"))
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("its base differs on this machine: /usr/bin/python3.11: 4096 bytes here, "), "\(refused.stderr)")
        #expect(refused.stderr.contains("--carry-base"), "\(refused.stderr)")

        let carried = try restoreOnOtherBase(f.path("carried"))
        try #require(carried.status == 0, "restore of the carried image: \(carried.stderr)")
        for h in try hostPIDs(f, "py").values { f.adopt(h) }
        #expect(waitUntil { (counterSequence(inUpper).values.last ?? 0) >= saved + 20 }, "python3 from the carried base does not count on")
        #expect(try f.vos(["stop", "py"]).status == 0)
    }

    /// The same across machines: node b's daemon runs in a mount namespace of its own where
    /// python3.11 is another file. `vos migrate` is refused naming it, and the capsule runs on
    /// on a; with --carry-base it moves and counts on.
    @Test func migrationToADifferentBase() throws {
        let lan = try SimulatedLAN(nodes: 2)
        let other = lan.f.path("python3.11")
        try Data(repeating: 0x90, count: 4096).write(to: URL(fileURLWithPath: other))
        let c = try NodeCluster.start(lan, count: 2, mountSetup: [1: "mount --bind \(other) /usr/bin/python3.11"])
        defer { c.teardown() }
        let log = logPath()
        let script = "import time\nn = 0\nwith open('\(log)', 'a', buffering=1) as f:\n    while True:\n        f.write(f'n={n}\\n'); n += 1; time.sleep(0.01)\n"
        let r = try lan.vos(0, ["run", "--name", "py", "--fs", "--", "/usr/bin/python3", "-c", script])
        try #require(r.status == 0, "vos run --fs on a: \(r.stderr)")
        lan.adoptCapsules(0)
        let onA = upper(lan.nodes[0].stateDirectory, "py") + log, onB = upper(lan.nodes[1].stateDirectory, "py") + log
        try #require(waitUntil { counterSequence(onA).values.count >= 20 }, "python3 does not count on a")

        let refused = try c.migrate("py", from: 0, to: "b")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("its base differs on this machine: /usr/bin/python3.11: 4096 bytes here"), "\(refused.stderr)")
        let count = counterSequence(onA).values.count
        #expect(waitUntil { counterSequence(onA).values.count >= count + 20 }, "the capsule stopped on a after the refusal")

        let carried = try lan.vos(0, ["migrate", "py", "--to", "b", "--carry-base", "--data", c.data(0)])
        lan.adoptCapsules(1)
        try #require(carried.status == 0, "vos migrate --carry-base: \(carried.stderr)\nnode b: \(c.logText(1))")
        let moved = counterSequence(onB).values.count
        #expect(waitUntil { counterSequence(onB).values.count >= moved + 20 }, "python3 from the carried base does not count on b")
        #expect(counterSequence(onB).continuous, "\(firstBreak(counterSequence(onB).values))")
    }

    @Test(arguments: ["cold", "live"])
    func upperLayerMovesWithTheCapsule(mode: String) throws {
        let lan = try SimulatedLAN(nodes: 2)
        let c = try NodeCluster.start(lan, count: 2)
        defer { c.teardown() }
        let log = logPath()
        let r = try lan.vos(0, ["run", "--name", "fsm", "--fs"] + counter(log))
        try #require(r.status == 0, "vos run --fs on a: \(r.stderr)")
        lan.adoptCapsules(0)
        let onA = upper(lan.nodes[0].stateDirectory, "fsm") + log, onB = upper(lan.nodes[1].stateDirectory, "fsm") + log
        try #require(waitUntil { counterSequence(onA).values.count >= 30 }, "the counter does not count on a")

        let args = ["migrate", "fsm", "--to", "b"] + (mode == "live" ? ["--live"] : []) + ["--data", c.data(0)]
        let m = try lan.vos(0, args)
        lan.adoptCapsules(1)
        try #require(m.status == 0, "vos migrate: \(m.stderr)\nnode a: \(c.logText(0))\nnode b: \(c.logText(1))")
        if mode == "live" { #expect(m.stdout.contains("pre-copy: upper layer: "), "the upper layer was not sent ahead: \(m.stdout)") }
        let moved = counterSequence(onB).values.count
        #expect(waitUntil { counterSequence(onB).values.count >= moved + 30 }, "the counter does not append on b")
        let seq = counterSequence(onB)
        #expect(seq.continuous && seq.values.first == 0, "the log on b lost or repeated lines: \(firstBreak(seq.values))")
        #expect(!FileManager.default.fileExists(atPath: onA), "a kept its copy of the upper layer")
        #expect(!FileManager.default.fileExists(atPath: log), "the capsule's write reached the host's \(log)")
    }
}
