/* A stock program for the tests that carries a lot of process state and shows it from outside.
 *
 *   vos-test-state REPORT DIR [ARGS...]
 *
 * It chdirs to DIR, maps DIR/data.bin and DIR/cow.bin (both made by the test), sets up
 * registers, TLS, signals, timers, threads and memory of many kinds, then appends one line to
 * REPORT every 25 ms: "tick seq=N key=value ...". Ticks use no file descriptor besides REPORT,
 * so a checkpoint taken between two ticks sees the same fd table every time.
 *
 * Commands arrive as SIGHUP sent with sigqueue(); the value says what to do, the answer is one
 * line: 1 "verify ..." (checks that need /proc/self files), 2 "unblocked ..." (unblocks the
 * signals left pending at start-up), 3 "robust ..." (the robust-mutex thread checks its own
 * state, takes the signal left pending for it alone, and exits holding the mutex; the main
 * thread must get EOWNERDEAD and be able to join it).
 *
 * SIGRTMIN+6 sent with sigqueue() and values 0, 1, 2... is a stream the test sends across a
 * checkpoint: every value must arrive once and in order ("stream=", "streambad=" in ticks).
 *
 * With --no-altstack among ARGS the main thread has no alternate signal stack (its SA_ONSTACK
 * handler then runs on the normal stack); with --ignore-sigtrap SIGTRAP is ignored.
 *
 * Nothing here knows about vOS. */
#define _GNU_SOURCE
#include <alloca.h>
#include <asm/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static FILE *report;

static void fail(const char *what) {
    if (report) {
        fprintf(report, "error %s: %s\n", what, strerror(errno));
        fflush(report);
    }
    exit(1);
}

/* FNV-1a, 64 bits; the test computes the same over the files it made. */
static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- registers: a thread that keeps known values in every vector register ---------------- */

/* Patterns the vector thread loads once and compares after every sleep; global (not static)
 * so the inline assembly can name them. */
uint8_t vos_zpat[32][64] __attribute__((aligned(64)));
uint16_t vos_kpat[8];
uint64_t vos_gpat[9];
uint32_t vos_mxcsr_want = 0x7f80 | 0x8000; /* all exceptions masked, round toward zero, FTZ */
uint32_t vos_mxcsr_now;
uint16_t vos_fcw_want = 0x0c7f;            /* x87: truncate, single precision */
uint16_t vos_fcw_now;
double vos_f87_want = 1234.5678;
double vos_f87_now;
struct timespec vos_vec_ts = {0, 2 * 1000 * 1000};
volatile uint64_t vos_vec_iterations, vos_vec_bad;
static const char *vec_mode = "none";

#define ZLOAD(n) "vmovdqu64 vos_zpat+" #n "*64(%%rip), %%zmm" #n "\n\t"
#define ZCHECK(n) "vpcmpq $4, vos_zpat+" #n "*64(%%rip), %%zmm" #n ", %%k1\n\t" \
    "kortestw %%k1, %%k1\n\t" "jz 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t"
#define KLOAD(n) "kmovw vos_kpat+" #n "*2(%%rip), %%k" #n "\n\t"
#define KCHECK(n) "kmovw %%k" #n ", %%eax\n\t" "cmpw vos_kpat+" #n "*2(%%rip), %%ax\n\t" \
    "je 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t"
#define YLOAD(n) "vmovdqu vos_zpat+" #n "*64(%%rip), %%ymm" #n "\n\t"
#define YCHECK(n) "vpxor vos_zpat+" #n "*64(%%rip), %%ymm" #n ", %%ymm15\n\t" \
    "vptest %%ymm15, %%ymm15\n\t" "jz 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t"
#define GLOAD(r, i) "movq vos_gpat+" #i "*8(%%rip), %%" #r "\n\t"
#define GCHECK(r, i) "cmpq vos_gpat+" #i "*8(%%rip), %%" #r "\n\t" "je 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t"

/* General registers kept across the loop: every one the syscall leaves alone except rdi/rsi
 * (its arguments), rsp and rbp. */
#define GPRS(X) X(rbx, 0) X(rdx, 1) X(r8, 2) X(r9, 3) X(r10, 4) X(r12, 5) X(r13, 6) X(r14, 7) X(r15, 8)

/* x87 control word, one x87 register, MXCSR. */
#define LEGACY_LOAD \
    "fninit\n\t" "fldcw vos_fcw_want(%%rip)\n\t" "fldl vos_f87_want(%%rip)\n\t" "ldmxcsr vos_mxcsr_want(%%rip)\n\t"
