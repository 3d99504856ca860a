/* A stock program for the unix socket tests: two sides, A and B, talk over six channels:
 *   stream     socketpair(SOCK_STREAM)      A has SO_PASSCRED, B is O_NONBLOCK
 *   dgram      socketpair(SOCK_DGRAM)       A has SO_SNDBUF 50000
 *   seqpacket  socketpair(SOCK_SEQPACKET)   B has SO_RCVBUF 60000
 *   named      a connection accepted (A) from a listener at WORK/listen.sock (kept by A), client B
 *   bound      a SOCK_DGRAM socket bound at WORK/dgram.sock (A); B connect()s to it and sends
 *   shut       socketpair(SOCK_STREAM): B writes "bye" and shuts down its writing side
 *   orphan     socketpair(SOCK_STREAM): B writes "end" and closes its end
 * Mode "one": both sides in one process; mode "two": A is the parent, B a forked child.
 * Each side first sends 5 messages (stream, named: 5000 bytes) on each channel and leaves what
 * it receives unread, appends "ready A"/"ready B" to REPORT, and waits for the file WORK/go.
 * Then it reads and checks every queued byte and message (sequence numbers, lengths, contents:
 * no loss, no duplicate, boundaries kept), exchanges 20 more on each channel, checks its
 * options, the shut channel's "bye" then EOF, and a new connection to the listener; it appends
 * "ok <channel> <side>" or "FAIL <channel> <side>: <why>" per check, then "done <side>".
 * Mode "outside PATH": connects to a unix socket at PATH, appends "ready A" and waits.
 * Mode "rights": sends its stdin over a socketpair (SCM_RIGHTS), leaves it unread, appends
 * "ready A" and waits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { STREAM, DGRAM, SEQPACKET, NAMED, BOUND, SHUT, ORPHAN, CHANNELS };
static const char *names[CHANNELS] = {"stream", "dgram", "seqpacket", "named", "bound", "shut", "orphan"};
enum { QUEUED = 5, ROUNDS = 20, CHUNK = 1000 };

struct end {
    int fd;
    int type;
    uint32_t out_seq, in_seq;
    uint64_t out_pos, in_pos;
    int dir; /* direction this end sends: 0 A->B, 1 B->A */
    char failed[200];
};

static int report;
static char work[200];
static struct end ends[2][CHANNELS];
static int listener = -1;

static void say(const char *fmt, ...) {
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    (void)!write(report, line, strlen(line));
}

static void fail(struct end *e, const char *fmt, ...) {
    if (e->failed[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->failed, sizeof e->failed, fmt, ap);
    va_end(ap);
}

static uint8_t stream_byte(int dir, uint64_t p) { return (uint8_t)(p * 7 + dir * 31 + p / 251); }
static size_t msg_len(int dir, uint32_t seq) { return 4 + (seq * 37 + dir * 11) % 300; }
static uint8_t msg_byte(int dir, uint32_t seq, size_t i) { return (uint8_t)(seq * 13 + i + dir * 3); }

static struct sockaddr_un addr(const char *name, socklen_t *len) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", work, name) >= (int)sizeof a.sun_path) exit(3);
    *len = sizeof a;
    return a;
}

static int wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, 5000) == 1;
}

static void send_one(struct end *e) {
    if (e->failed[0]) return;
    if (e->type == SOCK_STREAM) {
        uint8_t buf[CHUNK];
        for (int i = 0; i < CHUNK; i++) buf[i] = stream_byte(e->dir, e->out_pos + i);
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t n = write(e->fd, buf + done, CHUNK - done);
            if (n < 0 && errno == EAGAIN && wait_fd(e->fd, POLLOUT)) continue;
            if (n <= 0) return fail(e, "write: %s", strerror(errno));
            done += n;
        }
        e->out_pos += CHUNK;
        return;
    }
    uint8_t buf[400];
    size_t len = msg_len(e->dir, e->out_seq);
    memcpy(buf, &e->out_seq, 4);
    for (size_t i = 4; i < len; i++) buf[i] = msg_byte(e->dir, e->out_seq, i);
    ssize_t n = send(e->fd, buf, len, 0);
    if (n != (ssize_t)len) return fail(e, "send seq %u: %zd (%s)", e->out_seq, n, strerror(errno));
    e->out_seq++;
}

