// One open file descriptor. Kind-specific facts are optional fields: a new kind adds fields
// with new names and never reuses an old one.
import VOSLinux

public struct FileRecord: Codable, Sendable {
    public var fd: Int32
    /// The resource kind's tag (see FileKindTag); never reused.
    public var kind: String
    /// open(2) flags from fdinfo, O_CLOEXEC included.
    public var flags: Int32
    public var position: UInt64
    /// The path or the /proc/PID/fd link text ("pipe:[123]", "anon_inode:[eventfd]").
    public var path: String

    /// Regular file deleted while open: name of the blob with its contents.
    public var blob: String?
    /// A pseudo-terminal of the image (master or slave): its index in the capsule's devpts.
    public var ptyIndex: Int32?
    /// A pty slave: its termios (the kernel's struct termios, TCGETS) and window size.
    @OptionalBase64 public var termios: [UInt8]?
    @OptionalBase64 public var windowSize: [UInt8]?
    /// A pty slave that is its session leader's controlling terminal, and its foreground group.
    public var controllingTerminal: Bool?
    public var foregroundGroup: PID?
    /// A memfd: the memory object, shared with every mapping and fd of it.
    public var object: MappedObject?
    /// Pipes and FIFOs: the pipe inode (both ends share it), its capacity and unread bytes.
    public var pipeInode: UInt64?
    public var pipeCapacity: Int32?
    @OptionalBase64 public var pipeData: [UInt8]?
    /// eventfd counter and EFD_SEMAPHORE.
    public var eventfdCount: UInt64?
    public var eventfdSemaphore: Bool?
    /// epoll: registered (fd, events, data).
    public var epollTargets: [EpollTarget]?
    /// timerfd: clock, flags and current setting (relative value, interval) in ns.
    public var timerClock: Int32?
    public var timerFlags: Int32?
    public var timerValueNanos: UInt64?
    public var timerIntervalNanos: UInt64?
    /// timerfd: expirations not read yet (fdinfo "ticks"), given back with TFD_IOC_SET_TICKS.
    public var timerTicks: UInt64?
    /// signalfd mask.
    public var signalMask: UInt64?
    /// TCP and UDP sockets: addresses, options, an established connection's repair state.
    public var socket: SocketRecord?
    /// An fd that came from outside (a terminal or a pipe of the shell): on restore it is
    /// connected to the restoring command's own stdin, stdout or stderr.
    public var inheritedFrom: Int32?
    /// A lower fd of the same process that refers to the same open file description (dup).
    public var sameDescriptionAs: Int32?
    /// With `sameDescriptionAs`: the fd belongs to this other process of the tree (shared by fork).
    public var sameDescriptionProcess: PID?
    /// Unix sockets: the socket's inode (a pair's ends name each other by it), SOCK_* type, bound
    /// name (sun_path bytes; an abstract name starts with 0), the peer's inode (0: the peer was
    /// closed), a listener's backlog, the shutdown mask (1 read, 2 write), the unread messages
    /// (one base64 string per datagram or seqpacket record; a stream's bytes as one) and the
    /// options kept (getsockopt values: the buffer sizes as the kernel doubled them).
    public var unixInode: UInt64?
    public var unixType: Int32?
    @OptionalBase64 public var unixName: [UInt8]?
    public var unixPeerInode: UInt64?
    public var unixBacklog: UInt32?
    public var unixShutdown: UInt8?
    public var unixQueue: [Base64]?
    public var unixPassCredentials: Bool?
    public var unixSendBuffer: Int32?
    public var unixReceiveBuffer: Int32?
    public var unixPeekOffset: Int32?

    public init(fd: Int32, kind: String, flags: Int32, position: UInt64, path: String) {
        self.fd = fd
        self.kind = kind
        self.flags = flags
        self.position = position
        self.path = path
    }
}

public struct EpollTarget: Codable, Sendable, Equatable {
    public var fd: Int32
    public var events: UInt32
    public var data: UInt64
    public init(fd: Int32, events: UInt32, data: UInt64) {
        self.fd = fd
        self.events = events
        self.data = data
    }
}
