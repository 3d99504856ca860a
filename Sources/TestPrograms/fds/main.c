/* A stock program for the tests: opens one fd of every kind vOS restores, leaves each in a
 * state that shows (an offset, unread pipe data, an eventfd count, epoll registrations, a
 * running timer...), prints "ready" on stdout, then waits. When the file WORKDIR/go appears it
 * checks every fd and writes one line per kind to REPORT: "ok <kind>" or
 * "FAIL <kind>: <why>", then "stdout after restore" on stdout.
 *
 * usage: vos-test-fds WORKDIR REPORT   (WORKDIR must exist and be empty)
 * Before the trigger, send SIGUSR2: it is blocked and must be read from the signalfd. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PIPE_TEXT "pipe-data-before-checkpoint\n"
#define FIFO_TEXT "fifo-data-before-checkpoint\n"
#define RWFIFO_TEXT "rw-fifo-data-before-checkpoint\n"
#define REGULAR_TEXT "0123456789ABCDEFGHIJ"
#define REGULAR_POS 7
#define DELETED_SIZE 20000
#define DELETED_POS 1234
#define DUP_POS 40
#define BIG_SIZE 200000
#define BIG_CAPACITY (256 * 1024)
#define DIR_FILES 10
#define TIMER_PERIOD_NS (20 * 1000 * 1000)
#define EPOLL_DATA_EVENTFD 0x1111222233334444ULL
#define EPOLL_DATA_PIPE 0xaaaabbbbccccddddULL
#define EPOLL_DATA_IDLE 0x5555666677778888ULL

static char work[2048];
static int reg_fd, dup_a, dup_b, append_fd, deleted_fd, dir_fd, null_fd, zero_fd, urandom_fd;
static int pipe_r, pipe_w, big_r, big_w, fifo_r, fifo_w, bigfifo_r, bigfifo_w, rwfifo, rwfifo_r, efd, efd_sem, opath_fd;
static int ep, ep_efd, ep_pipe_r, ep_pipe_w, ep_idle_r, ep_idle_w, tfd, tfd_expired, sfd;
/* Directory entries read before the checkpoint (getdents64 continues from there after it). */
static char seen[64][256];
static int seen_count;

static char report_buf[65536];
static size_t report_len;

static void line(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report_buf + report_len, sizeof report_buf - report_len, fmt, ap);
    va_end(ap);
    if (n > 0 && report_len + (size_t)n < sizeof report_buf) report_len += (size_t)n;
}

/* Each check returns NULL when fine, else a reason (with errno text where a call failed). */
static char why[8192];
#define FAIL(...) do { snprintf(why, sizeof why, __VA_ARGS__); return why; } while (0)
#define SYS(call, what) do { if ((call) < 0) FAIL("%s: %s (errno %d)", what, strerror(errno), errno); } while (0)

static void die(const char *what) {
    fprintf(stderr, "vos-test-fds: setup: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int must(int r, const char *what) {
    if (r < 0) die(what);
    return r;
}

static void path(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", work, name); }

static void write_all(int fd, const void *buf, size_t len, const char *what) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) die(what);
        p += n;
        len -= (size_t)n;
    }
}

static unsigned char deleted_byte(size_t i) { return (unsigned char)(i * 7 + 3); }
static unsigned char big_byte(size_t i) { return (unsigned char)(i * 13 + 5); }

static long getdents(int fd, char *buf, size_t size) { return syscall(SYS_getdents64, fd, buf, size); }

