// A capsule's own network (`vos run --net`): a network namespace with loopback up and eth0, one
// end of a veth pair whose other end is a port of the vOS bridge on the host (created on first
// use, `stp_state 0`, `forward_delay 0`, the gateway address on it). eth0 has the capsule's IP,
// a MAC derived from it (the IP and MAC move together, so peers never hold a stale ARP entry:
// probe 13) and a default route via the bridge; IPv6 is off before any interface exists.
// Interfaces are made with iproute2's `ip`, run inside the namespace through `nsenter`.
import Foundation
import Glibc
import VOSImage
import VOSLinux

public enum CapsuleNetwork {
    /// The bridge and its address: $VOS_BRIDGE (default vos0), $VOS_BRIDGE_ADDRESS (default 10.200.0.1/24).
    public static func bridge() throws -> (name: String, gateway: String, prefixLength: Int) {
        let env = ProcessInfo.processInfo.environment
        let name = env["VOS_BRIDGE"] ?? "vos0"
        let cidr = env["VOS_BRIDGE_ADDRESS"] ?? "10.200.0.1/24"
        guard let (address, prefix) = parse(cidr) else {
            throw CapsuleError("VOS_BRIDGE_ADDRESS \"\(cidr)\" is not an IPv4 ADDR/PREFIX")
        }
        return (name, format(address), prefix)
    }

    /// The network of a new capsule: `requested` ("ADDR/PREFIX" or "ADDR", in the bridge's subnet)
    /// or the first free address of the subnet. An address another running capsule has is an error.
    public static func plan(requested: String?, name: String, registry: CapsuleRegistry) throws -> CapsuleNetworkInfo {
        let br = try bridge()
        guard let gateway = parse(br.gateway + "/\(br.prefixLength)")?.address else {
            throw CapsuleError("bad bridge address \(br.gateway)")
        }
        let mask: UInt32 = br.prefixLength == 0 ? 0 : ~0 << (32 - UInt32(br.prefixLength))
        let address: UInt32
        if let requested {
            guard let (a, prefix) = parse(requested.contains("/") ? requested : requested + "/\(br.prefixLength)")
            else {
                throw CapsuleError("--ip \"\(requested)\" is not an IPv4 address (ADDR or ADDR/PREFIX)")
            }
            guard prefix == br.prefixLength, a & mask == gateway & mask, a != gateway, a & ~mask != 0,
                a & ~mask != ~mask
            else {
                throw CapsuleError(
                    "--ip \(requested) is not a host address of the bridge \(br.name)'s subnet "
                        + "\(format(gateway & mask))/\(br.prefixLength)"
                )
            }
            try checkFree(format(a), name: name, registry: registry)
            address = a
        } else {
            let used = Set(inUse(registry: registry, except: name).keys)
            guard
                let free = (1..<max(2, ~mask)).lazy.map({ (gateway & mask) | $0 }).first(where: {
                    $0 != gateway && !used.contains(format($0))
                })
            else {
                throw CapsuleError(
                    "no free address left in the bridge \(br.name)'s subnet "
                        + "\(format(gateway & mask))/\(br.prefixLength)"
                )
            }
            address = free
        }
        let mac =
            "02:00:"
            + [24, 16, 8, 0].map { String(format: "%02x", (address >> UInt32($0)) & 0xff) }.joined(separator: ":")
        return CapsuleNetworkInfo(
            address: format(address), prefixLength: br.prefixLength, mac: mac, bridge: br.name, gateway: br.gateway)
    }

    /// A saved network on this node's bridge: the same address, prefix and MAC (they move together,
    /// probe 13), the bridge and gateway of this node (a capsule checkpointed on another machine
    /// of the LAN routes through the node it now runs on). The address must be in this bridge's subnet.
    public static func onThisNode(_ saved: CapsuleNetworkInfo) throws -> CapsuleNetworkInfo {
        let br = try bridge()
        guard let gateway = parse(br.gateway + "/\(br.prefixLength)")?.address,
            let address = parse(saved.address + "/\(saved.prefixLength)")?.address
        else { throw CapsuleError("bad address \(saved.address)/\(saved.prefixLength) or bridge address \(br.gateway)") }
        let mask: UInt32 = br.prefixLength == 0 ? 0 : ~0 << (32 - UInt32(br.prefixLength))
        guard saved.prefixLength == br.prefixLength, address & mask == gateway & mask, address != gateway else {
            throw CapsuleError(
                "the capsule's address \(saved.address)/\(saved.prefixLength) (kept by a restore) is not a host "
                    + "address of the bridge \(br.name)'s subnet \(format(gateway & mask))/\(br.prefixLength)")
        }
        var local = saved
        local.bridge = br.name
        local.gateway = br.gateway
        return local
    }

