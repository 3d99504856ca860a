// System V IPC: shared memory segments, semaphore sets and message queues of the calling
// thread's IPC namespace (see NamespaceThread to act in another one). Raw syscalls: semctl is
// variadic, and the *_STAT_ANY commands (Linux 4.17) must reach the kernel as they are. On
// x86_64 the kernel always uses the 64-bit structures (IPC_64), which are glibc's.
import CVOSShim
import Glibc

public enum SysVIPC {
    // Commands of ipc(5)/shmctl(2)/semctl(2)/msgctl(2) that the headers may lack.
    static let IPC_RMID: Int32 = 0, IPC_SET: Int32 = 1, IPC_STAT: Int32 = 2
    static let SHM_INFO: Int32 = 14, SHM_STAT_ANY: Int32 = 15
    static let SEM_INFO: Int32 = 19, SEM_STAT_ANY: Int32 = 20, GETPID: Int32 = 11, GETALL: Int32 = 13, SETALL: Int32 = 17
    static let MSG_INFO: Int32 = 12, MSG_STAT_ANY: Int32 = 13
    public static let SHM_RDONLY: Int32 = 0o10000, SHM_EXEC: Int32 = 0o100000
    /// msgrcv flag: copy the message at an index instead of taking it (CONFIG_CHECKPOINT_RESTORE).
    static let MSG_COPY: Int32 = 0o40000

    private static func call(_ name: String, _ subject: @autoclosure () -> String, _ nr: Int, _ a: Int, _ b: Int = 0, _ c: Int = 0,
                             _ d: Int = 0, _ e: Int = 0) throws -> Int {
        try checked(name, subject()) { vos_syscall6(nr, a, b, c, d, e, 0) }
    }

    /// Runs a *_STAT_ANY call for every index up to the highest in use (from *_INFO); indexes
    /// not in use (EINVAL) are skipped. Returns (id, structure) pairs. semctl takes the command
    /// third (after semnum), shmctl and msgctl second.
    private static func enumerate<T>(_ what: String, info: Int32, stat: Int32, nr: Int, empty: T) throws -> [(Int32, T)] {
        let isSem = nr == 66
        func args(_ index: Int, _ cmd: Int32, _ p: UnsafeMutableRawPointer?) -> (Int, Int, Int, Int) {
            isSem ? (index, 0, Int(cmd), Int(bitPattern: p)) : (index, Int(cmd), Int(bitPattern: p), 0)
        }
        var scratch = [UInt8](repeating: 0, count: 512)
        let highest = try scratch.withUnsafeMutableBytes { (p) throws -> Int in
            let a = args(0, info, p.baseAddress)
            return try call("\(what)(*_INFO)", "the IPC namespace", nr, a.0, a.1, a.2, a.3)
        }
        var out: [(Int32, T)] = []
        if highest < 0 { return out }
        for index in 0...highest {
            var ds = empty
            let r = withUnsafeMutablePointer(to: &ds) { p in
                let a = args(index, stat, UnsafeMutableRawPointer(p))
                return vos_syscall6(nr, a.0, a.1, a.2, a.3, 0, 0)
            }
            if r < 0 {
                let e = vos_errno()
                if e == EINVAL { continue }
                throw SyscallError(call: "\(what)(*_STAT_ANY)", errno: .init(rawValue: e), subject: "index \(index)")
            }
            out.append((Int32(r), ds))
        }
        return out
    }

    // MARK: shared memory

    /// Every segment: `shmctl(SHM_STAT_ANY)` over the indexes `SHM_INFO` reports.
    public static func segments() throws -> [(id: Int32, status: shmid_ds)] {
        try enumerate("shmctl", info: SHM_INFO, stat: SHM_STAT_ANY, nr: 31, empty: shmid_ds()).map { ($0.0, $0.1) }
    }

    public static func shmget(key: Int32, size: UInt64, flags: Int32) throws -> Int32 {
        Int32(try call("shmget", "key \(hex(key)) (\(size) bytes)", 29, Int(key), Int(size), Int(flags)))
    }

    public static func setOwner(segment id: Int32, uid: UInt32, gid: UInt32, mode: UInt32) throws {
        var ds = shmid_ds()
        ds.shm_perm.uid = uid
        ds.shm_perm.gid = gid
        ds.shm_perm.mode = .init(truncatingIfNeeded: mode)
        _ = try withUnsafeMutablePointer(to: &ds) { (p) throws in
            try call("shmctl(IPC_SET)", "segment \(id)", 31, Int(id), Int(IPC_SET), Int(bitPattern: p))
        }
    }

    /// `shmctl(IPC_RMID)`: the segment goes when its last attachment does.
    public static func removeSegment(_ id: Int32) throws {
        _ = try call("shmctl(IPC_RMID)", "segment \(id)", 31, Int(id), Int(IPC_RMID))
    }