static void recv_one(struct end *e) {
    if (e->failed[0]) return;
    int dir = !e->dir;
    if (e->type == SOCK_STREAM) {
        uint8_t buf[CHUNK];
        size_t got = 0;
        while (got < CHUNK) {
            if (!wait_fd(e->fd, POLLIN)) return fail(e, "no data after byte %llu", (unsigned long long)(e->in_pos + got));
            ssize_t n = read(e->fd, buf + got, CHUNK - got);
            if (n < 0 && errno == EAGAIN) continue;
            if (n <= 0) return fail(e, "read at byte %llu: %zd (%s)", (unsigned long long)(e->in_pos + got), n, strerror(errno));
            got += n;
        }
        for (int i = 0; i < CHUNK; i++)
            if (buf[i] != stream_byte(dir, e->in_pos + i)) return fail(e, "wrong byte at %llu", (unsigned long long)(e->in_pos + i));
        e->in_pos += CHUNK;
        return;
    }
    uint8_t buf[1000];
    if (!wait_fd(e->fd, POLLIN)) return fail(e, "no message %u", e->in_seq);
    ssize_t n = recv(e->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 4) return fail(e, "recv for message %u: %zd (%s)", e->in_seq, n, strerror(errno));
    uint32_t seq;
    memcpy(&seq, buf, 4);
    if (seq != e->in_seq) return fail(e, "message %u where %u was due", seq, e->in_seq);
    if ((size_t)n != msg_len(dir, seq)) return fail(e, "message %u is %zd bytes, not %zu", seq, n, msg_len(dir, seq));
    for (ssize_t i = 4; i < n; i++)
        if (buf[i] != msg_byte(dir, seq, i)) return fail(e, "message %u: wrong byte %zd", seq, i);
    e->in_seq++;
}

static int opt(int fd, int name) {
    int v = -1;
    socklen_t l = sizeof v;
    getsockopt(fd, SOL_SOCKET, name, &v, &l);
    return v;
}

static int sndbuf_before, rcvbuf_before;

static void make_channels(void) {
    int sv[2];
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int c = STREAM; c <= SEQPACKET; c++) {
        if (socketpair(AF_UNIX, types[c], 0, sv) != 0) { perror("socketpair"); exit(1); }
        ends[0][c] = (struct end){.fd = sv[0], .type = types[c], .dir = 0};
        ends[1][c] = (struct end){.fd = sv[1], .type = types[c], .dir = 1};
    }
    int one = 1, snd = 50000, rcv = 60000;
    setsockopt(ends[0][STREAM].fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    fcntl(ends[1][STREAM].fd, F_SETFL, O_NONBLOCK);
    setsockopt(ends[0][DGRAM].fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    setsockopt(ends[1][SEQPACKET].fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    sndbuf_before = opt(ends[0][DGRAM].fd, SO_SNDBUF);
    rcvbuf_before = opt(ends[1][SEQPACKET].fd, SO_RCVBUF);

    socklen_t l;
    struct sockaddr_un a = addr("listen.sock", &l);
    unlink(a.sun_path);
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(listener, (struct sockaddr *)&a, l) != 0 || listen(listener, 7) != 0) { perror("listener"); exit(1); }
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&a, l) != 0) { perror("connect"); exit(1); }
    int accepted = accept(listener, NULL, NULL);
    if (accepted < 0) { perror("accept"); exit(1); }
    ends[0][NAMED] = (struct end){.fd = accepted, .type = SOCK_STREAM, .dir = 0};
    ends[1][NAMED] = (struct end){.fd = client, .type = SOCK_STREAM, .dir = 1};

    struct sockaddr_un d = addr("dgram.sock", &l);
    unlink(d.sun_path);
    int receiver = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (bind(receiver, (struct sockaddr *)&d, l) != 0) { perror("bind dgram"); exit(1); }
    ends[0][BOUND] = (struct end){.fd = receiver, .type = SOCK_DGRAM, .dir = 0};
    ends[1][BOUND] = (struct end){.fd = socket(AF_UNIX, SOCK_DGRAM, 0), .type = SOCK_DGRAM, .dir = 1};
    if (connect(ends[1][BOUND].fd, (struct sockaddr *)&d, l) != 0) { perror("connect dgram"); exit(1); }

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socketpair"); exit(1); }
    ends[0][SHUT] = (struct end){.fd = sv[0], .type = SOCK_STREAM, .dir = 0};
    ends[1][SHUT] = (struct end){.fd = sv[1], .type = SOCK_STREAM, .dir = 1};
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socketpair"); exit(1); }
    ends[0][ORPHAN] = (struct end){.fd = sv[0], .type = SOCK_STREAM, .dir = 0};
    ends[1][ORPHAN] = (struct end){.fd = sv[1], .type = SOCK_STREAM, .dir = 1};
}

