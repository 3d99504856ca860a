/* vos_shim.c — fixed-arity doors to variadic or GNU-only libc entry points (Swift cannot call
 * variadic C functions nor see _GNU_SOURCE declarations). No logic: each returns what libc did. */
#define _GNU_SOURCE
#include "vos_shim.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <linux/fs.h>
#include <fcntl.h>

_Static_assert(sizeof(struct vos_clone_args) == 88, "struct clone_args");
_Static_assert(sizeof(struct vos_prctl_mm_map) == 104, "struct prctl_mm_map");
_Static_assert(sizeof(struct vos_rseq_configuration) == 24, "struct ptrace_rseq_configuration");
_Static_assert(sizeof(struct vos_peeksiginfo_args) == 16, "struct __ptrace_peeksiginfo_args");
_Static_assert(sizeof(struct vos_kernel_sigaction) == 32, "struct k_sigaction");
_Static_assert(sizeof(struct vos_stack) == 24, "stack_t");
_Static_assert(sizeof(struct vos_uffdio_api) == sizeof(struct uffdio_api), "struct uffdio_api");
_Static_assert(sizeof(struct vos_uffdio_register) == sizeof(struct uffdio_register), "struct uffdio_register");
_Static_assert(sizeof(struct vos_uffdio_copy) == sizeof(struct uffdio_copy), "struct uffdio_copy");
_Static_assert(sizeof(struct vos_uffdio_zeropage) == sizeof(struct uffdio_zeropage), "struct uffdio_zeropage");
_Static_assert(sizeof(struct vos_uffdio_writeprotect) == sizeof(struct uffdio_writeprotect), "struct uffdio_writeprotect");
_Static_assert(sizeof(struct vos_uffd_msg) == sizeof(struct uffd_msg), "struct uffd_msg");
_Static_assert(VOS_UFFDIO_API == UFFDIO_API && VOS_UFFDIO_REGISTER == UFFDIO_REGISTER, "uffd ioctl numbers");
_Static_assert(VOS_UFFDIO_UNREGISTER == UFFDIO_UNREGISTER && VOS_UFFDIO_WAKE == UFFDIO_WAKE, "uffd ioctl numbers");
_Static_assert(VOS_UFFDIO_COPY == UFFDIO_COPY && VOS_UFFDIO_ZEROPAGE == UFFDIO_ZEROPAGE, "uffd ioctl numbers");
_Static_assert(VOS_UFFDIO_WRITEPROTECT == UFFDIO_WRITEPROTECT, "uffd ioctl numbers");
_Static_assert(sizeof(struct vos_pm_scan_arg) == 96 && sizeof(struct vos_page_region) == 24, "struct pm_scan_arg");
_Static_assert(VOS_FS_IOC_GETVERSION == FS_IOC_GETVERSION, "FS_IOC_GETVERSION");
_Static_assert(VOS_PAGEMAP_SCAN == _IOWR('f', 16, struct vos_pm_scan_arg), "PAGEMAP_SCAN");

void vos_cpuid_count(unsigned leaf, unsigned subleaf, unsigned out[4]) {
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
}

long vos_ptrace(long request, pid_t pid, unsigned long addr, unsigned long data) {
    return ptrace((enum __ptrace_request)request, pid, (void *)addr, (void *)data);
}

long vos_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    return syscall(nr, a1, a2, a3, a4, a5, a6);
}

int vos_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}

int vos_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

int vos_fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }

int vos_open(const char *path, int flags, int mode) { return open(path, flags, mode); }

int vos_openat(int dirfd, const char *path, int flags, int mode) { return openat(dirfd, path, flags, mode); }

ssize_t vos_process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nlocal,
                             const struct iovec *remote, unsigned long nremote) {
    return process_vm_readv(pid, local, nlocal, remote, nremote, 0);
}

ssize_t vos_process_vm_writev(pid_t pid, const struct iovec *local, unsigned long nlocal,
                              const struct iovec *remote, unsigned long nremote) {
    return process_vm_writev(pid, local, nlocal, remote, nremote, 0);
}

ssize_t vos_tee(int fdin, int fdout, size_t len, unsigned int flags) { return tee(fdin, fdout, len, flags); }

int vos_errno(void) { return errno; }

int vos_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int vos_eventfd(unsigned int initval, int flags) { return eventfd(initval, flags); }

int vos_epoll_create1(int flags) { return epoll_create1(flags); }

int vos_sched_getcpu(void) { return sched_getcpu(); }

int vos_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int vos_sched_getaffinity(pid_t pid, size_t size, void *mask) {
    return sched_getaffinity(pid, size, (cpu_set_t *)mask);
}

int vos_sched_setaffinity(pid_t pid, size_t size, const void *mask) {
    return sched_setaffinity(pid, size, (const cpu_set_t *)mask);
}

pid_t vos_waitpid_all(pid_t pid, int *status, int nohang) {
    return waitpid(pid, status, __WALL | (nohang ? WNOHANG : 0));
}
