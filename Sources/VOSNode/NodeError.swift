// A node daemon failure: what the node was doing and why.
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) { self.description = description }
}
