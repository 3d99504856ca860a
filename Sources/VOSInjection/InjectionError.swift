// Injection has two ways to fail: the injection itself broke (the thread did not come back to
// us as expected), or the injected call ran and returned -errno. The second is a SyscallError
// whose subject says "injected".
import VOSLinux

public struct InjectionError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var tid: PID
    public var reason: String

    public var description: String { "injecting \(call) into tid \(tid) failed: \(reason)" }
}
