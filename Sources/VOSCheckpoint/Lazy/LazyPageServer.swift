// Post-copy: serves the missing pages of lazily restored processes through their userfaultfds.
// One thread polls every uffd; a fault is answered first (its page and a small window after it,
// from the page source), and between faults the remaining pages are pushed in big UFFDIO_COPYs
// until none is missing; then each uffd is unregistered and closed. The thread starts before
// the processes are released (an injected call of the restore may already fault), but pushes
// only once they run, so the time to resume pays for nothing that can wait.
import CVOSShim
import Dispatch
import Glibc
import VOSLinux

/// Tuning of a lazy restore.
public struct LazyOptions: Sendable {
    /// Pages copied on a fault: the faulting one and those after it, clipped to its run.
    public var faultWindowPages = 16
    /// Bytes of one background UFFDIO_COPY.
    public var pushBytes = 4 << 20
    /// Regions with fewer stored pages are filled before the process runs: a fault round trip
    /// (~20 µs) per page costs more than copying a few pages up front.
    public var minimumLazyPages: UInt64 = 16
    public init() {}
}

/// What a lazy restore did, for `vos restore --lazy` and the tests.
public struct LazyReport: Codable, Sendable {
    /// From the start of the restore until the processes ran.
    public var resumeMilliseconds: Double
    /// From the start of the restore until every page was in (or the server stopped).
    public var completeMilliseconds: Double
    public var faultPages: Int
    public var pushedPages: Int
    /// Faults on pages with nothing stored (never written, or discarded since): zero-filled.
    public var zeroPages: Int
    /// Userfaultfds served: one per lazily restored process plus one per fork during the lazy phase.
    public var userfaultfds: Int
    /// Stored pages never copied because the process unmapped or discarded them, or exited.
    public var droppedPages: Int
}

public final class LazyPageServer: @unchecked Sendable {
    /// One uffd and the pages it still owes.
    final class Client {
        let uffd: Userfaultfd
        /// Host PID when known (a child forked during the lazy phase has none we can learn).
        let hostPID: PID?
        let savedPID: PID
        var spans: LazySpans
        var registered: [RemoteRange]
        var faults: [UInt64] = []
        init(uffd: Userfaultfd, hostPID: PID?, savedPID: PID, spans: LazySpans, registered: [RemoteRange]) {
            self.uffd = uffd
            self.hostPID = hostPID
            self.savedPID = savedPID
            self.spans = spans
            self.registered = registered
        }
    }

    public let source: PageSource
    public let options: LazyOptions
    private let startNanos: UInt64
    private let lock = DispatchQueue(label: "vos.lazy.page-server")
    private let wakeFD: Int32
    // Shared with the server thread under `lock`.
    private var added: [Client] = []
    private var releasedNanos: UInt64?
    private var stopRequested = false
    private var finished = false
    private var failure: Error?
    private var report: LazyReport
    private let completion = DispatchSemaphore(value: 0)
    private var thread: pthread_t?
    // Server thread only.
    private var clients: [Client] = []
    private var hostPIDs: [PID] = []
    private let buffer: UnsafeMutableRawPointer
    private var nextPush = 0

    /// `startNanos`: when the restore began (CLOCK_MONOTONIC), for the report's times.
    public init(source: PageSource, options: LazyOptions = LazyOptions(), startNanos: UInt64) throws {
        self.source = source
        self.options = options
        self.startNanos = startNanos
        wakeFD = try checked("eventfd", "the lazy page server") { vos_eventfd(0, O_CLOEXEC | O_NONBLOCK) }
        buffer = UnsafeMutableRawPointer.allocate(byteCount: max(options.pushBytes, options.faultWindowPages * 4096), alignment: 4096)
        report = LazyReport(resumeMilliseconds: 0, completeMilliseconds: 0, faultPages: 0, pushedPages: 0, zeroPages: 0,
                            userfaultfds: 0, droppedPages: 0)
    }

