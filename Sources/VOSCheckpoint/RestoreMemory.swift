// Rebuilding the address space inside the stub: clear the stub's own mappings, put the vdso
// block back at its saved address, map every saved VMA at its address, fill the saved pages
// from pages.img (verifying each chunk's checksum on the way), and re-protect.
import CVOSShim
import Dispatch
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum RestoreMemory {
    static let taskSize: UInt64 = 0x7fff_ffff_f000
    /// Gadget page (`syscall`) followed by scratch pages, placed in a hole of both layouts.
    static let gadgetBytes: UInt64 = 5 * pageSize

    /// A page-aligned address where `size` bytes are free in both layouts, away from stacks.
    static func hole(size: UInt64, avoiding a: [MemoryRegion], _ b: [MemoryRegion]) throws -> RemoteAddress {
        let margin: UInt64 = 1 << 20
        let taken = (a + b).map { ($0.start.raw - ($0.hasFlag("gd") ? 256 << 20 : margin), $0.end.raw + margin) }
        var candidate: UInt64 = 0x1000_0000
        while candidate + size < taskSize {
            if let clash = taken.first(where: { candidate < $0.1 && $0.0 < candidate + size }) {
                candidate = (clash.1 + (2 << 20)) & ~((2 << 20) - 1)
            } else {
                return RemoteAddress(candidate)
            }
        }
        throw CheckpointError("cannot restore", reason: "no free hole for the restorer's gadget page")
    }

    /// Maps the gadget+scratch area and switches injection to it; the stub's own mappings can go then.
    static func bootstrap(_ task: RemoteTask, at hole: RemoteAddress) throws {
        let flags = UInt64(MAP_PRIVATE | MAP_ANONYMOUS | VOS_MAP_FIXED_NOREPLACE)
        let got = try task.call("mmap(gadget)", .mmap, hole.raw, gadgetBytes, UInt64(PROT_READ | PROT_WRITE | PROT_EXEC), flags, UInt64.max, 0)
        guard got == hole.raw else { throw CheckpointError("cannot restore", reason: "gadget page landed at \(RemoteAddress(got)), not \(hole)") }
        try task.poke([0x0f, 0x05], at: hole)
        task.syscallSite = hole
        task.scratch = hole + pageSize
        task.scratchSize = gadgetBytes - pageSize
    }

    /// Unmaps everything of the stub except the gadget area (its rseq area goes too, so its
    /// registration is dropped first: probe 11).
    static func clearStub(_ task: RemoteTask, hole: RemoteAddress) throws {
        let rseq = try task.tracee.rseqConfiguration()
        if rseq.area != 0 {
            try task.call("rseq(unregister stub)", .rseq, rseq.area, UInt64(rseq.length), UInt64(VOS_RSEQ_FLAG_UNREGISTER), UInt64(rseq.signature))
        }
        try task.call("munmap(below gadget)", .munmap, 0, hole.raw)
        let top = hole.raw + gadgetBytes
        try task.call("munmap(above gadget)", .munmap, top, taskSize - top)
    }

    /// `ARCH_MAP_VDSO_64` at the saved block start: [vvar], [vvar_vclock], [vdso] come back at
    /// their saved addresses (glibc caches vdso pointers). It returns the vdso size on success.
    static func mapVDSO(_ task: RemoteTask, records: [MemoryRecord]) throws {
        let block = records.filter { ["[vvar]", "[vvar_vclock]", "[vdso]"].contains($0.region.path) }
        guard let start = block.map(\.region.start).min() else { return }
        try task.call("arch_prctl(ARCH_MAP_VDSO_64)", .archPrctl, UInt64(VOS_ARCH_MAP_VDSO_64), start.raw)
        let now = try MemoryMap.readRanges(pid: task.pid).filter { $0.isSpecial && $0.path != "[vsyscall]" }
        for saved in block where !now.contains(where: { $0.path == saved.region.path && $0.start == saved.region.start && $0.end == saved.region.end }) {
            throw CheckpointError("cannot restore", reason: "this kernel's \(saved.region.path) differs from the image's (\(saved.region.start)-\(saved.region.end)); the image comes from another kernel build")
        }
    }

    /// Maps every saved VMA; returns the VMAs mapped writable only to be filled.
    static func mapRegions(_ task: RemoteTask, records: [MemoryRecord], files: FileRestoreContext) throws -> [MemoryRegion] {
        var fileFDs: [String: UInt64] = [:]
        var reprotect: [MemoryRegion] = []
        // System V segments first: an attachment spans its whole segment until the parts the
        // process had unmapped are unmapped again.
        try SysVObjects.attach(records, task: task, ipc: files.image.tree?.ipc)
        for record in records {
            let r = record.region
            if r.isSpecial || SysVObjects.isAttachment(record) { continue }
            var prot: Int32 = 0
            if r.isReadable { prot |= PROT_READ }
            if r.isWritable { prot |= PROT_WRITE }
            if r.isExecutable { prot |= PROT_EXEC }
            if !record.runs.isEmpty && (!r.isWritable || !r.isReadable) {
                prot |= PROT_READ | PROT_WRITE
                reprotect.append(r)
            }
            var flags = VOS_MAP_FIXED_NOREPLACE | (r.isShared ? MAP_SHARED : MAP_PRIVATE)
            if r.hasFlag("gd") { flags |= VOS_MAP_GROWSDOWN }
            if r.hasFlag("nh") { flags |= VOS_MAP_STACK }  // MAP_STACK sets VM_NOHUGEPAGE since 6.7 (probe 12)
            if r.hasFlag("nr") { flags |= VOS_MAP_NORESERVE }
            var fd = UInt64.max
            if let object = record.object {
                // The same memfd for every mapping of the object, in every process of a tree.
                let key = "object " + object.key
                if let known = fileFDs[key] {
                    fd = known
                } else {
                    fd = try files.install(try files.object(object), into: task)
                    fileFDs[key] = fd
                }
            } else if r.isFile {
                if let known = fileFDs[r.path + (r.isShared && r.isWritable ? "#rw" : "")] {
                    fd = known
                } else {
                    let path = try task.stage(string: r.path, at: 0)
                    let mode = r.isShared && r.isWritable ? O_RDWR : O_RDONLY
                    fd = try task.call("openat(\(r.path))", .openat, UInt64(bitPattern: Int64(AT_FDCWD)), path.raw, UInt64(mode | O_CLOEXEC), 0)
                    fileFDs[r.path + (r.isShared && r.isWritable ? "#rw" : "")] = fd
                }
            } else {
                flags |= MAP_ANONYMOUS
            }
            let got = try task.call("mmap(\(r.start)-\(r.end) \(r.permissions) \(r.path))", .mmap, r.start.raw, r.size,
                                    UInt64(prot), UInt64(flags), fd, fd == UInt64.max ? 0 : r.offset)
            guard got == r.start.raw else {
                throw CheckpointError("cannot restore", reason: "mapping \(r.start) landed at \(RemoteAddress(got))")
            }
            if r.hasFlag("hg") { try task.call("madvise(MADV_HUGEPAGE)", .madvise, r.start.raw, r.size, 14) }
            if r.hasFlag("dd") { try task.call("madvise(MADV_DONTDUMP)", .madvise, r.start.raw, r.size, 16) }
            if r.hasFlag("wf") { try task.call("madvise(MADV_WIPEONFORK)", .madvise, r.start.raw, r.size, 18) }
        }
        for fd in fileFDs.values { try task.call("close", .close, fd) }
        return reprotect
    }

    /// Writes the saved pages into the target, two workers in parallel. Each reads its chunk of
    /// the page file 1 MiB at a time into a buffer of its own that stays in cache, checksums it
    /// there and writes it with process_vm_writev (about 1.4x faster than writing from a mapping
    /// of the page file, vos-bench). A chunk whose checksum does not match fails the restore
    /// before the process ever runs.
    static func fill(pid: PID, image: ProcessImage) throws {
        let work = MemoryDump(records: image.record.memory).chunks()
        let recorded = image.chunks
        guard work.count == recorded.count, zip(work, recorded).allSatisfy({ $0.fileOffset == $1.offset && $0.length == $1.length }) else {
            throw ImageError.inconsistent("page chunks of \(image.pagesPart) do not match the memory records")
        }
        guard let pages = image.pages else { return }
        let buffers = BufferPool(bytes: Int(MemoryDump.pieceBytes))
        var failures = [Error?](repeating: nil, count: work.count)
        failures.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: work.count) { i in
                let buffer = buffers.take()
                defer { buffers.give(buffer) }
                do {
                    var sum = Checksum.Accumulator()
                    var done: UInt64 = 0
                    for piece in MemoryDump.pieces(of: work[i].ranges, size: MemoryDump.pieceBytes) {
                        try pages.read(into: buffer, count: Int(piece.length), at: work[i].fileOffset + done)
                        sum.add(UnsafeRawBufferPointer(start: buffer, count: Int(piece.length)))
                        try ProcessMemory.write(pid: pid, ranges: piece.ranges, from: buffer)
                        done += piece.length
                    }
                    try image.check(chunk: recorded[i], computed: sum.value)
                } catch {
                    out[i] = error
                }
            }
        }
        if let e = failures.compactMap({ $0 }).first { throw e }
    }

    static func reprotect(_ task: RemoteTask, _ regions: [MemoryRegion]) throws {
        for r in regions {
            var prot: Int32 = 0
            if r.isReadable { prot |= PROT_READ }
            if r.isWritable { prot |= PROT_WRITE }
            if r.isExecutable { prot |= PROT_EXEC }
            try task.call("mprotect(\(r.start))", .mprotect, r.start.raw, r.size, UInt64(prot))
        }
    }
}

extension MemoryDump {
    /// The layout of an image being restored (chunking must match the dump's).
    init(records: [MemoryRecord]) {
        self.records = records
        self.totalBytes = records.reduce(0) { $0 + $1.storedPages * pageSize }
    }
}
