// A capsule's network as images and the registry record it.
/// A capsule's network (`vos run --net`): eth0 with `address`/`prefixLength` and `mac`, a veth to
/// the host bridge `bridge`, the default route via `gateway`.
public struct CapsuleNetworkInfo: Codable, Sendable, Equatable {
    public var address: String
    public var prefixLength: Int
    public var mac: String
    public var bridge: String
    public var gateway: String

    public init(address: String, prefixLength: Int, mac: String, bridge: String, gateway: String) {
        self.address = address
        self.prefixLength = prefixLength
        self.mac = mac
        self.bridge = bridge
        self.gateway = gateway
    }
}
