// Lazy restore (post-copy): `vos restore --lazy` resumes the process at once and fills its
// private anonymous memory through a userfaultfd, on fault and in the background.
import Foundation
import Glibc
import Testing
import VOSLinux

@Suite(.serialized)
struct LazyRestoreTests {
    /// `vos restore --lazy --json` started in the background; the pid once it runs.
    final class LazyRestore {
        let process = Process()
        let out: String, err: String, pidfile: String

        init(_ f: Fixture, image: String) throws {
            out = image + ".out"
            err = image + ".err"
            pidfile = image + ".pid"
            FileManager.default.createFile(atPath: out, contents: nil)
            FileManager.default.createFile(atPath: err, contents: nil)
            process.executableURL = URL(fileURLWithPath: Products.vos)
            process.arguments = ["restore", "--lazy", "--json", image, "--pidfile", pidfile]
            process.environment = ProcessInfo.processInfo.environment.merging(["VOS_STATE_DIR": f.path("state")]) { $1 }
            process.standardOutput = FileHandle(forWritingAtPath: out)
            process.standardError = FileHandle(forWritingAtPath: err)
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            try process.run()
        }

        /// The restored pid, as soon as vos wrote it (the process runs from then on).
        func pid(_ f: Fixture) throws -> PID {
            _ = waitUntil(30) { FileManager.default.fileExists(atPath: pidfile) && !lines(pidfile).isEmpty }
            let pid = try #require(PID(lines(pidfile).first ?? ""), "no pid from vos restore --lazy: \(lines(err))")
            f.adopt(pid)
            return pid
        }

        /// Waits for vos to exit: every page in (or a failure).
        func finish() -> (status: Int32, report: [String: Any]) {
            process.waitUntilExit()
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            return (process.terminationStatus, json)
        }
    }

    /// After the lazy phase no userfaultfd is left in the process, and no VMA is registered.
    func expectNoUserfaultfd(_ pid: PID, sourceLocation: SourceLocation = #_sourceLocation) {
        let fds = (try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? []
        let links = fds.compactMap { try? ProcFile.link("/proc/\(pid)/fd/\($0)") }
        #expect(!links.contains { $0.contains("userfaultfd") }, "fds: \(links)", sourceLocation: sourceLocation)
        let flags = lines("/proc/\(pid)/smaps").filter { $0.hasPrefix("VmFlags:") }
        #expect(!flags.isEmpty, sourceLocation: sourceLocation)
        #expect(!flags.contains { $0.split(separator: " ").contains("um") }, "a VMA is still registered", sourceLocation: sourceLocation)
    }

    /// 256 MiB of patterned memory: resumed before its pages are in, verified by the program
    /// itself while they arrive (its reads fault), intact, and the uffd gone afterwards.
    @Test func memhogIntactWhileFaulting() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("memhog.txt")
        let pid = try f.start(Products.path("vos-test-memhog"), ["256"], stdout: out)
        #expect(waitUntil(60) { lines(out).contains { $0.hasPrefix("ready") } })
        let image = f.path("img")
        try f.checkpoint(pid, image)
        let lazy = try LazyRestore(f, image: image)
        let restored = try lazy.pid(f)
        kill(restored, SIGUSR1)
        let (status, report) = lazy.finish()
        try #require(status == 0, "vos restore --lazy failed: \(lines(lazy.err))")
        let faulted = report["faultPages"] as? Int ?? -1, pushed = report["pushedPages"] as? Int ?? -1
        #expect(faulted + pushed >= 65536, "report: \(report)")
        // How many pages the verifier faults in depends on how far the push got before its next
        // tick (up to 100 ms): usually thousands, none on a loaded machine; not asserted.
        #expect((report["resumeMilliseconds"] as? Double ?? 1e9) < (report["completeMilliseconds"] as? Double ?? 0))
        #expect(waitUntil(30) { lines(out).contains { $0.hasPrefix("verify ok") } }, "memhog output: \(lines(out).suffix(3))")
        #expect(!lines(out).contains { $0.hasPrefix("CORRUPT") })
        // Once more, with every page in and the uffd gone.
        kill(restored, SIGUSR1)
        #expect(waitUntil(30) { lines(out).filter { $0.hasPrefix("verify ok") }.count == 2 })
        expectNoUserfaultfd(restored)
        #expect(f.isAlive(restored))
    }

