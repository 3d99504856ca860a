// The restore side of post-copy, inside ProcessBuilder: which VMAs come lazily, the target's
// own userfaultfd registered over them, and the eager rest filled from the page source.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum LazyMemory {
    /// Private anonymous read-write memory with enough stored pages. Everything else stays
    /// eager: file-backed and shared mappings and memory objects hold their data elsewhere; a
    /// region that is not read-write is re-protected after its fill; [stack] and growsdown
    /// regions are touched first thing on resume (and may grow under the registration); locked
    /// memory would fault itself in at mlock; and a few pages are cheaper copied than faulted.
    static func isLazy(_ record: MemoryRecord, options: LazyOptions) -> Bool {
        let r = record.region
        return !r.isShared && !r.isFile && !r.isSpecial && record.object == nil && !SysVObjects.isAttachment(record)
            && r.isReadable && r.isWritable && r.path != "[stack]" && !r.hasFlag("gd") && !r.hasFlag("lo")
            && record.storedPages >= options.minimumLazyPages
    }

    /// Gives the target a userfaultfd over its lazy VMAs and hands it to `server` (which serves
    /// faults from then on: later injected calls may touch that memory). Returns the records to
    /// fill eagerly. The uffd is made by the target itself (its context is the target's mm),
    /// pulled into vos with pidfd_getfd and closed in the target, which never sees it.
    static func register(_ task: RemoteTask, image: ProcessImage, server: LazyPageServer) throws -> [MemoryRecord] {
        let records = image.record.memory
        let lazy = records.filter { isLazy($0, options: server.options) }
        let eager = records.filter { !isLazy($0, options: server.options) }
        guard !lazy.isEmpty else { return eager }
        let pid = task.pid
        let r = try task.rawCall("userfaultfd", Int(VOS_SYS_userfaultfd), [UInt64(O_CLOEXEC | O_NONBLOCK)])
        guard r >= 0 else { throw SyscallError(call: "userfaultfd (injected)", errno: .init(rawValue: Int32(-r)), subject: "pid \(pid)") }
        let pidfd = try Kernel.pidfdOpen(pid)
        defer { try? pidfd.close() }
        let uffd = Userfaultfd(adopting: try Kernel.pidfdGetfd(pidfd, Int32(r), pid: pid), subject: "userfaultfd of pid \(pid)")
        try task.call("close(userfaultfd)", .close, UInt64(r))
        try uffd.api(features: [.eventFork, .eventRemap, .eventRemove, .eventUnmap])
        let ranges = lazy.map { RemoteRange(address: $0.region.start, length: $0.region.size) }
        for range in ranges { try uffd.register(range, mode: .missing) }
        let spans = lazy.flatMap(\.runs).map { LazySpan(start: $0.address.raw, source: $0.address.raw, pages: Int($0.pageCount)) }
        try server.add(uffd: uffd, hostPID: pid, savedPID: image.record.pid, spans: spans, registered: ranges)
        return eager
    }

    /// Writes the stored pages of `records` from the source (which verifies them) before the
    /// process runs.
    static func fillEager(pid: PID, savedPID: PID, records: [MemoryRecord], source: PageSource) throws {
        let piece = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: piece, alignment: 4096)
        defer { buffer.deallocate() }
        for run in records.flatMap(\.runs) {
            var done: UInt64 = 0
            while done < run.length {
                let n = min(UInt64(piece), run.length - done)
                try source.read(pid: savedPID, address: run.address.raw + done, count: Int(n), into: buffer)
                try ProcessMemory.write(pid: pid, ranges: [RemoteRange(address: run.address + done, length: n)], from: buffer)
                done += n
            }
        }
    }
}
