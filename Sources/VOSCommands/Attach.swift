// `vos attach NAME`: connect this terminal to a capsule started with --tty (also after a
// restore). Ctrl-] detaches; the capsule goes on.
import ArgumentParser
import Foundation
import Glibc
import VOSCapsule

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to the terminal of a capsule started with --tty (Ctrl-] detaches).")

    @Argument(help: "The capsule.") var name: String

    static let detachKey: UInt8 = 0x1d  // Ctrl-]

    func run() throws {
        let registry = CapsuleRegistry()
        let record = try registry.load(name)
        guard record.tty else { throw CleanError("capsule \"\(name)\" has no terminal (it was not started with --tty); see `vos logs \(name)`") }
        guard record.isRunning else { throw CleanError("capsule \"\(name)\" is not running") }
        let dir = registry.directory(name)
        let output = open(CapsuleTerminal.outputPath(dir), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let input = open(CapsuleTerminal.inputPath(dir), O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard output >= 0, input >= 0 else {
            throw CleanError("cannot attach to capsule \"\(name)\": the terminal FIFOs in \(dir): \(String(cString: strerror(errno)))")
        }
        let restoreTerminal = Self.makeRaw(0)
        defer { restoreTerminal?() }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var stdinOpen = true
        while record.isRunning {
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0), pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 200) < 0 && errno != EINTR { break }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
                if n > 0 { _ = buffer.withUnsafeBytes { write(1, $0.baseAddress, n) } }
            }
            if fds[1].revents & Int16(POLLIN | POLLHUP) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n <= 0 { stdinOpen = false; continue }
                if let k = buffer[0..<n].firstIndex(of: Self.detachKey) {
                    if k > 0 { _ = buffer.withUnsafeBytes { write(input, $0.baseAddress, k) } }
                    FileHandle.standardError.write(Data("\r\ndetached from \(name)\r\n".utf8))
                    return
                }
                _ = buffer.withUnsafeBytes { write(input, $0.baseAddress, n) }
            }
        }
    }

    /// Raw mode on a terminal stdin; returns how to undo it (nil when stdin is no terminal).
    static func makeRaw(_ fd: Int32) -> (() -> Void)? {
        var saved = termios()
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
        return { _ = tcsetattr(fd, TCSANOW, &saved) }
    }
}
