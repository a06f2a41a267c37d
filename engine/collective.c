/*
 * collective.c — the rank-to-rank seam (see collective.h): a POSIX shared-memory segment with a
 * generation-counter barrier and per-rank staging slots (one machine), or the TCP star of
 * coll_tcp.c (several machines), plus NCCL for CUDA backend memory, and the queue of overlapped
 * all-reduces (a communication thread on the CPU, a second stream on CUDA).
 * Not here: what the trainer reduces and when (train.c, dp_buckets.c), starting the ranks
 * (launch.c), the TCP protocol (coll_tcp.c).
 */
#include "engine/collective.h"

#include "engine/coll_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef CADDIE_CUDA
/* kernels/backend_cuda.h (engine/ does not include kernels/; the layering test keeps it so) */
#define CAD_NCCL_ID_HEX_CHARS 256
int cad_cuda_dp_unique_id(char hex[CAD_NCCL_ID_HEX_CHARS + 1], cad_err *e);
int cad_cuda_dp_init(const cad_backend *be, int rank, int world, const char *hex, cad_err *e);
void cad_cuda_dp_allreduce_mean(const cad_backend *be, float *buf, size_t n);
void cad_cuda_dp_allreduce_mean_async(const cad_backend *be, float *buf, size_t n);
void cad_cuda_dp_wait(const cad_backend *be);
void cad_cuda_dp_broadcast(const cad_backend *be, float *buf, size_t n, int root);
void cad_cuda_dp_abort(void);
void cad_cuda_dp_free(void);
#endif

#define COLL_MAGIC 0x4c4c4f43u /* "COLL" */
#define ABORT_MSG_MAX 512
#define PEER_CHECK_MS 100.0

/* The segment's first page; the slots follow at COLL_HDR_BYTES. Atomics are lock-free ints,
 * so they work between processes. */
typedef struct coll_hdr {
    uint32_t magic;
    int32_t world;
    atomic_int joined;
    atomic_int abort_claim;     /* the first rank to abort takes it, then writes its message */
    atomic_int aborted;         /* 1: abort_rank failed, abort_msg says why */
    int32_t abort_rank;
    char abort_msg[ABORT_MSG_MAX];
    atomic_int pids[CAD_COLL_MAX_WORLD];
    atomic_uint arrive;         /* barrier: ranks arrived in this generation */
    atomic_uint gen;            /* barrier: generation, bumped by the last to arrive */
} coll_hdr;

#define COLL_HDR_BYTES ((size_t)16384)
_Static_assert(CAD_COLL_TCP_MAX_PEERS >= CAD_COLL_MAX_WORLD, "the TCP star must hold every rank");
_Static_assert(sizeof(coll_hdr) <= COLL_HDR_BYTES, "collective header outgrew its page");

struct cad_coll {
    int rank, world;
    cad_coll_tcp *tcp;          /* between machines: every host op goes through it (h is NULL) */
    coll_hdr *h;
    unsigned char *slots;
    size_t map_bytes;
    const cad_backend *be;
    int nccl;                   /* backend ops go through NCCL */
    double last_check_ms;
    pthread_t watchdog;
    int have_watchdog;
    atomic_int stop_watchdog;
    /* The overlapped all-reduces on the CPU backend: a FIFO the communication thread drains.
     * Only that thread uses the segment while entries are pending (the caller promised). */
    int have_comm;
    pthread_t comm;
    pthread_mutex_t q_mu;
    pthread_cond_t q_grew;      /* an entry was queued, or q_stop */
    pthread_cond_t q_drained;   /* an entry finished */
    struct q_entry { float *buf; size_t n; } *q;
    size_t q_len, q_done, q_cap;
    int q_stop;
    int q_rc;                   /* the first failure (sticky: later entries are skipped) */
    cad_err q_err;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t seg_bytes(int world) { return COLL_HDR_BYTES + (size_t)world * CAD_COLL_SLOT_BYTES; }

int cad_coll_shm_create(const char *name, int world, cad_err *e) {
    if (world < 1 || world > CAD_COLL_MAX_WORLD)
        return cad_fail(e, CAD_ECONFIG, "world size %d: expected 1..%d", world, CAD_COLL_MAX_WORLD);
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return cad_fail(e, CAD_EIO, "shm_open %s: %s", name, strerror(errno));
    size_t bytes = seg_bytes(world);
    void *p = ftruncate(fd, (off_t)bytes) ? MAP_FAILED : mmap(NULL, COLL_HDR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(name);
        return cad_fail(e, CAD_EIO, "shared memory %s (%zu bytes): %s", name, bytes, strerror(err));
    }
    coll_hdr *h = p; /* ftruncate zero-filled it: every counter starts at 0 */
    h->world = world;
    atomic_thread_fence(memory_order_seq_cst);
    h->magic = COLL_MAGIC;
    munmap(p, COLL_HDR_BYTES);
    return CAD_OK;
}

void cad_coll_shm_unlink(const char *name) { shm_unlink(name); }

/* A process that is gone, or a zombie (its parent has not reaped it yet), is dead. */
static int pid_alive(int pid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!paren || paren[1] != ' ') return 1;
    return paren[2] != 'Z' && paren[2] != 'X';
}