    deinit {
        close(wakeFD)
        buffer.deallocate()
    }

    /// Hands a registered uffd of a process being built to the server (its faults are served
    /// from now on, its pages pushed after `released`). Starts the thread on first use.
    func add(uffd: Userfaultfd, hostPID: PID, savedPID: PID, spans: [LazySpan], registered: [RemoteRange]) throws {
        let client = Client(uffd: uffd, hostPID: hostPID, savedPID: savedPID, spans: LazySpans(spans), registered: registered)
        lock.sync { added.append(client) }
        wake()
        if thread == nil { try startThread() }
    }

    /// The processes run: push from now on.
    public func released() {
        lock.sync { releasedNanos = Kernel.monotonicNanos() }
        wake()
        if thread == nil { finish(error: nil) }
    }

    /// The restore failed before release: stop serving and close every uffd (the caller kills the stubs).
    public func abort() {
        lock.sync { stopRequested = true }
        wake()
        if let thread { pthread_join(thread, nil) } else { finish(error: nil) }
        thread = nil
    }

    /// Blocks until every page is in (or the processes are gone); throws what made the server
    /// kill them (a page the source could not give).
    @discardableResult
    public func waitUntilComplete() throws -> LazyReport {
        completion.wait()
        completion.signal()
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        return try lock.sync {
            if let failure { throw failure }
            return report
        }
    }

    /// The figures so far (times are final once complete).
    public var currentReport: LazyReport { lock.sync { report } }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func startThread() throws {
        var t = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let r = pthread_create(&t, nil, { context in
            let server = Unmanaged<LazyPageServer>.fromOpaque(context!).takeRetainedValue()
            server.run()
            return nil
        }, context)
        guard r == 0 else {
            Unmanaged<LazyPageServer>.fromOpaque(context).release()
            throw SyscallError(call: "pthread_create", errno: .init(rawValue: r), subject: "the lazy page server")
        }
        thread = t
    }

    // MARK: - the server thread

    private func run() {
        var unpinned = false
        do {
            while true {
                let (new, releasedAt, stop) = lock.sync { () -> ([Client], UInt64?, Bool) in
                    defer { added = [] }
                    return (added, releasedNanos, stopRequested)
                }
                for c in new {
                    clients.append(c)
                    if let p = c.hostPID { hostPIDs.append(p) }
                    lock.sync { report.userfaultfds += 1 }
                }
                if stop { break }
                let pushing = releasedAt != nil
                if pushing && !unpinned {
                    // Created by the restoring thread, pinned beside the stub: run anywhere now.
                    var all = [UInt8](repeating: 0xff, count: 128)
                    _ = all.withUnsafeMutableBytes { vos_sched_setaffinity(0, 128, $0.baseAddress) }
                    unpinned = true
                }
                if pushing {
                    for c in clients where c.spans.remaining == 0 { retire(c) }
                    clients.removeAll { $0.spans.remaining == 0 }
                    if clients.isEmpty { break }
                }
                try pollOnce(timeout: pushing ? 0 : -1)
                if pushing { try pushOne() }
            }
            for c in clients { retire(c) }
            clients = []
            finish(error: nil)
        } catch {
            // A page that cannot be had: the process must not run on with zeros where its data was.
            for pid in hostPIDs { Self.killTree(pid) }
            for c in clients { c.uffd.close() }
            clients = []
            finish(error: error)
        }
    }

    private func finish(error: Error?) {
        lock.sync {
            guard !finished else { return }
            finished = true
            failure = error
            let now = Kernel.monotonicNanos()
            report.resumeMilliseconds = Double((releasedNanos ?? now) - startNanos) / 1e6
            report.completeMilliseconds = Double(now - startNanos) / 1e6
        }
        completion.signal()
    }

    private func count(_ path: WritableKeyPath<LazyReport, Int>, _ n: Int) {
        lock.sync { report[keyPath: path] += n }
    }

