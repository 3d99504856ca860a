/* A stock program for the dirty-tracking tests: holds SIZE MiB of anonymous memory and a 1 MiB
 * private mapping of a deleted file, each page filled with a pattern of its index and version.
 * Every 10 ms it rewrites PAGES random pages (new version) and verifies one random page; with
 * PAGES = 0 it writes nothing and sleeps in sigsuspend. Prints "ready ..." once filled and
 * "progress ticks=<k> writes=<n>" every second.
 * SIGUSR1: verifies every page, prints "verify ok <pages>" or "CORRUPT ...".
 * SIGUSR2: maps and fills a new 4 MiB anonymous region (prints "mapped <addr>") and
 *          MADV_DONTNEEDs the first 8 pages of the file mapping (they read the file's zeros again).
 * usage: vos-test-dirtier SIZE_MIB PAGES */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define FILE_PAGES 256
#define EXTRA_PAGES 1024
#define ZEROED UINT32_MAX /* a file page that reads the file's content (zeros) */

static volatile sig_atomic_t verify_requested, remap_requested;
static void on_usr1(int s) { (void)s; verify_requested = 1; }
static void on_usr2(int s) { (void)s; remap_requested = 1; }

struct area { uint64_t *mem; size_t pages; uint32_t *version; };
static struct area areas[3]; /* anonymous, private file, the region mapped on SIGUSR2 */
static int nareas = 2;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static uint64_t pattern(int a, size_t page, uint32_t v, size_t w) {
    return ((uint64_t)a << 56) ^ (page * 0x9E3779B97F4A7C15ull) ^ (w * 0xC2B2AE3D27D4EB4Full) ^ ((uint64_t)v << 32) ^ 0x5a;
}
static void fill(int a, size_t p) {
    uint64_t *m = areas[a].mem + p * 512;
    for (size_t w = 0; w < 512; w++) m[w] = pattern(a, p, areas[a].version[p], w);
}
static int check(int a, size_t p) {
    const uint64_t *m = areas[a].mem + p * 512;
    for (size_t w = 0; w < 512; w++)
        if (m[w] != (areas[a].version[p] == ZEROED ? 0 : pattern(a, p, areas[a].version[p], w))) return 0;
    return 1;
}
static void *map_area(int a, size_t pages, int fd) {
    void *m = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); exit(1); }
    areas[a] = (struct area){m, pages, calloc(pages, sizeof(uint32_t))};
    for (size_t p = 0; p < pages; p++) fill(a, p);
    return m;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    unsigned long per_tick = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    char path[] = "/tmp/vos-dirtier-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || unlink(path) || ftruncate(fd, FILE_PAGES * PG)) { perror("file"); return 1; }
    map_area(0, mib * 256, -1);
    map_area(1, FILE_PAGES, fd);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    sigset_t none, blocked;
    sigemptyset(&none);
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    printf("ready %zu pages at %p, file pages at %p\n", areas[0].pages, (void *)areas[0].mem, (void *)areas[1].mem);
    fflush(stdout);
    unsigned long writes = 0;
    for (unsigned long tick = 1;; tick++) {
        if (remap_requested) {
            remap_requested = 0;
            if (nareas < 3) {
                void *m = map_area(2, EXTRA_PAGES, -1);
                nareas = 3;
                printf("mapped %p\n", m);
            }
            madvise(areas[1].mem, 8 * PG, MADV_DONTNEED);
            for (int p = 0; p < 8; p++) areas[1].version[p] = ZEROED;
            fflush(stdout);
        }
        if (verify_requested) {
            verify_requested = 0;
            size_t total = 0;
            int bad = -1;
            for (int a = 0; a < nareas && bad < 0; a++)
                for (size_t p = 0; p < areas[a].pages; p++, total++)
                    if (!check(a, p)) { bad = a; printf("CORRUPT area %d page %zu\n", a, p); break; }
            if (bad < 0) printf("verify ok %zu\n", total);
            fflush(stdout);
        }
        if (per_tick == 0) {
            /* Idle: nothing is written until a signal comes. */
            sigprocmask(SIG_BLOCK, &blocked, NULL);
            if (!verify_requested && !remap_requested) sigsuspend(&none);
            sigprocmask(SIG_UNBLOCK, &blocked, NULL);
            continue;
        }
        for (unsigned long k = 0; k < per_tick; k++) {
            int a = (int)(next_random() % (uint64_t)nareas);
            size_t p = next_random() % areas[a].pages;
            areas[a].version[p] = areas[a].version[p] == ZEROED ? 1 : areas[a].version[p] + 1;
            fill(a, p);
            writes++;
        }
        int a = (int)(next_random() % (uint64_t)nareas);
        size_t p = next_random() % areas[a].pages;
        if (!check(a, p)) { printf("CORRUPT area %d page %zu\n", a, p); fflush(stdout); }
        if (tick % 100 == 0) { printf("progress ticks=%lu writes=%lu\n", tick, writes); fflush(stdout); }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