struct dirent64_raw {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* Reads one small batch of directory entries into `seen`; returns the count read (0 at the end). */
static long read_dir_batch(void) {
    char buf[64]; /* two short entries per call: the offset is mid-directory at the checkpoint */
    long n = getdents(dir_fd, buf, sizeof buf);
    if (n <= 0) return n;
    int count = 0;
    for (long at = 0; at < n;) {
        struct dirent64_raw *d = (struct dirent64_raw *)(buf + at);
        if (seen_count < 64) snprintf(seen[seen_count++], sizeof seen[0], "%s", d->name);
        at += d->reclen;
        count++;
    }
    return count;
}

static void setup(void) {
    char p[4096];

    path(p, sizeof p, "regular.txt");
    reg_fd = must(open(p, O_RDWR | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0644), "open regular.txt");
    write_all(reg_fd, REGULAR_TEXT, strlen(REGULAR_TEXT), "write regular.txt");
    must((int)lseek(reg_fd, REGULAR_POS, SEEK_SET), "lseek regular.txt");

    path(p, sizeof p, "dup.txt");
    dup_a = must(open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), "open dup.txt");
    char hundred[100];
    memset(hundred, 'd', sizeof hundred);
    write_all(dup_a, hundred, sizeof hundred, "write dup.txt");
    must((int)lseek(dup_a, DUP_POS, SEEK_SET), "lseek dup.txt");
    dup_b = must(dup(dup_a), "dup"); /* dup() clears FD_CLOEXEC on the copy */