/* Why this rank must stop waiting: a peer aborted or died. CAD_OK otherwise. `done` says
 * whether the wait is over after all: a peer that passed the last barrier may exit at once, so
 * its death counts only when the wait it would have ended is still pending — checked after
 * seeing it dead, when everything it wrote before exiting is visible. */
static int peers_check(cad_coll *c, int (*done)(cad_coll *, unsigned), unsigned arg, cad_err *e) {
    if (c->tcp) return cad_coll_tcp_check(c->tcp, 1, e); /* only between NCCL ops: the ops wait themselves */
    coll_hdr *h = c->h;
    if (atomic_load(&h->aborted))
        return cad_fail(e, CAD_ECHILD, "data parallel: rank %d failed: %s", h->abort_rank, h->abort_msg);
    for (int r = 0; r < c->world; r++) {
        int pid = atomic_load(&h->pids[r]);
        if (r != c->rank && pid > 0 && !pid_alive(pid)) {
            if (done && done(c, arg)) return CAD_OK;
            char msg[96];
            snprintf(msg, sizeof msg, "rank %d (pid %d) died", r, pid);
            cad_coll_abort(c, msg); /* so ranks that look later see the cause, not a second death */
            return cad_fail(e, CAD_ECHILD, "data parallel: %s", msg);
        }
    }
    return CAD_OK;
}

/* Between polls: yield first (a peer on another core is usually a moment away), then sleep,
 * so a rank waiting for a slow peer does not take a core from it. 1 when the peers are due a
 * check. */
static int wait_step(cad_coll *c, long *spins) {
    if (++*spins < 64) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, NULL);
    }
    double t = now_ms();
    if (t - c->last_check_ms < PEER_CHECK_MS) return 0;
    c->last_check_ms = t;
    return 1;
}

static int gen_moved(cad_coll *c, unsigned g) { return atomic_load(&c->h->gen) != g; }
static int all_joined(cad_coll *c, unsigned world) { return (unsigned)atomic_load(&c->h->joined) >= world; }

int cad_coll_barrier(cad_coll *c, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
    if (c->tcp) return cad_coll_tcp_barrier(c->tcp, e);
    coll_hdr *h = c->h;
    unsigned g = atomic_load(&h->gen);
    if (atomic_fetch_add(&h->arrive, 1) == (unsigned)c->world - 1) {
        atomic_store(&h->arrive, 0);
        atomic_fetch_add(&h->gen, 1);
        return CAD_OK;
    }
    long spins = 0;
    while (!gen_moved(c, g)) {
        int rc = wait_step(c, &spins) ? peers_check(c, gen_moved, g, e) : CAD_OK;
        if (rc) return rc;
    }
    return CAD_OK;
}

/* A handle for rank of world, transport not yet attached; NULL with e set when out of range. */
static cad_coll *coll_new(int rank, int world, cad_err *e) {
    if (world < 1 || world > CAD_COLL_MAX_WORLD || rank < 0 || rank >= world) {
        cad_fail(e, CAD_ECONFIG, "RANK=%d WORLD_SIZE=%d: expected 0 <= RANK < WORLD_SIZE <= %d", rank, world,
                 CAD_COLL_MAX_WORLD);
        return NULL;
    }
    cad_coll *c = calloc(1, sizeof *c);
    if (!c) {
        cad_fail(e, CAD_ENOMEM, "out of memory");
        return NULL;
    }
    c->rank = rank;
    c->world = world;
    return c;
}

