// System V IPC of a capsule (its own IPC namespace): every shared memory segment (contents in a
// blob), semaphore set and message queue is saved with its id and key, and recreated in the
// restored capsule's namespace under the same id (shm_next_id, sem_next_id, msg_next_id) before
// its processes are rebuilt; each process then attaches its segments again with an injected
// shmat at the saved address. vos reads and makes the objects from a thread of its own that
// joined the namespace (NamespaceThread).
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum SysVObjects {
    /// The objects of `root`'s IPC namespace; nil when it is vos's own (the host's objects are
    /// not the tree's: its segments are then saved as plain shared memory, MappedObjects).
    /// `innerPIDs` turns host PIDs into the tree's.
    static func save(root: PID, writer: ImageWriter, innerPIDs: [PID: PID]) throws -> IPCRecord? {
        guard let theirs = Namespaces.identity(of: root, "ipc"), theirs != Namespaces.identity(of: getpid(), "ipc") else { return nil }
        return try NamespaceThread.run(in: root, "ipc", .ipc) {
            let inner = { (host: Int32) -> PID in innerPIDs[PID(host)] ?? 0 }
            var segments: [SysVSegment] = []
            for (id, ds) in try SysVIPC.segments() {
                let size = UInt64(ds.shm_segsz)
                let contents = try step("reading System V segment \(id)") { try read(segment: id, size: size) }
                let blob = writer.nextBlobName()
                try writer.writePart(blob, contents)
                segments.append(SysVSegment(
                    owner: owner(id, ds.shm_perm), size: size, blob: blob, removed: ds.shm_perm.mode & 0o1000 != 0,
                    attachCount: UInt64(ds.shm_nattch), creatorPID: inner(ds.shm_cpid), lastPID: inner(ds.shm_lpid)))
            }
            var sets: [SysVSemaphoreSet] = []
            for (id, ds) in try SysVIPC.semaphoreSets() {
                let count = Int(ds.sem_nsems)
                let values = try SysVIPC.values(semaphoreSet: id, count: count)
                let pids = try (0..<count).map { try inner(SysVIPC.lastPID(semaphoreSet: id, index: $0)) }
                sets.append(SysVSemaphoreSet(owner: owner(id, ds.sem_perm), values: values, lastPIDs: pids))
            }
            var queues: [SysVMessageQueue] = []
            for (id, ds) in try SysVIPC.messageQueues() {
                let messages = try (0..<Int(ds.msg_qnum)).map { i in
                    let m = try SysVIPC.peekMessage(queue: id, index: i, maxBytes: max(Int(ds.msg_qbytes), 8192))
                    return SysVMessage(type: m.type, data: m.data)
                }
                queues.append(SysVMessageQueue(owner: owner(id, ds.msg_perm), maxBytes: UInt64(ds.msg_qbytes), messages: messages))
            }
            return IPCRecord(segments: segments, semaphoreSets: sets, messageQueues: queues)
        }
    }

    static func owner(_ id: Int32, _ perm: ipc_perm) -> SysVOwner {
        SysVOwner(id: id, key: perm.__key, uid: perm.uid, gid: perm.gid, mode: UInt32(perm.mode) & 0o777)
    }

    /// A segment's contents through a read-only attachment of vos's: read as a file through
    /// /proc/self/map_files, so pages never touched read as zeros without being allocated.
    static func read(segment id: Int32, size: UInt64) throws -> [UInt8] {
        try SysVIPC.withAttached(segment: id, size: size, readOnly: true) { buffer in
            guard let base = buffer.baseAddress, size > 0 else { return [] }
            let start = UInt(bitPattern: base)
            let end = start + UInt((size + pageSize - 1) & ~(pageSize - 1))
            let path = "/proc/self/map_files/\(String(start, radix: 16))-\(String(end, radix: 16))"
            let fd = try checked("open", "\(path) (System V segment \(id))") { open(path, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            return try RegularFile.readWhole(fd, path: "System V segment \(id)")
        }
    }

    /// Recreates every object in the IPC namespace of `root` (the restored capsule's init, a
    /// fresh namespace): same ids, keys, owners, modes, contents, values and messages.
    static func restore(_ ipc: IPCRecord, image: ImageReader, root: PID) throws {
        try NamespaceThread.run(in: root, "ipc", .ipc) {
            for s in ipc.segments {
                let o = s.owner
                try step("recreating System V segment \(o.id) (key \(SysVIPC.hex(o.key)))") {
                    try setNextID("shm_next_id", o.id)
                    let id = try SysVIPC.shmget(key: o.key, size: s.size, flags: IPC_CREAT | IPC_EXCL | Int32(o.mode & 0o777))
                    try sameID(id, o)
                    let contents = try image.blob(s.blob)
                    guard contents.count == Int(s.size) else {
                        throw ImageError.inconsistent("\(s.blob) holds \(contents.count) bytes for a segment of \(s.size)")
                    }
                    try SysVIPC.withAttached(segment: id, size: s.size, readOnly: false) { buffer in
                        // Only pages with data: the others stay unallocated, as they were.
                        contents.withUnsafeBytes { src in
                            var at = 0
                            while at < src.count {
                                let n = min(Int(pageSize), src.count - at)
                                let page = UnsafeRawBufferPointer(rebasing: src[at..<(at + n)])
                                if page.contains(where: { $0 != 0 }) {
                                    UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + n)]).copyMemory(from: page)
                                }
                                at += n
                            }
                        }
                    }
                    try SysVIPC.setOwner(segment: id, uid: o.uid, gid: o.gid, mode: o.mode)
                }
            }
            for s in ipc.semaphoreSets {
                let o = s.owner
                try step("recreating System V semaphore set \(o.id) (key \(SysVIPC.hex(o.key)))") {
                    try setNextID("sem_next_id", o.id)
                    let id = try SysVIPC.semget(key: o.key, count: s.values.count, flags: IPC_CREAT | IPC_EXCL | Int32(o.mode & 0o777))
                    try sameID(id, o)
                    try SysVIPC.setValues(semaphoreSet: id, s.values)
                    try SysVIPC.setOwner(semaphoreSet: id, uid: o.uid, gid: o.gid, mode: o.mode)
                }
            }
            for q in ipc.messageQueues {
                let o = q.owner
                try step("recreating System V message queue \(o.id) (key \(SysVIPC.hex(o.key)))") {
                    try setNextID("msg_next_id", o.id)
                    let id = try SysVIPC.msgget(key: o.key, flags: IPC_CREAT | IPC_EXCL | Int32(o.mode & 0o777))
                    try sameID(id, o)
                    // Its size limit first: the messages may need more than the default.
                    try SysVIPC.setOwner(queue: id, uid: o.uid, gid: o.gid, mode: o.mode, maxBytes: q.maxBytes)
                    for m in q.messages { try SysVIPC.send(queue: id, type: m.type, data: m.data) }
                }
            }
        }
    }

    /// The id the next object of a kind gets in the calling thread's IPC namespace
    /// (/proc/sys/kernel/{shm,sem,msg}_next_id: the sysctl of the opener's namespace; Linux 3.19).
    static func setNextID(_ name: String, _ id: Int32) throws {
        let path = "/proc/sys/kernel/\(name)"
        let fd = try checked("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let text = "\(id)\n"
        try checked("write", "\(path) (\(id))") { text.withCString { write(fd, $0, strlen($0)) } }
    }

    static func sameID(_ id: Int32, _ o: SysVOwner) throws {
        guard id == o.id else { throw CheckpointError("cannot recreate System V object \(o.id)", reason: "the kernel gave it id \(id)") }
    }

    /// The last process to operate on each semaphore (`GETPID`): an injected `semop` that adds
    /// and takes back 1 in one atomic call, made by the stub that will become that process.
    static func setLastPIDs(_ ipc: IPCRecord, stubs: [PID: Tracee]) throws {
        for s in ipc.semaphoreSets {
            for (index, pid) in s.lastPIDs.enumerated() where pid != 0 {
                guard let stub = stubs[pid], index < s.values.count else { continue }
                let up: Int16 = s.values[index] < 32767 ? 1 : -1
                let noWait = Int16(IPC_NOWAIT)
                let ops = [UInt16(index), UInt16(bitPattern: up), UInt16(bitPattern: noWait),
                           UInt16(index), UInt16(bitPattern: -up), UInt16(bitPattern: noWait)]
                let task = try TreeRestorer.stubTask(stub)
                let at = try task.stage(bytes: ops.flatMap { withUnsafeBytes(of: $0) { Array($0) } }, at: 0)
                try task.call("semop", .semop, UInt64(s.owner.id), at.raw, 2,
                              subject: "semaphore \(index) of set \(s.owner.id) in pid \(pid)")
            }
        }
    }

    /// Segments removed while attached (SHM_DEST) are removed again once every process has
    /// attached them: they go with their last attachment, as before.
    static func removeMarked(_ ipc: IPCRecord, root: PID) throws {
        let marked = ipc.segments.filter(\.removed)
        if marked.isEmpty { return }
        try NamespaceThread.run(in: root, "ipc", .ipc) {
            for s in marked { try SysVIPC.removeSegment(s.owner.id) }
        }
    }

    /// Does this VMA map a segment of the restored IPC namespace (not saved as an object)?
    static func isAttachment(_ record: MemoryRecord) -> Bool {
        record.object == nil && !record.region.isSpecial && record.region.path.hasPrefix("/SYSV")
    }

    /// Attaches every segment the process had attached, at the saved address (`shmat`: the VMA's
    /// inode is the segment id, its offset the distance from the attach address), then makes
    /// the attachment's VMAs as they were: protections of each, parts unmapped since unmapped.
    static func attach(_ records: [MemoryRecord], task: RemoteTask, ipc: IPCRecord?) throws {
        var groups: [(id: Int32, base: UInt64, vmas: [MemoryRegion])] = []
        for r in records.filter(isAttachment).map(\.region) {
            let id = Int32(truncatingIfNeeded: r.inode), base = r.start.raw - r.offset
            if let last = groups.last, last.id == id, last.base == base {
                groups[groups.count - 1].vmas.append(r)
            } else {
                groups.append((id, base, [r]))
            }
        }
        for g in groups {
            guard let segment = ipc?.segments.first(where: { $0.owner.id == g.id }) else {
                throw ImageError.inconsistent("\(g.vmas[0].path) at \(g.vmas[0].start) maps System V segment \(g.id), which the image does not hold")
            }
            let writable = g.vmas.contains(where: \.isWritable), executable = g.vmas.contains(where: \.isExecutable)
            var flags = writable ? 0 : SysVIPC.SHM_RDONLY
            if executable { flags |= SysVIPC.SHM_EXEC }
            let got = try task.call("shmat(segment \(g.id) at \(RemoteAddress(g.base)))", .shmat, UInt64(g.id), g.base, UInt64(flags))
            guard got == g.base else { throw CheckpointError("cannot restore", reason: "segment \(g.id) attached at \(RemoteAddress(got)), not \(RemoteAddress(g.base))") }
            var attachProt = PROT_READ
            if writable { attachProt |= PROT_WRITE }
            if executable { attachProt |= PROT_EXEC }
            var covered = g.base
            let end = g.base + ((segment.size + pageSize - 1) & ~(pageSize - 1))
            for r in g.vmas {
                if r.start.raw > covered { try task.call("munmap(part of segment \(g.id))", .munmap, covered, r.start.raw - covered) }
                var prot: Int32 = 0
                if r.isReadable { prot |= PROT_READ }
                if r.isWritable { prot |= PROT_WRITE }
                if r.isExecutable { prot |= PROT_EXEC }
                if prot != attachProt { try task.call("mprotect(\(r.start) of segment \(g.id))", .mprotect, r.start.raw, r.size, UInt64(prot)) }
                covered = r.end.raw
            }
            if end > covered { try task.call("munmap(end of segment \(g.id))", .munmap, covered, end - covered) }
        }
    }
}