    path(p, sizeof p, "append.txt");
    append_fd = must(open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644), "open append.txt");
    write_all(append_fd, "before\n", 7, "write append.txt");

    path(p, sizeof p, "deleted.txt");
    deleted_fd = must(open(p, O_RDWR | O_CREAT | O_TRUNC, 0644), "open deleted.txt");
    static unsigned char data[DELETED_SIZE];
    for (size_t i = 0; i < DELETED_SIZE; i++) data[i] = deleted_byte(i);
    write_all(deleted_fd, data, sizeof data, "write deleted.txt");
    must(unlink(p), "unlink deleted.txt");
    must((int)lseek(deleted_fd, DELETED_POS, SEEK_SET), "lseek deleted.txt");

    path(p, sizeof p, "dir");
    must(mkdir(p, 0755), "mkdir dir");
    for (int i = 0; i < DIR_FILES; i++) {
        char f[4200];
        snprintf(f, sizeof f, "%s/f%d", p, i);
        close(must(open(f, O_WRONLY | O_CREAT, 0644), "create dir/fN"));
    }
    dir_fd = must(open(p, O_RDONLY | O_DIRECTORY), "open dir");
    for (int i = 0; i < 2; i++) must((int)read_dir_batch(), "getdents64 dir");

    null_fd = must(open("/dev/null", O_WRONLY), "open /dev/null");
    zero_fd = must(open("/dev/zero", O_RDONLY), "open /dev/zero");
    urandom_fd = must(open("/dev/urandom", O_RDONLY | O_NONBLOCK), "open /dev/urandom");

    int pp[2];
    must(pipe2(pp, 0), "pipe2");
    pipe_r = pp[0], pipe_w = pp[1];
    must(fcntl(pipe_r, F_SETFL, O_NONBLOCK), "fcntl(F_SETFL) pipe");
    write_all(pipe_w, PIPE_TEXT, strlen(PIPE_TEXT), "write pipe");

    must(pipe2(pp, 0), "pipe2 big");
    big_r = pp[0], big_w = pp[1];
    must(fcntl(big_w, F_SETPIPE_SZ, BIG_CAPACITY), "fcntl(F_SETPIPE_SZ)");
    static unsigned char big[BIG_SIZE];
    for (size_t i = 0; i < BIG_SIZE; i++) big[i] = big_byte(i);
    write_all(big_w, big, sizeof big, "write big pipe");

    path(p, sizeof p, "fifo");
    must(mkfifo(p, 0644), "mkfifo");
    fifo_r = must(open(p, O_RDONLY | O_NONBLOCK), "open fifo for reading");
    fifo_w = must(open(p, O_WRONLY), "open fifo for writing");
    write_all(fifo_w, FIFO_TEXT, strlen(FIFO_TEXT), "write fifo");

    path(p, sizeof p, "bigfifo");
    must(mkfifo(p, 0644), "mkfifo bigfifo");
    bigfifo_r = must(open(p, O_RDONLY | O_NONBLOCK), "open bigfifo for reading");
    bigfifo_w = must(open(p, O_WRONLY), "open bigfifo for writing");
    must(fcntl(bigfifo_w, F_SETPIPE_SZ, BIG_CAPACITY), "fcntl(F_SETPIPE_SZ) bigfifo");
    write_all(bigfifo_w, big, sizeof big, "write bigfifo");

    /* A FIFO opened read-write (so opening never blocks), and opened a second time read-only:
     * two open files of one pipe, its data must come back once. */
    path(p, sizeof p, "rwfifo");
    must(mkfifo(p, 0644), "mkfifo rwfifo");
    rwfifo = must(open(p, O_RDWR | O_NONBLOCK), "open rwfifo read-write");
    rwfifo_r = must(open(p, O_RDONLY | O_NONBLOCK), "open rwfifo read-only");
    write_all(rwfifo, RWFIFO_TEXT, strlen(RWFIFO_TEXT), "write rwfifo");

    path(p, sizeof p, "dir");
    opath_fd = must(open(p, O_PATH | O_DIRECTORY), "open dir O_PATH");

    efd = must(eventfd(42, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
    efd_sem = must(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), "eventfd(EFD_SEMAPHORE)");

    ep = must(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    ep_efd = must(eventfd(1, EFD_NONBLOCK), "eventfd for epoll");
    must(pipe2(pp, O_NONBLOCK), "pipe2 for epoll");
    ep_pipe_r = pp[0], ep_pipe_w = pp[1];
    write_all(ep_pipe_w, "e", 1, "write epoll pipe");
    must(pipe2(pp, O_NONBLOCK), "pipe2 idle for epoll");
    ep_idle_r = pp[0], ep_idle_w = pp[1];
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EPOLL_DATA_EVENTFD};
    must(epoll_ctl(ep, EPOLL_CTL_ADD, ep_efd, &ev), "epoll_ctl eventfd");
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = EPOLL_DATA_PIPE};
    must(epoll_ctl(ep, EPOLL_CTL_ADD, ep_pipe_r, &ev), "epoll_ctl pipe");
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = EPOLL_DATA_IDLE};
    must(epoll_ctl(ep, EPOLL_CTL_ADD, ep_idle_r, &ev), "epoll_ctl idle pipe");

    tfd = must(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create");
    struct itimerspec its = {.it_interval = {0, TIMER_PERIOD_NS}, .it_value = {0, TIMER_PERIOD_NS}};
    must(timerfd_settime(tfd, 0, &its, NULL), "timerfd_settime");

    /* A one-shot timer that expires before the checkpoint and is never read before it. */
    tfd_expired = must(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK), "timerfd_create(CLOCK_BOOTTIME)");
    its = (struct itimerspec){.it_value = {0, 1000 * 1000}};
    must(timerfd_settime(tfd_expired, 0, &its, NULL), "timerfd_settime one-shot");
    struct pollfd pf = {.fd = tfd_expired, .events = POLLIN};
    if (poll(&pf, 1, 5000) != 1) die("poll one-shot timerfd");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    must(sigprocmask(SIG_BLOCK, &set, NULL), "sigprocmask");
    sfd = must(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd");
}

/* The file behind `fd` is `name` in the work directory (same inode), not a copy. */
static const char *same_file(int fd, const char *name) {
    char p[4096];
    struct stat a, b;
    path(p, sizeof p, name);
    SYS(fstat(fd, &a), "fstat");
    SYS(stat(p, &b), p);
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        FAIL("fd %d is not %s (inode %lu, expected %lu)", fd, p, a.st_ino, b.st_ino);
    return NULL;
}