int cad_coll_open(int rank, int world, const char *shm_name, cad_coll **out, cad_err *e) {
    *out = NULL;
    cad_coll *c = coll_new(rank, world, e);
    if (!c) return e->code;
    if (world == 1) {
        *out = c;
        return CAD_OK;
    }
    int fd = shm_open(shm_name, O_RDWR, 0);
    if (fd < 0) {
        free(c);
        return cad_fail(e, CAD_EIO, "data parallel: shared memory %s: %s", shm_name, strerror(errno));
    }
    struct stat st;
    c->map_bytes = seg_bytes(world);
    void *p = fstat(fd, &st) || (size_t)st.st_size != c->map_bytes
                  ? MAP_FAILED
                  : mmap(NULL, c->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        free(c);
        return cad_fail(e, CAD_ECONFIG, "data parallel: shared memory %s is not a world-%d segment", shm_name, world);
    }
    c->h = p;
    c->slots = (unsigned char *)p + COLL_HDR_BYTES;
    if (c->h->magic != COLL_MAGIC || c->h->world != world) {
        int w = c->h->world;
        cad_coll_free(c);
        return cad_fail(e, CAD_ECONFIG, "data parallel: shared memory %s was made for world %d, not %d", shm_name, w, world);
    }
    if (atomic_exchange(&c->h->pids[rank], (int)getpid()) != 0) {
        cad_coll_free(c);
        return cad_fail(e, CAD_ECONFIG, "data parallel: rank %d joined twice", rank);
    }
    atomic_fetch_add(&c->h->joined, 1);
    /* every rank present before any collective: a rank that never starts is a join timeout */
    double until = now_ms() + 1000.0 * CAD_COLL_JOIN_TIMEOUT_S;
    long spins = 0;
    int rc = CAD_OK;
    while (!rc && !all_joined(c, (unsigned)world)) {
        rc = wait_step(c, &spins) ? peers_check(c, all_joined, (unsigned)world, e) : CAD_OK;
        if (!rc && now_ms() > until)
            rc = cad_fail(e, CAD_ECHILD, "data parallel: only %d of %d ranks joined within %d s",
                          atomic_load(&c->h->joined), world, CAD_COLL_JOIN_TIMEOUT_S);
    }
    if (rc) {
        cad_coll_abort(c, e->msg);
        cad_coll_free(c);
        return rc;
    }
    /* everyone has it mapped: the name can go, so no segment outlives the run in /dev/shm */
    if (rank == 0) shm_unlink(shm_name);
    *out = c;
    return CAD_OK;
}

int cad_coll_open_tcp(int rank, int world, const char *addr, double join_timeout_s, cad_coll **out, cad_err *e) {
    *out = NULL;
    cad_coll *c = coll_new(rank, world, e);
    if (!c) return e->code;
    int rc = world > 1 ? cad_coll_tcp_open(rank, world, addr, join_timeout_s, &c->tcp, e) : CAD_OK;
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return CAD_OK;
}

static int env_int(const char *name, int def, int *out, cad_err *e) {
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return CAD_OK;
    }
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1 << 20) return cad_fail(e, CAD_ECONFIG, "%s=%s: expected a non-negative integer", name, v);
    *out = (int)x;
    return CAD_OK;
}

int cad_coll_open_env(cad_coll **out, cad_err *e) {
    int rank, world;
    int rc = env_int("RANK", 0, &rank, e);
    if (!rc) rc = env_int("WORLD_SIZE", 1, &world, e);
    if (rc) return rc;
    const char *shm = getenv("CADDIE_COLL_SHM"), *tcp = getenv("CADDIE_COLL_TCP");
    if (tcp && *tcp) {
        int timeout_s;
        if ((rc = env_int("CADDIE_COLL_JOIN_TIMEOUT_S", CAD_COLL_JOIN_TIMEOUT_S, &timeout_s, e))) return rc;
        return cad_coll_open_tcp(rank, world, tcp, timeout_s, out, e);
    }
    if (world > 1 && (!shm || !*shm))
        return cad_fail(e, CAD_ECONFIG, "WORLD_SIZE=%d: start the ranks with `caddie launch --nproc %d train ...` "
                                        "(it creates the ranks' shared memory, CADDIE_COLL_SHM; between machines "
                                        "--nnodes and --master set CADDIE_COLL_TCP)", world, world);
    return cad_coll_open(rank, world, shm, out, e);
}

