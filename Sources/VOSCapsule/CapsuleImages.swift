// Checkpoint and restore of whole capsules: the init and every process in its namespaces.
import Foundation
import VOSCheckpoint
import VOSImage
import VOSLinux

public enum CapsuleImages {
    public static func checkpoint(name: String, imageDirectory: String, leaveRunning: Bool, carryBase: Bool = false,
                                  parent: String? = nil, registry: CapsuleRegistry = .init()) throws -> CheckpointSummary {
        let record = try registry.load(name)
        guard record.isRunning else { throw CapsuleError("cannot checkpoint capsule \"\(name)\": it is not running") }
        return try TreeCheckpointer.checkpoint(
            root: record.initPID, imageDirectory: imageDirectory, leaveRunning: leaveRunning,
            capsule: (record.name, record.hostname, record.command, record.tty),
            network: record.network.map { n in
                CheckpointNetwork(info: n, interface: CapsuleNetwork.hostInterface(n), cut: { try CapsuleNetwork.setConnected(n, false) },
                                  reconnect: { try? CapsuleNetwork.setConnected(n, true) })
            },
            filesystem: try checkpointFilesystem(record, registry: registry, carryBase: carryBase, parent: parent))
    }

    /// How a capsule with a root of its own has its upper layer saved: a listed-incremental
    /// archive, whole, or what changed since `upperBase` (a live migration sent the upper layer
    /// already, part `upperBasePart` made with that `snapshot`) or since the image `parent`.
    /// With `carryBase`, a plain archive with the base files added.
    public static func checkpointFilesystem(_ record: CapsuleRecord, registry: CapsuleRegistry, carryBase: Bool = false,
                                            upperBase: (snapshot: String, part: ImageManifest.Part)? = nil,
                                            parent: String? = nil) throws -> CheckpointFilesystem? {
        guard let fs = record.filesystem else {
            if parent != nil { throw CapsuleError("--parent is for a capsule with its own filesystem (vos run --fs)") }
            return nil
        }
        if parent != nil && (carryBase || upperBase != nil) { throw CapsuleError("--parent cannot be combined with --carry-base") }
        let parentSnapshot = try parent.map { try Self.parentSnapshot($0, capsule: record.name) }
        let layers = CapsuleLayers.directory(record.name, registry: registry)
        var c = CheckpointFilesystem(
            info: fs, carryBase: carryBase,
            describe: { (try CapsuleBase.describe($0, fs: fs, layers: layers), CapsuleBase.describeVolumes($0, fs: fs)) },
            archiveUpper: { carried in
                if carryBase { return (try CapsuleLayers.archiveUpper(layers, carrying: carried, base: fs.base), nil) }
                if let upperBase { return (try CapsuleLayers.archiveUpper(layers, snapshot: upperBase.snapshot), nil) }
                // A snapshot of our own, from the parent's state or fresh; kept in the image.
                let snapshot = layers + "/checkpoint-\(getpid()).snar"
                defer { try? FileManager.default.removeItem(atPath: snapshot) }
                try? FileManager.default.removeItem(atPath: snapshot)
                if let parentSnapshot { try PrivateFiles.write(snapshot, parentSnapshot) }
                let archive = try CapsuleLayers.archiveUpper(layers, snapshot: snapshot)
                return (archive, FileManager.default.contents(atPath: snapshot).map { [UInt8]($0) })
            })
        c.upperBase = upperBase?.part
        c.parent = parent.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        return c
    }

    /// The listed-incremental state saved in the image `parent` of capsule `name`.
    static func parentSnapshot(_ parent: String, capsule name: String) throws -> [UInt8] {
        let image = try ImageReader(directory: parent)
        guard let saved = image.tree?.capsule, saved.name == name, saved.filesystem != nil else {
            throw CapsuleError("the parent image \(parent) is not a checkpoint of capsule \"\(name)\" with its own filesystem")
        }
        do { return try image.blob(CapsuleFilesystem.upperSnapshotPart) } catch {
            throw CapsuleError("the parent image \(parent) has no upper-layer snapshot to continue from (made with --carry-base?)")
        }
    }

