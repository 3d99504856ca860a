/* A stock program for the capsule tests: a small process tree with shared state.
 *   parent ─┬─ A: its own session; writes "A n=<k>" into a pipe to the parent every 20 ms
 *           ├─ B: its own process group ── C: in B's group
 *           └─ Z: exits at once with status 7 and stays a zombie until the parent gets SIGUSR2
 * Every process appends "id <name> pid=<> ppid=<> pgid=<> sid=<>" to the report (argv[1], one
 * O_APPEND description shared by all through fork) every 100 ms; the parent appends
 * "got A n=<k> mono=<CLOCK_MONOTONIC ns>" for every line it reads from the pipe, and on SIGUSR2
 * reaps Z and appends "reaped Z status=<exit status>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int report;
static volatile sig_atomic_t reap_requested;
static void on_usr2(int sig) { (void)sig; reap_requested = 1; }

static void say(const char *text) { (void)!write(report, text, strlen(text)); }

static void identity(const char *name) {
    char line[160];
    snprintf(line, sizeof line, "id %s pid=%d ppid=%d pgid=%d sid=%d\n", name, getpid(), getppid(), getpgid(0), getsid(0));
    say(line);
}

static void idle_forever(const char *name) {
    for (;;) {
        identity(name);
        usleep(100 * 1000);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    report = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (report < 0) return 1;
    int p[2];
    if (pipe(p) != 0) return 1;
    if (fork() == 0) { /* A */
        close(p[0]);
        setsid();
        for (unsigned long n = 0;; n++) {
            char line[64];
            int len = snprintf(line, sizeof line, "A n=%lu\n", n);
            (void)!write(p[1], line, len);
            if (n % 5 == 0) identity("A");
            usleep(20 * 1000);
        }
    }
    close(p[1]);
    if (fork() == 0) { /* B */
        setpgid(0, 0);
        if (fork() == 0) idle_forever("C");
        idle_forever("B");
    }
    pid_t z = fork();
    if (z == 0) _exit(7);
    signal(SIGUSR2, on_usr2);
    FILE *in = fdopen(p[0], "r");
    char line[64];
    unsigned long lines = 0;
    while (fgets(line, sizeof line, in)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char out[128];
        line[strcspn(line, "\n")] = 0;
        snprintf(out, sizeof out, "got %s mono=%lld\n", line, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        say(out);
        if (++lines % 5 == 0) identity("parent");
        if (reap_requested) {
            reap_requested = 0;
            int status = 0;
            if (waitpid(z, &status, WNOHANG) == z) {
                snprintf(out, sizeof out, "reaped Z status=%d\n", WEXITSTATUS(status));
                say(out);
            }
        }
    }
    return 0;
}
