/*
 * coll_tcp.c — the collective's TCP star between machines (see coll_tcp.h): joining, the
 * per-chunk rounds through rank 0, abort forwarding and the leave round.
 * Not here: choosing this transport, NCCL, the overlap queue (collective.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP */
#endif
#include "engine/coll_tcp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAGIC 0x50434443u /* "CDCP" */
#define ABORT_MSG_MAX 512
#define POLL_MS 100

enum frame_type { F_HELLO = 1, F_GO, F_DATA, F_RESULT, F_ABORT, F_LEAVE };

/* Native byte order: the ranks of one run are one build on one kind of machine; the magic
 * catches anything else talking to the port. */
typedef struct frame {
    uint32_t magic, type;
    int32_t rank;  /* the sender */
    int32_t world;
    uint64_t bytes; /* payload that follows */
} frame;

typedef struct peer {
    int fd;
    int closed; /* its connection ended (the hub goes on watching the others) */
    pthread_mutex_t send_mu; /* one frame at a time: the main thread, the CPU communication
                              * thread and an abort may all send */
} peer;

struct cad_coll_tcp {
    int rank, world;
    char addr[256];
    peer *p;    /* the hub: p[q] for q = 1..world-1; the others: p[0] is the hub */
    unsigned char *tmp; /* the hub: one chunk of a peer's contribution */
    atomic_int failed;  /* an op failed or abort was called: no leave round */
    atomic_int aborted; /* abort ran (it sends once) */
};

typedef enum { OP_NONE, OP_PICK, OP_SUM_F32, OP_SUM_F64 } op_kind;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The hub talks to p[1..world-1], the others to p[0]: the peer list to walk. */
static int first_peer(const cad_coll_tcp *t) { return t->rank == 0 ? 1 : 0; }
static int end_peer(const cad_coll_tcp *t) { return t->rank == 0 ? t->world : 1; }

static void tune_socket(int fd) {
    int one = 1, idle = 5, intvl = 2, cnt = 3;
    unsigned user_ms = 15000; /* unacknowledged data this long: the other machine is gone */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms);
}

int cad_coll_tcp_parse_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap, cad_err *e) {
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hlen = colon ? (size_t)(colon - addr) : 0;
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') h++, hlen -= 2;
    char *end;
    long pn = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || hlen == 0 || hlen >= hcap || !colon[1] || *end || pn < 1 || pn > 65535)
        return cad_fail(e, CAD_ECONFIG, "data parallel: CADDIE_COLL_TCP=%s: expected HOST:PORT (port 1..65535)", addr);
    memcpy(host, h, hlen);
    host[hlen] = 0;
    snprintf(port, pcap, "%ld", pn);
    return CAD_OK;
}

/* 0, or the errno that ended the send. */
static int send_all(int fd, const void *buf, size_t n, int flags) {
    const unsigned char *b = buf;
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL | flags);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : EPIPE;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(peer *p, uint32_t type, int32_t rank, int32_t world, const void *payload, size_t bytes) {
    frame f = {FRAME_MAGIC, type, rank, world, bytes};
    pthread_mutex_lock(&p->send_mu);
    int err = send_all(p->fd, &f, sizeof f, 0);
    if (!err && bytes) err = send_all(p->fd, payload, bytes, 0);
    pthread_mutex_unlock(&p->send_mu);
    return err;
}

static void say_dead(cad_coll_tcp *t, int q, cad_err *e) {
    if (t->rank == 0)
        cad_fail(e, CAD_ECHILD, "data parallel: rank %d died (its connection to rank 0 closed)", q);
    else
        cad_fail(e, CAD_ECHILD, "data parallel: lost rank 0 at %s (it died, or its machine is unreachable)", t->addr);
}

/* Read exactly n bytes from peer `idx`. The hub also watches every other peer's connection
 * while it waits, so a death anywhere is noticed within POLL_MS even when the peer it waits for
 * is slow. 1 + *closed_peer set when a watched peer (not idx) closed: the caller finds out why. */