    /// The counter continues with no gap or repeat after a lazy restore.
    @Test func counterContinues() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("counter.txt")
        let pid = try f.start(Products.path("vos-test-counter"), [out])
        #expect(waitUntil { counterSequence(out).values.count >= 20 })
        try f.checkpoint(pid, f.path("img"))
        let atCheckpoint = counterSequence(out).values.count
        let lazy = try LazyRestore(f, image: f.path("img"))
        let restored = try lazy.pid(f)
        let (status, _) = lazy.finish()
        #expect(status == 0, "vos restore --lazy failed: \(lines(lazy.err))")
        #expect(waitUntil { counterSequence(out).values.count >= atCheckpoint + 20 })
        let seq = counterSequence(out)
        #expect(seq.continuous, "sequence has a gap or repeat: \(seq.values.suffix(40))")
        expectNoUserfaultfd(restored)
    }

    /// A process that forks while its pages are still arriving: the child's copy of the memory
    /// (served through the uffd the fork event gives) and the parent's are both intact.
    @Test func forkDuringLazyPhase() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("fork.txt")
        let script = """
            import hashlib, os, signal, sys, time
            data = bytearray(os.urandom(256 << 20))
            digest = hashlib.sha256(data).hexdigest()
            out = open(sys.argv[1], "a")
            def say(m):
                out.write(m + "\\n"); out.flush()
            wanted = []
            signal.signal(signal.SIGUSR1, lambda s, fr: wanted.append(1))
            say("ready")
            while True:
                if wanted:
                    wanted.clear()
                    child = os.fork()
                    if child == 0:
                        say("child " + ("ok" if hashlib.sha256(data).hexdigest() == digest else "BAD"))
                        os._exit(0)
                    say("parent " + ("ok" if hashlib.sha256(data).hexdigest() == digest else "BAD"))
                    os.waitpid(child, 0)
                    say("reaped")
                time.sleep(0.005)
            """
        let pid = try f.start("/usr/bin/python3", ["-c", script, out])
        #expect(waitUntil(60) { lines(out).contains("ready") })
        try f.checkpoint(pid, f.path("img"))
        let lazy = try LazyRestore(f, image: f.path("img"))
        let restored = try lazy.pid(f)
        kill(restored, SIGUSR1)
        let (status, report) = lazy.finish()
        try #require(status == 0, "vos restore --lazy failed: \(lines(lazy.err))")
        #expect(waitUntil(60) { lines(out).contains("reaped") }, "output: \(lines(out))")
        #expect(lines(out).contains("child ok"), "output: \(lines(out)), report: \(report)")
        #expect(lines(out).contains("parent ok"), "output: \(lines(out))")
        #expect((report["userfaultfds"] as? Int ?? 0) >= 2, "the fork was not seen during the lazy phase: \(report)")
        expectNoUserfaultfd(restored)
    }

    /// Memory unmapped and moved by mremap while pages may still be arriving (UNMAP, REMAP
    /// events): the program's data stays intact.
    @Test func unmapAndRemapDuringLazyPhase() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("remap.txt")
        // glibc's realloc of a large block is mremap(MREMAP_MAYMOVE); `a = None` is a munmap.
        let script = """
            import hashlib, os, signal, sys, time
            b = bytearray(os.urandom(128 << 20))
            a = bytearray(os.urandom(64 << 20))
            n = len(b)
            digest = hashlib.sha256(b).hexdigest()
            out = open(sys.argv[1], "a")
            def say(m):
                out.write(m + "\\n"); out.flush()
            wanted = []
            signal.signal(signal.SIGUSR1, lambda s, fr: wanted.append(1))
            say("ready")
            while True:
                if wanted:
                    wanted.clear()
                    a = None
                    b.extend(bytes(64 << 20))
                    say("b " + ("ok" if hashlib.sha256(memoryview(b)[:n]).hexdigest() == digest else "BAD"))
                time.sleep(0.005)
            """
        let pid = try f.start("/usr/bin/python3", ["-c", script, out])
        #expect(waitUntil(60) { lines(out).contains("ready") })
        try f.checkpoint(pid, f.path("img"))
        let lazy = try LazyRestore(f, image: f.path("img"))
        let restored = try lazy.pid(f)
        kill(restored, SIGUSR1)
        let (status, report) = lazy.finish()
        try #require(status == 0, "vos restore --lazy failed: \(lines(lazy.err))")
        #expect(waitUntil(30) { lines(out).contains { $0.hasPrefix("b ") } })
        // Whether the unmap lands before the background push has copied that block depends on
        // the machine's load (droppedPages counts it when it does): only the data is asserted.
        kill(restored, SIGUSR1)
        #expect(waitUntil(30) { lines(out).filter { $0 == "b ok" }.count == 2 }, "output: \(lines(out)), report: \(report)")
        expectNoUserfaultfd(restored)
    }

    /// A page that fails verification during the lazy phase kills the running process, and vos
    /// says why; it never runs on with zeros where its data was.
    @Test func corruptPageKillsTheProcess() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let out = f.path("memhog.txt")
        let pid = try f.start(Products.path("vos-test-memhog"), ["64"], stdout: out)
        #expect(waitUntil(60) { lines(out).contains { $0.hasPrefix("ready") } })
        let image = f.path("img")
        try f.checkpoint(pid, image)
        // The middle of the page file: memhog's own pages (lazy), far from the eager regions.
        let fd = open(image + "/pages.img", O_RDWR)
        try #require(fd >= 0)
        let size = lseek(fd, 0, SEEK_END)
        var byte: UInt8 = 0
        pread(fd, &byte, 1, size / 2)
        byte ^= 0xff
        pwrite(fd, &byte, 1, size / 2)
        close(fd)
        let lazy = try LazyRestore(f, image: image)
        let restored = try lazy.pid(f)
        kill(restored, SIGUSR1)
        let (status, _) = lazy.finish()
        let err = lines(lazy.err).joined(separator: "\n")
        #expect(status != 0)
        #expect(err.contains("checksum") && err.contains("killed"), "stderr: \(err)")
        #expect(waitUntil { !f.isAlive(restored) }, "the process runs on")
        #expect(!lines(out).contains { $0.hasPrefix("verify ok") })
    }
}