    /// The images whose upper layers make this one's, oldest first (parents of `--parent`
    /// checkpoints, at most 64 deep).
    static func upperChain(_ image: ImageReader) throws -> [(ImageReader, CapsuleFilesystem)] {
        var chain: [(ImageReader, CapsuleFilesystem)] = []
        var current = image
        while let fs = current.tree?.capsule?.filesystem {
            chain.insert((current, fs), at: 0)
            guard let parent = fs.upperParent else { return chain }
            guard chain.count < 64 else { throw CapsuleError("the image \(image.directory) has more than 64 parents") }
            do { current = try ImageReader(directory: parent) } catch {
                throw CapsuleError("the parent image \(parent) of \(current.directory) cannot be read: \(error)")
            }
        }
        return chain
    }

    /// Recreates the capsule under `newName` (default: its saved name) with the same PIDs inside.
    /// `prepare` runs once its registry directory exists, before any process is rebuilt.
    public static func restore(image: ImageReader, newName: String?, registry: CapsuleRegistry = .init(),
                               prepare: (String) throws -> Void = { _ in },
                               lazy: LazyPageServer? = nil) throws -> (CapsuleRecord, TreeRestoreSummary) {
        guard var info = image.tree?.capsule else { throw CapsuleError("the image at \(image.directory) is not a capsule") }
        // The image may come from another node: this node's bridge and gateway, the saved IP and MAC.
        info.network = try info.network.map(CapsuleNetwork.onThisNode)
        let name = newName ?? info.name
        // A stopped capsule of that name (the one this image was taken from) is taken over: its
        // directory holds the log the restored processes write to.
        let reuse = (try? registry.load(name)).map { !$0.isRunning } ?? false
        if !reuse { try registry.reserve(name) }
        DiePoint.here("capsule-restore-reserved")
        do {
            try prepare(registry.directory(name))
            // The same address and MAC on the bridge, in a new network namespace; its port comes
            // up once the sockets exist, then a gratuitous ARP tells the bridge (probe 13).
            if let n = info.network { try CapsuleNetwork.checkFree(n.address, name: name, registry: registry, restoring: true) }
            let namespaces = info.network == nil ? CapsuleRunner.namespaces : CapsuleRunner.namespaces.union(.net)
            // Its own filesystem: the upper layer from the image, the same base and volumes here.
            let root = try info.filesystem.map { fs -> CapsuleRoot in
                try CapsuleRunner.checkFilesystem(fs)
                try CapsuleBase.check(fs, capsule: name)
                // Its output goes on in the log at /.vos; a new one if it went with `vos rm`.
                if !FileManager.default.fileExists(atPath: registry.logPath(name)) { try PrivateFiles.write(registry.logPath(name), []) }
                let layers = try CapsuleLayers.make(name, registry: registry)
                for (link, linkFS) in try upperChain(image) {
                    if linkFS.upperIsIncremental == true {
                        try CapsuleLayers.extractUpper(try link.blob(CapsuleFilesystem.upperBasePart), into: layers)
                    }
                    try CapsuleLayers.extractUpper(try link.blob(CapsuleFilesystem.upperPart), into: layers)
                }
                return CapsuleRoot(fs, layers: layers, state: registry.directory(name))
            }
            let summary: TreeRestoreSummary
            var record: CapsuleRecord?
            do {
                summary = try TreeRestorer.restore(image: image, namespaces: namespaces, hostname: info.hostname, root: root, prepare: { pid in
                    if let n = info.network { try CapsuleNetwork.attach(n, pid: pid, connect: false) }
                    // Registered before anything runs: should vos die after the release, the
                    // capsule is in the registry; before it, the entry names a dead init.
                    var r = CapsuleRecord(
                        name: name, hostname: info.hostname, command: info.command, initPID: pid,
                        pidNamespace: Namespaces.identity(of: pid, "pid") ?? "", created: Date().timeIntervalSince1970,
                        tty: info.tty ?? false, ip: info.network?.address)
                    r.network = info.network
                    r.filesystem = info.filesystem
                    try registry.save(r)
                    record = r
                }, lazy: lazy)
            } catch {
                if let n = info.network { CapsuleNetwork.detach(n) }
                if root != nil { CapsuleLayers.remove(name, registry: registry) }
                throw error
            }
            guard let record else { throw CapsuleError("the restore of \(name) registered no capsule") }
            if let n = info.network {
                // The processes run already: a failure here leaves them reachable later at worst.
                try? CapsuleNetwork.setConnected(n, true)
                try? CapsuleNetwork.announce(n, pid: summary.rootHostPID)
            }
            return (record, summary)
        } catch {
            if !reuse { try? registry.remove(name) }
            throw error
        }
    }
}
