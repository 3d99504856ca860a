// Per-thread state: what ptrace and /proc give directly, and what must be asked by injection.
import CVOSShim
import VOSImage
import VOSInjection
import VOSLinux

enum ThreadState {
    /// Collects a thread's state. `task` runs injected queries in that very thread
    /// (clear_child_tid and the alternate signal stack are per thread). `xstate` was read
    /// before any call was injected.
    static func dump(_ tracee: Tracee, pid: PID, registers: Registers, mask: UInt64, xstate: [UInt8], task: RemoteTask) throws -> ThreadRecord {
        let tid = tracee.tid
        let rseq = try tracee.rseqConfiguration()
        let robust = try Kernel.robustList(of: tid)
        let name = try ProcFile.text("/proc/\(pid)/task/\(tid)/comm").trimmingSuffix("\n")

        // PR_GET_TID_ADDRESS writes the address into *arg2: use the scratch area.
        try task.call("prctl(PR_GET_TID_ADDRESS)", .prctl, UInt64(VOS_PR_GET_TID_ADDRESS), task.scratch.raw)
        let clearChildTID = try task.unstage(UInt64.self)
        try task.call("sigaltstack", .sigaltstack, 0, task.scratch.raw)
        let ss = try task.unstage(vos_stack.self)
        let altStack = (ss.flags & 2) != 0 ? nil : AlternateStack(base: ss.sp, size: ss.size, flags: ss.flags)  // SS_DISABLE = 2

        return ThreadRecord(
            tid: tid, name: name, registers: registers, xstate: xstate, signalMask: mask,
            rseq: rseq.area == 0 ? nil : RseqRegistration(area: rseq.area, length: rseq.length, signature: rseq.signature),
            robustListHead: robust.head, robustListLength: robust.length, clearChildTID: clearChildTID,
            affinity: try Kernel.affinity(of: tid), pendingSignals: try tracee.pendingSignals(shared: false),
            alternateStack: altStack)
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}
