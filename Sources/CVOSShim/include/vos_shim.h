/* vos_shim.h — what Swift cannot import on its own: the variadic kernel entry points (ptrace,
 * syscall, prctl, ioctl) as fixed-arity one-liners, and UAPI structs and constants, some of which
 * are missing from the machine's 6.1 headers. Every function returns what the kernel returned
 * (-1 with errno set); interpreting it is Swift's job. */
#ifndef VOS_SHIM_H
#define VOS_SHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/uio.h>
#include <signal.h>
#include <malloc.h> /* mallopt: the node daemon keeps frame buffers on the heap */

/* ---- calls ---- */
long vos_ptrace(long request, pid_t pid, unsigned long addr, unsigned long data);
/* The cpuid instruction: eax, ebx, ecx, edx of leaf/subleaf into out. */
void vos_cpuid_count(unsigned leaf, unsigned subleaf, unsigned out[4]);
long vos_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
int vos_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int vos_ioctl(int fd, unsigned long request, void *arg);
int vos_fcntl_int(int fd, int cmd, int arg);
int vos_open(const char *path, int flags, int mode);
int vos_openat(int dirfd, const char *path, int flags, int mode);
ssize_t vos_process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nlocal,
                             const struct iovec *remote, unsigned long nremote);
ssize_t vos_process_vm_writev(pid_t pid, const struct iovec *local, unsigned long nlocal,
                              const struct iovec *remote, unsigned long nremote);
ssize_t vos_tee(int fdin, int fdout, size_t len, unsigned int flags);
int vos_errno(void);
int vos_pipe2(int fds[2], int flags);
int vos_eventfd(unsigned int initval, int flags);
int vos_epoll_create1(int flags);
/* The calling thread's CPU; sched_getcpu is a GNU extension Swift does not see. */
int vos_sched_getcpu(void);
int vos_pin_to_cpu(int cpu);
int vos_sched_getaffinity(pid_t pid, size_t size, void *mask);
int vos_sched_setaffinity(pid_t pid, size_t size, const void *mask);
/* Waits on a task with __WALL (Swift cannot see the glibc constant). */
pid_t vos_waitpid_all(pid_t pid, int *status, int nohang);

/* ---- syscall numbers newer than what Swift's Glibc module exposes ---- */
#define VOS_SYS_pidfd_open 434
#define VOS_SYS_pidfd_getfd 438
#define VOS_SYS_get_robust_list 274

/* ---- ptrace requests (linux/ptrace.h clashes with sys/ptrace.h, so they are spelled here) ---- */
#define VOS_PTRACE_PEEKDATA 2
#define VOS_PTRACE_CONT 7
#define VOS_PTRACE_KILL 8
#define VOS_PTRACE_SYSCALL 24
#define VOS_PTRACE_GETREGS 12
#define VOS_PTRACE_SETREGS 13
#define VOS_PTRACE_DETACH 17
#define VOS_PTRACE_SETOPTIONS 0x4200
#define VOS_PTRACE_GETEVENTMSG 0x4201
#define VOS_PTRACE_GETSIGINFO 0x4202
#define VOS_PTRACE_GETREGSET 0x4204
#define VOS_PTRACE_SETREGSET 0x4205
#define VOS_PTRACE_SEIZE 0x4206
#define VOS_PTRACE_INTERRUPT 0x4207
#define VOS_PTRACE_LISTEN 0x4208
#define VOS_PTRACE_PEEKSIGINFO 0x4209
#define VOS_PTRACE_GETSIGMASK 0x420a
#define VOS_PTRACE_SETSIGMASK 0x420b
#define VOS_PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#define VOS_PTRACE_O_TRACESYSGOOD 0x1
#define VOS_PTRACE_O_TRACEFORK 0x2
#define VOS_PTRACE_O_TRACECLONE 0x8
#define VOS_PTRACE_O_TRACEEXEC 0x10
#define VOS_PTRACE_O_EXITKILL 0x100000
#define VOS_PTRACE_EVENT_FORK 1
#define VOS_PTRACE_EVENT_CLONE 3
#define VOS_PTRACE_EVENT_EXEC 4
#define VOS_PTRACE_EVENT_STOP 128
#define VOS_PTRACE_PEEKSIGINFO_SHARED 1
#define VOS_NT_PRSTATUS 1
#define VOS_NT_X86_XSTATE 0x202

