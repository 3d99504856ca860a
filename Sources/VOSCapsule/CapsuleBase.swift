// The base is checked, not trusted: a capsule's processes map their executable and libraries
// from the base, and a restore on a machine whose base holds other bytes at those paths would
// run them with code that does not match their memory. The checkpoint records each such file
// (size, mtime, SHA-256, ELF build-id); the restore compares, and refuses naming the file.
// `--carry-base` takes the files along in the upper layer instead.
import CVOSShim
import Crypto
import Foundation
import Glibc
import VOSImage

public enum CapsuleBase {
    /// The files among `paths` (as the capsule sees them) that come from its base: not in its
    /// upper layer, not under a volume or /.vos. Hashes are kept per process for files that did
    /// not change (a node daemon describes the same libraries at every migration).
    public static func describe(_ paths: [String], fs: CapsuleFilesystem, layers: String) throws -> [CapsuleFilesystem.BaseFile] {
        try paths.filter { path in
            !FileManager.default.fileExists(atPath: layers + "/upper" + path) && volume(of: path, fs) == nil && !under(path, "/.vos")
        }.compactMap { path in try identity(fs.base == "/" ? path : fs.base + path, as: path) }
    }

    /// The files among `paths` that lie on a volume, as they are now.
    public static func describeVolumes(_ paths: [String], fs: CapsuleFilesystem) -> [CapsuleFilesystem.VolumeFile] {
        paths.compactMap { path in volume(of: path, fs).flatMap { volumeIdentity(host: $0, as: path) } }
    }

    static func under(_ path: String, _ directory: String) -> Bool { path == directory || path.hasPrefix(directory + "/") }

    /// Where `path` (as the capsule sees it) is on the host, when it lies on a volume.
    static func volume(of path: String, _ fs: CapsuleFilesystem) -> String? {
        fs.volumes.first { under(path, $0.path) }.map { $0.host + path.dropFirst($0.path.count) }
    }

    static func volumeIdentity(host: String, as path: String) -> CapsuleFilesystem.VolumeFile? {
        var st = stat()
        guard stat(host, &st) == 0 else { return nil }
        var generation: Int = 0
        let fd = open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        defer { if fd >= 0 { close(fd) } }
        let has = fd >= 0 && vos_ioctl(fd, UInt(VOS_FS_IOC_GETVERSION), &generation) == 0
        return CapsuleFilesystem.VolumeFile(path: path, size: UInt64(st.st_size),
                                            mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                                            generation: has ? UInt32(truncatingIfNeeded: generation) : nil)
    }

    /// Throws, naming each file, when this machine's base differs from the recorded one.
    public static func check(_ fs: CapsuleFilesystem, capsule name: String) throws {
        var differences: [String] = []
        for saved in fs.baseFiles ?? [] {
            let here = fs.base == "/" ? saved.path : fs.base + saved.path
            guard let now = try identity(here, as: saved.path) else {
                differences.append("\(saved.path): missing from the base here")
                continue
            }
            if now.size != saved.size {
                differences.append("\(saved.path): \(now.size) bytes here, \(saved.size) in the image")
            } else if now.sha256 != saved.sha256 {
                let ids = saved.buildID.map { " (build-id \($0) in the image, \(now.buildID ?? "none") here)" } ?? ""
                differences.append("\(saved.path): other contents here (sha256 \(now.sha256.prefix(12))… vs \(saved.sha256.prefix(12))…)\(ids)")
            }
        }
        guard differences.isEmpty else {
            throw CapsuleError("cannot restore capsule \"\(name)\": its base differs on this machine: " + differences.joined(separator: "; ")
                + ". Checkpoint or migrate it with --carry-base to take those files along")
        }
        // Volumes are shared storage, not copied: the files it held must be the very same.
        for saved in fs.volumeFiles ?? [] {
            guard let host = volume(of: saved.path, fs), let now = volumeIdentity(host: host, as: saved.path) else {
                differences.append("\(saved.path): missing from its volume here")
                continue
            }
            if now.size != saved.size || now.mtimeNanos != saved.mtimeNanos {
                differences.append("\(saved.path): \(now.size) bytes modified at \(now.mtimeNanos) ns here, \(saved.size) bytes at \(saved.mtimeNanos) ns in the image")
            } else if let was = saved.generation, let here = now.generation, was != here {
                differences.append("\(saved.path): inode generation \(here) here, \(was) in the image (another file)")
            }
        }
        guard differences.isEmpty else {
            throw CapsuleError("cannot restore capsule \"\(name)\": a file it held open on a volume is not the same here: "
                + differences.joined(separator: "; ") + " (volumes are not copied: the same shared storage must be mounted here)")
        }
    }

    nonisolated(unsafe) static var hashes: [String: String] = [:]
    static let lock = NSLock()

    /// Size, mtime, SHA-256 and build-id of the regular file at `host`; nil if there is none.
    static func identity(_ host: String, as path: String) throws -> CapsuleFilesystem.BaseFile? {
        var st = stat()
        guard stat(host, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let key = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(mtime)"
        lock.lock()
        let known = hashes[key]
        lock.unlock()
        let digest: String
        if let known { digest = known } else {
            guard let handle = FileHandle(forReadingAtPath: host) else { throw CapsuleError("cannot read \(host) to describe the capsule's base") }
            defer { try? handle.close() }
            var hasher = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
            digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            lock.lock()
            hashes[key] = digest
            lock.unlock()
        }
        return CapsuleFilesystem.BaseFile(path: path, size: UInt64(st.st_size), mtimeNanos: mtime, sha256: digest, buildID: ELFBuildID.read(host))
    }
}

/// The GNU build-id note of an ELF64 little-endian file, from its program headers.
enum ELFBuildID {
    static func read(_ path: String) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        func bytes(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard (try? h.seek(toOffset: offset)) != nil, let d = try? h.read(upToCount: count), d.count == count else { return nil }
            return [UInt8](d)
        }
        func u(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
        guard let e = bytes(0, 64), e.starts(with: [0x7f, 0x45, 0x4c, 0x46]), e[4] == 2, e[5] == 1 else { return nil }
        let phoff = u(e, 32, 8), phentsize = Int(u(e, 54, 2)), phnum = min(Int(u(e, 56, 2)), 64)
        for i in 0..<phnum {
            guard let ph = bytes(phoff + UInt64(i * phentsize), 56), u(ph, 0, 4) == 4 else { continue }  // PT_NOTE
            let offset = u(ph, 8, 8), size = min(Int(u(ph, 32, 8)), 1 << 16)
            guard let notes = bytes(offset, size) else { continue }
            var at = 0
            while at + 12 <= notes.count {
                let nameSize = Int(u(notes, at, 4)), descSize = Int(u(notes, at + 4, 4)), type = u(notes, at + 8, 4)
                let name = at + 12, desc = name + (nameSize + 3) & ~3
                guard desc + descSize <= notes.count else { break }
                if type == 3 && nameSize == 4 && notes[name..<name + 3].elementsEqual("GNU".utf8) {  // NT_GNU_BUILD_ID
                    return notes[desc..<desc + descSize].map { String(format: "%02x", $0) }.joined()
                }
                at = desc + (descSize + 3) & ~3
            }
        }
        return nil
    }
}
