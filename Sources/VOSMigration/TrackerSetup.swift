// The only moment dirty tracking stops the process: a userfaultfd is created inside it by an
// injected userfaultfd(), duplicated into vos with pidfd_getfd, and closed again in the process
// by an injected close() (probe 3: the duplicate keeps the context, bound to the process's mm).
// Both calls take no memory argument: the process's memory is touched only below its red zone
// (the return frame, erased afterwards). Should vos die between the two calls, the process keeps
// one extra fd, its userfaultfd, and nothing else.
import CVOSShim
import Glibc
import VOSCheckpoint
import VOSInjection
import VOSLinux

enum TrackerSetup {
    /// Returns vos's duplicate of a userfaultfd bound to `pid`'s mm. The process is frozen for
    /// the two injected calls and thawed before this returns, whatever happens.
    static func pullUserfaultfd(pid: PID) throws -> Userfaultfd {
        let regions = try MemoryMap.readRanges(pid: pid)
        let trampoline = SignalReturnSite.find(pid: pid, in: regions)
        let site = try trampoline?.syscall ?? SyscallSite.find(pid: pid, in: regions)
        let frozen = try FrozenProcess(pid: pid)
        defer { frozen.thaw() }
        guard let main = frozen.threads.first(where: { $0.tid == pid }) else {
            throw MigrationError("cannot track pid \(pid)", reason: "its main thread is gone")
        }
        let regs = try main.registers()
        let mask = try main.signalMask()
        // The thread returns home by itself if vos dies (see ReturnFrame); without a trampoline
        // in the program, each call puts its registers back at once. Neither call reads or
        // writes memory through the scratch area.
        let task = try trampoline.map {
            try RemoteTask(liveThread: main, pid: pid, savedRegisters: regs, mask: mask, xstate: try main.xstate(),
                           trampoline: $0, stack: regions)
        } ?? RemoteTask(tracee: main, pid: pid, savedRegisters: regs, syscallSite: site, scratch: RemoteAddress(regs.rsp), scratchSize: 0)
        defer { task.release() }
        task.ownSignalMask = mask
        let raw = try task.rawCall("userfaultfd(O_CLOEXEC|O_NONBLOCK)", Int(VOS_SYS_userfaultfd), [UInt64(O_CLOEXEC | O_NONBLOCK)])
        if raw < 0 {
            throw SyscallError(call: "userfaultfd(O_CLOEXEC|O_NONBLOCK)", errno: .init(rawValue: Int32(-raw)),
                               subject: "pid \(pid) (injected in tid \(pid))")
        }
        let targetFD = Int32(raw)
        let duplicate = Result { () throws -> Userfaultfd in
            let pidfd = try Kernel.pidfdOpen(pid)
            defer { _ = close(pidfd.rawValue) }
            return Userfaultfd(adopting: try Kernel.pidfdGetfd(pidfd, targetFD, pid: pid), subject: "userfaultfd of pid \(pid)")
        }
        // The process's own fd goes in every case: it must keep no trace of vos.
        try task.call("close(\(targetFD))", .close, UInt64(targetFD))
        return try duplicate.get()
    }
}