    private func pollOnce(timeout: Int32) throws {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        fds += clients.map { pollfd(fd: $0.uffd.fd.rawValue, events: Int16(POLLIN), revents: 0) }
        let n = poll(&fds, nfds_t(fds.count), timeout)
        if n < 0 {
            if errno == EINTR { return }
            throw SyscallError(call: "poll", errno: .init(rawValue: errno), subject: "the userfaultfds of the lazy page server")
        }
        if fds[0].revents != 0 {
            var v: UInt64 = 0
            _ = read(wakeFD, &v, 8)
        }
        // Clients forked in `handleEvents` are appended behind the polled ones.
        for (i, c) in clients.enumerated() where i + 1 < fds.count && fds[i + 1].revents != 0 {
            try handleEvents(c)
            try serveFaults(c)
        }
    }

    /// Reads every pending message of `c`: faults are queued, the others applied at once.
    private func handleEvents(_ c: Client) throws {
        for event in try c.uffd.readEvents() {
            switch event {
            case .pageFault(let address):
                c.faults.append(address)
            case .fork(let fd):
                let child = Client(uffd: Userfaultfd(adopting: .init(rawValue: fd), subject: "userfaultfd of a child of pid \(c.savedPID)"),
                                   hostPID: nil, savedPID: c.savedPID, spans: c.spans.forChild(), registered: c.registered)
                clients.append(child)
                count(\.userfaultfds, 1)
            case .remap(let from, let to, let length):
                c.spans.remap(from: from, to: to, length: length)
                c.registered = c.registered.map { r in
                    r.address.raw >= from && r.address.raw < from + length ? RemoteRange(address: r.address - from + to, length: r.length) : r
                }
            case .remove(let start, let end), .unmap(let start, let end):
                let gone = c.spans.cut(start, end).reduce(0) { $0 + $1.remaining }
                count(\.droppedPages, gone)
            case .other:
                break
            }
        }
    }

    private func serveFaults(_ c: Client) throws {
        var retries = 0
        while let address = c.faults.first {
            if try serve(c, address) {
                c.faults.removeFirst()
                retries = 0
            } else {
                // EAGAIN: the process is changing its layout; the event explaining it comes first.
                retries += 1
                if retries > 1000 { throw CheckpointError("lazy restore of pid \(c.savedPID)", reason: "the fault at 0x\(String(address, radix: 16)) stayed EAGAIN") }
                try handleEvents(c)
            }
        }
    }

    /// Answers one fault; false when the kernel said EAGAIN (read events, then retry).
    private func serve(_ c: Client, _ address: UInt64) throws -> Bool {
        guard let (i, page) = c.spans.locate(address) else {
            // Nothing stored there (never written, or discarded since): it reads as zeros.
            let e = c.uffd.zeroPageReporting(at: address)
            if e == EAGAIN { return false }
            if e == 0 { count(\.zeroPages, 1) } else { try settle(c, address, errno: e) }
            return true
        }
        if c.spans[i].isDone(page) {
            // Copied since the fault was queued: its waiter may still sleep.
            try? c.uffd.wake(RemoteRange(address: RemoteAddress(address), length: 4096))
            return true
        }
        var n = 1
        while n < options.faultWindowPages && page + n < c.spans[i].pages && !c.spans[i].isDone(page + n) { n += 1 }
        let copied = try copy(c, span: i, page: page, count: n)
        if copied < 0 { return false }
        count(\.faultPages, copied)
        return true
    }

    /// After a failed zeropage or copy of the faulting page: EEXIST means it is there (wake its
    /// waiter); ESRCH/ENOENT mean the process or the mapping is gone; anything else is an error.
    private func settle(_ c: Client, _ address: UInt64, errno e: Int32) throws {
        switch e {
        case EEXIST: try? c.uffd.wake(RemoteRange(address: RemoteAddress(address), length: 4096))
        case ESRCH, ENOENT, EINVAL: break
        default: throw SyscallError(call: "ioctl(UFFDIO_ZEROPAGE)", errno: .init(rawValue: e), subject: "\(c.uffd.subject) at 0x\(String(address, radix: 16))")
        }
    }