#define LEGACY_CHECK \
    "fnstcw vos_fcw_now(%%rip)\n\t" "movzwl vos_fcw_now(%%rip), %%eax\n\t" "cmpw vos_fcw_want(%%rip), %%ax\n\t" \
    "je 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t" \
    "fstl vos_f87_now(%%rip)\n\t" "movq vos_f87_now(%%rip), %%rax\n\t" "cmpq vos_f87_want(%%rip), %%rax\n\t" \
    "je 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t" \
    "stmxcsr vos_mxcsr_now(%%rip)\n\t" "movl vos_mxcsr_now(%%rip), %%eax\n\t" "cmpl vos_mxcsr_want(%%rip), %%eax\n\t" \
    "je 1f\n\t" "incq vos_vec_bad(%%rip)\n\t" "1:\n\t"

/* Sleep 2 ms with a raw nanosleep (the kernel keeps every register but rax, rcx, r11), then a
 * short spin so that a checkpoint sometimes finds the thread in user mode. */
#define SLEEP_AND_SPIN \
    "movl $35, %%eax\n\t" "leaq vos_vec_ts(%%rip), %%rdi\n\t" "xorl %%esi, %%esi\n\t" "syscall\n\t" \
    "movl $100000, %%ecx\n\t" "2: decl %%ecx\n\t" "jnz 2b\n\t"

__attribute__((target("avx512f"), noreturn)) static void vector_loop_avx512(void) {
    __asm__ volatile(
        ZLOAD(0) ZLOAD(1) ZLOAD(2) ZLOAD(3) ZLOAD(4) ZLOAD(5) ZLOAD(6) ZLOAD(7)
        ZLOAD(8) ZLOAD(9) ZLOAD(10) ZLOAD(11) ZLOAD(12) ZLOAD(13) ZLOAD(14) ZLOAD(15)
        ZLOAD(16) ZLOAD(17) ZLOAD(18) ZLOAD(19) ZLOAD(20) ZLOAD(21) ZLOAD(22) ZLOAD(23)
        ZLOAD(24) ZLOAD(25) ZLOAD(26) ZLOAD(27) ZLOAD(28) ZLOAD(29) ZLOAD(30) ZLOAD(31)
        KLOAD(2) KLOAD(3) KLOAD(4) KLOAD(5) KLOAD(6) KLOAD(7)
        GPRS(GLOAD) LEGACY_LOAD
        "9:\n\t"
        SLEEP_AND_SPIN
        ZCHECK(0) ZCHECK(1) ZCHECK(2) ZCHECK(3) ZCHECK(4) ZCHECK(5) ZCHECK(6) ZCHECK(7)
        ZCHECK(8) ZCHECK(9) ZCHECK(10) ZCHECK(11) ZCHECK(12) ZCHECK(13) ZCHECK(14) ZCHECK(15)
        ZCHECK(16) ZCHECK(17) ZCHECK(18) ZCHECK(19) ZCHECK(20) ZCHECK(21) ZCHECK(22) ZCHECK(23)
        ZCHECK(24) ZCHECK(25) ZCHECK(26) ZCHECK(27) ZCHECK(28) ZCHECK(29) ZCHECK(30) ZCHECK(31)
        KCHECK(2) KCHECK(3) KCHECK(4) KCHECK(5) KCHECK(6) KCHECK(7)
        GPRS(GCHECK) LEGACY_CHECK
        "incq vos_vec_iterations(%%rip)\n\t"
        "jmp 9b\n\t"
        ::: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
            "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
            "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
            "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
            "k1", "k2", "k3", "k4", "k5", "k6", "k7", "st", "memory", "cc");
    __builtin_unreachable();
}

__attribute__((target("avx"), noreturn)) static void vector_loop_avx(void) {
    __asm__ volatile(
        YLOAD(0) YLOAD(1) YLOAD(2) YLOAD(3) YLOAD(4) YLOAD(5) YLOAD(6) YLOAD(7)
        YLOAD(8) YLOAD(9) YLOAD(10) YLOAD(11) YLOAD(12) YLOAD(13) YLOAD(14)
        GPRS(GLOAD) LEGACY_LOAD
        "9:\n\t"
        SLEEP_AND_SPIN
        YCHECK(0) YCHECK(1) YCHECK(2) YCHECK(3) YCHECK(4) YCHECK(5) YCHECK(6) YCHECK(7)
        YCHECK(8) YCHECK(9) YCHECK(10) YCHECK(11) YCHECK(12) YCHECK(13) YCHECK(14)
        GPRS(GCHECK) LEGACY_CHECK
        "incq vos_vec_iterations(%%rip)\n\t"
        "jmp 9b\n\t"
        ::: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
            "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
            "xmm12", "xmm13", "xmm14", "xmm15", "st", "memory", "cc");
    __builtin_unreachable();
}