static int recv_watch(cad_coll_tcp *t, int idx, void *buf, size_t n, int *closed_peer) {
    unsigned char *b = buf;
    struct pollfd pf[CAD_COLL_TCP_MAX_PEERS];
    int who[CAD_COLL_TCP_MAX_PEERS];
    *closed_peer = -1;
    while (n > 0) {
        int np = 0;
        pf[np] = (struct pollfd){t->p[idx].fd, POLLIN, 0};
        who[np++] = idx;
        if (t->rank == 0)
            for (int q = 1; q < t->world; q++)
                if (q != idx && !t->p[q].closed) {
                    pf[np] = (struct pollfd){t->p[q].fd, POLLRDHUP, 0};
                    who[np++] = q;
                }
        int k = poll(pf, (nfds_t)np, POLL_MS);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        for (int i = 1; i < np; i++)
            if (pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                *closed_peer = who[i];
                return 1;
            }
        if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t got = recv(t->p[idx].fd, b, n, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) return -1;
        b += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Read and drop `bytes` of payload (a contribution nobody needs any more). */
static int skip_payload(cad_coll_tcp *t, int idx, uint64_t bytes) {
    unsigned char junk[4096];
    int closed;
    while (bytes > 0) {
        size_t k = bytes < sizeof junk ? (size_t)bytes : sizeof junk;
        if (recv_watch(t, idx, junk, k, &closed)) return -1;
        bytes -= k;
    }
    return 0;
}

/* A peer's connection closed: read what it sent last to tell an abort (its message) from a
 * death. Reads only that peer; it sent at most one contribution before its F_ABORT. */
static void why_closed(cad_coll_tcp *t, int q, char *msg, size_t cap) {
    msg[0] = 0;
    for (int frames = 0; frames < 4; frames++) {
        frame f;
        ssize_t got = recv(t->p[q].fd, &f, sizeof f, MSG_WAITALL);
        if (got != (ssize_t)sizeof f || f.magic != FRAME_MAGIC) return;
        if (f.type != F_ABORT) {
            if (f.bytes > CAD_COLL_TCP_CHUNK_BYTES || skip_payload(t, q, f.bytes)) return;
            continue;
        }
        size_t k = f.bytes < cap - 1 ? (size_t)f.bytes : cap - 1;
        got = k ? recv(t->p[q].fd, msg, k, MSG_WAITALL) : 0;
        msg[got > 0 ? got : 0] = 0;
        return;
    }
}

/* Fill e for a peer whose connection ended, naming the abort message when it left one. */
static int peer_gone(cad_coll_tcp *t, int q, cad_err *e) {
    char msg[ABORT_MSG_MAX];
    why_closed(t, q, msg, sizeof msg);
    t->p[q].closed = 1;
    if (msg[0]) return cad_fail(e, CAD_ECHILD, "data parallel: %s", msg);
    say_dead(t, t->rank == 0 ? q : 0, e);
    return CAD_ECHILD;
}

/* Send F_ABORT carrying `text` (what every rank's error says after "data parallel: ") to every
 * peer but `skip`, without ever blocking on one, then end this side of each connection: a peer
 * watching for a closed connection (a watchdog beside NCCL work) sees it, and one reading sees
 * the text first. */
static void abort_all(cad_coll_tcp *t, const char *text, int skip) {
    if (atomic_exchange(&t->aborted, 1)) return;
    atomic_store(&t->failed, 1);
    size_t len = strlen(text);
    if (len > ABORT_MSG_MAX - 1) len = ABORT_MSG_MAX - 1;
    for (int q = first_peer(t); q < end_peer(t); q++) {
        peer *p = &t->p[q];
        if (p->fd < 0) continue;
        if (q != skip && pthread_mutex_trylock(&p->send_mu) == 0) {
            frame f = {FRAME_MAGIC, F_ABORT, t->rank, t->world, len};
            if (!send_all(p->fd, &f, sizeof f, MSG_DONTWAIT)) send_all(p->fd, text, len, MSG_DONTWAIT);
            pthread_mutex_unlock(&p->send_mu);
        }
        shutdown(p->fd, SHUT_WR);
    }
}

void cad_coll_tcp_abort(cad_coll_tcp *t, const char *msg) {
    if (!t) return;
    char text[ABORT_MSG_MAX];
    snprintf(text, sizeof text, "rank %d failed: %s", t->rank, msg ? msg : "aborted");
    abort_all(t, text, -1);
}

/* What follows "data parallel: " in e (the text an F_ABORT carries on). */
static const char *after_prefix(const cad_err *e) {
    const char *pre = "data parallel: ";
    return strncmp(e->msg, pre, strlen(pre)) ? e->msg : e->msg + strlen(pre);
}

/* The op failed at this rank because of peer `culprit`: the hub tells every other rank the
 * same cause, so each names the rank that started it. */
static int fail_round(cad_coll_tcp *t, int rc, int culprit, cad_err *e) {
    if (t->rank == 0) abort_all(t, after_prefix(e), culprit);
    atomic_store(&t->failed, 1);
    return rc;
}

static void add_f32(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
static void add_f64(double *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* The hub's half of one round: every peer's frame in rank order, combined into buf, then the
 * result to all. `bytes` is the chunk; what each peer sends depends on the op. */
static int hub_round(cad_coll_tcp *t, unsigned char *buf, size_t bytes, op_kind op, int root, cad_err *e) {
    for (int q = 1; q < t->world; q++) {
        frame f;
        int closed;
        int r = recv_watch(t, q, &f, sizeof f, &closed);
        if (r) return fail_round(t, peer_gone(t, r > 0 ? closed : q, e), r > 0 ? closed : q, e);
        if (f.magic != FRAME_MAGIC || (f.type != F_DATA && f.type != F_ABORT))
            return fail_round(t, cad_fail(e, CAD_ECHILD, "data parallel: rank %d sent a malformed frame (type %u)", q,
                                          f.type), q, e);
        if (f.type == F_ABORT) {
            char msg[ABORT_MSG_MAX];
            size_t k = f.bytes < sizeof msg - 1 ? (size_t)f.bytes : sizeof msg - 1;
            msg[recv_watch(t, q, msg, k, &closed) ? 0 : k] = 0;
            return fail_round(t, cad_fail(e, CAD_ECHILD, "data parallel: %s", msg), q, e);
        }
        size_t want = op == OP_NONE ? 0 : op == OP_PICK ? (q == root ? bytes : 0) : bytes;
        if (f.bytes != want)
            return fail_round(t, cad_fail(e, CAD_ECHILD,
                                          "data parallel: rank %d sent %llu bytes where rank 0 expected %zu: the ranks "
                                          "are not running the same sequence of collectives",
                                          q, (unsigned long long)f.bytes, want), q, e);
        unsigned char *dst = op == OP_PICK ? buf : t->tmp;
        if (want && (r = recv_watch(t, q, dst, want, &closed)))
            return fail_round(t, peer_gone(t, r > 0 ? closed : q, e), r > 0 ? closed : q, e);
        if (op == OP_SUM_F32) add_f32((float *)buf, (const float *)t->tmp, bytes / sizeof(float));
        if (op == OP_SUM_F64) add_f64((double *)buf, (const double *)t->tmp, bytes / sizeof(double));
    }
    size_t out = op == OP_NONE ? 0 : bytes;
    for (int q = 1; q < t->world; q++)
        if (send_frame(&t->p[q], F_RESULT, 0, t->world, buf, out))
            return fail_round(t, peer_gone(t, q, e), q, e);
    return CAD_OK;
}

/* A peer's half: its contribution to the hub, then the result (or the hub's abort). */
static int peer_round(cad_coll_tcp *t, unsigned char *buf, size_t bytes, op_kind op, int root, cad_err *e) {
    size_t in = op == OP_NONE ? 0 : op == OP_PICK ? (t->rank == root ? bytes : 0) : bytes;
    size_t out = op == OP_NONE ? 0 : bytes;
    int closed;
    if (send_frame(&t->p[0], F_DATA, t->rank, t->world, buf, in)) return fail_round(t, peer_gone(t, 0, e), 0, e);
    frame f;
    if (recv_watch(t, 0, &f, sizeof f, &closed)) return fail_round(t, peer_gone(t, 0, e), 0, e);
    if (f.magic == FRAME_MAGIC && f.type == F_ABORT) {
        char msg[ABORT_MSG_MAX];
        size_t k = f.bytes < sizeof msg - 1 ? (size_t)f.bytes : sizeof msg - 1;
        msg[recv_watch(t, 0, msg, k, &closed) ? 0 : k] = 0;
        return fail_round(t, cad_fail(e, CAD_ECHILD, "data parallel: %s", msg), 0, e);
    }
    if (f.magic != FRAME_MAGIC || f.type != F_RESULT || f.bytes != out)
        return fail_round(t, cad_fail(e, CAD_ECHILD, "data parallel: rank 0 sent a malformed result (type %u, %llu bytes, "
                                                     "expected %zu)", f.type, (unsigned long long)f.bytes, out), 0, e);
    if (out && recv_watch(t, 0, buf, out, &closed)) return fail_round(t, peer_gone(t, 0, e), 0, e);
    return CAD_OK;
}

static int round_chunked(cad_coll_tcp *t, void *buf, size_t bytes, size_t elem, op_kind op, int root, cad_err *e) {
    if (atomic_load(&t->failed))
        return cad_fail(e, CAD_ECHILD, "data parallel: the collective already failed (a rank died or aborted)");
    const size_t per = CAD_COLL_TCP_CHUNK_BYTES / elem * elem;
    size_t o = 0;
    do { /* one round even for 0 bytes: that is the barrier */
        size_t k = bytes - o < per ? bytes - o : per;
        unsigned char *b = (unsigned char *)buf + o;
        int rc = t->rank == 0 ? hub_round(t, b, k, op, root, e) : peer_round(t, b, k, op, root, e);
        if (rc) return rc;
        o += k;
    } while (o < bytes);
    return CAD_OK;
}

int cad_coll_tcp_barrier(cad_coll_tcp *t, cad_err *e) { return round_chunked(t, NULL, 0, 1, OP_NONE, 0, e); }

int cad_coll_tcp_broadcast(cad_coll_tcp *t, void *buf, size_t bytes, int root, cad_err *e) {
    if (root < 0 || root >= t->world)
        return cad_fail(e, CAD_ERR, "data parallel: broadcast from rank %d in a world of %d", root, t->world);
    return round_chunked(t, buf, bytes, 1, OP_PICK, root, e);
}

int cad_coll_tcp_sum_f32(cad_coll_tcp *t, float *buf, size_t n, cad_err *e) {
    return round_chunked(t, buf, n * sizeof *buf, sizeof *buf, OP_SUM_F32, 0, e);
}

int cad_coll_tcp_sum_f64(cad_coll_tcp *t, double *buf, size_t n, cad_err *e) {
    return round_chunked(t, buf, n * sizeof *buf, sizeof *buf, OP_SUM_F64, 0, e);
}

int cad_coll_tcp_check(cad_coll_tcp *t, int read_cause, cad_err *e) {
    if (atomic_load(&t->failed))
        return cad_fail(e, CAD_ECHILD, "data parallel: the collective failed (a rank died or aborted)");
    for (int q = first_peer(t); q < end_peer(t); q++) {
        struct pollfd pf = {t->p[q].fd, POLLRDHUP, 0};
        if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            if (read_cause) return fail_round(t, peer_gone(t, q, e), q, e);
            say_dead(t, t->rank == 0 ? q : 0, e);
            return CAD_ECHILD;
        }
    }
    return CAD_OK;
}

/* ---- joining and leaving ---- */

static cad_coll_tcp *tcp_new(int rank, int world, const char *addr) {
    cad_coll_tcp *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->rank = rank;
    t->world = world;
    snprintf(t->addr, sizeof t->addr, "%s", addr);
    int np = rank == 0 ? world : 1;
    t->p = calloc((size_t)np, sizeof *t->p);
    t->tmp = rank == 0 ? malloc(CAD_COLL_TCP_CHUNK_BYTES) : NULL;
    if (!t->p || (rank == 0 && !t->tmp)) {
        free(t->p);
        free(t->tmp);
        free(t);
        return NULL;
    }
    for (int q = 0; q < np; q++) {
        t->p[q].fd = -1;
        pthread_mutex_init(&t->p[q].send_mu, NULL);
    }
    return t;
}

static void tcp_close_all(cad_coll_tcp *t) {
    int np = t->rank == 0 ? t->world : 1;
    for (int q = 0; q < np; q++) {
        if (t->p[q].fd >= 0) close(t->p[q].fd);
        pthread_mutex_destroy(&t->p[q].send_mu);
    }
    free(t->p);
    free(t->tmp);
    free(t);
}

/* A socket listening on `port` on every interface: IPv6 accepting IPv4 too where there is
 * IPv6, else IPv4. SO_REUSEADDR: a port left in TIME_WAIT by the previous run is free. */
static int listen_on(const char *port, cad_err *e) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(NULL, port, &hints, &res);
    if (gai) return cad_fail(e, CAD_EIO, "data parallel: port %s: %s", port, gai_strerror(gai)), -1;
    int fd = -1, err = 0;
    for (int pass = 0; pass < 2 && fd < 0; pass++) /* IPv6 first */
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            if ((pass == 0) != (a->ai_family == AF_INET6)) continue;
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, CAD_COLL_TCP_MAX_PEERS)) {
                err = errno;
                close(fd);
                fd = -1;
            }
        }
    freeaddrinfo(res);
    if (fd < 0)
        cad_fail(e, CAD_EIO, "data parallel: rank 0 cannot listen on port %s: %s (another run on this port? pick "
                             "another with --master HOST:PORT)", port, strerror(err));
    return fd;
}