    /// Reads `count` pages of span `i` from the source and copies them in; returns the pages
    /// copied, or -1 on EAGAIN. Pages found present (EEXIST) or gone count as done.
    private func copy(_ c: Client, span i: Int, page: Int, count n: Int) throws -> Int {
        let s = c.spans[i]
        let bytes = n * 4096
        do {
            try source.read(pid: c.savedPID, address: s.source + UInt64(page) * 4096, count: bytes, into: buffer)
        } catch {
            throw CheckpointError("lazy restore of pid \(c.savedPID): cannot read \(n) pages saved at 0x\(String(s.source + UInt64(page) * 4096, radix: 16)); the process was killed",
                                  cause: error)
        }
        var at = 0
        var copied = 0
        while at < n {
            let r = c.uffd.copyReporting(to: s.start + UInt64(page + at) * 4096, from: buffer + at * 4096, length: UInt64((n - at) * 4096))
            let got = Int(r.copied / 4096)
            c.spans[i].markDone(page + at, count: got)
            copied += got
            at += got
            if at == n { break }
            switch r.errno {
            case 0, EAGAIN where got > 0:
                continue
            case EAGAIN:
                return copied > 0 ? copied : -1
            case EEXIST:
                c.spans[i].markDone(page + at, count: 1)
                at += 1
            case ESRCH:
                // The process is gone: nothing is owed any more.
                count(\.droppedPages, c.spans.remaining)
                for j in c.spans.indices { c.spans[j].markDone(0, count: c.spans[j].pages) }
                return copied
            case ENOENT, EINVAL:
                // The mapping went away under us (its unmap event follows): drop the rest.
                count(\.droppedPages, n - at)
                c.spans[i].markDone(page + at, count: n - at)
                return copied
            default:
                throw SyscallError(call: "ioctl(UFFDIO_COPY)", errno: .init(rawValue: r.errno),
                                   subject: "\(c.uffd.subject) at 0x\(String(s.start + UInt64(page + at) * 4096, radix: 16))")
            }
        }
        return copied
    }

    /// One background batch, clients taken in turn.
    private func pushOne() throws {
        guard !clients.isEmpty else { return }
        let limit = options.pushBytes / 4096
        for k in 0..<clients.count {
            let c = clients[(nextPush + k) % clients.count]
            for i in c.spans.indices where c.spans[i].remaining > 0 {
                guard let (page, n) = c.spans[i].nextPending(limit: limit) else { continue }
                nextPush = (nextPush + k + 1) % clients.count
                let copied = try copy(c, span: i, page: page, count: n)
                if copied < 0 { try handleEvents(c) } else { count(\.pushedPages, copied) }
                return
            }
        }
    }

    /// Unregisters what is left registered and closes the uffd (closing alone would clear the
    /// registrations too, but only once no other reference to the uffd is left).
    private func retire(_ c: Client) {
        for r in c.registered { try? c.uffd.unregister(r) }
        c.uffd.close()
    }

    /// SIGKILL to `pid` and every descendant (children forked during the lazy phase hold the
    /// same missing pages).
    static func killTree(_ pid: PID) {
        var all: [PID] = []
        var queue = [pid]
        while let p = queue.popLast() {
            all.append(p)
            guard let tasks = try? ProcFile.numericEntries("/proc/\(p)/task") else { continue }
            for t in tasks {
                guard let text = try? ProcFile.text("/proc/\(p)/task/\(t)/children") else { continue }
                queue += text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { PID($0) }
            }
        }
        for p in all { Glibc.kill(p, SIGKILL) }
    }
}
