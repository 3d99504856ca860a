// The way home of a live thread that vos injects calls into, should vos die (kill -9) mid-way.
//
// Before the first injected call, an rt_sigreturn frame is written on the thread's stack below
// its red zone: its own registers, signal mask and FPU/AVX state, as a signal handler would
// return through. Each call then starts on the `syscall` of the program's own signal-return
// trampoline (`mov $15,%rax; syscall`: glibc's and musl's __restore_rt, Go's sigreturn) with
// rax = rt_sigreturn, is switched to the wanted call at its syscall-entry stop, and returns to
// the trampoline's first instruction. So at every moment the thread's next instructions are
// "rt_sigreturn through the frame": if vos is killed, the kernel detaches the thread and it
// returns to exactly where it was by itself. No code is written and no mapping is added; the
// stack bytes under the frame are below the red zone, which the ABI lets any signal overwrite.
import CVOSShim
import VOSLinux

public struct ReturnFrame: Sendable {
    /// Where rsp points while the thread is parked: the ucontext that rt_sigreturn reads.
    public let stackPointer: RemoteAddress
    /// Scratch memory for the arguments of injected calls, between the frame and the red zone.
    public let scratch: RemoteAddress
    public static let scratchSize: UInt64 = 512
    /// The program's `mov $15,%rax; syscall` and the address of its `syscall`.
    public let trampoline: RemoteAddress
    public let trampolineSyscall: RemoteAddress
    /// The stack bytes the frame and the scratch cover, as they were before.
    let lowest: RemoteAddress
    let original: [UInt8]

    /// Builds the frame for a thread stopped with `registers`, `mask` and `xstate` (ptrace's
    /// NT_X86_XSTATE), writes it into `pid`'s memory and returns it. nil when the program has
    /// no signal-return trampoline (then vos cannot leave it a way home).
    public static func install(pid: PID, tid: PID, registers: Registers, mask: UInt64, xstate: [UInt8],
                               trampoline: (start: RemoteAddress, syscall: RemoteAddress),
                               stack: [MemoryRegion]) throws -> ReturnFrame {
        let top = registers.rsp &- 128
        let scratch = (top &- scratchSize) & ~15
        let fpu = signalXstate(xstate)
        let fpstate = (scratch &- UInt64(fpu.count)) & ~63
        let ucontext = (fpstate &- UInt64(MemoryLayout<vos_ucontext>.size)) & ~15
        let lowest = ucontext &- 8  // the return address a handler's `ret` would have popped
        guard stack.contains(where: { $0.isWritable && $0.start.raw <= lowest && top <= $0.end.raw }) else {
            throw InjectionError(call: "rt_sigreturn frame", tid: tid,
                                 reason: "no writable stack for \(top - lowest) bytes below its stack pointer \(RemoteAddress(registers.rsp))")
        }
        let original = try RemoteTask.readMemory(pid: pid, Int(top - lowest), at: RemoteAddress(lowest))

        var uc = vos_ucontext()
        uc.uc_flags = UInt64(VOS_UC_FP_XSTATE | VOS_UC_SIGCONTEXT_SS | VOS_UC_STRICT_RESTORE_SS)
        // An invalid mode: rt_sigreturn's sigaltstack() refuses it and leaves the thread's own
        // alternate stack as it is (restore_altstack ignores the error).
        uc.uc_stack.flags = 3
        uc.uc_sigmask = mask
        uc.uc_mcontext = sigcontext(resuming: registers, fpstate: fpstate)

        var bytes = [UInt8](repeating: 0, count: Int(top - lowest))
        withUnsafeBytes(of: uc) { bytes.replaceSubrange(Int(ucontext - lowest)..<Int(ucontext - lowest) + $0.count, with: $0) }
        let fp = Int(fpstate - lowest)
        bytes.replaceSubrange(fp..<fp + fpu.count, with: fpu)
        try RemoteTask.writeMemory(pid: pid, bytes, at: RemoteAddress(lowest))
        return ReturnFrame(stackPointer: RemoteAddress(ucontext), scratch: RemoteAddress(scratch),
                           trampoline: trampoline.start, trampolineSyscall: trampoline.syscall,
                           lowest: RemoteAddress(lowest), original: original)
    }

