// Every migration failure names the step, the node and the cause.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ what: String, reason: String) { description = "\(what): \(reason)" }
    public init(_ what: String, cause: Error) { description = "\(what): \(cause)" }
}