static int hub_join(cad_coll_tcp *t, const char *port, double deadline, cad_err *e) {
    int lfd = listen_on(port, e);
    if (lfd < 0) return CAD_EIO;
    int joined = 1, rc = CAD_OK;
    while (joined < t->world && !rc) {
        double left = deadline - now_s();
        if (left <= 0) {
            char missing[256] = "";
            size_t m = 0;
            for (int q = 1; q < t->world && m < sizeof missing - 8; q++)
                if (t->p[q].fd < 0) m += (size_t)snprintf(missing + m, sizeof missing - m, "%s%d", m ? ", " : "", q);
            rc = cad_fail(e, CAD_ECHILD, "data parallel: only %d of %d ranks joined rank 0 on port %s in time (missing: %s)",
                          joined, t->world, port, missing);
            break;
        }
        struct pollfd pf = {lfd, POLLIN, 0};
        if (poll(&pf, 1, left < 0.2 ? (int)(left * 1000) + 1 : 200) <= 0) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        tune_socket(fd);
        struct timeval tv = {5, 0}; /* a connection that says nothing is not a rank */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        frame f;
        if (recv(fd, &f, sizeof f, MSG_WAITALL) != (ssize_t)sizeof f || f.magic != FRAME_MAGIC || f.type != F_HELLO) {
            close(fd); /* not one of ours (a port scan, a stale client): keep waiting */
            continue;
        }
        struct timeval none = {0, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        char why[200] = "";
        if (f.world != t->world)
            snprintf(why, sizeof why, "rank %d was started for a world of %d, rank 0 for %d (--nnodes/--nproc differ "
                                      "between machines?)", f.rank, f.world, t->world);
        else if (f.rank < 1 || f.rank >= t->world)
            snprintf(why, sizeof why, "a rank %d joined a world of %d", f.rank, t->world);
        else if (t->p[f.rank].fd >= 0)
            snprintf(why, sizeof why, "rank %d joined twice (two machines with the same --node-rank?)", f.rank);
        if (why[0]) {
            frame a = {FRAME_MAGIC, F_ABORT, 0, t->world, strlen(why)};
            if (!send_all(fd, &a, sizeof a, MSG_DONTWAIT)) send_all(fd, why, strlen(why), MSG_DONTWAIT);
            close(fd);
            rc = cad_fail(e, CAD_ECONFIG, "data parallel: %s", why);
            break;
        }
        t->p[f.rank].fd = fd;
        joined++;
    }
    close(lfd);
    if (rc) {
        abort_all(t, after_prefix(e), -1);
        return rc;
    }
    for (int q = 1; q < t->world; q++)
        if (send_frame(&t->p[q], F_GO, 0, t->world, NULL, 0)) return peer_gone(t, q, e);
    return CAD_OK;
}

static int peer_join(cad_coll_tcp *t, const char *host, const char *port, double deadline, cad_err *e) {
    int fd = -1, err = 0;
    while (fd < 0) {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int gai = getaddrinfo(host, port, &hints, &res);
        for (struct addrinfo *a = gai ? NULL : res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen)) {
                err = errno;
                close(fd);
                fd = -1;
            }
        }
        if (res) freeaddrinfo(res);
        if (fd >= 0) break;
        if (now_s() > deadline)
            return gai ? cad_fail(e, CAD_ECHILD, "data parallel: rank %d cannot resolve %s: %s", t->rank, host, gai_strerror(gai))
                       : cad_fail(e, CAD_ECHILD, "data parallel: rank %d could not reach rank 0 at %s in time: %s", t->rank,
                                  t->addr, strerror(err));
        struct timespec nap = {0, 100 * 1000000L}; /* rank 0 may not listen yet */
        nanosleep(&nap, NULL);
    }
    tune_socket(fd);
    t->p[0].fd = fd;
    if (send_frame(&t->p[0], F_HELLO, t->rank, t->world, NULL, 0)) return peer_gone(t, 0, e);
    /* rank 0 answers when all joined; it gives up at its own deadline, so this one is later */
    frame f;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int k = poll(&pf, 1, POLL_MS);
        if (k > 0) break;
        if (now_s() > deadline + 10)
            return cad_fail(e, CAD_ECHILD, "data parallel: rank 0 at %s did not start the run in time", t->addr);
    }
    if (recv(fd, &f, sizeof f, MSG_WAITALL) != (ssize_t)sizeof f || f.magic != FRAME_MAGIC)
        return cad_fail(e, CAD_ECHILD, "data parallel: rank 0 at %s closed the connection while joining (is it another "
                                       "run's rank 0?)", t->addr);
    if (f.type == F_ABORT) {
        char msg[ABORT_MSG_MAX];
        size_t k = f.bytes < sizeof msg - 1 ? (size_t)f.bytes : sizeof msg - 1;
        ssize_t got = k ? recv(fd, msg, k, MSG_WAITALL) : 0;
        msg[got > 0 ? got : 0] = 0;
        return cad_fail(e, CAD_ECHILD, "data parallel: rank 0 refused rank %d: %s", t->rank, msg);
    }
    if (f.type != F_GO) return cad_fail(e, CAD_ECHILD, "data parallel: rank 0 sent a malformed frame while joining");
    return CAD_OK;
}

