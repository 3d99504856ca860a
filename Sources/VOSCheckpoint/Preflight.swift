// `vos check`: whether processes can be checkpointed and moved, told without stopping them.
// Everything is read from /proc and from vos's own duplicates of their sockets (pidfd_getfd),
// so the processes never notice.
import Glibc
import VOSImage
import VOSLinux

public struct Blocker: Codable, Sendable, Equatable {
    public enum Scope: String, Codable, Sendable {
        /// vos cannot checkpoint it at all.
        case checkpoint
        /// It checkpoints and restores here, but cannot run on another machine.
        case move
    }
    public var pid: PID
    /// What it concerns: "fd 5", "mapping /dev/dri/card0", "the process".
    public var resource: String
    public var problem: String
    public var scope: Scope
}

public enum Preflight {
    /// Blockers of the live processes `pids`. `ownAddress`: the capsule's own IP, which moves
    /// with it (nil: the processes use the host's addresses).
    public static func check(pids: [PID], ownAddress: String?) -> [Blocker] {
        var found: [Blocker] = []
        // Every socket the processes hold ("socket:[inode]"): the other end of a loopback
        // connection among them moves along.
        let heldSockets = Set(pids.flatMap { pid in
            ((try? ProcFile.numericEntries("/proc/\(pid)/fd")) ?? []).compactMap { try? ProcFile.link("/proc/\(pid)/fd/\($0)") }
        }.filter { $0.hasPrefix("socket:[") })
        for pid in pids {
            if let tracer = FrozenProcess.tracer(of: pid) {
                found.append(Blocker(pid: pid, resource: "the process", problem: "it is traced by pid \(tracer) (a debugger, or a checkpoint under way)", scope: .checkpoint))
            }
            let files: [OpenFile]
            do { files = try FileTable.list(pid: pid) } catch {
                found.append(Blocker(pid: pid, resource: "the process", problem: "its open files cannot be read: \(error)", scope: .checkpoint))
                continue
            }
            for f in files {
                if FileKinds.kind(for: f) == nil {
                    found.append(Blocker(pid: pid, resource: "fd \(f.fd)", problem: "\(FileKinds.describe(f)), which vOS does not support yet", scope: .checkpoint))
                } else if let connection = tcpConnection(pid: pid, file: f) {
                    let name = "TCP connection \(Socket.describe(connection.local)) → \(connection.peer.map(Socket.describe) ?? "?")"
                    if isLoopback(connection.local) {
                        if let peer = connection.peer, !heldSockets.contains(loopbackPeerInode(pid: pid, local: connection.local, peer: peer) ?? "") {
                            found.append(Blocker(pid: pid, resource: "fd \(f.fd)",
                                                 problem: "\(name): its peer is a process outside what is checked, which does not move with it", scope: .move))
                        }
                    } else if ownAddress == nil || !Socket.describe(connection.local).hasPrefix(ownAddress! + ":") {
                        found.append(Blocker(pid: pid, resource: "fd \(f.fd)",
                                             problem: "\(name): its address belongs to this machine, not to a capsule (only a --net capsule's address moves with it)",
                                             scope: .move))
                    }
                }
            }
            for device in mappedDevices(pid: pid) {
                found.append(Blocker(pid: pid, resource: "mapping \(device)", problem: "device memory, which vOS cannot save", scope: .checkpoint))
            }
        }
        return found
    }

    /// The addresses of an established TCP connection behind `file`, from a duplicate of it.
    static func tcpConnection(pid: PID, file: OpenFile) -> (local: [UInt8], peer: [UInt8]?)? {
        guard InetSocket.state(pid: pid, link: file.link, proto: "tcp") == TCPSocket.established,
            let pidfd = try? Kernel.pidfdOpen(pid)
        else { return nil }
        defer { try? pidfd.close() }
        guard let local = try? Kernel.pidfdGetfd(pidfd, file.fd, pid: pid) else { return nil }
        defer { try? local.close() }
        guard let address = try? Socket.localAddress(local.rawValue) else { return nil }
        return (address, try? Socket.peerAddress(local.rawValue))
    }

    static func isLoopback(_ address: [UInt8]) -> Bool {
        let family = address.count >= 2 ? Int32(address[0]) | Int32(address[1]) << 8 : 0
        if family == AF_INET { return address.count >= 8 && address[4] == 127 }
        guard family == AF_INET6 && address.count >= 24 else { return false }
        let a = Array(address[8..<24])
        return a == [UInt8](repeating: 0, count: 15) + [1] || (a.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] && a[12] == 127)
    }

    /// "socket:[inode]" of the other end of a loopback connection: the socket in the process's
    /// network namespace whose local port is our peer's and whose remote port is ours.
    static func loopbackPeerInode(pid: PID, local: [UInt8], peer: [UInt8]) -> String? {
        func hex(_ port: Int) -> String {
            let digits = String(port, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }
        let mine = hex(InetSocket.port(local)), theirs = hex(InetSocket.port(peer))
        for table in ["tcp", "tcp6"] {
            for line in ((try? ProcFile.text("/proc/\(pid)/net/\(table)")) ?? "").split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                if f.count > 9 && f[1].hasSuffix(":" + theirs) && f[2].hasSuffix(":" + mine) { return "socket:[\(f[9])]" }
            }
        }
        return nil
    }

    /// Character or block devices the process maps, except the ones whose mapping is plain memory.
    static func mappedDevices(pid: PID) -> [String] {
        let ordinary: Set<String> = ["/dev/zero", "/dev/null"]
        let regions = (try? MemoryMap.readRanges(pid: pid)) ?? []
        let devices = regions.map(\.path).filter { $0.hasPrefix("/dev/") && !$0.hasPrefix("/dev/shm/") && !ordinary.contains($0) }
        var seen = Set<String>()
        return devices.filter { seen.insert($0).inserted }
    }
}