/* ---- prctl ---- */
#define VOS_PR_SET_PDEATHSIG 1
#define VOS_PR_GET_PDEATHSIG 2
#define VOS_PR_GET_DUMPABLE 3
#define VOS_PR_SET_NAME 15
#define VOS_PR_SET_MM 35
#define VOS_PR_SET_MM_MAP 14
#define VOS_PR_SET_MM_MAP_SIZE 15
#define VOS_PR_SET_CHILD_SUBREAPER 36
#define VOS_PR_GET_TID_ADDRESS 40
#define VOS_PR_SET_TIMERSLACK 29
#define VOS_PR_GET_TIMERSLACK 30

/* ---- arch_prctl ---- */
#define VOS_ARCH_MAP_VDSO_64 0x2003

/* ---- pipes, sockets, misc ioctls ---- */
#define VOS_F_SETPIPE_SZ 1031
#define VOS_F_GETPIPE_SZ 1032
#define VOS_FIONREAD 0x541B
/* terminals (asm-generic/ioctls.h) */
#define VOS_TCGETS 0x5401
#define VOS_TCSETS 0x5402
#define VOS_TIOCSCTTY 0x540E
#define VOS_TIOCGPGRP 0x540F
#define VOS_TIOCSPGRP 0x5410
#define VOS_TIOCGWINSZ 0x5413
#define VOS_TIOCSWINSZ 0x5414
#define VOS_TIOCGPTN 0x80045430
#define VOS_TIOCSPTLCK 0x40045431
#define VOS_POSIX_SPAWN_SETSID 0x80
#define VOS_CLOSE_RANGE_CLOEXEC 4
#define VOS_O_TMPFILE 020200000
#define VOS_EFD_SEMAPHORE 1

/* ---- mmap flags Swift may not see ---- */
#define VOS_MAP_FIXED_NOREPLACE 0x100000
#define VOS_MAP_GROWSDOWN 0x0100
#define VOS_MAP_STACK 0x20000
#define VOS_MAP_NORESERVE 0x4000

/* ---- rseq ---- */
#define VOS_RSEQ_FLAG_UNREGISTER 1

/* struct ptrace_rseq_configuration (linux/ptrace.h, 5.13). */
struct vos_rseq_configuration {
    uint64_t rseq_abi_pointer;
    uint32_t rseq_abi_size;
    uint32_t signature;
    uint32_t flags;
    uint32_t pad;
};

/* struct clone_args (linux/sched.h, 5.5 with set_tid, 5.7 with cgroup). */
struct vos_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

/* struct prctl_mm_map (linux/prctl.h, 3.18). */
struct vos_prctl_mm_map {
    uint64_t start_code;
    uint64_t end_code;
    uint64_t start_data;
    uint64_t end_data;
    uint64_t start_brk;
    uint64_t brk;
    uint64_t start_stack;
    uint64_t arg_start;
    uint64_t arg_end;
    uint64_t env_start;
    uint64_t env_end;
    uint64_t auxv;
    uint32_t auxv_size;
    uint32_t exe_fd;
};

/* struct __ptrace_peeksiginfo_args (linux/ptrace.h). */
struct vos_peeksiginfo_args {
    uint64_t off;
    uint32_t flags;
    int32_t nr;
};

/* The kernel's siginfo is 128 bytes; carried as opaque bytes. */
struct vos_siginfo {
    uint8_t bytes[128];
};

/* struct k_sigaction as the rt_sigaction syscall (not glibc) sees it. */
struct vos_kernel_sigaction {
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
};

/* stack_t and struct itimerval / itimerspec, for injected calls. */
struct vos_stack {
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
};
struct vos_itimerval {
    int64_t interval_sec, interval_usec, value_sec, value_usec;
};
struct vos_itimerspec {
    int64_t interval_sec, interval_nsec, value_sec, value_nsec;
};

/* ---- What x86-64 rt_sigreturn reads at the stack pointer (arch/x86/include/uapi/asm/
 * sigcontext.h, asm-generic/ucontext.h): the ucontext a signal handler returns through. The
 * fpstate pointer names an xsave area in standard form whose software bytes (struct
 * _fpx_sw_bytes at offset 464) give its size and features, followed by FP_XSTATE_MAGIC2. ---- */