int cad_coll_tcp_open(int rank, int world, const char *addr, double join_timeout_s, cad_coll_tcp **out, cad_err *e) {
    *out = NULL;
    if (world < 2 || world > CAD_COLL_TCP_MAX_PEERS || rank < 0 || rank >= world)
        return cad_fail(e, CAD_ECONFIG, "data parallel: rank %d of world %d over TCP: expected 0 <= rank < world <= %d",
                        rank, world, CAD_COLL_TCP_MAX_PEERS);
    char host[256], port[16];
    int rc = cad_coll_tcp_parse_addr(addr, host, sizeof host, port, sizeof port, e);
    if (rc) return rc;
    cad_coll_tcp *t = tcp_new(rank, world, addr);
    if (!t) return cad_fail(e, CAD_ENOMEM, "out of memory");
    double deadline = now_s() + join_timeout_s;
    rc = rank == 0 ? hub_join(t, port, deadline, e) : peer_join(t, host, port, deadline, e);
    if (rc) {
        tcp_close_all(t);
        return rc;
    }
    *out = t;
    return CAD_OK;
}

/* The leave round: every peer says F_LEAVE, the hub answers when all did (or their connection
 * ended: leaving, nothing is a failure any more). Nobody closes a connection before everyone
 * finished their collectives, so a closed connection during the run always means a death. */
