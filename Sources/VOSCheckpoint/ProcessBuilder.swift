// Turns a seized, stopped stub into one saved process (probe 11's order, threads as in
// probe 12). The result is held stopped until `release()`, so a tree is released together.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

/// A rebuilt process, still stopped: every thread's task and saved record.
struct BuiltProcess {
    var pid: PID
    var tasks: [(RemoteTask, ThreadRecord)]
    var injectedCalls: Int { tasks.reduce(0) { $0 + $1.0.injectedCount } }

    /// xstate, registers, mask and affinity of every thread, then detach (main thread last).
    func release() throws {
        try step("setting registers of pid \(pid)") { for (tt, t) in tasks { try RestoreThreads.finalState(tt, t) } }
        for (tt, _) in tasks.reversed() { try tt.tracee.detach() }
    }
}

enum ProcessBuilder {
    /// `tracee` is the stub's main thread, stopped, with signals blocked (`Stub.seize`).
    /// `newSession`: make it a session leader (a lone process detached from vos); a tree sets
    /// sessions and groups itself.
    /// `lazy`: private anonymous memory is registered to a userfaultfd served by it instead of filled.
    static func build(tracee: Tracee, image: ProcessImage, files: FileRestoreContext, newPID: Bool, newSession: Bool,
                      lazy: LazyPageServer? = nil) throws -> BuiltProcess {
        let p = image.record
        let pid = tracee.tid
        let stubRegions = try MemoryMap.readRanges(pid: pid)
        let stubStatus = try ProcStatus.read("/proc/\(pid)/status")
        let task = RemoteTask(tracee: tracee, pid: pid, savedRegisters: try tracee.registers(),
                              syscallSite: try SyscallSite.find(pid: pid, in: stubRegions), scratch: RemoteAddress(0), scratchSize: 0)
        let records = p.memory
        let hole = try RestoreMemory.hole(size: RestoreMemory.gadgetBytes, avoiding: records.map(\.region), stubRegions)

        try step("preparing the stub") {
            try RestoreMemory.bootstrap(task, at: hole)
            try RestoreMemory.clearStub(task, hole: hole)
            try RestoreProcessState.mm(task, p)
            if newSession { try task.call("setsid", .setsid) }
        }
        try step("restoring the vdso") { try RestoreMemory.mapVDSO(task, records: records) }
        let reprotect = try step("mapping memory") { try RestoreMemory.mapRegions(task, records: records, files: files) }
        if let lazy {
            let eager = try step("registering lazy memory") { try LazyMemory.register(task, image: image, server: lazy) }
            try step("filling eager memory") { try LazyMemory.fillEager(pid: pid, savedPID: p.pid, records: eager, source: lazy.source) }
        } else {
            try step("filling memory") { try RestoreMemory.fill(pid: pid, image: image) }
        }
        try FaultInjection.check("restore-after-memory")
        try step("protecting memory") { try RestoreMemory.reprotect(task, reprotect) }
        if newPID { try fixCachedTID(pid: pid, thread: p.threads[0], newTID: pid) }

        try step("restoring the process name") { try RestoreProcessState.name(task, p.threads[0].name) }
        try step("restoring resource limits") { try RestoreProcessState.limits(task, p.limits) }
        try step("restoring files") {
            try FileTable.restore(p.files, owner: p.pid, context: files, task: task)
        }
        try step("restoring cwd and umask") { try RestoreProcessState.cwdAndUmask(task, p) }
        try step("restoring signal dispositions") {
            try RestoreProcessState.signalActions(task, p.signalActions, stubNonDefault: stubStatus.hex("SigIgn") | stubStatus.hex("SigCgt"))
        }
        try step("restoring the main thread") { try RestoreThreads.threadState(task, p.threads[0], isMain: true) }

        var tasks: [(RemoteTask, ThreadRecord)] = [(task, p.threads[0])]
        // IDs as the process's own PID namespace sees them: the saved ones unless `newPID`.
        let nsPID = newPID ? pid : p.pid
        var tidMap: [PID: PID] = [p.pid: nsPID]
        for t in p.threads.dropFirst() {
            let threadTask = try step("restoring thread \(t.tid)") {
                let tt = try RestoreThreads.clone(t, from: task, newTID: newPID)
                try RestoreThreads.threadState(tt, t, isMain: false)
                try RestoreThreads.pendingSignals(tt, t.pendingSignals, shared: false, ids: (nsPID, newPID ? tt.tid : t.tid))
                return tt
            }
            tidMap[t.tid] = newPID ? threadTask.tid : t.tid
            tasks.append((threadTask, t))
        }
        try step("restoring timers") {
            try RestoreProcessState.intervalTimers(task, p.itimers)
            try RestoreProcessState.posixTimers(task, p.posixTimers, tidMap: tidMap)
        }
        try step("re-queueing pending signals") {
            try RestoreThreads.pendingSignals(task, p.threads[0].pendingSignals, shared: false, ids: (nsPID, nsPID))
            try RestoreThreads.pendingSignals(task, p.sharedPendingSignals, shared: true, ids: (nsPID, nsPID))
        }

        // The gadget page cannot unmap itself while it runs the call: use a syscall
        // instruction of the restored vdso instead.
        try step("removing the restorer's gadget page") {
            // The restored layout is the saved one: no need to read it back.
            task.syscallSite = try SyscallSite.find(pid: pid, in: records.map(\.region))
            try task.call("munmap(gadget)", .munmap, hole.raw, RestoreMemory.gadgetBytes)
        }
        return BuiltProcess(pid: pid, tasks: tasks)
    }


    /// glibc caches the TID in the thread's descriptor (probe 11): under a new PID, write the
    /// new one where `set_tid_address` pointed, if the old TID is what is there.
    static func fixCachedTID(pid: PID, thread: ThreadRecord, newTID: PID) throws {
        guard thread.clearChildTID != 0 else { return }
        let at = RemoteAddress(thread.clearChildTID)
        let old = try RemoteTask.readMemory(pid: pid, 4, at: at).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        guard old == thread.tid else { return }
        try RemoteTask.writeMemory(pid: pid, withUnsafeBytes(of: newTID) { Array($0) }, at: at)
    }
}