static int sends(int side, int c) { return !(c == SHUT || c == ORPHAN || (c == BOUND && side == 0)); }
static int receives(int side, int c) { return !(c == SHUT || c == ORPHAN || (c == BOUND && side == 1)); }

static void queue_phase(int side) {
    for (int c = 0; c < CHANNELS; c++)
        if (sends(side, c))
            for (int i = 0; i < QUEUED; i++) send_one(&ends[side][c]);
    if (side == 1) {
        (void)!write(ends[1][SHUT].fd, "bye", 3);
        shutdown(ends[1][SHUT].fd, SHUT_WR);
        (void)!write(ends[1][ORPHAN].fd, "end", 3);
        close(ends[1][ORPHAN].fd);
    }
}

static void drain_phase(int side) {
    for (int c = 0; c < CHANNELS; c++)
        if (receives(side, c))
            for (int i = 0; i < QUEUED; i++) recv_one(&ends[side][c]);
}

static void check_phase(int side, int both) {
    const char *s = side ? "B" : "A";
    for (int r = 0; r < ROUNDS && (side == 0 || !both); r++) {
        for (int c = 0; c < CHANNELS; c++) {
            if (sends(side, c)) send_one(&ends[side][c]);
            if (both && sends(!side, c)) send_one(&ends[!side][c]);
            if (receives(side, c)) recv_one(&ends[side][c]);
            if (both && receives(!side, c)) recv_one(&ends[!side][c]);
        }
    }
    for (int c = 0; c < CHANNELS; c++) {
        if (c == SHUT || c == ORPHAN) continue;
        struct end *e = &ends[side][c];
        if (e->failed[0]) say("FAIL %s %s: %s\n", names[c], s, e->failed);
        else say("ok %s %s\n", names[c], s);
    }
    char why[200] = "";
    /* The named connection keeps its addresses: the accepted end's own and the client's peer. */
    struct sockaddr_un named = {0};
    socklen_t named_len = sizeof named, expected_len;
    struct sockaddr_un expected = addr("listen.sock", &expected_len);
    int named_ok = side == 0 ? getsockname(ends[0][NAMED].fd, (struct sockaddr *)&named, &named_len) == 0
                             : getpeername(ends[1][NAMED].fd, (struct sockaddr *)&named, &named_len) == 0;
    if (!named_ok || strcmp(named.sun_path, expected.sun_path) != 0)
        say("FAIL address %s: %s is \"%s\", not the listener's path\n", s, side ? "getpeername" : "getsockname", named.sun_path);
    else say("ok address %s\n", s);
    if (side == 0) {
        if (opt(ends[0][STREAM].fd, SO_PASSCRED) != 1) snprintf(why, sizeof why, "SO_PASSCRED is off");
        else if (opt(ends[0][DGRAM].fd, SO_SNDBUF) != sndbuf_before)
            snprintf(why, sizeof why, "SO_SNDBUF %d, was %d", opt(ends[0][DGRAM].fd, SO_SNDBUF), sndbuf_before);
        for (int c = SHUT; c <= ORPHAN; c++) {
            const char *word = c == SHUT ? "bye" : "end";
            int fd = ends[0][c].fd;
            char buf[10];
            ssize_t n = 0, got = 0;
            while (got < 3 && wait_fd(fd, POLLIN) && (n = read(fd, buf + got, sizeof buf - got)) > 0) got += n;
            if (got != 3 || memcmp(buf, word, 3) != 0) say("FAIL %s A: read %zd bytes before EOF\n", names[c], got);
            else if (!wait_fd(fd, POLLIN) || read(fd, buf, sizeof buf) != 0) say("FAIL %s A: no EOF after %s\n", names[c], word);
            else say("ok %s A\n", names[c]);
        }
    } else {
        if (!(fcntl(ends[1][STREAM].fd, F_GETFL) & O_NONBLOCK)) snprintf(why, sizeof why, "O_NONBLOCK is off");
        else if (opt(ends[1][SEQPACKET].fd, SO_RCVBUF) != rcvbuf_before)
            snprintf(why, sizeof why, "SO_RCVBUF %d, was %d", opt(ends[1][SEQPACKET].fd, SO_RCVBUF), rcvbuf_before);
        if (send(ends[1][SHUT].fd, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) say("FAIL shut B: writing after shutdown did not fail with EPIPE\n");
        else say("ok shut B\n");
    }
    if (why[0]) say("FAIL options %s: %s\n", s, why);
    else say("ok options %s\n", s);
}

/* A new connection to the listener after the restore: B connects and sends, A accepts. */
static void listen_phase(int side, int both) {
    static int client = -1;
    if (side == 1 || both) {
        socklen_t l;
        struct sockaddr_un a = addr("listen.sock", &l);
        client = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(client, (struct sockaddr *)&a, l) != 0 || write(client, "hello", 5) != 5) say("FAIL listen B: connect: %s\n", strerror(errno));
        else say("ok listen B\n");
    }
    if (side == 0) {
        char buf[8] = {0};
        int c = wait_fd(listener, POLLIN) ? accept(listener, NULL, NULL) : -1;
        if (c < 0 || !wait_fd(c, POLLIN) || read(c, buf, 5) != 5 || memcmp(buf, "hello", 5) != 0) say("FAIL listen A: no connection or no hello\n");
        else say("ok listen A\n");
    }
}

