/* A stock program for the tests and the benchmark: holds SIZE MiB of anonymous memory filled
 * with a pattern, plus memory that is never touched and a clean file mapping (neither may be
 * stored). Prints "ready" once filled, then "tick=<k>" every 100 ms. On SIGUSR1 it checks every
 * page and prints "verify ok <pages>" or "CORRUPT page <i>".
 * usage: vos-test-memhog SIZE_MIB [FILE_TO_MAP] */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t verify_requested;
static void on_usr1(int sig) { (void)sig; verify_requested = 1; }

static uint64_t pattern(size_t page, size_t word) { return (page * 0x9E3779B97F4A7C15ull) ^ (word * 0xC2B2AE3D27D4EB4Full) ^ 0x5aull; }

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    size_t bytes = mib << 20, pages = bytes / 4096;
    uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* 256 MiB reserved and never touched. */
    void *untouched = mmap(NULL, 256 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || untouched == MAP_FAILED) { perror("mmap"); return 1; }
    volatile uint64_t sink = 0;
    if (argc > 2) { /* a clean file mapping, read (so its pages are present) but never written */
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror(argv[2]); return 1; }
        off_t size = lseek(fd, 0, SEEK_END);
        const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) { perror("mmap file"); return 1; }
        for (off_t i = 0; i < size; i += 4096) sink += map[i];
    }
    for (size_t p = 0; p < pages; p++)
        for (size_t w = 0; w < 512; w++) mem[p * 512 + w] = pattern(p, w);
    signal(SIGUSR1, on_usr1);
    printf("ready %zu pages at %p\n", pages, (void *)mem);
    fflush(stdout);
    for (unsigned long tick = 0;; tick++) {
        if (verify_requested) {
            verify_requested = 0;
            size_t bad = pages;
            for (size_t p = 0; p < pages && bad == pages; p++)
                for (size_t w = 0; w < 512; w++)
                    if (mem[p * 512 + w] != pattern(p, w)) { bad = p; break; }
            if (bad == pages) printf("verify ok %zu\n", pages);
            else printf("CORRUPT page %zu\n", bad);
            fflush(stdout);
        }
        printf("tick=%lu\n", tick);
        fflush(stdout);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
