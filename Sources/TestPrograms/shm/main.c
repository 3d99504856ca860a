/* A stock program for the capsule tests: memory shared between a parent and its child.
 * The child increments a counter in MAP_SHARED|MAP_ANONYMOUS memory and another in a memfd
 * (mapped by both) every 10 ms; the parent appends "shared=<a> memfd=<b> fdread=<c>" to
 * argv[1] every 50 ms, where c is the memfd counter read back through the memfd's fd (pread),
 * so the parent only sees progress if the memory is still one object for both. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *out = fopen(argv[1], "a");
    volatile unsigned long *anon = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("vos-test-shm", MFD_CLOEXEC);
    if (!out || anon == MAP_FAILED || mfd < 0 || ftruncate(mfd, 8192) != 0) return 1;
    volatile unsigned long *mem = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (mem == MAP_FAILED) return 1;
    if (fork() == 0) {
        for (;;) {
            anon[1]++;
            mem[100]++;
            usleep(10 * 1000);
        }
    }
    for (;;) {
        unsigned long viaFd = 0;
        (void)!pread(mfd, &viaFd, sizeof viaFd, 100 * sizeof(unsigned long));
        fprintf(out, "shared=%lu memfd=%lu fdread=%lu\n", anon[1], mem[100], viaFd);
        fflush(out);
        usleep(50 * 1000);
    }
}