static void block_all_signals(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
}

static void *vector_thread(void *arg) {
    (void)arg;
    block_all_signals();  /* every handler runs in the main thread */
    if (__builtin_cpu_supports("avx512f")) vector_loop_avx512();
    vector_loop_avx();
}

static void init_register_patterns(void) {
    for (int r = 0; r < 32; r++)
        for (int i = 0; i < 64; i++) vos_zpat[r][i] = (uint8_t)(r * 37 + i * 11 + 5);
    for (int k = 0; k < 8; k++) vos_kpat[k] = (uint16_t)(0x1111 * k + 0x0f0f);
    for (int g = 0; g < 9; g++) vos_gpat[g] = 0x0123456789abcdefULL * (uint64_t)(g + 3) ^ 0x5a5a5a5a5a5a5a5aULL;
    vec_mode = __builtin_cpu_supports("avx512f") ? "avx512" : "avx";
}

/* ---- TLS and rseq -------------------------------------------------------------------------- */

static __thread uint64_t tls_marker = 0x7e57a11ce5ULL;

static uint64_t thread_pointer(void) {
    uint64_t tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    return tp;
}

/* 1 when this thread is registered for rseq (glibc registers it; the area is __rseq_offset
 * from the thread pointer): the cpu_id field, overwritten with a poison, holds the real CPU
 * again after a sleep (the kernel rewrites it on the way back to user space after a context
 * switch, and only for a registered area); 0 when the poison or a wrong number stays; -1 when
 * glibc did not register rseq. */
static int rseq_valid(int *cpu_out) {
    if (__rseq_size == 0) return -1;
    volatile struct rseq *rs = (volatile struct rseq *)(thread_pointer() + (uint64_t)__rseq_offset);
    for (int attempt = 0; attempt < 5; attempt++) {
        rs->cpu_id = 0xdeadbeef;
        struct timespec ts = {0, 200 * 1000};
        syscall(SYS_nanosleep, &ts, NULL);
        unsigned cpu = 0;
        int32_t before = (int32_t)rs->cpu_id;
        syscall(SYS_getcpu, &cpu, NULL, NULL);
        int32_t after = (int32_t)rs->cpu_id;
        *cpu_out = before;
        if (before >= 0 && before == after && (unsigned)before == cpu) return 1;
    }
    return 0;
}

/* ---- signals ------------------------------------------------------------------------------- */

#define SIG_RT_QUEUED (SIGRTMIN + 2)
#define SIG_TIMER (SIGRTMIN + 3)
#define SIG_TIMER_IDLE (SIGRTMIN + 4)
#define RT_VALUE 4242
#define TIMER_VALUE 777

static char *altstack;
static const size_t altstack_size = 64 * 1024;
static volatile sig_atomic_t usr1_count, usr1_on_altstack, alrm_count, winch_count, urg_count;
static volatile sig_atomic_t rt_count, rt_value, rt_code, ptimer_count, ptimer_bad, command;
static timer_t ptimer, ptimer_idle;

static void on_usr1(int sig) {
    (void)sig;
    char here;
    usr1_count++;
    if (altstack && &here >= altstack && &here < altstack + altstack_size) usr1_on_altstack++;
}
static void on_alrm(int sig) { (void)sig; alrm_count++; }
static void on_winch(int sig) { (void)sig; winch_count++; }
static void on_urg(int sig) { (void)sig; urg_count++; }
static void on_rt(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    rt_count++;
    rt_value = si->si_value.sival_int;
    rt_code = si->si_code;
}
static void on_ptimer(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    ptimer_count++;
    if (si->si_code != SI_TIMER || si->si_value.sival_int != TIMER_VALUE || si->si_timerid != (int)(intptr_t)ptimer)
        ptimer_bad++;
}
/* A stream of queued real-time signals from the test, values 0, 1, 2...: each must arrive
 * exactly once, in order (a queued signal is never merged with another). */