    /// The registers the thread returns to. rt_sigreturn sets orig_rax to -1, so the kernel
    /// would not restart a syscall the thread was stopped in: do here what it would have done
    /// (arch_do_signal_or_restart with no handler): back onto the `syscall`, its number again.
    /// A -ERESTART_RESTARTBLOCK call (a relative nanosleep, a poll) is issued again whole,
    /// since rt_sigreturn also cancels the kernel's restart block.
    static func sigcontext(resuming r: Registers, fpstate: UInt64) -> vos_sigcontext {
        var rip = r.rip, rax = r.rax
        if Int64(bitPattern: r.origRax) >= 0, [-512, -513, -514, -516].contains(Int64(bitPattern: r.rax)) {
            rip -= 2
            rax = r.origRax
        }
        var c = vos_sigcontext()
        c.r8 = r.r8; c.r9 = r.r9; c.r10 = r.r10; c.r11 = r.r11; c.r12 = r.r12; c.r13 = r.r13
        c.r14 = r.r14; c.r15 = r.r15; c.rdi = r.rdi; c.rsi = r.rsi; c.rbp = r.rbp; c.rbx = r.rbx
        c.rdx = r.rdx; c.rax = rax; c.rcx = r.rcx; c.rsp = r.rsp; c.rip = rip; c.eflags = r.eflags
        c.cs = UInt16(truncatingIfNeeded: r.cs); c.ss = UInt16(truncatingIfNeeded: r.ss)
        c.fpstate = fpstate
        return c
    }

    /// The xsave area rt_sigreturn restores from: ptrace's NT_X86_XSTATE bytes (standard form,
    /// their software bytes holding XCR0 as debuggers read it), cut to the size this thread's
    /// features take, with the software bytes of a signal frame (struct _fpx_sw_bytes) and
    /// FP_XSTATE_MAGIC2 after. Without them the kernel restores x87/SSE only and clears AVX.
    static func signalXstate(_ xstate: [UInt8]) -> [UInt8] {
        guard xstate.count >= 576 else { return xstate }
        func u64(_ at: Int) -> UInt64 { xstate[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        var features = u64(464)
        // AMX tiles (armed by XFD) count once the thread uses them; its frames are smaller until then.
        let dynamic: UInt64 = 3 << 17
        if u64(512) & dynamic == 0 { features &= ~dynamic }
        var size = 576  // legacy area and header
        for bit in 2..<63 where features & (1 << bit) != 0 {
            var r: [UInt32] = [0, 0, 0, 0]
            vos_cpuid_count(0xd, UInt32(bit), &r)
            size = max(size, Int(r[1]) + Int(r[0]))  // offset + size of the component
        }
        var area = Array(xstate.prefix(size)) + [UInt8](repeating: 0, count: max(0, size - xstate.count))
        func put<T: FixedWidthInteger>(_ v: T, at: Int) {
            withUnsafeBytes(of: v.littleEndian) { area.replaceSubrange(at..<at + $0.count, with: $0) }
        }
        area.replaceSubrange(464..<512, with: [UInt8](repeating: 0, count: 48))
        put(UInt32(VOS_FP_XSTATE_MAGIC1), at: 464)
        put(UInt32(size + 4), at: 468)  // extended_size: the area with MAGIC2
        put(features, at: 472)
        put(UInt32(size), at: 480)
        area += withUnsafeBytes(of: UInt32(VOS_FP_XSTATE_MAGIC2).littleEndian) { Array($0) }
        return area
    }

    /// Registers that park the thread on the trampoline's `syscall` with rax = rt_sigreturn.
    func parked(_ saved: Registers) -> Registers {
        var r = saved
        r.rip = trampolineSyscall.raw
        r.rax = 15
        r.origRax = UInt64.max
        r.rsp = stackPointer.raw
        return r
    }

    /// Puts the stack bytes back. Only once the thread holds its own registers again.
    func erase(pid: PID) throws {
        try RemoteTask.writeMemory(pid: pid, original, at: lowest)
    }
}

/// Finding the program's own signal-return trampoline.
public enum SignalReturnSite {
    /// `mov $15,%rax; syscall` and `mov $15,%eax; syscall`.
    static let patterns: [[UInt8]] = [[0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05], [0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05]]

    /// The first trampoline in the C library's code, else in any other file-backed executable
    /// mapping; nil if there is none.
    public static func find(pid: PID, in regions: [MemoryRegion]) -> (start: RemoteAddress, syscall: RemoteAddress)? {
        let code = regions.filter { $0.isExecutable && $0.isReadable && !$0.isSpecial && $0.path.hasPrefix("/") }
        let libc = code.filter { ($0.path.split(separator: "/").last ?? "").hasPrefix("libc") }
        for region in libc + code.filter({ r in !libc.contains { $0.start == r.start } }) {
            let length = Int(min(region.size, 64 << 20))
            guard let bytes = try? RemoteTask.readMemory(pid: pid, length, at: region.start) else { continue }
            for pattern in patterns {
                if let i = firstIndex(of: pattern, in: bytes) {
                    let start = region.start + UInt64(i)
                    return (start, start + UInt64(pattern.count - 2))
                }
            }
        }
        return nil
    }

    static func firstIndex(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        var i = 0
        while i <= bytes.count - pattern.count {
            if bytes[i] == pattern[0] && bytes[i..<i + pattern.count].elementsEqual(pattern) { return i }
            i += 1
        }
        return nil
    }
}
