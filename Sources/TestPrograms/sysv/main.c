/* A stock program for the System V IPC tests: a parent and its child share a System V shared
 * memory segment found by an ftok key. The child increments a counter in it every 10 ms, under
 * a lock that is semaphore 0 of a semaphore set (semaphores 1 and 2 hold 7 and 42), and a
 * second counter in a private segment removed (IPC_RMID) while both still have it attached.
 * The parent appends a line to argv[1] every 50 ms with what it sees: the counters (through
 * its read-write and a read-only attachment), whether the counter and its copy agree under
 * the lock, the counter's mirror read through a third attachment whose first page is
 * unmapped and third read-only, the ids, what the keys lead to now (shmget/semget/msgget(key,
 * 0, 0)), the segment's size, attachments and mode (shmctl IPC_STAT), the semaphores' values
 * (semctl GETVAL) and the last process to set semaphore 1 (GETPID: the parent, by SETALL),
 * the number of messages in a queue holding three, and the text in a segment that nobody
 * keeps attached (attached for a moment to read it). On SIGUSR1 it takes the messages and
 * writes "msg type=T text=S" for each. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

struct shared {
    unsigned long counter;
    unsigned long copy;
    char note[64];
};

static volatile sig_atomic_t drain;
static void onUSR1(int sig) { (void)sig; drain = 1; }

static int semop1(int semid, short op) {
    struct sembuf b = {0, op, 0};
    while (semop(semid, &b, 1) != 0)
        if (errno != EINTR) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *out = fopen(argv[1], "a");
    /* Objects made and removed first: the real ones get ids other than the first (0). */
    shmctl(shmget(IPC_PRIVATE, 4096, 0600), IPC_RMID, NULL);
    semctl(semget(IPC_PRIVATE, 1, 0600), 0, IPC_RMID);
    msgctl(msgget(IPC_PRIVATE, 0600), IPC_RMID, NULL);
    key_t shmkey = ftok(argv[0], 'S'), semkey = ftok(argv[0], 'M'), msgkey = ftok(argv[0], 'Q');
    int shmid = shmget(shmkey, 65536, IPC_CREAT | IPC_EXCL | 0640);
    int semid = semget(semkey, 3, IPC_CREAT | IPC_EXCL | 0600);
    int msgid = msgget(msgkey, IPC_CREAT | IPC_EXCL | 0600);
    int privid = shmget(IPC_PRIVATE, 4096, 0600);
    if (!out || shmkey == -1 || shmid < 0 || semid < 0 || msgid < 0 || privid < 0) {
        perror("vos-test-sysv: setup");
        return 1;
    }
    unsigned short initial[3] = {1, 7, 42};
    union semun arg = {.array = initial};
    struct shared *rw = shmat(shmid, NULL, 0);
    const volatile struct shared *ro = shmat(shmid, NULL, SHM_RDONLY);
    volatile unsigned long *priv = shmat(privid, NULL, 0);
    if (semctl(semid, 0, SETALL, arg) != 0 || rw == (void *)-1 || ro == (void *)-1 || priv == (void *)-1) {
        perror("vos-test-sysv: setup");
        return 1;
    }
    shmctl(privid, IPC_RMID, NULL); /* lives on while attached */
    /* A third attachment, reshaped: its first page unmapped, its third made read-only. The
     * child mirrors the counter at offset 32 KiB, which the parent reads through it. */
    char *tail = shmat(shmid, NULL, 0);
    if (tail == (void *)-1 || munmap(tail, 4096) != 0 || mprotect(tail + 8192, 4096, PROT_READ) != 0) {
        perror("vos-test-sysv: reshaped attachment");
        return 1;
    }
    volatile unsigned long *mirror = (volatile unsigned long *)((char *)rw + 32768);
    const volatile unsigned long *viaTail = (const volatile unsigned long *)(tail + 32768);
    strcpy(rw->note, "written-before-the-checkpoint");
    /* A segment nobody keeps attached: only the IPC namespace holds it. */
    key_t lonekey = ftok(argv[0], 'L');
    char *lone = shmat(shmget(lonekey, 4096, IPC_CREAT | IPC_EXCL | 0600), NULL, 0);
    if (lone == (void *)-1) { perror("vos-test-sysv: lone segment"); return 1; }
    strcpy(lone, "kept-by-the-namespace");
    shmdt(lone);
    const char *texts[] = {"one", "two", "three"};
    for (long i = 0; i < 3; i++) {
        struct { long type; char text[16]; } m = {i + 1, {0}};
        strcpy(m.text, texts[i]);
        if (msgsnd(msgid, &m, strlen(texts[i]) + 1, 0) != 0) { perror("vos-test-sysv: msgsnd"); return 1; }
    }
    signal(SIGUSR1, onUSR1);
    if (fork() == 0) {
        for (;;) {
            semop1(semid, -1);
            rw->counter++;
            usleep(100);
            rw->copy = rw->counter;
            *mirror = rw->counter;
            semop1(semid, 1);
            (*priv)++;
            usleep(10 * 1000);
        }
    }
    for (;;) {
        if (drain) {
            drain = 0;
            struct { long type; char text[64]; } m;
            while (msgrcv(msgid, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0) fprintf(out, "msg type=%ld text=%s\n", m.type, m.text);
        }
        semop1(semid, -1);
        unsigned long counter = rw->counter, copy = rw->copy;
        semop1(semid, 1);
        struct shmid_ds ds = {0};
        struct msqid_ds mq = {0};
        shmctl(shmid, IPC_STAT, &ds);
        msgctl(msgid, IPC_STAT, &mq);
        char loneText[64] = "-";
        const char *l = shmat(shmget(lonekey, 0, 0), NULL, SHM_RDONLY);
        if (l != (void *)-1) {
            snprintf(loneText, sizeof loneText, "%s", l);
            shmdt(l);
        }
        fprintf(out,
                "lone=%s counter=%lu ro=%lu tail=%lu private=%lu consistent=%d shmid=%d bykey=%d size=%zu nattch=%lu mode=%o "
                "semid=%d sembykey=%d sem1=%d sem2=%d sem1pid=%d msgid=%d msgbykey=%d msgs=%lu note=%s\n",
                loneText, counter, ro->counter, *viaTail, *priv, counter == copy, shmid, shmget(shmkey, 0, 0), ds.shm_segsz,
                (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777, semid, semget(semkey, 0, 0), semctl(semid, 1, GETVAL),
                semctl(semid, 2, GETVAL), semctl(semid, 1, GETPID), msgid, msgget(msgkey, 0), (unsigned long)mq.msg_qnum, rw->note);
        fflush(out);
        usleep(50 * 1000);
    }
}