struct vos_sigcontext {
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2, fpstate;
    uint64_t reserved1[8];
};
struct vos_ucontext {
    uint64_t uc_flags;
    uint64_t uc_link;
    struct vos_stack uc_stack;
    struct vos_sigcontext uc_mcontext;
    uint64_t uc_sigmask;
};
_Static_assert(sizeof(struct vos_sigcontext) == 256, "struct sigcontext_64");
_Static_assert(sizeof(struct vos_ucontext) == 304, "struct ucontext");
/* FS_IOC_GETVERSION (_IOR('v', 1, long)): an inode's generation, where the file system has one. */
#define VOS_FS_IOC_GETVERSION 0x80087601UL

#define VOS_UC_FP_XSTATE 0x1
#define VOS_UC_SIGCONTEXT_SS 0x2
#define VOS_UC_STRICT_RESTORE_SS 0x4
#define VOS_FP_XSTATE_MAGIC1 0x46505853u
#define VOS_FP_XSTATE_MAGIC2 0x46505845u

/* ---- userfaultfd (linux/userfaultfd.h: structs as in 6.1; WP_UNPOPULATED 6.4 and WP_ASYNC 6.7
 * are newer than the headers). Ioctl numbers spelled out: Swift cannot expand _IOWR. ---- */
#define VOS_SYS_userfaultfd 323
#define VOS_UFFD_API 0xAAULL
#define VOS_UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define VOS_UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#define VOS_UFFDIO_REGISTER_MODE_MISSING 1ULL
#define VOS_UFFDIO_REGISTER_MODE_WP 2ULL
#define VOS_UFFDIO_REGISTER_MODE_MINOR 4ULL
#define VOS_UFFDIO_COPY_MODE_DONTWAKE 1ULL
#define VOS_UFFDIO_COPY_MODE_WP 2ULL
#define VOS_UFFDIO_ZEROPAGE_MODE_DONTWAKE 1ULL
#define VOS_UFFDIO_API 0xc018aa3fUL
#define VOS_UFFDIO_REGISTER 0xc020aa00UL
#define VOS_UFFDIO_UNREGISTER 0x8010aa01UL
#define VOS_UFFDIO_WAKE 0x8010aa02UL
#define VOS_UFFDIO_COPY 0xc028aa03UL
#define VOS_UFFDIO_ZEROPAGE 0xc020aa04UL
#define VOS_UFFDIO_WRITEPROTECT 0xc018aa06UL
#define VOS_UFFD_EVENT_PAGEFAULT 0x12

struct vos_uffdio_range { uint64_t start, len; };
struct vos_uffdio_api { uint64_t api, features, ioctls; };
struct vos_uffdio_register { struct vos_uffdio_range range; uint64_t mode, ioctls; };
struct vos_uffdio_copy { uint64_t dst, src, len, mode; int64_t copy; };
struct vos_uffdio_zeropage { struct vos_uffdio_range range; uint64_t mode; int64_t zeropage; };
struct vos_uffdio_writeprotect { struct vos_uffdio_range range; uint64_t mode; };
/* struct uffd_msg: event, then a 24-byte union (pagefault: flags, address, ptid). */
struct vos_uffd_msg {
    uint8_t event;
    uint8_t reserved1;
    uint16_t reserved2;
    uint32_t reserved3;
    uint64_t arg[3];
};

/* ---- PAGEMAP_SCAN on /proc/PID/pagemap (linux/fs.h, 6.7) ---- */
#define VOS_PAGEMAP_SCAN 0xc0606610UL
#define VOS_PAGE_IS_WPALLOWED (1ULL << 0)
#define VOS_PAGE_IS_WRITTEN (1ULL << 1)
#define VOS_PAGE_IS_FILE (1ULL << 2)
#define VOS_PAGE_IS_PRESENT (1ULL << 3)
#define VOS_PAGE_IS_SWAPPED (1ULL << 4)
#define VOS_PAGE_IS_PFNZERO (1ULL << 5)
#define VOS_PAGE_IS_HUGE (1ULL << 6)
#define VOS_PAGE_IS_SOFT_DIRTY (1ULL << 7)
#define VOS_PM_SCAN_WP_MATCHING (1ULL << 0)
#define VOS_PM_SCAN_CHECK_WPASYNC (1ULL << 1)

struct vos_page_region { uint64_t start, end, categories; };
struct vos_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#endif
