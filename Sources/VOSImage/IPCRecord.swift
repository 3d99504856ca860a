// The System V IPC objects of a capsule's own IPC namespace (tree.json's `ipc`): shared memory
// segments (contents in a blob part each), semaphore sets and message queues, with their ids
// and keys, so that a restore recreates them as the same objects under the same names.
import VOSLinux

public struct IPCRecord: Codable, Sendable, Equatable {
    public var segments: [SysVSegment]
    public var semaphoreSets: [SysVSemaphoreSet]
    public var messageQueues: [SysVMessageQueue]

    public init(segments: [SysVSegment], semaphoreSets: [SysVSemaphoreSet], messageQueues: [SysVMessageQueue]) {
        self.segments = segments
        self.semaphoreSets = semaphoreSets
        self.messageQueues = messageQueues
    }

    public var isEmpty: Bool { segments.isEmpty && semaphoreSets.isEmpty && messageQueues.isEmpty }
}

/// Who owns an object and who may use it (`ipc_perm`); `mode` holds the 9 permission bits.
public struct SysVOwner: Codable, Sendable, Equatable {
    public var id: Int32
    /// 0 is IPC_PRIVATE (also the key of a segment removed while still attached).
    public var key: Int32
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32

    public init(id: Int32, key: Int32, uid: UInt32, gid: UInt32, mode: UInt32) {
        self.id = id
        self.key = key
        self.uid = uid
        self.gid = gid
        self.mode = mode
    }
}

public struct SysVSegment: Codable, Sendable, Equatable {
    public var owner: SysVOwner
    public var size: UInt64
    /// The part holding its contents (`size` bytes).
    public var blob: String
    /// Marked for removal (`IPC_RMID`, SHM_DEST) and alive only while attached: removed again
    /// once the restored processes have attached it.
    public var removed: Bool
    /// Attachments at the checkpoint (`shm_nattch`; for `vos inspect`, the restore re-attaches
    /// what the processes' VMAs say).
    public var attachCount: UInt64
    /// Creator and last attach/detach, as the capsule's PID namespace sees them (0: outside it).
    public var creatorPID: PID
    public var lastPID: PID

    public init(owner: SysVOwner, size: UInt64, blob: String, removed: Bool, attachCount: UInt64, creatorPID: PID, lastPID: PID) {
        self.owner = owner
        self.size = size
        self.blob = blob
        self.removed = removed
        self.attachCount = attachCount
        self.creatorPID = creatorPID
        self.lastPID = lastPID
    }
}

public struct SysVSemaphoreSet: Codable, Sendable, Equatable {
    public var owner: SysVOwner
    /// `semctl(GETALL)`: one value per semaphore.
    public var values: [UInt16]
    /// `semctl(GETPID)` per semaphore, in the capsule's PID namespace (0: none or outside it).
    public var lastPIDs: [PID]

    public init(owner: SysVOwner, values: [UInt16], lastPIDs: [PID]) {
        self.owner = owner
        self.values = values
        self.lastPIDs = lastPIDs
    }
}

public struct SysVMessageQueue: Codable, Sendable, Equatable {
    public var owner: SysVOwner
    /// `msg_qbytes`: the most bytes the queue may hold.
    public var maxBytes: UInt64
    /// Queued messages, oldest first.
    public var messages: [SysVMessage]

    public init(owner: SysVOwner, maxBytes: UInt64, messages: [SysVMessage]) {
        self.owner = owner
        self.maxBytes = maxBytes
        self.messages = messages
    }
}

public struct SysVMessage: Codable, Sendable, Equatable {
    /// `mtype`, always > 0.
    public var type: Int
    public var data: [UInt8]

    public init(type: Int, data: [UInt8]) {
        self.type = type
        self.data = data
    }
}