static void leave_round(cad_coll_tcp *t) {
    if (t->rank != 0) {
        if (send_frame(&t->p[0], F_LEAVE, t->rank, t->world, NULL, 0)) return;
        for (;;) { /* the hub's F_LEAVE, or its end */
            frame f;
            if (recv(t->p[0].fd, &f, sizeof f, MSG_WAITALL) != (ssize_t)sizeof f || f.magic != FRAME_MAGIC) return;
            if (f.type == F_LEAVE) return;
            if (f.bytes > CAD_COLL_TCP_CHUNK_BYTES || skip_payload(t, 0, f.bytes)) return;
        }
    }
    for (int q = 1; q < t->world; q++) {
        for (;;) {
            frame f;
            if (recv(t->p[q].fd, &f, sizeof f, MSG_WAITALL) != (ssize_t)sizeof f || f.magic != FRAME_MAGIC) break;
            if (f.type == F_LEAVE) break;
            if (f.bytes > CAD_COLL_TCP_CHUNK_BYTES || skip_payload(t, q, f.bytes)) break;
        }
    }
    for (int q = 1; q < t->world; q++) send_frame(&t->p[q], F_LEAVE, 0, t->world, NULL, 0);
}

void cad_coll_tcp_free(cad_coll_tcp *t) {
    if (!t) return;
    if (!atomic_load(&t->failed)) leave_round(t);
    tcp_close_all(t);
}