#ifdef CADDIE_CUDA
static void *watchdog_main(void *arg) {
    cad_coll *c = arg;
    cad_err e;
    while (!atomic_load(&c->stop_watchdog)) {
        struct timespec ts = {0, (long)(PEER_CHECK_MS * 1e6)};
        nanosleep(&ts, NULL);
        /* TCP: look without reading (the rank's own thread may be reading the connection) */
        if ((c->tcp ? cad_coll_tcp_check(c->tcp, 0, &e) : peers_check(c, NULL, 0, &e)) != CAD_OK) {
            cad_cuda_dp_abort(); /* queued NCCL work for a dead peer errors out instead of hanging */
            /* the hub passes it on (its F_ABORT and closed connections wake the other ranks'
             * watchdogs); for another rank the hub is what is gone */
            if (c->tcp && c->rank == 0) cad_coll_tcp_abort(c->tcp, e.msg);
            break;
        }
    }
    return NULL;
}
#endif

void cad_coll_free(cad_coll *c) {
    if (!c) return;
    if (c->have_comm) { /* pending entries are skipped: the caller is failing */
        pthread_mutex_lock(&c->q_mu);
        c->q_stop = 1;
        pthread_cond_signal(&c->q_grew);
        pthread_mutex_unlock(&c->q_mu);
        pthread_join(c->comm, NULL);
        pthread_cond_destroy(&c->q_grew);
        pthread_cond_destroy(&c->q_drained);
        pthread_mutex_destroy(&c->q_mu);
        free(c->q);
    }
    if (c->have_watchdog) {
        atomic_store(&c->stop_watchdog, 1);
        pthread_join(c->watchdog, NULL);
    }
#ifdef CADDIE_CUDA
    if (c->nccl) cad_cuda_dp_free();
#endif
    if (c->h) munmap(c->h, c->map_bytes);
    cad_coll_tcp_free(c->tcp);
    free(c);
}

int cad_coll_rank(const cad_coll *c) { return c ? c->rank : 0; }
int cad_coll_world(const cad_coll *c) { return c ? c->world : 1; }

void cad_coll_abort(cad_coll *c, const char *msg) {
    if (!c || c->world == 1) return;
    if (c->tcp) {
        cad_coll_tcp_abort(c->tcp, msg);
        return;
    }
    coll_hdr *h = c->h;
    int expected = 0;
    /* the first failure is the cause; later ones are its consequences and keep its message */
    if (atomic_compare_exchange_strong(&h->abort_claim, &expected, 1)) {
        h->abort_rank = c->rank;
        snprintf(h->abort_msg, sizeof h->abort_msg, "%s", msg ? msg : "aborted");
        atomic_store(&h->aborted, 1);
    }
}

int cad_coll_attach_backend(cad_coll *c, const cad_backend *be, cad_err *e) {
    if (!c) return CAD_OK;
    c->be = be;
    if (c->world == 1 || strcmp(be->name, "cuda") != 0) return CAD_OK;
#ifdef CADDIE_CUDA
    char hex[CAD_NCCL_ID_HEX_CHARS + 1];
    memset(hex, 0, sizeof hex);
    int rc = c->rank == 0 ? cad_cuda_dp_unique_id(hex, e) : CAD_OK;
    if (rc) cad_coll_abort(c, e->msg);
    if (!rc) rc = cad_coll_broadcast(c, hex, sizeof hex, 0, e);
    if (!rc) rc = cad_cuda_dp_init(be, c->rank, c->world, hex, e);
    if (rc) return rc;
    c->nccl = 1;
    if (pthread_create(&c->watchdog, NULL, watchdog_main, c))
        return cad_fail(e, CAD_ERR, "data parallel: cannot start the peer watchdog thread");
    c->have_watchdog = 1;
    return CAD_OK;
#else
    return cad_fail(e, CAD_ECONFIG, "data parallel on backend %s: this caddie was built without CUDA/NCCL", be->name);
#endif
}

