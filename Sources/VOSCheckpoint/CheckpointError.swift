// Errors of the checkpoint and restore layer: one sentence of what vOS was doing, and the cause.

public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var context: String
    public var cause: String

    public init(_ context: String, cause: any Error) {
        self.context = context
        self.cause = (cause as? CustomStringConvertible)?.description ?? "\(cause)"
    }

    public init(_ context: String, reason: String) {
        self.context = context
        self.cause = reason
    }

    public var description: String { "\(context): \(cause)" }
}

/// Runs `body`; any error it throws is wrapped with `context` (unless already a CheckpointError).
/// With `VOS_TRACE=1` in the environment, each step's duration goes to stderr.
func step<T>(_ context: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    let start = StepTrace.enabled ? Kernel.monotonicNanos() : 0
    defer { if StepTrace.enabled { StepTrace.report(context(), since: start) } }
    do { return try body() } catch let e as CheckpointError { throw e } catch {
        throw CheckpointError(context(), cause: error)
    }
}

enum StepTrace {
    static let enabled = getenvString("VOS_TRACE") == "1"

    static func report(_ what: String, since start: UInt64) {
        let line = "vos: \(what): \(Double(Kernel.monotonicNanos() - start) / 1000) us\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

/// Test-only fault injection: `VOS_FAULT=<point>` makes the named point fail, to prove that a
/// half-done checkpoint or restore leaves nothing behind.
enum FaultInjection {
    static func check(_ point: String) throws {
        if let wanted = getenvString("VOS_FAULT"), wanted == point {
            throw CheckpointError("injected fault at \(point)", reason: "VOS_FAULT=\(point) is set")
        }
    }
}

import Glibc
import VOSLinux

func getenvString(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    return String(cString: v)
}