#define SIG_STREAM (SIGRTMIN + 6)
#define STREAM_MAX 65536
static volatile uint16_t stream_seen[STREAM_MAX];
static volatile int stream_count, stream_bad, stream_next, stream_first_bad = -1;
static void on_stream(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    int v = si->si_value.sival_int;
    stream_count++;
    if (si->si_code != SI_QUEUE || v < 0 || v >= STREAM_MAX) { stream_bad++; return; }
    if (stream_seen[v]++ != 0 || v != stream_next) { /* a repeat, or one skipped */
        stream_bad++;
        if (stream_first_bad < 0) stream_first_bad = stream_next;
    }
    stream_next = v + 1;
}
static void on_hup(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    if (si->si_code == SI_QUEUE) command = si->si_value.sival_int;
}

static void handle(int sig, void (*h)(int), int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) fail("sigaction");
}
static void handle_info(int sig, void (*h)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa = {0};
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) fail("sigaction");
}

static sigset_t held_signals(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGWINCH);
    sigaddset(&s, SIGURG);
    sigaddset(&s, SIG_RT_QUEUED);
    return s;
}

static void setup_signals(int with_altstack) {
    if (with_altstack) {
        altstack = mmap(NULL, altstack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (altstack == MAP_FAILED) fail("mmap(altstack)");
        stack_t ss = {.ss_sp = altstack, .ss_size = altstack_size, .ss_flags = 0};
        if (sigaltstack(&ss, NULL) != 0) fail("sigaltstack");
    } else {
        /* Whatever the parent left (a Swift parent has one): none, so SA_ONSTACK runs on the
         * normal stack. */
        stack_t ss = {.ss_flags = SS_DISABLE};
        if (sigaltstack(&ss, NULL) != 0) fail("sigaltstack(SS_DISABLE)");
    }
    handle(SIGUSR1, on_usr1, SA_ONSTACK | SA_RESTART);
    handle(SIGUSR2, SIG_IGN, 0);
    handle(SIGALRM, on_alrm, SA_RESTART);
    handle(SIGWINCH, on_winch, 0);
    handle(SIGURG, on_urg, 0);
    handle_info(SIG_RT_QUEUED, on_rt, 0);
    handle_info(SIG_TIMER, on_ptimer, SA_RESTART);
    handle_info(SIGHUP, on_hup, SA_RESTART);
    handle_info(SIG_STREAM, on_stream, SA_RESTART);

    /* Blocked, and one of each left pending: SIGWINCH for this thread (raise = tgkill),
     * SIGURG for the process (kill), SIGRTMIN+2 for the process with a value (sigqueue). */
    sigset_t held = held_signals();
    if (sigprocmask(SIG_BLOCK, &held, NULL) != 0) fail("sigprocmask");
    if (raise(SIGWINCH) != 0) fail("raise(SIGWINCH)");
    if (kill(getpid(), SIGURG) != 0) fail("kill(SIGURG)");
    if (sigqueue(getpid(), SIG_RT_QUEUED, (union sigval){.sival_int = RT_VALUE}) != 0) fail("sigqueue");
}

static void setup_timers(void) {
    struct itimerval it = {.it_interval = {0, 50 * 1000}, .it_value = {0, 50 * 1000}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) fail("setitimer");

    /* Three timers, the first deleted: ids 1 and 2 stay, with a hole before them. */
    struct sigevent ev = {0};
    timer_t first;
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIG_TIMER;
    ev.sigev_value.sival_int = TIMER_VALUE;
    if (timer_create(CLOCK_MONOTONIC, &ev, &first) != 0) fail("timer_create");
    if (timer_create(CLOCK_MONOTONIC, &ev, &ptimer) != 0) fail("timer_create");
    ev.sigev_signo = SIG_TIMER_IDLE;
    ev.sigev_value.sival_int = 0;
    if (timer_create(CLOCK_REALTIME, &ev, &ptimer_idle) != 0) fail("timer_create");
    if (timer_delete(first) != 0) fail("timer_delete");
    struct itimerspec periodic = {.it_interval = {0, 40 * 1000 * 1000}, .it_value = {0, 40 * 1000 * 1000}};
    if (timer_settime(ptimer, 0, &periodic, NULL) != 0) fail("timer_settime");
    struct itimerspec hour = {.it_interval = {0, 0}, .it_value = {3600, 0}};
    if (timer_settime(ptimer_idle, 0, &hour, NULL) != 0) fail("timer_settime");
}

/* ---- memory -------------------------------------------------------------------------------- */

#define DATA_PAGES 3
#define COW_PAGES 4
#define SMALL_BLOCKS 2000
#define BIG_BYTES (1 << 20)
#define SBRK_BYTES (3 * 4096)
#define STACK_BYTES (32 * 1024)

static unsigned char *data_map, *cow_map, *ro_page, *none_page, *big_block, *sbrk_area;
static unsigned char *small_blocks[SMALL_BLOCKS];
static volatile unsigned char *stack_area;
static uint64_t none_sum_at_start;

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * seed + seed / 3);
}

