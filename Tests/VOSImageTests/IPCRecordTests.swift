// tree.json's `ipc`: an optional part of the format (older images have none) that keeps every
// field of the System V objects through a round trip.
import Foundation
import Testing
import VOSImage

struct IPCRecordTests {
    /// A tree.json written before System V objects were saved decodes, with no `ipc`.
    @Test func olderTreeHasNoIPC() throws {
        let json = #"{"processes":[{"pid":1,"parent":0,"processGroup":1,"session":1}],"capsule":null}"#
        let tree = try JSONDecoder().decode(TreeRecord.self, from: Data(json.utf8))
        #expect(tree.ipc == nil)
        #expect(tree.processes.map(\.pid) == [1])
    }

    @Test func roundTrip() throws {
        let ipc = IPCRecord(
            segments: [SysVSegment(owner: SysVOwner(id: 32768, key: 0x5300_4575, uid: 0, gid: 0, mode: 0o640), size: 65536,
                                   blob: "blob-0.img", removed: false, attachCount: 4, creatorPID: 2, lastPID: 3),
                       SysVSegment(owner: SysVOwner(id: 1, key: 0, uid: 1000, gid: 1000, mode: 0o600), size: 4096,
                                   blob: "blob-1.img", removed: true, attachCount: 2, creatorPID: 2, lastPID: 0)],
            semaphoreSets: [SysVSemaphoreSet(owner: SysVOwner(id: 1, key: -5, uid: 0, gid: 0, mode: 0o600), values: [1, 7, 42], lastPIDs: [3, 2, 0])],
            messageQueues: [SysVMessageQueue(owner: SysVOwner(id: 1, key: 9, uid: 0, gid: 0, mode: 0o600), maxBytes: 16384,
                                             messages: [SysVMessage(type: 1, data: Array("one".utf8)), SysVMessage(type: 2, data: [])])])
        let tree = TreeRecord(processes: [TreeProcess(pid: 1, parent: 0, processGroup: 1, session: 1, zombieStatus: nil)], capsule: nil, ipc: ipc)
        let back = try JSONDecoder().decode(TreeRecord.self, from: JSONEncoder().encode(tree))
        #expect(back.ipc == ipc)
        #expect(ipc.isEmpty == false && IPCRecord(segments: [], semaphoreSets: [], messageQueues: []).isEmpty)
    }
}