static unsigned char *slot(cad_coll *c, int r) { return c->slots + (size_t)r * CAD_COLL_SLOT_BYTES; }

int cad_coll_broadcast(cad_coll *c, void *buf, size_t bytes, int root, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
    if (c->tcp) return cad_coll_tcp_broadcast(c->tcp, buf, bytes, root, e);
    unsigned char *b = buf;
    for (size_t o = 0; o < bytes; o += CAD_COLL_SLOT_BYTES) {
        size_t k = bytes - o < CAD_COLL_SLOT_BYTES ? bytes - o : CAD_COLL_SLOT_BYTES;
        if (c->rank == root) memcpy(slot(c, root), b + o, k);
        int rc = cad_coll_barrier(c, e);
        if (!rc && c->rank != root) memcpy(b + o, slot(c, root), k);
        if (!rc) rc = cad_coll_barrier(c, e); /* the slot is free again for the next chunk */
        if (rc) return rc;
    }
    return CAD_OK;
}

/* Rank-ordered sums through the slots, chunk by chunk; every rank computes the same sum. */
#define DEFINE_ALLREDUCE(NAME, T)                                                                    \
    static int NAME(cad_coll *c, T *buf, size_t n, cad_err *e) {                                     \
        const size_t per = CAD_COLL_SLOT_BYTES / sizeof(T);                                          \
        for (size_t o = 0; o < n; o += per) {                                                        \
            size_t k = n - o < per ? n - o : per;                                                    \
            memcpy(slot(c, c->rank), buf + o, k * sizeof(T));                                        \
            int rc = cad_coll_barrier(c, e);                                                         \
            if (rc) return rc;                                                                       \
            T *dst = buf + o;                                                                        \
            memcpy(dst, slot(c, 0), k * sizeof(T));                                                  \
            for (int r = 1; r < c->world; r++) {                                                     \
                const T *src = (const T *)slot(c, r);                                                \
                for (size_t i = 0; i < k; i++) dst[i] += src[i];                                     \
            }                                                                                        \
            if ((rc = cad_coll_barrier(c, e))) return rc;                                            \
        }                                                                                            \
        return CAD_OK;                                                                               \
    }
DEFINE_ALLREDUCE(allreduce_f32, float)
DEFINE_ALLREDUCE(allreduce_f64, double)

int cad_coll_allreduce_sum_f64(cad_coll *c, double *buf, size_t n, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
    return c->tcp ? cad_coll_tcp_sum_f64(c->tcp, buf, n, e) : allreduce_f64(c, buf, n, e);
}

/* The host transport's mean: the rank-ordered sum times 1/world, the same on every rank and
 * the same bits over the segment or TCP. */
static int allreduce_mean_host(cad_coll *c, float *buf, size_t n, cad_err *e) {
    int rc = c->tcp ? cad_coll_tcp_sum_f32(c->tcp, buf, n, e) : allreduce_f32(c, buf, n, e);
    if (rc) return rc;
    float inv = 1.0f / (float)c->world;
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
    return CAD_OK;
}

int cad_coll_allreduce_mean(cad_coll *c, float *buf, size_t n, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
#ifdef CADDIE_CUDA
    if (c->nccl) {
        cad_cuda_dp_allreduce_mean(c->be, buf, n); /* ncclAvg, queued on the backend's stream */
        return peers_check(c, NULL, 0, e);
    }
#endif
    return allreduce_mean_host(c, buf, n, e);
}

/* The communication thread: entries in queue order, each the same host all-reduce the
 * caller would have run itself, so the bits do not depend on which thread ran it. After a
 * failure (a dead peer) or a stop the rest are skipped: their peers fail on their own checks. */
