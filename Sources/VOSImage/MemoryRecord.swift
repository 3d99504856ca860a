// The memory layout and where each saved page lives in pages.img.
import VOSLinux

public struct MemoryRecord: Codable, Sendable {
    public var region: MemoryRegion
    /// Saved page data of this VMA: consecutive pages stored consecutively in pages.img.
    public var runs: [PageRun]
    /// For a file mapping whose file was deleted: the blob holding the file's contents.
    public var deletedFileBlob: String?

    public init(region: MemoryRegion, runs: [PageRun], deletedFileBlob: String? = nil) {
        self.region = region
        self.runs = runs
        self.deletedFileBlob = deletedFileBlob
    }

    public var storedPages: UInt64 { runs.reduce(0) { $0 + $1.pageCount } }
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
