/* A fixed amount of work that times itself, for the benchmark's capsule runtime overhead:
 *   vos-test-work cpu|syscall ITERATIONS OUT
 * cpu: an xorshift loop in registers; syscall: getppid() and a 1-byte write() to /dev/null per
 * iteration. Writes "ns=<CLOCK_MONOTONIC elapsed>" to OUT.tmp, then renames it to OUT (so a
 * reader sees the whole line or nothing). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    unsigned long long n = strtoull(argv[2], NULL, 10);
    volatile unsigned long long sink = 0;
    unsigned long long start = now();
    if (strcmp(argv[1], "cpu") == 0) {
        unsigned long long x = 88172645463325252ull;
        for (unsigned long long i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        sink = x;
    } else if (strcmp(argv[1], "syscall") == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd < 0) return 1;
        char c = 'x';
        for (unsigned long long i = 0; i < n; i++) {
            sink += (unsigned long long)getppid();
            if (write(fd, &c, 1) != 1) return 1;
        }
        close(fd);
    } else {
        return 2;
    }
    unsigned long long elapsed = now() - start;
    (void)sink;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
    FILE *f = fopen(tmp, "w");
    if (!f) return 1;
    fprintf(f, "ns=%llu\n", elapsed);
    if (fclose(f) != 0) return 1;
    return rename(tmp, argv[3]) == 0 ? 0 : 1;
}
