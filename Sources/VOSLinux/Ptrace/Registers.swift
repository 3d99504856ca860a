// The x86-64 general registers (`struct user_regs_struct`), as a Codable value.
import CVOSShim

public struct Registers: Codable, Sendable, Equatable {
    public var r15: UInt64 = 0, r14: UInt64 = 0, r13: UInt64 = 0, r12: UInt64 = 0
    public var rbp: UInt64 = 0, rbx: UInt64 = 0, r11: UInt64 = 0, r10: UInt64 = 0
    public var r9: UInt64 = 0, r8: UInt64 = 0, rax: UInt64 = 0, rcx: UInt64 = 0
    public var rdx: UInt64 = 0, rsi: UInt64 = 0, rdi: UInt64 = 0, origRax: UInt64 = 0
    public var rip: UInt64 = 0, cs: UInt64 = 0, eflags: UInt64 = 0, rsp: UInt64 = 0
    public var ss: UInt64 = 0, fsBase: UInt64 = 0, gsBase: UInt64 = 0
    public var ds: UInt64 = 0, es: UInt64 = 0, fs: UInt64 = 0, gs: UInt64 = 0

    public init() {}

    init(_ r: user_regs_struct) {
        r15 = UInt64(r.r15); r14 = UInt64(r.r14); r13 = UInt64(r.r13); r12 = UInt64(r.r12)
        rbp = UInt64(r.rbp); rbx = UInt64(r.rbx); r11 = UInt64(r.r11); r10 = UInt64(r.r10)
        r9 = UInt64(r.r9); r8 = UInt64(r.r8); rax = UInt64(r.rax); rcx = UInt64(r.rcx)
        rdx = UInt64(r.rdx); rsi = UInt64(r.rsi); rdi = UInt64(r.rdi); origRax = UInt64(r.orig_rax)
        rip = UInt64(r.rip); cs = UInt64(r.cs); eflags = UInt64(r.eflags); rsp = UInt64(r.rsp)
        ss = UInt64(r.ss); fsBase = UInt64(r.fs_base); gsBase = UInt64(r.gs_base)
        ds = UInt64(r.ds); es = UInt64(r.es); fs = UInt64(r.fs); gs = UInt64(r.gs)
    }

    var raw: user_regs_struct {
        var r = user_regs_struct()
        r.r15 = .init(r15); r.r14 = .init(r14); r.r13 = .init(r13); r.r12 = .init(r12)
        r.rbp = .init(rbp); r.rbx = .init(rbx); r.r11 = .init(r11); r.r10 = .init(r10)
        r.r9 = .init(r9); r.r8 = .init(r8); r.rax = .init(rax); r.rcx = .init(rcx)
        r.rdx = .init(rdx); r.rsi = .init(rsi); r.rdi = .init(rdi); r.orig_rax = .init(origRax)
        r.rip = .init(rip); r.cs = .init(cs); r.eflags = .init(eflags); r.rsp = .init(rsp)
        r.ss = .init(ss); r.fs_base = .init(fsBase); r.gs_base = .init(gsBase)
        r.ds = .init(ds); r.es = .init(es); r.fs = .init(fs); r.gs = .init(gs)
        return r
    }

    /// The result register read as a signed value (`-errno` on failure).
    public var result: Int64 { Int64(bitPattern: rax) }
}