    /// Addresses of running capsules with a network, other than `except`: address → capsule name.
    static func inUse(registry: CapsuleRegistry, except: String) -> [String: String] {
        var out: [String: String] = [:]
        for r in registry.all() where r.name != except && r.isRunning {
            if let n = r.network { out[n.address] = r.name }
        }
        return out
    }

    /// `restoring`: the error explains that an image keeps its address.
    public static func checkFree(_ address: String, name: String, registry: CapsuleRegistry, restoring: Bool = false)
        throws
    {
        guard let holder = inUse(registry: registry, except: name)[address] else { return }
        if restoring {
            throw CapsuleError(
                "cannot restore capsule \"\(name)\": its address \(address) is in use by the running capsule "
                    + "\"\(holder)\" "
                    + "(a restored capsule keeps its address and MAC); stop \"\(holder)\" first")
        }
        throw CapsuleError(
            "address \(address) is in use by the running capsule \"\(holder)\"; pick another with --ip or stop it")
    }

    /// The host end of the capsule's veth: named for its address (one running capsule per address).
    public static func hostInterface(_ n: CapsuleNetworkInfo) -> String {
        "vh" + (parse(n.address + "/32").map { String(format: "%08x", $0.address) } ?? "0")
    }

    /// Gives the network namespace of `pid` its eth0, loopback, address and route. With `connect`
    /// false the host end stays down (a restore connects it once its sockets exist: a segment
    /// reaching the capsule before them would be answered with a reset, probe 13).
    public static func attach(_ n: CapsuleNetworkInfo, pid: PID, connect: Bool) throws {
        try ensureBridge(n)
        try disableIPv6(pid: pid)
        let host = hostInterface(n)
        // Left by a capsule whose namespace is going away (the kernel removes it asynchronously).
        if (try? ip(["link", "show", host])) != nil { try? ip(["link", "del", host]) }
        try ip(["link", "add", host, "type", "veth", "peer", "name", "eth0", "address", n.mac, "netns", String(pid)])
        do {
            try ip(["link", "set", host, "master", n.bridge] + (connect ? ["up"] : []))
            try ip(
                ["-batch", "-"], in: pid,
                input: """
                    link set lo up
                    addr add \(n.address)/\(n.prefixLength) dev eth0
                    link set eth0 up
                    route add default via \(n.gateway) dev eth0 onlink

                    """)
        } catch {
            try? ip(["link", "del", host])
            throw error
        }
    }

    /// Host end up (connect) or down (cut: the capsule's kernel no longer sees or acknowledges anything).
    public static func setConnected(_ n: CapsuleNetworkInfo, _ up: Bool) throws {
        try setInterface(hostInterface(n), up: up)
    }

    public static func setInterface(_ name: String, up: Bool) throws {
        try ip(["link", "set", name, up ? "up" : "down"])
    }

    /// `vos stop` and `vos rm`: removes the veth of capsule `name` unless another running capsule
    /// has its address now (restored from its image: the veth is named for the address).
    public static func release(_ n: CapsuleNetworkInfo, of name: String, registry: CapsuleRegistry = .init()) {
        if inUse(registry: registry, except: name)[n.address] == nil { detach(n) }
    }

    /// Removes the capsule's veth (both ends); nothing to do when its namespace took it along.
    public static func detach(_ n: CapsuleNetworkInfo) {
        let host = hostInterface(n)
        if (try? ip(["link", "show", host])) != nil { try? ip(["link", "del", host]) }
    }

    static func ensureBridge(_ n: CapsuleNetworkInfo) throws {
        if (try? ip(["link", "show", n.bridge])) != nil { return }
        do { try ip(["link", "add", n.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]) } catch {
            if (try? ip(["link", "show", n.bridge])) == nil { throw error }  // else made meanwhile by another vos
            return
        }
        try ip(["addr", "add", "\(n.gateway)/\(n.prefixLength)", "dev", n.bridge])
        try ip(["link", "set", n.bridge, "up"])
    }

    /// net.ipv6.conf.{all,default}.disable_ipv6 = 1 in the capsule's namespace, before eth0
    /// exists there (else DAD and MLD frames announce the MAC early). /proc/sys/net follows the
    /// namespace of the opener, so the files are opened from inside it. No IPv6 at all is fine.
    static func disableIPv6(pid: PID) throws {
        let ns = try NetworkNamespace.open(of: pid)
        defer { close(ns) }
        try NetworkNamespace.withEntered(ns) {
            for which in ["all", "default"] {
                let fd = open("/proc/sys/net/ipv6/conf/\(which)/disable_ipv6", O_WRONLY | O_CLOEXEC)
                if fd < 0 { continue }
                _ = write(fd, "1", 1)
                close(fd)
            }
        }
    }