static void *comm_main(void *arg) {
    cad_coll *c = arg;
    pthread_mutex_lock(&c->q_mu);
    for (;;) {
        while (!c->q_stop && c->q_done == c->q_len) pthread_cond_wait(&c->q_grew, &c->q_mu);
        if (c->q_done == c->q_len) break; /* stopped, nothing pending */
        struct q_entry q = c->q[c->q_done];
        int skip = c->q_rc || c->q_stop;
        pthread_mutex_unlock(&c->q_mu);
        cad_err e = {0};
        int rc = skip ? CAD_OK : allreduce_mean_host(c, q.buf, q.n, &e);
        pthread_mutex_lock(&c->q_mu);
        if (rc && !c->q_rc) {
            c->q_rc = rc;
            c->q_err = e;
        }
        c->q_done++;
        pthread_cond_broadcast(&c->q_drained);
    }
    pthread_mutex_unlock(&c->q_mu);
    return NULL;
}

static int queue_failed(cad_coll *c, cad_err *e) {
    if (!c->q_rc) return CAD_OK;
    if (e) *e = c->q_err;
    return c->q_rc;
}

int cad_coll_allreduce_mean_async(cad_coll *c, float *buf, size_t n, cad_err *e) {
    if (!c || c->world == 1 || n == 0) return CAD_OK;
#ifdef CADDIE_CUDA
    if (c->nccl) {
        cad_cuda_dp_allreduce_mean_async(c->be, buf, n); /* ncclAvg on the communication stream */
        return peers_check(c, NULL, 0, e);
    }
#endif
    if (!c->have_comm) {
        if (pthread_mutex_init(&c->q_mu, NULL)) return cad_fail(e, CAD_ERR, "data parallel: pthread_mutex_init failed");
        if (pthread_cond_init(&c->q_grew, NULL) || pthread_cond_init(&c->q_drained, NULL)) {
            pthread_mutex_destroy(&c->q_mu);
            return cad_fail(e, CAD_ERR, "data parallel: pthread_cond_init failed");
        }
        if (pthread_create(&c->comm, NULL, comm_main, c)) {
            pthread_cond_destroy(&c->q_grew);
            pthread_cond_destroy(&c->q_drained);
            pthread_mutex_destroy(&c->q_mu);
            return cad_fail(e, CAD_ERR, "data parallel: cannot start the communication thread");
        }
        c->have_comm = 1;
    }
    pthread_mutex_lock(&c->q_mu);
    int rc = queue_failed(c, e);
    if (!rc && c->q_len == c->q_cap) {
        size_t cap = c->q_cap ? 2 * c->q_cap : 64;
        struct q_entry *q = realloc(c->q, cap * sizeof *q);
        if (!q) rc = cad_fail(e, CAD_ENOMEM, "data parallel: out of memory queueing an all-reduce");
        else c->q = q, c->q_cap = cap;
    }
    if (!rc) {
        c->q[c->q_len++] = (struct q_entry){buf, n};
        pthread_cond_signal(&c->q_grew);
    }
    pthread_mutex_unlock(&c->q_mu);
    return rc;
}

int cad_coll_wait(cad_coll *c, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
#ifdef CADDIE_CUDA
    if (c->nccl) {
        cad_cuda_dp_wait(c->be); /* the compute stream waits on the communication stream's event */
        return peers_check(c, NULL, 0, e);
    }
#endif
    if (!c->have_comm) return CAD_OK;
    pthread_mutex_lock(&c->q_mu);
    while (c->q_done < c->q_len) pthread_cond_wait(&c->q_drained, &c->q_mu);
    c->q_len = c->q_done = 0;
    int rc = queue_failed(c, e);
    pthread_mutex_unlock(&c->q_mu);
    return rc;
}

int cad_coll_allgather(cad_coll *c, float *buf, const size_t *off, const size_t *len, cad_err *e) {
    if (!c || c->world == 1) return CAD_OK;
    for (int r = 0; r < c->world; r++) {
        if (!len[r]) continue;
#ifdef CADDIE_CUDA
        if (c->nccl) {
            cad_cuda_dp_broadcast(c->be, buf + off[r], len[r], r);
            continue;
        }
#endif
        int rc = cad_coll_broadcast(c, buf + off[r], len[r] * sizeof(float), r, e);
        if (rc) return rc;
    }
#ifdef CADDIE_CUDA
    if (c->nccl) return peers_check(c, NULL, 0, e);
#endif
    return CAD_OK;
}
