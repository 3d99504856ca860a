/* A stock program for the tests: appends "n=<k>" to the file named by argv[1] every 10 ms,
 * forever. After a restore the sequence must continue with no gap and no repeat. */
#include <stdio.h>
#include <stdlib.h>
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
    for (unsigned long n = 0;; n++) {
        fprintf(out, "n=%lu\n", n);
        fflush(out);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
