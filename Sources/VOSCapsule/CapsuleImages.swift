// Checkpoint and restore of whole capsules: the init and every process in its namespaces.
import Foundation
import VOSCheckpoint
import VOSImage
import VOSLinux

public enum CapsuleImages {
    public static func checkpoint(name: String, imageDirectory: String, leaveRunning: Bool, carryBase: Bool = false,
                                  registry: CapsuleRegistry = .init()) throws -> CheckpointSummary {
        let record = try registry.load(name)
        guard record.isRunning else { throw CapsuleError("cannot checkpoint capsule \"\(name)\": it is not running") }
        return try TreeCheckpointer.checkpoint(
            root: record.initPID, imageDirectory: imageDirectory, leaveRunning: leaveRunning,
            capsule: (record.name, record.hostname, record.command, record.tty),
            network: record.network.map { n in
                CheckpointNetwork(info: n, interface: CapsuleNetwork.hostInterface(n), cut: { try CapsuleNetwork.setConnected(n, false) },
                                  reconnect: { try? CapsuleNetwork.setConnected(n, true) })
            },
            filesystem: checkpointFilesystem(record, registry: registry, carryBase: carryBase))
    }

    /// How a capsule with a root of its own has its upper layer saved.
    /// `upperBase`: a live migration sent the upper layer already (part `upperBasePart`, made
    /// with the listed-incremental `snapshot`): the image then holds only what changed since.
    public static func checkpointFilesystem(_ record: CapsuleRecord, registry: CapsuleRegistry, carryBase: Bool = false,
                                            upperBase: (snapshot: String, part: ImageManifest.Part)? = nil) -> CheckpointFilesystem? {
        record.filesystem.map { fs in
            let layers = CapsuleLayers.directory(record.name, registry: registry)
            var c = CheckpointFilesystem(
                info: fs, carryBase: carryBase,
                describe: { (try CapsuleBase.describe($0, fs: fs, layers: layers), CapsuleBase.describeVolumes($0, fs: fs)) },
                archiveUpper: { try CapsuleLayers.archiveUpper(layers, carrying: $0, base: fs.base, snapshot: upperBase?.snapshot) })
            c.upperBase = upperBase?.part
            return c
        }
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
                let incremental = fs.upperIsIncremental == true
                if incremental { try CapsuleLayers.extractUpper(try image.blob(CapsuleFilesystem.upperBasePart), into: layers, incremental: true) }
                try CapsuleLayers.extractUpper(try image.blob(CapsuleFilesystem.upperPart), into: layers, incremental: incremental)
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
