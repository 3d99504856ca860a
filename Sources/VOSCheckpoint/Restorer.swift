// Restore of one process from an image: a stub is taken over by injected calls and becomes the
// checkpointed process (probe 11's order, with threads as in probe 12). On any failure the
// stub is killed: nothing half-built stays behind.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

public struct RestoreSummary: Codable, Sendable {
    public var pid: PID
    public var originalPID: PID
    /// True when the process and its threads have their saved IDs (always, unless `newPID`).
    public var keptPID: Bool
    public var threads: Int
    public var injectedCalls: Int
    public var milliseconds: Double
}

public enum Restorer {
    /// Restores under the saved PID and TIDs (an error names whoever holds one of them), or
    /// under new ones when `newPID` (glibc's cached TIDs are then fixed where they can be).
    public static func restore(imageDirectory: String, newPID: Bool = false) throws -> RestoreSummary {
        let start = Kernel.monotonicNanos()
        let image = try step("cannot restore from \(imageDirectory)") { try ImageReader(directory: imageDirectory) }
        let p = image.process
        let pid = try step("cannot restore pid \(p.pid)") { try Stub.spawn(pid: p.pid, newPID: newPID) }
        do {
            let calls = try build(pid: pid, image: image, newPID: newPID)
            return RestoreSummary(pid: pid, originalPID: p.pid, keptPID: !newPID, threads: p.threads.count,
                                  injectedCalls: calls, milliseconds: Double(Kernel.monotonicNanos() - start) / 1e6)
        } catch {
            Stub.discard(pid)
            if error is CheckpointError { throw error }
            throw CheckpointError("cannot restore pid \(p.pid) from \(imageDirectory)", cause: error)
        }
    }

    /// Turns the stub `pid` into the saved process and lets it run; returns the injected-call count.
    static func build(pid: PID, image: ImageReader, newPID: Bool) throws -> Int {
        let p = image.process
        let tracee = try Tracee.seize(pid, options: Int(VOS_PTRACE_O_TRACECLONE | VOS_PTRACE_O_EXITKILL))
        try tracee.interrupt()
        _ = try tracee.waitEventStop()
        let oldAffinity = Kernel.pinCallingThread(to: (try? ProcStat.read("/proc/\(pid)/stat").lastCPU) ?? 0)
        defer { if let oldAffinity { Kernel.restoreAffinity(oldAffinity) } }
        try tracee.setSignalMask(~0)  // no signal may interrupt an injection; clones inherit it

        let stubRegions = try MemoryMap.read(pid: pid)
        let stubStatus = try ProcStatus.read("/proc/\(pid)/status")
        let task = RemoteTask(tracee: tracee, pid: pid, savedRegisters: try tracee.registers(),
                              syscallSite: try SyscallSite.find(pid: pid, in: stubRegions), scratch: RemoteAddress(0), scratchSize: 0)
        let records = p.memory
        let hole = try RestoreMemory.hole(size: RestoreMemory.gadgetBytes, avoiding: records.map(\.region), stubRegions)

        try step("preparing the stub") {
            try RestoreMemory.bootstrap(task, at: hole)
            try RestoreMemory.clearStub(task, hole: hole)
            try task.call("setsid", .setsid)
        }
        try step("restoring the vdso") { try RestoreMemory.mapVDSO(task, records: records) }
        let reprotect = try step("mapping memory") { try RestoreMemory.mapRegions(task, records: records) }
        try step("filling memory") { try RestoreMemory.fill(pid: pid, image: image) }
        try FaultInjection.check("restore-after-memory")
        try step("protecting memory") { try RestoreMemory.reprotect(task, reprotect) }
        if pid != p.pid { try fixCachedTID(pid: pid, thread: p.threads[0], newTID: pid) }

        try step("restoring mm fields") { try RestoreProcessState.mm(task, p) }
        try step("restoring the process name") { try RestoreProcessState.name(task, p.threads[0].name) }
        try step("restoring resource limits") { try RestoreProcessState.limits(task, p.limits) }
        try step("restoring files") {
            try task.call("close_range", .closeRange, 0, UInt64(UInt32.max), 0)
            try FileTable.restore(p.files, image: image, task: task)
        }
        try step("restoring cwd and umask") { try RestoreProcessState.cwdAndUmask(task, p) }
        try step("restoring signal dispositions") {
            try RestoreProcessState.signalActions(task, p.signalActions, stubNonDefault: stubStatus.hex("SigIgn") | stubStatus.hex("SigCgt"))
        }
        try step("restoring the main thread") { try RestoreThreads.threadState(task, p.threads[0], isMain: true) }

        var tasks: [(RemoteTask, ThreadRecord)] = [(task, p.threads[0])]
        var tidMap: [PID: PID] = [p.pid: pid]
        for t in p.threads.dropFirst() {
            let threadTask = try step("restoring thread \(t.tid)") {
                let tt = try RestoreThreads.clone(t, from: task, newTID: newPID)
                try RestoreThreads.threadState(tt, t, isMain: false)
                try RestoreThreads.pendingSignals(tt, t.pendingSignals, shared: false)
                return tt
            }
            tidMap[t.tid] = threadTask.tid
            tasks.append((threadTask, t))
        }
        try step("restoring timers") {
            try RestoreProcessState.intervalTimers(task, p.itimers)
            try RestoreProcessState.posixTimers(task, p.posixTimers, tidMap: tidMap)
        }
        try step("re-queueing pending signals") {
            try RestoreThreads.pendingSignals(task, p.threads[0].pendingSignals, shared: false)
            try RestoreThreads.pendingSignals(task, p.sharedPendingSignals, shared: true)
        }

        // The gadget page cannot unmap itself while it runs the call: use a syscall
        // instruction of the restored vdso instead.
        try step("removing the restorer's gadget page") {
            let now = try MemoryMap.read(pid: pid).filter { !($0.start <= hole && hole < $0.end) }
            task.syscallSite = try SyscallSite.find(pid: pid, in: now)
            try task.call("munmap(gadget)", .munmap, hole.raw, RestoreMemory.gadgetBytes)
        }
        let calls = tasks.reduce(0) { $0 + $1.0.injectedCount }
        try step("setting registers") { for (tt, t) in tasks { try RestoreThreads.finalState(tt, t) } }
        for (tt, _) in tasks.reversed() { try tt.tracee.detach() }
        return calls
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
