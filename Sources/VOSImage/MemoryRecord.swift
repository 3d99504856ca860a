// The memory layout and where each saved page lives in pages.img.
import VOSLinux

public struct MemoryRecord: Codable, Sendable {
    public var region: MemoryRegion
    /// Saved page data of this VMA: consecutive pages stored consecutively in pages.img.
    public var runs: [PageRun]
    /// The object mapped here when it lives in no file of the file system (shared anonymous
    /// memory, a memfd, a deleted file): saved once per image, mapped again from one copy.
    public var object: MappedObject?

    public init(region: MemoryRegion, runs: [PageRun], object: MappedObject? = nil) {
        self.region = region
        self.runs = runs
        self.object = object
    }

    public var storedPages: UInt64 { runs.reduce(0) { $0 + $1.pageCount } }
}

/// A memory object saved whole: every process and fd that shared it gets the same one back.
public struct MappedObject: Codable, Sendable, Equatable {
    /// "major:minor:inode" of the object when checkpointed: equal keys are one object.
    public var key: String
    /// For /proc/PID/maps after the restore: the memfd name, "dev/zero", or the file's name.
    public var name: String
    /// The part holding its contents.
    public var blob: String
    public var size: UInt64
    /// memfd seals (F_GET_SEALS).
    public var seals: Int32

    public init(key: String, name: String, blob: String, size: UInt64, seals: Int32) {
        self.key = key
        self.name = name
        self.blob = blob
        self.size = size
        self.seals = seals
    }
}

public struct PageRun: Codable, Sendable, Equatable {
    public var address: RemoteAddress
    public var pageCount: UInt64
    /// Byte offset in pages.img (a multiple of 4096).
    public var fileOffset: UInt64

    public init(address: RemoteAddress, pageCount: UInt64, fileOffset: UInt64) {
        self.address = address
        self.pageCount = pageCount
        self.fileOffset = fileOffset
    }

    public var length: UInt64 { pageCount * pageSize }
}

/// Fields of the mm that `PR_SET_MM_MAP` restores, from /proc/PID/stat, brk(0) and auxv.
public struct MMFields: Codable, Sendable, Equatable {
    public var startCode: UInt64, endCode: UInt64, startData: UInt64, endData: UInt64
    public var startBrk: UInt64, brk: UInt64, startStack: UInt64
    public var argStart: UInt64, argEnd: UInt64, envStart: UInt64, envEnd: UInt64
    public var auxv: [UInt64]

    public init(startCode: UInt64, endCode: UInt64, startData: UInt64, endData: UInt64, startBrk: UInt64, brk: UInt64,
                startStack: UInt64, argStart: UInt64, argEnd: UInt64, envStart: UInt64, envEnd: UInt64, auxv: [UInt64]) {
        self.startCode = startCode
        self.endCode = endCode
        self.startData = startData
        self.endData = endData
        self.startBrk = startBrk
        self.brk = brk
        self.startStack = startStack
        self.argStart = argStart
        self.argEnd = argEnd
        self.envStart = envStart
        self.envEnd = envEnd
        self.auxv = auxv
    }
}
