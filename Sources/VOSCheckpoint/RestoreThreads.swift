// Per-thread state, and the extra threads themselves: one injected clone3 each from the main
// thread, under the saved TID when it is free (probe 12).
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

enum RestoreThreads {
    /// What each thread needs set from inside itself: rseq, robust list, name, alternate stack.
    static func threadState(_ task: RemoteTask, _ t: ThreadRecord, isMain: Bool) throws {
        if let rseq = t.rseq {
            try task.call("rseq(register)", .rseq, rseq.area, UInt64(rseq.length), 0, UInt64(rseq.signature))
        }
        if t.robustListHead != 0 {
            try task.call("set_robust_list", .setRobustList, t.robustListHead, t.robustListLength)
        }
        if isMain {
            try task.call("set_tid_address", .setTidAddress, t.clearChildTID)
        }
        if let ss = t.alternateStack {
            let at = try task.stage(vos_stack(sp: ss.base, flags: ss.flags, pad: 0, size: ss.size), at: 0)
            try task.call("sigaltstack", .sigaltstack, at.raw, 0)
        } else if isMain {
            // The stub was forked from vos and kept vos's alternate stack (the Swift runtime
            // sets one), which points into memory that is gone now: an SA_ONSTACK handler would
            // crash on it. Threads made by clone3 with CLONE_VM start without one.
            let at = try task.stage(vos_stack(sp: 0, flags: Int32(SS_DISABLE), pad: 0, size: 0), at: 0)
            try task.call("sigaltstack(SS_DISABLE)", .sigaltstack, at.raw, 0)
        }
        if !isMain { try RestoreProcessState.name(task, t.name) }
    }

    /// Clones one thread in `main`'s process with glibc's flags. Returns the new thread's task.
    static func clone(_ t: ThreadRecord, from main: RemoteTask, newTID: Bool) throws -> RemoteTask {
        let flags: UInt64 = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x80000 | 0x100000 | 0x200000
        // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
        func attempt(keepTID: Bool) throws -> Int64 {
            let tidAt = try main.stage(t.tid, at: 512)
            var args = vos_clone_args()
            args.flags = flags
            args.child_tid = t.clearChildTID
            args.parent_tid = t.clearChildTID  // glibc's cached TID (struct pthread.tid) gets the new TID
            args.tls = t.registers.fsBase
            args.stack = main.scratch.raw + 1024
            args.stack_size = 1024
            if keepTID {
                args.set_tid = tidAt.raw
                args.set_tid_size = 1
            }
            let at = try main.stage(args, at: 0)
            return try main.rawCall("clone3(thread \(t.tid))", SyscallNumber.clone3.rawValue, [at.raw, UInt64(MemoryLayout<vos_clone_args>.size)])
        }
        let r = try attempt(keepTID: !newTID)
        if r == -17 { throw IDTaken.error(t.tid, what: "thread id") }  // EEXIST
        guard r > 0 else {
            throw SyscallError(call: "clone3 (injected)", errno: .init(rawValue: Int32(-r)), subject: "thread \(t.tid) of pid \(main.pid)")
        }
        // clone3 returned the TID in the target's own PID namespace; ptrace speaks host TIDs.
        guard let host = main.lastClonedTID else {
            throw CheckpointError("cannot restore thread \(t.tid)", reason: "clone3 returned \(r) but ptrace reported no new thread")
        }
        let tracee = Tracee.adopt(host)
        // Auto-attached by PTRACE_O_TRACECLONE: its first stop comes before any instruction of its own.
        _ = try tracee.waitEventStop()
        let regs = try tracee.registers()
        return RemoteTask(tracee: tracee, pid: main.pid, savedRegisters: regs, syscallSite: main.syscallSite,
                          scratch: main.scratch, scratchSize: main.scratchSize)
    }

    /// Re-queues pending signals: a thread's own from inside it (the kernel lets a caller
    /// impersonate a sender only towards itself: probe 12), the shared ones from the main thread.
    /// `ids` are the process and thread IDs as the target's own PID namespace sees them.
    static func pendingSignals(_ task: RemoteTask, _ infos: [[UInt8]], shared: Bool, ids: (pid: PID, tid: PID)) throws {
        for info in infos where info.count >= 4 {
            let sig = info.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
            let at = try task.stage(bytes: info, at: 0)
            if shared {
                try task.call("rt_sigqueueinfo(\(sig))", .rtSigqueueinfo, UInt64(ids.pid), UInt64(sig), at.raw)
            } else {
                try task.call("rt_tgsigqueueinfo(\(sig))", .rtTgsigqueueinfo, UInt64(ids.pid), UInt64(ids.tid), UInt64(sig), at.raw)
            }
        }
    }

    /// The last step of each thread: xstate, registers, mask, affinity.
    static func finalState(_ task: RemoteTask, _ t: ThreadRecord) throws {
        try task.tracee.setXstate(t.xstate)
        try task.tracee.setRegisters(t.registers.resumable())
        try task.tracee.setSignalMask(t.signalMask)
        try? Kernel.setAffinity(of: task.tid, t.affinity)
    }
}
