// The error every kernel call in vOS throws: which call, on what, and the errno it returned.
import CVOSShim
import Glibc
import SystemPackage

public struct SyscallError: Error, CustomStringConvertible, Sendable {
    /// The call, with its variant: "ptrace(PTRACE_SEIZE)".
    public var call: String
    public var errno: Errno
    /// What the call acted on: "pid 4242", "/proc/4242/maps".
    public var subject: String

    public init(call: String, errno: Errno, subject: String) {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    public var description: String {
        "\(call) on \(subject): \(errno) (errno \(errno.rawValue))"
    }
}

/// Runs a libc call that returns -1 and sets errno on failure; retries EINTR.
@discardableResult
@inline(__always)
public func checked<T: BinaryInteger>(
    _ call: @autoclosure () -> String, _ subject: @autoclosure () -> String, _ body: () -> T
) throws(SyscallError) -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = vos_errno()
        if e == EINTR { continue }
        throw SyscallError(call: call(), errno: Errno(rawValue: e), subject: subject())
    }
}
