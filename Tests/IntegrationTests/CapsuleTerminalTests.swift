// Issue 4, item 6: a program on a capsule's terminal (--tty) is checkpointed and restored, and
// `vos attach` shows it continuing, its input still reaching it.
import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct CapsuleTerminalTests {
    /// `vos attach` in the background: its stdin is a pipe the test writes to, its stdout a file.
    final class Attachment {
        let process = Process()
        let input = Pipe()
        let output: String

        init(_ f: Fixture, name: String, output: String) throws {
            self.output = output
            FileManager.default.createFile(atPath: output, contents: nil)
            process.executableURL = URL(fileURLWithPath: Products.vos)
            process.arguments = ["attach", name]
            process.environment = ProcessInfo.processInfo.environment.merging(["VOS_STATE_DIR": f.path("state")]) { $1 }  // Fixture.vos does this for vos commands run to completion
            process.standardInput = input
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        func type(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
        var text: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

        /// Ctrl-] detaches; the capsule goes on.
        func detach() {
            type("\u{1d}")
            process.waitUntilExit()
        }
    }

    @Test func terminalProgramContinuesAndAttaches() throws {
        let f = try Fixture()
        defer { f.cleanup() }
        // A shell loop on the terminal: ticks, and echoes what is typed at it.
        let script = "tty; i=0; while true; do if read -t 0.1 line; then echo \"got $line\"; fi; echo tick $i; i=$((i+1)); done"
        let run = try f.vos(["run", "--tty", "--name", "term", "--", "/bin/bash", "-c", script])
        try #require(run.status == 0, "vos run: \(run.stderr)")
        let first = try Attachment(f, name: "term", output: f.path("attach1.txt"))
        #expect(waitUntil { first.text.contains("tick 5") })
        #expect(first.text.contains("/dev/pts/0"), "the command's terminal: \(first.text.prefix(60))")
        first.type("hello-before\n")
        #expect(waitUntil { first.text.contains("got hello-before") })
        first.detach()

        let cp = try f.vos(["checkpoint", "term", "--image", f.path("img")])
        try #require(cp.status == 0, "checkpoint: \(cp.stderr)")
        let lastTick = first.text.components(separatedBy: "tick ").compactMap { Int($0.prefix { $0.isNumber }) }.max() ?? 0
        let rs = try f.vos(["restore", f.path("img")])
        try #require(rs.status == 0, "restore: \(rs.stderr)")
        try f.adoptCapsule("term")

        let second = try Attachment(f, name: "term", output: f.path("attach2.txt"))
        #expect(waitUntil {
            second.text.components(separatedBy: "tick ").compactMap { Int($0.prefix { $0.isNumber }) }.contains { $0 > lastTick + 5 }
        }, "no ticks after the restore: \(second.text.suffix(200))")
        second.type("hello-after\n")
        #expect(waitUntil { second.text.contains("got hello-after") }, "input no longer reaches the program: \(second.text.suffix(200))")
        second.detach()
        #expect(try f.vos(["stop", "term"]).status == 0)
    }
}
