/* A stock program for the tests: holds an fd of a kind vOS does not support yet (an inotify
 * instance watching the counter file's directory), and appends "n=<k> ms=<monotonic ms>" to
 * the file named by argv[1] every 10 ms. `vos checkpoint` must refuse it and leave it running:
 * the sequence goes on with no gap in numbers and no long pause in time. */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    FILE *out = fopen(argv[1], "a");
    if (!out) {
        perror(argv[1]);
        return 1;
    }
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in < 0) {
        perror("inotify_init1");
        return 1;
    }
    char *copy = strdup(argv[1]);
    if (inotify_add_watch(in, dirname(copy), IN_CREATE | IN_DELETE) < 0) {
        perror("inotify_add_watch");
        return 1;
    }
    free(copy);
    for (unsigned long n = 0;; n++) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        fprintf(out, "n=%lu ms=%lld\n", n, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        fflush(out);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