    /// A gratuitous ARP from eth0 (who-has ADDR tell ADDR, broadcast from the capsule's MAC), sent
    /// after the sockets are restored and the port is up, so that bridges learn the new port at once.
    public static func announce(_ n: CapsuleNetworkInfo, pid: PID) throws {
        guard let address = parse(n.address + "/32")?.address else { return }
        let mac = n.mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        guard mac.count == 6 else { return }
        let ip4 = [24, 16, 8, 0].map { UInt8((address >> UInt32($0)) & 0xff) }
        let frame: [UInt8] =
            [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x06]  // Ethernet, ARP
            + [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01] + mac + ip4 + [UInt8](repeating: 0, count: 6) + ip4
        waitForwarding(n)
        // The window probes sent when the sockets left repair mode (port still down) left the
        // capsule's neighbour entries INCOMPLETE, their next ARP probe up to 1 s away: the first
        // answers would wait for it. Without them the first reply resolves at once.
        try? ip(["neigh", "flush", "dev", "eth0"], in: pid)
        let ns = try NetworkNamespace.open(of: pid)
        defer { close(ns) }
        try NetworkNamespace.withEntered(ns) {
            let index = if_nametoindex("eth0")
            guard index > 0 else { throw CapsuleError("the capsule has no eth0 to announce its address on") }
            let sock = try Socket.make(family: AF_PACKET, type: Int32(SOCK_RAW.rawValue), protocol: 0)
            defer { close(sock) }
            // struct sockaddr_ll: family, protocol (ETH_P_ARP, big-endian), ifindex, hatype, pkttype, halen, addr[8].
            let i = UInt32(index)
            let to: [UInt8] =
                [
                    UInt8(AF_PACKET), 0, 0x08, 0x06, UInt8(i & 0xff), UInt8(i >> 8 & 0xff), UInt8(i >> 16 & 0xff),
                    UInt8(i >> 24),
                    1, 0, 0, 6,
                ] + [UInt8](repeating: 0xff, count: 6) + [0, 0]
            // The carrier of a veth whose other end just came up may lag a little.
            for attempt in 0..<50 {
                do { return try Socket.sendTo(sock, frame, to, what: "a gratuitous ARP for \(n.address)") } catch {
                    if attempt == 49 { throw error }
                    usleep(2000)
                }
            }
        }
    }

    /// Waits (at most ~1 s) until the host end has its carrier and forwards on the bridge: until
    /// then the bridge drops what eth0 sends, and a lost gratuitous ARP leaves the capsule
    /// unreachable for peers on the LAN until their neighbour entry fails (probe 13: ~1-2 minutes).
    static func waitForwarding(_ n: CapsuleNetworkInfo) {
        for _ in 0..<200 {
            if let s = try? ip(["-d", "link", "show", hostInterface(n)]), s.contains("LOWER_UP"),
                s.contains("state forwarding")
            {
                return
            }
            usleep(5000)
        }
    }

    /// Runs `ip ARGS` (inside the network namespace of `pid` when given); its stderr is the error.
    @discardableResult
    static func ip(_ args: [String], in pid: PID? = nil, input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: pid == nil ? "/usr/sbin/ip" : "/usr/bin/nsenter")
        if !FileManager.default.fileExists(atPath: p.executableURL!.path) {
            p.executableURL = URL(fileURLWithPath: pid == nil ? "/sbin/ip" : "/bin/nsenter")
        }
        p.arguments = (pid.map { ["--net=/proc/\($0)/ns/net", "ip"] } ?? []) + args
        let out = Pipe()
        let err = Pipe()
        let inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input == nil ? FileHandle(forReadingAtPath: "/dev/null") : inp
        do { try p.run() } catch { throw CapsuleError("cannot run ip (iproute2 is needed for --net): \(error)") }
        if let input {
            inp.fileHandleForWriting.write(Data(input.utf8))
            try? inp.fileHandleForWriting.close()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let text = String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw CapsuleError(
                "`ip \(args.joined(separator: " "))`\(pid.map { " in the network namespace of pid \($0)" } ?? "")"
                    + " failed: \(text)"
            )
        }
        return String(decoding: o, as: UTF8.self)
    }

    /// "10.200.0.5/24" → (address as a host-order integer, 24).
    static func parse(_ cidr: String) -> (address: UInt32, prefix: Int)? {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let prefix = Int(parts[1]), (0...32).contains(prefix) else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return (octets.reduce(0) { $0 << 8 | UInt32($1) }, prefix)
    }

    static func format(_ a: UInt32) -> String {
        [24, 16, 8, 0].map { String((a >> UInt32($0)) & 0xff) }.joined(separator: ".")
    }
}
