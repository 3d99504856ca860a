// The node daemon: listens for other nodes (TCP, every connection authenticated with the
// cluster key before its first request) and for the local CLI (a unix socket in the root-only
// data directory), keeps the member list fresh with heartbeats, and moves capsules in and out.
import CVOSShim
import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import VOSCapsule
import VOSImage
import VOSMigration

public final class NodeDaemon: @unchecked Sendable {
    let data: NodeData
    let me: NodeIdentity
    let address: String
    let registry: CapsuleRegistry
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var logger: Logger
    let mainThread = MainThread()
    private let lock = NSLock()
    /// The other nodes, by name, with the monotonic time each was last heard from.
    private var members: [String: (info: NodeInfo, seen: UInt64)] = [:]
    /// The cordon flag and the event log, kept across restarts.
    let nodeRegistry: NodeRegistry
    let sampler = LoadSampler()
    private var cordonFlag: Bool
    /// Each member's state at the last heartbeat (heartbeat thread only): changes are events.
    var lastStates: [String: String] = [:]
    /// `--balance`: this node sheds load (set before `run`).
    public var balance: BalancePolicy?
    var balancer: Balancer?
    /// A load-sharing move is under way (on a thread of its own: heartbeats go on meanwhile).
    private var balancingFlag = false
    var isBalancing: Bool {
        get { lock.lock(); defer { lock.unlock() }; return balancingFlag }
        set { lock.lock(); balancingFlag = newValue; lock.unlock() }
    }
    static let heartbeatSeconds = 1.0, unreachableAfterSeconds = 3.5

    public init(data: NodeData, name: String, listen: String, key: ClusterKey) throws {
        guard NodeInfo.split(listen) != nil else { throw NodeError("--listen \"\(listen)\" is not ADDR:PORT") }
        self.data = data
        me = NodeIdentity(name: name, key: key)
        address = listen
        // Capsules of this node live in its own registry, for every library call below too.
        setenv("VOS_STATE_DIR", data.stateDirectory, 1)
        registry = CapsuleRegistry(root: data.stateDirectory + "/capsules")
        logger = Logger(label: "vos.node.\(name)")
        nodeRegistry = try NodeRegistry(directory: data.directory)
        cordonFlag = try nodeRegistry.isCordoned(name)
    }

    /// Binds, joins through `seed` if given, then serves until killed.
    public func run(join seed: String?) throws -> Never {
        // Everything the daemon creates (control socket, pid file, registry entries, logs of
        // capsules that arrive) is its own only, whatever umask it was started with; restored
        // processes get their saved umask back.
        umask(0o077)
        try data.secure()
        // Frames are MiB-sized arrays made and freed continuously: from glibc's heap, not fresh
        // mmaps (each would cost a page fault per 4 KiB and an munmap; measured 3x slower).
        mallopt(M_MMAP_THRESHOLD, 256 << 20)
        mallopt(M_TRIM_THRESHOLD, 1 << 30)
        // Untrimmed, every arena keeps its high-water mark; each connection gets a thread of its
        // own, and glibc gives threads that run at once arenas of their own (up to 8 per CPU):
        // the daemon grew with each new overlap (soak, 200 migrations: still +5 MiB in the last
        // 100). Two arenas hold what a migration needs.
        mallopt(M_ARENA_MAX, 2)
        let (host, port) = NodeInfo.split(address)!
        _ = try Listener.tcp(host: host, port: port, group: group) { [self] link in servePeer(link) }
        if let seed {
            guard let (h, p) = NodeInfo.split(seed) else { throw NodeError("--join \"\(seed)\" is not ADDR:PORT") }
            do {
                let link = try PeerLink.connect(node: h, port: p, as: me, group: group)
                defer { link.close() }
                let reply = try link.request(try Message("join", localInfo()))
                merge(try reply.decode(Members.self).members)
                logger.info("joined the cluster through \(link.peer): \(memberNames())")
            } catch {
                throw NodeError("cannot join the cluster through \(seed): \(error)")
            }
        }
        _ = try Listener.unix(path: data.controlSocket, group: group) { [self] link in serveControl(link) }
        // Root only: the data directory is 0700 and the socket itself 0600 (bound under umask 077).
        if chmod(data.controlSocket, 0o600) != 0 {
            throw NodeError("cannot make the control socket \(data.controlSocket) root-only: chmod(0600): \(String(cString: strerror(errno)))")
        }
        do { try PrivateFiles.writeAtomically(data.pidFile, Array("\(getpid())\n".utf8)) } catch {
            logger.warning("cannot write the pid file \(data.pidFile): \(error)")
        }
        logger.info("node \(me.name) listening on \(address), cluster \(me.key.fingerprint), capsules in \(registry.root)\(cordoned ? " (cordoned)" : "")")
        balancer = balance.map(Balancer.init)
        let beats = Thread { [self] in
            while true {
                sampler.sample(registry)
                heartbeat()
                watchMembership()
                if let balancer { rebalance(balancer) }
                Thread.sleep(forTimeInterval: Self.heartbeatSeconds)
            }
        }
        beats.name = "vos-heartbeat"
        beats.start()
        mainThread.serve()
    }