static const char *check_flags(int fd, int want_acc, int want_fl, int want_cloexec) {
    int fl = fcntl(fd, F_GETFL);
    SYS(fl, "fcntl(F_GETFL)");
    if ((fl & O_ACCMODE) != want_acc) FAIL("fd %d access mode %o, expected %o", fd, fl & O_ACCMODE, want_acc);
    if ((fl & want_fl) != want_fl) FAIL("fd %d flags 0%o lack 0%o", fd, fl, want_fl);
    int fdf = fcntl(fd, F_GETFD);
    SYS(fdf, "fcntl(F_GETFD)");
    if (!!(fdf & FD_CLOEXEC) != want_cloexec)
        FAIL("fd %d FD_CLOEXEC is %d, expected %d", fd, !!(fdf & FD_CLOEXEC), want_cloexec);
    return NULL;
}

static const char *check_regular(void) {
    const char *e;
    if ((e = same_file(reg_fd, "regular.txt"))) return e;
    if ((e = check_flags(reg_fd, O_RDWR, O_NONBLOCK, 1))) return e;
    off_t pos = lseek(reg_fd, 0, SEEK_CUR);
    SYS(pos, "lseek");
    if (pos != REGULAR_POS) FAIL("offset %ld, expected %d", (long)pos, REGULAR_POS);
    char buf[8] = {0};
    SYS(read(reg_fd, buf, 5), "read");
    if (memcmp(buf, "789AB", 5) != 0) FAIL("read \"%.5s\" at offset 7, expected \"789AB\"", buf);
    return NULL;
}

static const char *check_dup(void) {
    const char *e;
    if ((e = same_file(dup_b, "dup.txt"))) return e;
    if ((e = check_flags(dup_a, O_RDWR, 0, 1))) return e;
    if ((e = check_flags(dup_b, O_RDWR, 0, 0))) return e;
    off_t pos = lseek(dup_b, 0, SEEK_CUR);
    SYS(pos, "lseek");
    if (pos != DUP_POS) FAIL("offset of the copy %ld, expected %d", (long)pos, DUP_POS);
    SYS(lseek(dup_a, 60, SEEK_SET), "lseek");
    pos = lseek(dup_b, 0, SEEK_CUR);
    if (pos != 60)
        FAIL("after seeking fd %d to 60, its dup fd %d is at %ld: not one open file", dup_a, dup_b, (long)pos);
    return NULL;
}

static const char *check_append(void) {
    const char *e;
    if ((e = same_file(append_fd, "append.txt"))) return e;
    if ((e = check_flags(append_fd, O_WRONLY, O_APPEND, 0))) return e;
    SYS(lseek(append_fd, 0, SEEK_SET), "lseek");
    if (write(append_fd, "after\n", 6) != 6) FAIL("write: %s", strerror(errno));
    char p[4096], buf[64] = {0};
    path(p, sizeof p, "append.txt");
    int fd = open(p, O_RDONLY);
    SYS(fd, p);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n != 13 || strcmp(buf, "before\nafter\n") != 0)
        FAIL("file holds \"%s\" after a write at offset 0: O_APPEND lost", buf);
    return NULL;
}

static const char *check_deleted(void) {
    char p[4096];
    struct stat st;
    SYS(fstat(deleted_fd, &st), "fstat");
    if (st.st_nlink != 0)
        FAIL("link count %lu, expected 0 (the file should still be deleted)", (unsigned long)st.st_nlink);
    path(p, sizeof p, "deleted.txt");
    if (access(p, F_OK) == 0) FAIL("%s exists again", p);
    if (st.st_size != DELETED_SIZE) FAIL("size %ld, expected %d", (long)st.st_size, DELETED_SIZE);
    const char *e = check_flags(deleted_fd, O_RDWR, 0, 0);
    if (e) return e;
    off_t pos = lseek(deleted_fd, 0, SEEK_CUR);
    if (pos != DELETED_POS) FAIL("offset %ld, expected %d", (long)pos, DELETED_POS);
    static unsigned char buf[DELETED_SIZE];
    ssize_t n = pread(deleted_fd, buf, sizeof buf, 0);
    if (n != DELETED_SIZE) FAIL("pread returned %zd: %s", n, n < 0 ? strerror(errno) : "short");
    for (size_t i = 0; i < DELETED_SIZE; i++) {
        if (buf[i] != deleted_byte(i)) FAIL("byte %zu is %u, expected %u", i, buf[i], deleted_byte(i));
    }
    return NULL;
}

