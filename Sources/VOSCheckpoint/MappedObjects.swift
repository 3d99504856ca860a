// Memory objects that live in no file of the file system — shared anonymous memory
// ("/dev/zero (deleted)"), memfds, System V segments, deleted files — saved once per image
// through /proc/PID/map_files (or the fd), and recreated once as a memfd that every mapping
// and fd of the object gets back.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum MappedObjects {
    /// Does this VMA map such an object? System V segments do unless their IPC namespace is
    /// saved whole (`sysVSaved`: a capsule's, SysVObjects), where they come back as segments.
    static func needsObject(_ r: MemoryRegion, sysVSaved: Bool = false) -> Bool {
        if r.isSpecial { return false }
        // "/SYSV<key> (deleted)": also a deleted file by its name.
        if r.path.hasPrefix("/SYSV") { return !sysVSaved }
        return r.isDeletedFile || (r.isShared && r.path.isEmpty)
    }

    /// "major:minor:inode" as /proc/PID/maps writes device and inode.
    static func key(device: String, inode: UInt64) -> String { "\(device):\(inode)" }

    static func key(of st: stat) -> String {
        let major = (st.st_dev >> 8) & 0xfff, minor = (st.st_dev & 0xff) | ((st.st_dev >> 12) & 0xfff00)
        let hex = { (v: UInt) -> String in let s = String(v, radix: 16); return s.count < 2 ? "0" + s : s }
        return key(device: "\(hex(UInt(major))):\(hex(UInt(minor)))", inode: UInt64(st.st_ino))
    }

    /// The name the object is recreated under: "/memfd:NAME (deleted)" → NAME, a deleted
    /// file's base name, "dev/zero" for shared anonymous memory.
    static func name(_ path: String) -> String {
        var p = path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
        if p.hasPrefix("/memfd:") { return String(p.dropFirst(7)) }
        if p.hasPrefix("/") { p.removeFirst() }
        return String(p.prefix(200))
    }

    /// Saves the object behind an open fd (a duplicate of the target's, or a map_files fd).
    static func save(fd: Int32, path: String, writer: ImageWriter) throws -> MappedObject {
        var st = stat()
        try checked("fstat", path) { fstat(fd, &st) }
        let k = key(of: st)
        if let known = writer.objects[k] { return known }
        let contents = try RegularFile.readWhole(fd, path: path)
        let seals = max(0, fcntl(fd, 1034 /* F_GET_SEALS */))
        let blob = writer.nextBlobName()
        try writer.writePart(blob, contents)
        let object = MappedObject(key: k, name: name(path), blob: blob, size: UInt64(st.st_size), seals: seals)
        writer.objects[k] = object
        return object
    }

    /// Saves the objects mapped by `records` (pid's VMAs), through /proc/PID/map_files.
    static func save(pid: PID, records: inout [MemoryRecord], writer: ImageWriter, sysVSaved: Bool = false) throws {
        for i in records.indices where needsObject(records[i].region, sysVSaved: sysVSaved) {
            let r = records[i].region
            let k = key(device: r.device, inode: r.inode)
            if let known = writer.objects[k] {
                records[i].object = known
                continue
            }
            let path = "/proc/\(pid)/map_files/\(String(r.start.raw, radix: 16))-\(String(r.end.raw, radix: 16))"
            let fd = try checked("open", "\(path) (\(r.path))") { open(path, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            records[i].object = try save(fd: fd, path: r.path, writer: writer)
        }
    }
}

extension FileRestoreContext {
    /// vos's memfd for a saved object, made and filled on first use.
    func object(_ o: MappedObject) throws -> Int32 {
        if let fd = objects[o.key] { return fd }
        let fd = try MemfdCreate.create(o.name, flags: MemfdCreate.cloexec | MemfdCreate.allowSealing)
        objects[o.key] = track(fd)
        try checked("ftruncate", o.name) { ftruncate(fd, off_t(o.size)) }
        try writeAll(fd, try image.blob(o.blob), what: "memfd \(o.name)")
        if o.seals != 0 { try checked("fcntl(F_ADD_SEALS)", o.name) { vos_fcntl_int(fd, 1033, o.seals) } }
        return fd
    }

    /// Puts vos's fd `local` into the target (through the pidfd of vos every stub inherited)
    /// and returns its number there.
    func install(_ local: Int32, into task: RemoteTask) throws -> UInt64 {
        try task.call("pidfd_getfd", .pidfdGetfd, UInt64(vosPidfd), UInt64(local), 0)
    }
}