    // MARK: members

    func localInfo() -> NodeInfo {
        let running = registry.all().filter(\.isRunning).map(\.name)
        // Capsules that arrived since the last sample are listed with no figures yet.
        var loads = sampler.last.filter { $0.state != "running" || running.contains($0.name) }
        for name in running where !loads.contains(where: { $0.name == name }) {
            loads.append(CapsuleLoad(name: name, state: "running", processes: 0, memoryBytes: 0))
        }
        return NodeInfo.local(name: me.name, address: address, capsules: running, loads: loads, cordoned: cordoned)
    }

    var cordoned: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cordonFlag }
        set { lock.lock(); cordonFlag = newValue; lock.unlock() }
    }

    func merge(_ infos: [NodeInfo], heardFrom: String? = nil) {
        let now = monotonicNanos()
        lock.lock()
        defer { lock.unlock() }
        for i in infos where i.name != me.name {
            if let old = members[i.name], i.name != heardFrom {
                // Second-hand news only adds nodes; what a node says of itself refreshes it.
                if old.info.address != i.address { members[i.name] = (i, old.seen) }
            } else {
                members[i.name] = (i, i.name == heardFrom || members[i.name] == nil ? now : members[i.name]!.seen)
            }
        }
    }

    func memberNames() -> String {
        lock.lock()
        defer { lock.unlock() }
        return members.keys.sorted().joined(separator: ", ")
    }

    /// This node first, then the others with how long ago each was heard from.
    func memberList() -> [NodeInfo] {
        let mine = localInfo()  // takes the lock itself (the cordon flag)
        let now = monotonicNanos()
        lock.lock()
        defer { lock.unlock() }
        return [mine] + members.values.sorted { $0.info.name < $1.info.name }.map { m in
            var i = m.info
            i.lastSeenSeconds = Double(now - m.seen) / 1e9
            i.state = i.lastSeenSeconds! > Self.unreachableAfterSeconds ? "unreachable" : "alive"
            return i
        }
    }

    func heartbeat() {
        lock.lock()
        let peers = members.values.map(\.info)
        lock.unlock()
        let mine = memberList()
        for peer in peers {
            guard let (h, p) = peer.hostAndPort else { continue }
            do {
                let link = try PeerLink.connect(node: h, port: p, as: me, group: group)
                defer { link.close() }
                link.timeout = 3
                let reply = try link.request(try Message("heartbeat", Members(members: mine)))
                merge(try reply.decode(Members.self).members, heardFrom: link.peerName)
            } catch {
                logger.debug("heartbeat to \(peer.name) at \(peer.address): \(error)")
            }
        }
    }

    func find(_ name: String) throws -> NodeInfo {
        lock.lock()
        defer { lock.unlock() }
        guard let m = members[name] else {
            throw NodeError("no node named \"\(name)\" in this cluster (known: \(members.keys.sorted().joined(separator: ", ")))")
        }
        return m.info
    }

    // MARK: requests

    func servePeer(_ link: PeerLink) {
        do { try link.authenticate(as: me) } catch {
            logger.warning("\(error)")
            link.close()
            return
        }
        defer { link.close() }
        do {
            let m = try link.receive(expecting: "a request")
            switch m.type {
            case "join":
                let info = try m.decode(NodeInfo.self)
                merge([info], heardFrom: info.name)
                logger.info("node \(info.name) at \(info.address) joined")
                record(ClusterEvent(node: me.name, kind: .nodeJoined, subject: info.name, message: "node \(info.name) at \(info.address) joined"))
                try link.send(try Message("members", Members(members: memberList())))
            case "heartbeat":
                merge(try m.decode(Members.self).members, heardFrom: link.peerName)
                try link.send(try Message("members", Members(members: memberList())))
            case "incoming":
                if cordoned {
                    throw NodeError("node \(me.name) is cordoned: it takes no capsules (`vos uncordon \(me.name)` undoes it)")
                }
                let name = try CapsuleReceiver.receive(m, link: link, registry: registry, onMainThread: mainThread.run) { [logger] in
                    logger.warning("\($0)")
                }
                logger.info("capsule \(name) arrived from \(link.peer) and runs here")
                balancer?.arrived(name)
                announce()
            case "migrate":
                // A drain run by another node moves one of ours.
                let r = try m.decode(MigrateRequest.self)
                guard let mode = MigrationMode(rawValue: r.mode) else { throw NodeError("unknown migration mode \"\(r.mode)\"") }
                let report = try migrateOut(capsule: r.capsule, to: r.to, mode: mode) { e in try? link.send(try Message("progress", e)) }
                try link.send(try Message("migrated", report))
            case "cordon":
                let r = try m.decode(CordonRequest.self)
                let reply = try setCordon(r.cordon, by: r.by ?? link.peerName, reason: r.reason)
                try link.send(try Message("cordon", reply, payload: Array(try JSONEncoder().encode(localInfo()))))
            case "events":
                let r = try m.decode(EventsRequest.self)
                try link.send(try Message("events", EventsReply(events: try nodeRegistry.events(after: r.after[me.name] ?? 0), unreadable: [:])))
            default:
                throw NodeError("unknown request \"\(m.type)\" from \(link.peer)")
            }
        } catch {
            logger.warning("\(link.peer): \(error)")
            link.fail(error)
        }
    }

    func serveControl(_ link: PeerLink) {
        defer { link.close() }
        do {
            let m = try link.receive(expecting: "a request")
            switch m.type {
            case "nodes":
                try link.send(try Message("members", Members(members: memberList())))
            case "migrate":
                let r = try m.decode(MigrateRequest.self)
                guard let mode = MigrationMode(rawValue: r.mode) else { throw NodeError("unknown migration mode \"\(r.mode)\"") }
                let report = try migrateOut(capsule: r.capsule, to: r.to, mode: mode, carryBase: r.carryBase == true) { e in
                    try? link.send(try Message("progress", e))
                }
                try link.send(try Message("migrated", report))
            case "drain":
                let r = try m.decode(DrainRequest.self)
                let report = try drain(r.node) { step in try? link.send(try Message("drain-step", step)) }
                try link.send(try Message("drained", report))
            case "cordon":
                let r = try m.decode(CordonRequest.self)
                try link.send(try Message("cordon", try cordon(r).reply))
            case "events":
                let r = try m.decode(EventsRequest.self)
                try link.send(try Message("events", clusterEvents(after: r.after)))
            default:
                throw NodeError("unknown request \"\(m.type)\"")
            }
        } catch {
            logger.warning("\(error)")
            link.fail(error)
        }
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