static const char *check_directory(void) {
    const char *e = same_file(dir_fd, "dir");
    if (e) return e;
    int before = seen_count;
    long n;
    while ((n = read_dir_batch()) > 0) {}
    SYS(n, "getdents64");
    if (seen_count != DIR_FILES + 2)
        FAIL("%d entries before the checkpoint + %d after = %d, expected %d",
             before, seen_count - before, seen_count, DIR_FILES + 2);
    for (int i = -2; i < DIR_FILES; i++) {
        char name[16];
        if (i == -2) snprintf(name, sizeof name, ".");
        else if (i == -1) snprintf(name, sizeof name, "..");
        else snprintf(name, sizeof name, "f%d", i);
        int found = 0;
        for (int k = 0; k < seen_count; k++) found += strcmp(seen[k], name) == 0;
        if (found != 1) FAIL("entry \"%s\" listed %d times", name, found);
    }
    int f = openat(dir_fd, "f3", O_RDONLY);
    SYS(f, "openat(dir fd, \"f3\")");
    close(f);
    return NULL;
}

static const char *check_chardev(int fd, unsigned maj, unsigned min, int acc, int fl) {
    struct stat st;
    SYS(fstat(fd, &st), "fstat");
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != maj || minor(st.st_rdev) != min)
        FAIL("fd %d is device %u:%u (mode 0%o), expected character device %u:%u",
             fd, major(st.st_rdev), minor(st.st_rdev), st.st_mode, maj, min);
    return check_flags(fd, acc, fl, 0);
}

static const char *check_devnull(void) {
    const char *e = check_chardev(null_fd, 1, 3, O_WRONLY, 0);
    if (e) return e;
    if (write(null_fd, "0123456789", 10) != 10) FAIL("write: %s", strerror(errno));
    return NULL;
}

static const char *check_devzero(void) {
    const char *e = check_chardev(zero_fd, 1, 5, O_RDONLY, 0);
    if (e) return e;
    char buf[64];
    memset(buf, 1, sizeof buf);
    if (read(zero_fd, buf, sizeof buf) != sizeof buf) FAIL("read: %s", strerror(errno));
    for (size_t i = 0; i < sizeof buf; i++) if (buf[i] != 0) FAIL("byte %zu read from /dev/zero is %d", i, buf[i]);
    return NULL;
}

static const char *check_devurandom(void) {
    const char *e = check_chardev(urandom_fd, 1, 9, O_RDONLY, O_NONBLOCK);
    if (e) return e;
    unsigned char buf[32] = {0};
    if (read(urandom_fd, buf, sizeof buf) != sizeof buf) FAIL("read: %s", strerror(errno));
    int nonzero = 0;
    for (size_t i = 0; i < sizeof buf; i++) nonzero |= buf[i];
    if (!nonzero) FAIL("32 zero bytes from /dev/urandom");
    return NULL;
}

static const char *check_stdin(void) {
    const char *e = check_chardev(0, 1, 3, O_RDONLY, 0);
    if (e) return e;
    char c;
    ssize_t n = read(0, &c, 1);
    if (n != 0) FAIL("read from stdin (/dev/null) returned %zd", n);
    return NULL;
}

/* Reads exactly `want` from a non-blocking fd, then proves nothing else is queued. */
static const char *read_exactly(int fd, const char *want) {
    char buf[256] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) FAIL("read: %s (errno %d): the unread data is lost", strerror(errno), errno);
    if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0)
        FAIL("read %zd bytes \"%s\", expected \"%s\"", n, buf, want);
    n = read(fd, buf, sizeof buf);
    if (n != -1 || errno != EAGAIN)
        FAIL("a second read returned %zd (%s), expected EAGAIN", n, n < 0 ? strerror(errno) : "data");
    return NULL;
}

