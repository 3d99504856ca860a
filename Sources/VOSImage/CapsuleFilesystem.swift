// A capsule's own filesystem (`vos run --fs`): an overlay whose read-only base is the host's
// root (or `--rootfs DIR`) and whose upper layer belongs to the capsule, plus volumes bound from
// the host. The upper layer travels in the image (part `fs-upper.tar`); volumes do not.

public struct CapsuleFilesystem: Codable, Sendable, Equatable {
    /// The base, as a path on the machine that runs the capsule.
    public var base: String
    public var volumes: [Volume]
    /// The base's files the processes had mapped or open at the checkpoint, as they were: a
    /// restore checks the base there holds the same (absent: none recorded, or carried along).
    public var baseFiles: [BaseFile]?
    /// Files on volumes the processes held open: not copied, so the volume where the capsule
    /// is restored must hold them unchanged (shared storage).
    public var volumeFiles: [VolumeFile]?
    /// The upper layer comes as `upperBasePart` and then the changes in `upperPart`.
    public var upperIsIncremental: Bool?
    /// An incremental checkpoint (`--parent`): `upperPart` holds what changed since this image's
    /// (absolute path), whose layers a restore extracts first.
    public var upperParent: String?

    public struct Volume: Codable, Sendable, Equatable {
        /// Where it is on the host, and where the capsule sees it.
        public var host: String
        public var path: String
        public init(host: String, path: String) {
            self.host = host
            self.path = path
        }
    }

    public init(base: String, volumes: [Volume]) {
        self.base = base
        self.volumes = volumes
    }

    /// A file of the base: the executable, a library, a data file.
    public struct BaseFile: Codable, Sendable, Equatable {
        public var path: String
        public var size: UInt64
        public var mtimeNanos: Int64
        public var sha256: String
        /// The ELF build-id (NT_GNU_BUILD_ID), hex, where there is one.
        public var buildID: String?
        public init(path: String, size: UInt64, mtimeNanos: Int64, sha256: String, buildID: String?) {
            self.path = path
            self.size = size
            self.mtimeNanos = mtimeNanos
            self.sha256 = sha256
            self.buildID = buildID
        }
    }

    /// A file on a volume, as the capsule saw it.
    public struct VolumeFile: Codable, Sendable, Equatable {
        public var path: String
        public var size: UInt64
        public var mtimeNanos: Int64
        /// The inode generation (FS_IOC_GETVERSION), where the file system has one.
        public var generation: UInt32?
        public init(path: String, size: UInt64, mtimeNanos: Int64, generation: UInt32?) {
            self.path = path
            self.size = size
            self.mtimeNanos = mtimeNanos
            self.generation = generation
        }
    }

    /// The image part holding the upper layer (a tar archive with overlay whiteouts and xattrs).
    public static let upperPart = "fs-upper.tar"
    /// A live migration's first copy of the upper layer, sent while the capsule still ran;
    /// `fs-upper.tar` then holds only what changed since (GNU tar's listed-incremental format).
    public static let upperBasePart = "fs-upper-base.tar"
    /// GNU tar's listed-incremental state after `upperPart`: what a later `--parent` checkpoint
    /// continues from.
    public static let upperSnapshotPart = "fs-upper.snar"
}