    /// Attaches the segment to vos for the duration of `body` (`shmat`, then `shmdt`).
    public static func withAttached<T>(segment id: Int32, size: UInt64, readOnly: Bool,
                                       _ body: (UnsafeMutableRawBufferPointer) throws -> T) throws -> T {
        let at = try call("shmat", "segment \(id)", 30, Int(id), 0, Int(readOnly ? SHM_RDONLY : 0))
        defer { _ = vos_syscall6(67, at, 0, 0, 0, 0, 0) }
        return try body(UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: at), count: Int(size)))
    }

    // MARK: semaphores

    public static func semaphoreSets() throws -> [(id: Int32, status: semid_ds)] {
        try enumerate("semctl", info: SEM_INFO, stat: SEM_STAT_ANY, nr: 66, empty: semid_ds()).map { ($0.0, $0.1) }
    }

    /// `semctl(GETALL)`.
    public static func values(semaphoreSet id: Int32, count: Int) throws -> [UInt16] {
        var v = [UInt16](repeating: 0, count: count)
        _ = try v.withUnsafeMutableBufferPointer { (p) throws in
            try call("semctl(GETALL)", "semaphore set \(id)", 66, Int(id), 0, Int(GETALL), Int(bitPattern: p.baseAddress))
        }
        return v
    }

    /// `semctl(SETALL)`.
    public static func setValues(semaphoreSet id: Int32, _ values: [UInt16]) throws {
        var v = values
        _ = try v.withUnsafeMutableBufferPointer { (p) throws in
            try call("semctl(SETALL)", "semaphore set \(id)", 66, Int(id), 0, Int(SETALL), Int(bitPattern: p.baseAddress))
        }
    }

    /// `semctl(GETPID)`: the last process to operate on semaphore `index`, in vos's PID namespace (0: none seen there).
    public static func lastPID(semaphoreSet id: Int32, index: Int) throws -> PID {
        PID(try call("semctl(GETPID)", "semaphore \(index) of set \(id)", 66, Int(id), index, Int(GETPID)))
    }

    public static func semget(key: Int32, count: Int, flags: Int32) throws -> Int32 {
        Int32(try call("semget", "key \(hex(key)) (\(count) semaphores)", 64, Int(key), count, Int(flags)))
    }

    public static func setOwner(semaphoreSet id: Int32, uid: UInt32, gid: UInt32, mode: UInt32) throws {
        var ds = semid_ds()
        ds.sem_perm.uid = uid
        ds.sem_perm.gid = gid
        ds.sem_perm.mode = .init(truncatingIfNeeded: mode)
        _ = try withUnsafeMutablePointer(to: &ds) { (p) throws in
            try call("semctl(IPC_SET)", "semaphore set \(id)", 66, Int(id), 0, Int(IPC_SET), Int(bitPattern: p))
        }
    }

    // MARK: message queues

    public static func messageQueues() throws -> [(id: Int32, status: msqid_ds)] {
        try enumerate("msgctl", info: MSG_INFO, stat: MSG_STAT_ANY, nr: 71, empty: msqid_ds()).map { ($0.0, $0.1) }
    }

    /// The message at `index`, left in the queue (`msgrcv(MSG_COPY | IPC_NOWAIT)`).
    public static func peekMessage(queue id: Int32, index: Int, maxBytes: Int) throws -> (type: Int, data: [UInt8]) {
        var buf = [UInt8](repeating: 0, count: 8 + maxBytes)
        let n = try buf.withUnsafeMutableBytes { (p) throws -> Int in
            try call("msgrcv(MSG_COPY)", "message \(index) of queue \(id)", 70, Int(id), Int(bitPattern: p.baseAddress), maxBytes, index,
                     Int(MSG_COPY | IPC_NOWAIT))
        }
        let type = buf.withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
        return (type, Array(buf[8..<(8 + n)]))
    }

    public static func msgget(key: Int32, flags: Int32) throws -> Int32 {
        Int32(try call("msgget", "key \(hex(key))", 68, Int(key), Int(flags)))
    }

    /// `msgsnd(IPC_NOWAIT)`.
    public static func send(queue id: Int32, type: Int, data: [UInt8]) throws {
        var buf = withUnsafeBytes(of: type) { Array($0) } + data
        _ = try buf.withUnsafeMutableBytes { (p) throws in
            try call("msgsnd", "queue \(id) (type \(type), \(data.count) bytes)", 69, Int(id), Int(bitPattern: p.baseAddress), data.count,
                     Int(IPC_NOWAIT))
        }
    }

    public static func setOwner(queue id: Int32, uid: UInt32, gid: UInt32, mode: UInt32, maxBytes: UInt64) throws {
        var ds = msqid_ds()
        ds.msg_perm.uid = uid
        ds.msg_perm.gid = gid
        ds.msg_perm.mode = .init(truncatingIfNeeded: mode)
        ds.msg_qbytes = .init(maxBytes)
        _ = try withUnsafeMutablePointer(to: &ds) { (p) throws in
            try call("msgctl(IPC_SET)", "queue \(id)", 71, Int(id), Int(IPC_SET), Int(bitPattern: p))
        }
    }

    /// Keys as ipcs(1) prints them.
    public static func hex(_ key: Int32) -> String { "0x" + String(UInt32(bitPattern: key), radix: 16) }
}