static const char *round_trip(int r, int w) {
    if (write(w, "x", 1) != 1) FAIL("write to fd %d: %s", w, strerror(errno));
    char c = 0;
    if (read(r, &c, 1) != 1 || c != 'x') FAIL("fd %d did not read back what fd %d wrote: %s", r, w, strerror(errno));
    return NULL;
}

static const char *check_pipe(void) {
    struct stat a, b;
    SYS(fstat(pipe_r, &a), "fstat read end");
    SYS(fstat(pipe_w, &b), "fstat write end");
    if (!S_ISFIFO(a.st_mode) || a.st_ino != b.st_ino)
        FAIL("fds %d and %d are not the two ends of one pipe", pipe_r, pipe_w);
    const char *e = check_flags(pipe_r, O_RDONLY, O_NONBLOCK, 0);
    if (e || (e = check_flags(pipe_w, O_WRONLY, 0, 0)) || (e = read_exactly(pipe_r, PIPE_TEXT))) return e;
    return round_trip(pipe_r, pipe_w);
}

/* BIG_SIZE pattern bytes queued in a pipe of BIG_CAPACITY: more than the default 64 KiB. */
static const char *check_big(int big_r) {
    int cap = fcntl(big_r, F_GETPIPE_SZ);
    SYS(cap, "fcntl(F_GETPIPE_SZ)");
    if (cap < BIG_CAPACITY) FAIL("capacity %d, expected %d", cap, BIG_CAPACITY);
    int queued = 0;
    SYS(ioctl(big_r, FIONREAD, &queued), "ioctl(FIONREAD)");
    if (queued != BIG_SIZE) FAIL("%d bytes queued, expected %d", queued, BIG_SIZE);
    static unsigned char buf[BIG_SIZE];
    size_t done = 0;
    while (done < BIG_SIZE) {
        ssize_t n = read(big_r, buf + done, BIG_SIZE - done);
        if (n <= 0) FAIL("read after %zu bytes: %s", done, n < 0 ? strerror(errno) : "end of file");
        done += (size_t)n;
    }
    for (size_t i = 0; i < BIG_SIZE; i++) if (buf[i] != big_byte(i))
        FAIL("byte %zu is %u, expected %u", i, buf[i], big_byte(i));
    return NULL;
}

static const char *check_bigpipe(void) { return check_big(big_r); }

static const char *check_bigfifo(void) {
    const char *e = same_file(bigfifo_r, "bigfifo");
    return e ? e : check_big(bigfifo_r);
}

static const char *check_fifo(void) {
    const char *e = same_file(fifo_r, "fifo");
    if (e || (e = same_file(fifo_w, "fifo"))) return e;
    if ((e = check_flags(fifo_r, O_RDONLY, O_NONBLOCK, 0)) || (e = check_flags(fifo_w, O_WRONLY, 0, 0))) return e;
    if ((e = read_exactly(fifo_r, FIFO_TEXT))) return e;
    return round_trip(fifo_r, fifo_w);
}

static const char *check_rwfifo(void) {
    const char *e = same_file(rwfifo, "rwfifo");
    if (e || (e = same_file(rwfifo_r, "rwfifo"))) return e;
    if ((e = check_flags(rwfifo, O_RDWR, O_NONBLOCK, 0)) || (e = check_flags(rwfifo_r, O_RDONLY, O_NONBLOCK, 0)))
        return e;
    if ((e = read_exactly(rwfifo_r, RWFIFO_TEXT))) return e;
    return round_trip(rwfifo, rwfifo);
}

static const char *check_opath(void) {
    const char *e = same_file(opath_fd, "dir");
    if (e || (e = check_flags(opath_fd, O_RDONLY, O_PATH | O_DIRECTORY, 0))) return e;
    int f = openat(opath_fd, "f5", O_RDONLY);
    SYS(f, "openat(O_PATH dir fd, \"f5\")");
    close(f);
    return NULL;
}