static void wait_for_go(void) {
    char go[260];
    snprintf(go, sizeof go, "%s/go", work);
    struct stat st;
    while (stat(go, &st) != 0) usleep(10 * 1000);
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    report = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    snprintf(work, sizeof work, "%s", argv[2]);
    if (strcmp(argv[3], "outside") == 0) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", argc > 4 ? argv[4] : "");
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
        say("ready A\n");
        for (;;) pause();
    }
    if (strcmp(argv[3], "rights") == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) { perror("socketpair"); return 1; }
        char data = 'x', control[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {.iov_base = &data, .iov_len = 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        int passed = 0;
        memcpy(CMSG_DATA(c), &passed, sizeof passed);
        if (sendmsg(sv[0], &m, 0) != 1) { perror("sendmsg"); return 1; }
        say("ready A\n");
        for (;;) pause();
    }
    make_channels();
    if (strcmp(argv[3], "one") == 0) {
        queue_phase(0);
        queue_phase(1);
        say("ready A\nready B\n");
        wait_for_go();
        drain_phase(0);
        drain_phase(1);
        check_phase(0, 1);
        check_phase(1, 1);
        listen_phase(0, 1);
        say("done A\ndone B\n");
        for (;;) pause();
    }
    pid_t child = fork();
    int side = child == 0 ? 1 : 0;
    for (int c = 0; c < CHANNELS; c++) close(ends[!side][c].fd);
    if (side == 1) close(listener);
    queue_phase(side);
    say("ready %s\n", side ? "B" : "A");
    wait_for_go();
    drain_phase(side);
    check_phase(side, 0);
    listen_phase(side, 0);
    say("done %s\n", side ? "B" : "A");
    for (;;) pause();
}