static unsigned char *map_file(const char *name, size_t pages, int prot) {
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(name);
    unsigned char *p = mmap(NULL, pages * 4096, prot, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) fail("mmap(file)");
    close(fd);
    return p;
}

static void setup_memory(void) {
    /* A read-only private mapping of a data file, and a private one written in two pages:
     * those two pages are the process's own, the other two still the file's. */
    data_map = map_file("data.bin", DATA_PAGES, PROT_READ);
    cow_map = map_file("cow.bin", COW_PAGES, PROT_READ | PROT_WRITE);
    strcpy((char *)cow_map + 4096 + 100, "vos private page 1");
    strcpy((char *)cow_map + 3 * 4096 + 3000, "vos private page 3");

    for (int i = 0; i < SMALL_BLOCKS; i++) {
        small_blocks[i] = malloc(64);
        if (!small_blocks[i]) fail("malloc");
        fill(small_blocks[i], 64, 7 + (unsigned)i);
    }
    big_block = malloc(BIG_BYTES);  /* above the mmap threshold: a mapping of its own */
    if (!big_block) fail("malloc(big)");
    fill(big_block, BIG_BYTES, 13);
    sbrk_area = sbrk(SBRK_BYTES);
    if (sbrk_area == (void *)-1) fail("sbrk");
    fill(sbrk_area, SBRK_BYTES, 17);

    /* One page written then made read-only, one written then made inaccessible. */
    ro_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro_page == MAP_FAILED || none_page == MAP_FAILED) fail("mmap(anonymous)");
    fill(ro_page, 4096, 19);
    fill(none_page, 4096, 23);
    none_sum_at_start = fnv(none_page, 4096);
    if (mprotect(ro_page, 4096, PROT_READ) != 0 || mprotect(none_page, 4096, PROT_NONE) != 0) fail("mprotect");
}

static uint64_t small_sum(void) {
    uint64_t h = 0;
    for (int i = 0; i < SMALL_BLOCKS; i++) h = h * 31 + fnv(small_blocks[i], 64);
    return h;
}

/* ---- the robust-mutex thread --------------------------------------------------------------- */

static pthread_mutex_t robust_mutex;
static uint32_t robust_release; /* futex word: 1 = exit now */
static volatile int robust_holding, robust_rseq = -2, robust_stack_ok = -1, robust_alt_ok = -1;
static volatile pid_t robust_tid;
static char *robust_altstack;
static const size_t robust_altstack_size = 32 * 1024;

/* A signal the main thread sends to the robust thread alone (pthread_kill), which blocks it
 * until it is told to exit: pending for that thread across the checkpoint. Its handler runs
 * on that thread's own alternate stack. */
#define SIG_THREAD (SIGRTMIN + 5)
static volatile int thread_sig_count, thread_sig_in_thread, thread_sig_on_alt, thread_sig_code;
static void on_thread_sig(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    char here;
    thread_sig_count++;
    thread_sig_in_thread = (pid_t)syscall(SYS_gettid) == robust_tid;
    thread_sig_on_alt = &here >= robust_altstack && &here < robust_altstack + robust_altstack_size;
    thread_sig_code = si->si_code;
}

static void *robust_thread(void *arg) {
    (void)arg;
    block_all_signals();
    robust_tid = (pid_t)syscall(SYS_gettid);
    stack_t ss = {.ss_sp = robust_altstack, .ss_size = robust_altstack_size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) return NULL;
    unsigned char frame[8192];
    fill(frame, sizeof frame, 29);
    uint64_t sum = fnv(frame, sizeof frame);
    if (pthread_mutex_lock(&robust_mutex) != 0) return NULL;
    robust_holding = 1;
    /* Waits in FUTEX_WAIT with no timeout: a checkpoint finds it inside that call. */
    while (__atomic_load_n(&robust_release, __ATOMIC_ACQUIRE) == 0)
        syscall(SYS_futex, &robust_release, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    int cpu;
    robust_rseq = rseq_valid(&cpu);
    robust_stack_ok = fnv(frame, sizeof frame) == sum;
    stack_t now;
    robust_alt_ok = sigaltstack(NULL, &now) == 0 && now.ss_sp == robust_altstack &&
                    now.ss_size == robust_altstack_size && now.ss_flags == 0;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIG_THREAD);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL); /* the pending one is delivered here */
    return NULL; /* exits holding the robust mutex: the kernel marks it owner-died */
}