static const char *check_eventfd(void) {
    uint64_t v = 0;
    if (read(efd, &v, 8) != 8) FAIL("read: %s (errno %d): the count is lost", strerror(errno), errno);
    if (v != 42) FAIL("count %llu, expected 42", (unsigned long long)v);
    if (read(efd, &v, 8) != -1 || errno != EAGAIN) FAIL("a second read did not fail with EAGAIN (O_NONBLOCK lost?)");
    const char *e = check_flags(efd, O_RDWR, O_NONBLOCK, 1);
    if (e) return e;
    for (int i = 0; i < 3; i++) {
        if (read(efd_sem, &v, 8) != 8 || v != 1)
            FAIL("EFD_SEMAPHORE read %d gave %llu (%s), expected 1", i, (unsigned long long)v, strerror(errno));
    }
    if (read(efd_sem, &v, 8) != -1 || errno != EAGAIN) FAIL("EFD_SEMAPHORE eventfd had more than 3");
    return NULL;
}

/* Which of the three registered data values epoll_wait reports now, as bits 1, 2, 4. */
static int epoll_ready(const char **err) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, 0);
    if (n < 0) { snprintf(why, sizeof why, "epoll_wait: %s", strerror(errno)); *err = why; return -1; }
    int bits = 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (evs[i].events != EPOLLIN) {
            snprintf(why, sizeof why, "event for data 0x%llx is 0x%x, expected EPOLLIN",
                     (unsigned long long)d, evs[i].events);
            *err = why;
            return -1;
        }
        if (d == EPOLL_DATA_EVENTFD) bits |= 1;
        else if (d == EPOLL_DATA_PIPE) bits |= 2;
        else if (d == EPOLL_DATA_IDLE) bits |= 4;
        else { snprintf(why, sizeof why, "unknown data 0x%llx", (unsigned long long)d); *err = why; return -1; }
    }
    return bits;
}

static const char *check_epoll(void) {
    const char *e = NULL;
    int bits = epoll_ready(&e);
    if (e) return e;
    if (bits != 3) FAIL("ready set %d, expected the eventfd and the pipe (3)", bits);
    if (write(ep_idle_w, "i", 1) != 1) FAIL("write idle pipe: %s", strerror(errno));
    bits = epoll_ready(&e);
    if (e) return e;
    if (bits != 7) FAIL("after writing the idle pipe, ready set %d, expected 7: its registration is lost", bits);
    bits = epoll_ready(&e);
    if (e) return e;
    if (bits != 3) FAIL("idle pipe reported again: EPOLLET lost (ready set %d)", bits);
    return check_flags(ep, O_RDWR, 0, 1);
}

static const char *fdinfo_line(int fd, const char *key, char *out, size_t size) {
    char p[64], text[4096];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
    int f = open(p, O_RDONLY);
    SYS(f, p);
    ssize_t n = read(f, text, sizeof text - 1);
    close(f);
    SYS(n, p);
    text[n] = 0;
    char *at = strstr(text, key);
    if (!at) FAIL("no \"%s\" in %s", key, p);
    at += strlen(key);
    size_t len = strcspn(at, "\n");
    snprintf(out, size, "%.*s", (int)len, at);
    return NULL;
}

static const char *check_timerfd(void) {
    char clock[64];
    const char *e = fdinfo_line(tfd, "clockid:", clock, sizeof clock);
    if (e) return e;
    if (atoi(clock) != CLOCK_MONOTONIC) FAIL("clockid %s, expected %d", clock, CLOCK_MONOTONIC);
    struct itimerspec its;
    SYS(timerfd_gettime(tfd, &its), "timerfd_gettime");
    if (its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != TIMER_PERIOD_NS)
        FAIL("interval %ld.%09ld s, expected 0.020000000", (long)its.it_interval.tv_sec, its.it_interval.tv_nsec);
    for (int i = 0; i < 3; i++) {
        struct pollfd pf = {.fd = tfd, .events = POLLIN};
        int r = poll(&pf, 1, 1000);
        SYS(r, "poll");
        if (r == 0) FAIL("no expiration within 1 s (round %d): the timer stopped", i);
        uint64_t ticks = 0;
        if (read(tfd, &ticks, 8) != 8 || ticks == 0) FAIL("read: %s", strerror(errno));
    }
    return check_flags(tfd, O_RDWR, O_NONBLOCK, 1);
}

