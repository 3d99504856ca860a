/* A stock program for the tests: 8 worker threads named w0..w7, each advancing a counter of its
 * own every millisecond under a robust mutex shared by all. Every 50 ms the main thread signals
 * one worker with pthread_kill (glibc uses the TID cached in the thread descriptor), takes the
 * robust mutex with a timeout, and writes
 *   "c=<c0>,...,<c7> s=<s0>,...,<s7> kerr=<pthread_kill failures> rfail=<lock failures>"
 * to argv[1]. After a restore, every counter and signal count must keep advancing with kerr and
 * rfail unchanged. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#define WORKERS 8
static volatile unsigned long counters[WORKERS], signals[WORKERS];
static __thread long my_index = -1;
static pthread_mutex_t lock;

static void on_usr1(int sig) {
    (void)sig;
    if (my_index >= 0) signals[my_index]++;
}

static void *worker(void *arg) {
    my_index = (long)arg;
    for (;;) {
        if (pthread_mutex_lock(&lock) == EOWNERDEAD) pthread_mutex_consistent(&lock);
        counters[my_index]++;
        pthread_mutex_unlock(&lock);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *out = fopen(argv[1], "a");
    if (!out) return 1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&lock, &attr);
    signal(SIGUSR1, on_usr1);
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++) {
        pthread_create(&t[i], NULL, worker, (void *)i);
        char name[16];
        snprintf(name, sizeof name, "w%ld", i);
        pthread_setname_np(t[i], name);
    }
    unsigned long kerr = 0, rfail = 0;
    for (unsigned long round = 0;; round++) {
        if (pthread_kill(t[round % WORKERS], SIGUSR1) != 0) kerr++;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 1;
        int r = pthread_mutex_timedlock(&lock, &deadline);
        if (r == EOWNERDEAD) pthread_mutex_consistent(&lock);
        if (r == 0 || r == EOWNERDEAD) pthread_mutex_unlock(&lock); else rfail++;
        fprintf(out, "c=");
        for (int i = 0; i < WORKERS; i++) fprintf(out, "%lu%s", counters[i], i + 1 < WORKERS ? "," : " s=");
        for (int i = 0; i < WORKERS; i++) fprintf(out, "%lu%s", signals[i], i + 1 < WORKERS ? "," : "");
        fprintf(out, " kerr=%lu rfail=%lu\n", kerr, rfail);
        fflush(out);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