/* ---- reports ------------------------------------------------------------------------------- */

static const char *prot_of(const char *maps, const void *addr) {
    static char perms[8];
    char needle[32];
    snprintf(needle, sizeof needle, "\n%lx-", (unsigned long)addr);
    const char *line = strstr(maps, needle);
    if (!line) return "missing";
    const char *sp = strchr(line + 1, ' ');
    if (!sp) return "missing";
    memcpy(perms, sp + 1, 4);
    perms[4] = 0;
    return perms;
}

static size_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return n;
}

/* The "start-end" of the maps line whose name is `name`. */
static void range_of(const char *maps, const char *name, char *out, size_t size) {
    snprintf(out, size, "missing");
    size_t nlen = strlen(name);
    const char *line = maps;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nlen && memcmp(line + len - nlen, name, nlen) == 0) {
            snprintf(out, size, "%.*s", (int)strcspn(line, " "), line);
            return;
        }
        if (!end) break;
        line = end + 1;
    }
}

/* Touches `bytes` of stack below the caller: grows the [stack] mapping when it is deeper than
 * anything used so far (a restored stack that lost MAP_GROWSDOWN takes SIGSEGV here). */
__attribute__((noinline)) static int use_stack(size_t bytes) {
    volatile unsigned char *p = alloca(bytes);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = (unsigned char)(i >> 12);
    return p[bytes - 4096] == (unsigned char)((bytes - 4096) >> 12);
}

static void verify(int argc, char **argv) {
    static int verify_count;
    static char buf[1 << 16], maps[1 << 17];
    char want[8192];
    size_t w = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]) + 1;
        if (w + l > sizeof want) break;
        memcpy(want + w, argv[i], l);
        w += l;
    }
    /* The heap still grows and shrinks (first: the malloc may leave the heap larger, and
     * the maps read below should show the heap as every later verify sees it). */
    void *old_brk = sbrk(0);
    unsigned char *more = sbrk(8192);
    int grow_ok = more != (void *)-1;
    if (grow_ok) {
        memset(more, 0xab, 8192);
        grow_ok = sbrk(-8192) != (void *)-1 && sbrk(0) == old_brk;
    }
    void *fresh = malloc(100000);
    grow_ok = grow_ok && fresh != NULL;
    free(fresh);

    size_t n = read_file("/proc/self/cmdline", buf, sizeof buf);
    int cmdline_ok = n == w && memcmp(buf, want, w) == 0;
    uint64_t env_want = 0xcbf29ce484222325ULL;
    size_t env_len = 0;
    for (char **e = environ; *e; e++) {
        size_t l = strlen(*e) + 1;
        for (size_t i = 0; i < l; i++) env_want = (env_want ^ (unsigned char)(*e)[i]) * 0x100000001b3ULL;
        env_len += l;
    }
    n = read_file("/proc/self/environ", buf, sizeof buf);
    int environ_ok = n == env_len && fnv(buf, n) == env_want;

    read_file("/proc/self/maps", maps + 1, sizeof maps - 1);
    maps[0] = '\n';
    char heap[64], stack[64], vdso[64], vvar[64], data[64];
    range_of(maps, "[heap]", heap, sizeof heap);
    range_of(maps, "[stack]", stack, sizeof stack);
    range_of(maps, "[vdso]", vdso, sizeof vdso);
    range_of(maps, "[vvar]", vvar, sizeof vvar);
    range_of(maps, "/data.bin", data, sizeof data);
    char ro_prot[8], none_prot[8];
    snprintf(ro_prot, sizeof ro_prot, "%s", prot_of(maps, ro_page));
    snprintf(none_prot, sizeof none_prot, "%s", prot_of(maps, none_page));

    /* The inaccessible page's bytes, through /proc/self/mem (which reads past PROT_NONE). */
    unsigned char page[4096];
    int memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    ssize_t got = memfd >= 0 ? pread(memfd, page, sizeof page, (off_t)(uintptr_t)none_page) : -1;
    if (memfd >= 0) close(memfd);
    int none_ok = got == (ssize_t)sizeof page && fnv(page, sizeof page) == none_sum_at_start;

    read_file("/proc/self/status", buf, sizeof buf);
    const char *um = strstr(buf, "Umask:");
    unsigned umask_status = um ? (unsigned)strtoul(um + 6, NULL, 8) : 9999;

    /* The vdso answers like the syscall. */
    struct timespec v, s;
    clock_gettime(CLOCK_MONOTONIC, &v);
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s);
    long long diff_us = ((long long)(s.tv_sec - v.tv_sec) * 1000000000LL + (s.tv_nsec - v.tv_nsec)) / 1000;

    /* After the maps were read: each verify goes 1 MiB deeper than the one before. */
    verify_count++;
    int stack_ok = use_stack((size_t)verify_count << 20);

    fprintf(report,
            "verify cmdline=%s environ=%s heap=%s stack=%s vdso=%s vvar=%s data=%s roprot=%s noneprot=%s "
            "none=%s umask=%03o grow=%s stackgrow=%s vdsodiff_us=%lld\n",
            cmdline_ok ? "ok" : "bad", environ_ok ? "ok" : "bad", heap, stack, vdso, vvar, data, ro_prot, none_prot,
            none_ok ? "ok" : "bad", umask_status, grow_ok ? "ok" : "bad", stack_ok ? "ok" : "bad", diff_us);
    fflush(report);
}

