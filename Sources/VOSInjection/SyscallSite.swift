// Finding a `syscall` instruction (0f 05) already present in a tracee.
import VOSLinux

public enum SyscallSite {
    /// The first `0f 05` in the vdso, else in any other executable mapping. Any occurrence
    /// works: execution starts at it, so the bytes decode as `syscall` whatever surrounds them.
    public static func find(pid: PID, in regions: [MemoryRegion]) throws -> RemoteAddress {
        let candidates = regions.filter { $0.path == "[vdso]" } + regions.filter { $0.isExecutable && $0.isReadable && !$0.isSpecial }
        for region in candidates {
            let length = Int(min(region.size, 1 << 20))
            guard let bytes = try? RemoteTask.readMemory(pid: pid, length, at: region.start) else { continue }
            for i in 0..<(bytes.count - 1) where bytes[i] == 0x0f && bytes[i + 1] == 0x05 {
                return region.start + UInt64(i)
            }
        }
        throw InjectionError(call: "bootstrap", tid: pid, reason: "no syscall instruction in any executable mapping")
    }
}
