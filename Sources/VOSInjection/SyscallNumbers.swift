// x86-64 syscall numbers for the calls vOS injects (arch/x86/entry/syscalls/syscall_64.tbl).

public enum SyscallNumber: Int, Sendable {
    case read = 0, write = 1, open = 2, close = 3, lseek = 8, mmap = 9, mprotect = 10, munmap = 11, brk = 12
    case rtSigaction = 13, rtSigprocmask = 14, ioctl = 16, pipe2 = 293, dup2 = 33, dup3 = 292
    case getitimer = 36, setitimer = 38, getpid = 39, socket = 41, fcntl = 72, fchdir = 81, chdir = 80
    case mremap = 25, madvise = 28, umask = 95, prctl = 157, archPrctl = 158, setrlimit = 160
    case sigaltstack = 131, timerCreate = 222, timerSettime = 223, timerGettime = 224, timerDelete = 226
    case setTidAddress = 218, epollCtl = 233, openat = 257, signalfd4 = 289, eventfd2 = 290
    case epollCreate1 = 291, timerfdCreate = 283, timerfdSettime = 286, timerfdGettime = 287
    case rtSigqueueinfo = 129, rtTgsigqueueinfo = 297, setRobustList = 273, prlimit64 = 302
    case rseq = 334, clone3 = 435, closeRange = 436, setsid = 112, setpgid = 109, fchmod = 91
    case mkdirat = 258, unlinkat = 263, memfdCreate = 319, ftruncate = 77, pidfdOpen = 434, pidfdGetfd = 438
    case shmat = 30, semop = 65
}