static void unblock(void) {
    sigset_t held = held_signals();
    sigprocmask(SIG_UNBLOCK, &held, NULL);  /* the pending ones are delivered right here */
    fprintf(report, "unblocked winch=%d urg=%d rt=%d rtvalue=%d rtcode=%d\n", (int)winch_count, (int)urg_count,
            (int)rt_count, (int)rt_value, (int)rt_code);
    fflush(report);
}

static void release_robust(pthread_t robust) {
    __atomic_store_n(&robust_release, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &robust_release, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 3;
    int lock = pthread_mutex_timedlock(&robust_mutex, &deadline);
    if (lock == EOWNERDEAD) {
        pthread_mutex_consistent(&robust_mutex);
        pthread_mutex_unlock(&robust_mutex);
    } else if (lock == 0) {
        pthread_mutex_unlock(&robust_mutex);
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 3;
    int join = pthread_timedjoin_np(robust, NULL, &deadline);
    fprintf(report,
            "robust lock=%s join=%s threadrseq=%d threadstack=%d threadalt=%d threadsig=%d threadsigself=%d "
            "threadsigalt=%d threadsigcode=%d\n",
            lock == 0 ? "0" : strerrorname_np(lock), join == 0 ? "0" : strerrorname_np(join), robust_rseq, robust_stack_ok,
            robust_alt_ok, thread_sig_count, thread_sig_in_thread, thread_sig_on_alt, thread_sig_code);
    fflush(report);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPORT DIR [ARGS...]\n", argv[0]);
        return 2;
    }
    report = fopen(argv[1], "a");
    if (!report) return 1;
    if (chdir(argv[2]) != 0) fail("chdir");
    umask(027);
    struct rlimit nofile, core = {.rlim_cur = 1 << 20, .rlim_max = 2 << 20};
    if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) fail("getrlimit");
    nofile.rlim_cur = 200;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setrlimit(RLIMIT_CORE, &core) != 0) fail("setrlimit");
    prctl(PR_SET_NAME, "state-main");

    unsigned char stack_bytes[STACK_BYTES];
    fill(stack_bytes, sizeof stack_bytes, 31);
    stack_area = stack_bytes;

    init_register_patterns();
    setup_memory();
    int with_altstack = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--no-altstack") == 0) with_altstack = 0;
        if (strcmp(argv[i], "--ignore-sigtrap") == 0) handle(SIGTRAP, SIG_IGN, 0);
    }
    setup_signals(with_altstack);
    setup_timers();

    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust_mutex, &ma);
    robust_altstack = mmap(NULL, robust_altstack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (robust_altstack == MAP_FAILED) fail("mmap(thread altstack)");
    handle_info(SIG_THREAD, on_thread_sig, SA_ONSTACK);
    pthread_t vec, robust;
    if (pthread_create(&vec, NULL, vector_thread, NULL) != 0) fail("pthread_create");
    if (pthread_create(&robust, NULL, robust_thread, NULL) != 0) fail("pthread_create");
    pthread_setname_np(vec, "state-vec");
    pthread_setname_np(robust, "state-robust");
    while (!robust_holding || vos_vec_iterations < 3) usleep(1000);
    if (pthread_kill(robust, SIG_THREAD) != 0) fail("pthread_kill");

    fprintf(report, "ready pid=%d mode=%s\n", getpid(), vec_mode);
    fflush(report);
    int robust_done = 0;
    for (unsigned long seq = 0;; seq++) {
        int cmd = __atomic_exchange_n(&command, 0, __ATOMIC_SEQ_CST);
        if (cmd == 1) verify(argc, argv);
        if (cmd == 2) unblock();
        if (cmd == 3 && !robust_done) {
            release_robust(robust);
            robust_done = 1;
        }

        uint64_t fs = 0;
        syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
        int cpu = -1, rseq = rseq_valid(&cpu);
        stack_t ss;
        sigaltstack(NULL, &ss);
        sigset_t blocked, pending;
        sigprocmask(SIG_BLOCK, NULL, &blocked);
        sigpending(&pending);
        uint64_t blocked_bits = 0, pending_bits = 0;
        for (int s = 1; s <= 64; s++) {
            if (sigismember(&blocked, s) == 1) blocked_bits |= 1ULL << (s - 1);
            if (sigismember(&pending, s) == 1) pending_bits |= 1ULL << (s - 1);
        }
        struct sigaction usr2;
        sigaction(SIGUSR2, NULL, &usr2);
        struct itimerval it;
        getitimer(ITIMER_REAL, &it);
        struct itimerspec pt, idle;
        timer_gettime(ptimer, &pt);
        timer_gettime(ptimer_idle, &idle);
        struct rlimit nf, cr;
        getrlimit(RLIMIT_NOFILE, &nf);
        getrlimit(RLIMIT_CORE, &cr);
        mode_t um = umask(0);
        umask(um);
        char cwd[512];
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "?");
        struct timespec v, s;
        clock_gettime(CLOCK_MONOTONIC, &v);
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s);
        long long vdso_us = ((long long)(s.tv_sec - v.tv_sec) * 1000000000LL + (s.tv_nsec - v.tv_nsec)) / 1000;
        char name[17] = {0};
        prctl(PR_GET_NAME, name);

        fprintf(report,
                "tick seq=%lu vec=%llu vecbad=%llu mode=%s tls=%llx tlsaddr=%p fs=%llx tp=%llx rseq=%d cpu=%d "
                "altstack=%p/%zu/%d usr1=%d usr1alt=%d usr2=%s alrm=%d itimer=%ld ptimer=%d ptimerbad=%d "
                "ptimerid=%d ptimerint=%ld idleid=%d idleleft=%ld winch=%d urg=%d rt=%d blocked=%llx pending=%llx "
                "map=%llx cow=%llx small=%llx big=%llx sbrk=%llx brk=%p ro=%llx stack=%llx nofile=%llu/%llu "
                "core=%llu/%llu umask=%03o cwd=%s vdso_us=%lld name=%s stream=%d streamnext=%d streambad=%d streamfirstbad=%d\n",
                seq, (unsigned long long)vos_vec_iterations, (unsigned long long)vos_vec_bad, vec_mode,
                (unsigned long long)tls_marker, (void *)&tls_marker, (unsigned long long)fs,
                (unsigned long long)thread_pointer(), rseq, cpu, ss.ss_sp, ss.ss_size, ss.ss_flags, (int)usr1_count,
                (int)usr1_on_altstack, usr2.sa_handler == SIG_IGN ? "ignored" : "not-ignored", (int)alrm_count,
                (long)(it.it_interval.tv_sec * 1000000 + it.it_interval.tv_usec), (int)ptimer_count, (int)ptimer_bad,
                (int)(intptr_t)ptimer, (long)(pt.it_interval.tv_sec * 1000000000L + pt.it_interval.tv_nsec),
                (int)(intptr_t)ptimer_idle, (long)idle.it_value.tv_sec, (int)winch_count, (int)urg_count,
                (int)rt_count, (unsigned long long)blocked_bits, (unsigned long long)pending_bits,
                (unsigned long long)fnv(data_map, DATA_PAGES * 4096), (unsigned long long)fnv(cow_map, COW_PAGES * 4096),
                (unsigned long long)small_sum(), (unsigned long long)fnv(big_block, BIG_BYTES),
                (unsigned long long)fnv(sbrk_area, SBRK_BYTES), sbrk(0), (unsigned long long)fnv(ro_page, 4096),
                (unsigned long long)fnv((const unsigned char *)stack_area, STACK_BYTES), (unsigned long long)nf.rlim_cur,
                (unsigned long long)nf.rlim_max, (unsigned long long)cr.rlim_cur, (unsigned long long)cr.rlim_max,
                (unsigned)um, cwd, vdso_us, name, (int)stream_count, (int)stream_next, (int)stream_bad, (int)stream_first_bad);
        fflush(report);
        struct timespec ts = {0, 25 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
