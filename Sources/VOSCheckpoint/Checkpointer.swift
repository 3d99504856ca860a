// Checkpoint of one running process: freeze, collect every resource kind, write the image,
// then kill it or let it go on. Any failure thaws the process exactly as it was and removes
// the partial image.
import CVOSShim
import Glibc
import VOSImage
import VOSInjection
import VOSLinux

public struct CheckpointSummary: Codable, Sendable {
    public var pid: PID
    public var image: String
    public var threads: Int
    public var files: Int
    public var pagesStored: UInt64
    public var bytesStored: UInt64
    /// From the first seize to the kill or the resume.
    public var frozenMilliseconds: Double
    public var totalMilliseconds: Double
    public var leftRunning: Bool
}

public enum Checkpointer {
    public static func checkpoint(pid: PID, imageDirectory: String, leaveRunning: Bool) throws -> CheckpointSummary {
        let start = Kernel.monotonicNanos()
        let what = "cannot checkpoint pid \(pid)"
        guard pid > 0 else { throw CheckpointError(what, reason: "not a valid process id") }
        guard pid != getpid() else { throw CheckpointError(what, reason: "that is this vos process itself") }
        let stat: ProcStat
        do { stat = try ProcStat.read("/proc/\(pid)/stat") } catch {
            throw CheckpointError(what, reason: "no such process")
        }
        if stat.state == "Z" || stat.state == "X" { throw CheckpointError(what, reason: "it is a zombie (it has exited)") }
        if ProcStatus.number(pid: pid, "Tgid") != Int64(pid) {
            throw CheckpointError(what, reason: "it is a thread, not a process; give its process id \(ProcStatus.number(pid: pid, "Tgid"))")
        }
        if let tracer = FrozenProcess.tracer(of: pid) { throw FrozenProcess.busy(pid, tracer) }

        let writer = try step(what) { try ImageWriter(directory: imageDirectory) }
        // Refuse unsupported fds before freezing anything.
        do { try FileTable.checkSupported(try FileTable.list(pid: pid), pid: pid) } catch {
            writer.discard()
            throw error
        }

        let oldAffinity = Kernel.pinCallingThread(to: stat.lastCPU)
        defer { if let oldAffinity { Kernel.restoreAffinity(oldAffinity) } }

        let frozen: FrozenProcess
        do { frozen = try FrozenProcess(pid: pid) } catch {
            writer.discard()
            if error is CheckpointError { throw error }
            throw CheckpointError("\(what) while freezing it", cause: error)
        }
        let frozenAt = Kernel.monotonicNanos()
        // Its TCP sockets go into repair mode: a guardian takes them out should vos die.
        let guardian = (try? FileTable.list(pid: pid)).map(FileTable.holdsSockets) == true ? Guardian.start(pids: [pid], interface: nil) : nil
        defer { guardian?.dismiss() }
        do {
            let (record, pages) = try collect(pid: pid, frozen: frozen, stat: stat, writer: writer)
            try FaultInjection.check("checkpoint-before-manifest")
            let write = {
                try step("\(what) while writing the image to \(imageDirectory)") {
                    try writer.finish(process: record, machine: MachineInfo.current())
                }
            }
            // TCP connections were dumped in repair mode: a killed process closes them silently.
            let thawed: UInt64
            if leaveRunning {
                // The state is all in memory and the pages on disk: the process may go on before
                // the records are encoded and written.
                TCPSocket.leaveRepair(pids: [pid])
                frozen.thaw()
                thawed = Kernel.monotonicNanos()
                try write()
            } else {
                // The image must be complete before the only copy of the process goes.
                try write()
                thawed = frozen.kill()
            }
            frozen.waitUntilReaped()
            let end = Kernel.monotonicNanos()
            return CheckpointSummary(
                pid: pid, image: imageDirectory, threads: record.threads.count, files: record.files.count,
                pagesStored: pages / pageSize, bytesStored: pages, frozenMilliseconds: Double(thawed - frozenAt) / 1e6,
                totalMilliseconds: Double(end - start) / 1e6, leftRunning: leaveRunning)
        } catch {
            TCPSocket.leaveRepair(pids: [pid])
            frozen.thaw()
            writer.discard()
            if error is CheckpointError { throw error }
            throw CheckpointError(what, cause: error)
        }
    }