static const char *check_timerfd_expired(void) {
    char clock[64];
    const char *e = fdinfo_line(tfd_expired, "clockid:", clock, sizeof clock);
    if (e) return e;
    if (atoi(clock) != CLOCK_BOOTTIME) FAIL("clockid %s, expected %d", clock, CLOCK_BOOTTIME);
    uint64_t ticks = 0;
    if (read(tfd_expired, &ticks, 8) != 8)
        FAIL("read: %s (errno %d): the expiration from before the checkpoint is lost", strerror(errno), errno);
    if (ticks != 1) FAIL("%llu expirations, expected 1", (unsigned long long)ticks);
    struct itimerspec its;
    SYS(timerfd_gettime(tfd_expired, &its), "timerfd_gettime");
    if (its.it_value.tv_sec || its.it_value.tv_nsec || its.it_interval.tv_sec || its.it_interval.tv_nsec)
        FAIL("the one-shot timer is armed again");
    return NULL;
}

static const char *check_signalfd(void) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof si);
    if (n != sizeof si)
        FAIL("read: %s (errno %d): no SIGUSR2 came through the signalfd", n < 0 ? strerror(errno) : "short", errno);
    if (si.ssi_signo != SIGUSR2) FAIL("read signal %u, expected SIGUSR2 (%d)", si.ssi_signo, SIGUSR2);
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGUSR2)) FAIL("SIGUSR2 still pending after reading it");
    return check_flags(sfd, O_RDWR, O_NONBLOCK, 1);
}

static const char *check_stdout(void) {
    const char *text = "stdout after restore\n";
    ssize_t n = write(1, text, strlen(text));
    if (n != (ssize_t)strlen(text)) FAIL("write to fd 1: %s", n < 0 ? strerror(errno) : "short");
    return NULL;
}

static void run_checks(const char *report) {
    report_len = 0;
    struct { const char *kind; const char *(*check)(void); } checks[] = {
        {"regular", check_regular}, {"dup", check_dup}, {"append", check_append}, {"deleted", check_deleted},
        {"directory", check_directory}, {"devnull", check_devnull}, {"devzero", check_devzero},
        {"devurandom", check_devurandom}, {"stdin", check_stdin}, {"pipe", check_pipe}, {"bigpipe", check_bigpipe},
        {"fifo", check_fifo}, {"bigfifo", check_bigfifo}, {"rwfifo", check_rwfifo},
        {"opath", check_opath}, {"eventfd", check_eventfd}, {"epoll", check_epoll}, {"timerfd", check_timerfd},
        {"timerfd-expired", check_timerfd_expired}, {"signalfd", check_signalfd}, {"stdout", check_stdout},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        const char *e = checks[i].check();
        if (e) {
            /* One line per kind: data quoted in a reason may hold newlines. */
            char flat[sizeof why];
            size_t k = 0;
            for (const char *c = e; *c && k + 2 < sizeof flat; c++) {
                if (*c == '\n') flat[k++] = '\\', flat[k++] = 'n';
                else flat[k++] = *c;
            }
            flat[k] = 0;
            line("FAIL %s: %s\n", checks[i].kind, flat);
        } else {
            line("ok %s\n", checks[i].kind);
        }
    }
    /* Written whole under another name, then renamed: the reader never sees half a report. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", report);
    int fd = must(open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), "open report");
    write_all(fd, report_buf, report_len, "write report");
    close(fd);
    must(rename(tmp, report), "rename report");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s WORKDIR REPORT\n", argv[0]);
        return 2;
    }
    snprintf(work, sizeof work, "%s", argv[1]);
    setup();
    write_all(1, "ready\n", 6, "write ready");
    char go[4096];
    path(go, sizeof go, "go");
    for (;;) {
        if (access(go, F_OK) == 0) {
            run_checks(argv[2]);
            unlink(go);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
