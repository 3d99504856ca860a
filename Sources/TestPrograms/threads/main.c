/* A stock program for the tests: 8 worker threads, each advancing a counter of its own every
 * millisecond, named w0..w7. The main thread writes "c=<c0>,<c1>,...,<c7>" to argv[1] every
 * 50 ms. After a restore every counter must keep advancing. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define WORKERS 8
static volatile unsigned long counters[WORKERS];

static void *worker(void *arg) {
    long i = (long)arg;
    for (;;) {
        counters[i]++;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *out = fopen(argv[1], "a");
    if (!out) return 1;
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++) {
        pthread_create(&t[i], NULL, worker, (void *)i);
        char name[16];
        snprintf(name, sizeof name, "w%ld", i);
        pthread_setname_np(t[i], name);
    }
    for (;;) {
        fprintf(out, "c=");
        for (int i = 0; i < WORKERS; i++) fprintf(out, "%lu%s", counters[i], i + 1 < WORKERS ? "," : "\n");
        fflush(out);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