    /// Everything but the write of the manifest, with the process frozen.
    static func collect(pid: PID, frozen: FrozenProcess, stat: ProcStat, writer: ImageWriter,
                        pagesName: String = ImageLayout.pages, files listed: [OpenFile]? = nil,
                        sysVSaved: Bool = false, savedPID: PID? = nil,
                        pages: PageSaver = ImagePageSaver()) throws -> (ProcessRecord, UInt64) {
        let files = try listed ?? FileTable.list(pid: pid)
        try FileTable.checkSupported(files, pid: pid)
        let regions = try MemoryMap.read(pid: pid)
        let status = try ProcStatus.read("/proc/\(pid)/status")
        let trampoline = SignalReturnSite.find(pid: pid, in: regions)
        let site = try trampoline?.syscall ?? SyscallSite.find(pid: pid, in: regions)
        let frozenAtNanos = Kernel.monotonicNanos()

        var threads: [ThreadRecord] = []
        var tasks: [RemoteTask] = []
        var scratches: [(RemoteAddress, [UInt8])] = []
        // Threads get their registers back before their stack bytes (see ReturnFrame).
        defer {
            for task in tasks { task.release() }
            for (at, bytes) in scratches { try? RemoteTask.writeMemory(pid: pid, bytes, at: at) }
        }
        for tracee in frozen.threads {
            let regs = frozen.originalRegisters[tracee.tid]!
            let mask = frozen.originalMasks[tracee.tid] ?? 0
            let xstate = try tracee.xstate()
            let task: RemoteTask
            if let trampoline {
                task = try step("preparing thread \(tracee.tid) for injection") {
                    try RemoteTask(liveThread: tracee, pid: pid, savedRegisters: regs, mask: mask, xstate: xstate,
                                   trampoline: trampoline, stack: regions)
                }
            } else {
                // No signal-return trampoline in the program: each call puts the thread's registers
                // back at once (if vos dies inside one call, the thread is lost). Scratch below the
                // red zone, put back afterwards.
                let scratch = RemoteAddress((regs.rsp - 128 - 512) & ~15)
                guard regions.contains(where: { $0.start <= scratch && scratch + 512 <= $0.end && $0.isWritable }) else {
                    throw CheckpointError("cannot checkpoint pid \(pid)", reason: "thread \(tracee.tid) has no writable stack below its stack pointer \(RemoteAddress(regs.rsp))")
                }
                scratches.append((scratch, try RemoteTask.readMemory(pid: pid, 512, at: scratch)))
                task = RemoteTask(tracee: tracee, pid: pid, savedRegisters: regs, syscallSite: site, scratch: scratch, scratchSize: 512)
                task.ownSignalMask = mask
            }
            tasks.append(task)
            threads.append(try step("dumping thread \(tracee.tid)") {
                try ThreadState.dump(tracee, pid: pid, registers: regs, mask: mask, xstate: xstate, task: task)
            })
        }
        DiePoint.here("checkpoint-injecting")  // every thread parked on its return frame
        guard let task = tasks.first, task.tid == pid else { throw CheckpointError("cannot checkpoint pid \(pid)", reason: "its main thread is gone") }
        let actions = try step("reading signal dispositions") { try ProcessState.signalActions(status: status, task: task) }
        let itimers = try step("reading interval timers") { try ProcessState.intervalTimers(task: task) }
        let timers = try step("reading POSIX timers") { try ProcessState.posixTimers(pid: pid, task: task) }
        let mm = try step("reading mm fields") { try ProcessState.mmFields(stat: stat, pid: pid, task: task) }
        for task in tasks { task.release() }
        for (at, bytes) in scratches { try RemoteTask.writeMemory(pid: pid, bytes, at: at) }
        tasks = []
        scratches = []
        DiePoint.here("checkpoint-frozen")

        var memory = try MemoryDump(pid: pid, regions: regions)
        try step("saving shared memory objects of pid \(pid)") { try MappedObjects.save(pid: pid, records: &memory.records, writer: writer, sysVSaved: sysVSaved) }
        let stored = try pages.save(hostPID: pid, savedPID: savedPID ?? pid, memory: &memory, writer: writer, pagesName: pagesName)
        try FaultInjection.check("checkpoint-after-memory")

        let fileRecords = try FileTable.dump(files, pid: pid, blobs: BlobWriter(image: writer))
        DiePoint.here("checkpoint-sockets-dumped")  // TCP sockets in repair mode, a capsule's network cut
        let record = ProcessRecord(
            pid: pid, commandLine: ProcessState.commandLine(pid: pid),
            executable: (try? ProcFile.link("/proc/\(pid)/exe")) ?? "", name: stat.comm, threads: threads,
            memory: memory.records, mm: mm, files: fileRecords, signalActions: actions,
            sharedPendingSignals: try frozen.threads[0].pendingSignals(shared: true), itimers: itimers, posixTimers: timers,
            cwd: try ProcFile.link("/proc/\(pid)/cwd"), umask: status.octal("Umask"), limits: try Limits.read(pid: pid),
            parentDeathSignal: 0, frozenAtMonotonicNanos: frozenAtNanos)
        return (record, stored)
    }
}

extension ProcStatus {
    static func number(pid: PID, _ key: String) -> Int64 {
        (try? ProcStatus.read("/proc/\(pid)/status"))?.number(key) ?? -1
    }
}
