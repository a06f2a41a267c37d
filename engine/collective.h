/*
 * collective.h — the seam between the trainer and the other ranks of a data-parallel run
 * (one process per rank, started by `caddie launch` with RANK / WORLD_SIZE / LOCAL_RANK like
 * torchrun).
 *
 * Two layers, one handle:
 *   host ops    (barrier, broadcast of bytes, all-reduce of doubles, abort) go through a POSIX
 *               shared-memory segment that `caddie launch` creates (CADDIE_COLL_SHM) when every
 *               rank is on one machine, or through a TCP star to rank 0 (CADDIE_COLL_TCP=
 *               HOST:PORT, engine/coll_tcp.h) when they span machines (`launch --nnodes`);
 *               they carry the run id, the eval sums, the NCCL id and the failure of a rank.
 *   backend ops (all-reduce mean of a float buffer, all-gather of per-rank segments) act on
 *               backend memory: on the CPU backend through the same segment, on the CUDA
 *               backend through NCCL (kernels/backend_cuda.cu's cad_cuda_dp_*), once
 *               cad_coll_attach_backend has exchanged the NCCL id over the segment.
 *
 * Determinism: the shared-memory reduction adds the ranks' values in rank order
 * (((r0 + r1) + r2) + ...), every rank computing the same sum, so the result depends neither
 * on timing nor on which rank asks; mean = that sum times 1/world. The TCP star adds in the
 * same order at rank 0, so a run has the same bits over either transport.
 *
 * Failure: a waiting rank notices within ~0.1 s a peer process that is gone (no /proc entry,
 * or a zombie) or a peer that called cad_coll_abort, and fails with a message naming it, so a
 * dead rank never leaves the others hanging. A slow peer is not a failure (no timeout on
 * work); only joining has a timeout (CAD_COLL_JOIN_TIMEOUT_S). On CUDA a watchdog thread does
 * the same check while NCCL work is queued and aborts the communicator (ncclCommAbort), so an
 * all-reduce waiting for a dead peer ends instead of hanging. Over TCP a dead rank is a closed
 * connection (or a keepalive timeout when its machine vanished): rank 0 sees it and tells the
 * others, and every rank sees rank 0 go.
 *
 * Overlap: cad_coll_allreduce_mean_async queues an all-reduce that runs while the caller goes
 * on (the gradient buckets of engine/dp_buckets.c, launched during the backward). On CUDA it
 * runs on a second (communication) stream that waits on an event recorded on the compute stream;
 * on the CPU backend a communication thread of this rank runs it through the segment. Queued
 * all-reduces run in the order queued, which is the same on every rank, so the segment's
 * rank-ordered sums — and so the bits — are those of one flat all-reduce of the same memory.
 *
 * World 1 (no WORLD_SIZE, or 1) needs no segment: every op is the identity.
 * Not here: what is reduced when (engine/train.c, engine/dp_buckets.c, engine/optim.c), starting
 * ranks (engine/launch.c).
 */
#ifndef CADDIE_COLLECTIVE_H
#define CADDIE_COLLECTIVE_H

#include "engine/backend.h"
#include "engine/status.h"

#include <stddef.h>

#define CAD_COLL_MAX_WORLD 64
#define CAD_COLL_JOIN_TIMEOUT_S 60
/* Bytes of each rank's staging slot in the segment; larger buffers go through in chunks. */
#define CAD_COLL_SLOT_BYTES ((size_t)4 << 20)

typedef struct cad_coll cad_coll;

/* The segment for a world of `world` ranks, created by the launcher before it starts them
 * (name like "/caddie-coll-123-abc"); unlink removes the name (ranks that mapped it keep it). */
int cad_coll_shm_create(const char *name, int world, cad_err *e);
void cad_coll_shm_unlink(const char *name);

/* Join as `rank` of `world`: world 1 needs no name (shm_name may be NULL). Waits until every
 * rank joined. *out is freed with cad_coll_free. */
int cad_coll_open(int rank, int world, const char *shm_name, cad_coll **out, cad_err *e);
/* Join as `rank` of `world` over TCP at addr "HOST:PORT" (rank 0 listens there). */
int cad_coll_open_tcp(int rank, int world, const char *addr, double join_timeout_s, cad_coll **out, cad_err *e);
/* From the environment: RANK, WORLD_SIZE (default 0 and 1), then CADDIE_COLL_TCP (with
 * CADDIE_COLL_JOIN_TIMEOUT_S, default CAD_COLL_JOIN_TIMEOUT_S) or else CADDIE_COLL_SHM. A
 * WORLD_SIZE > 1 with neither is a CAD_ECONFIG saying to start ranks with `caddie launch`. */
int cad_coll_open_env(cad_coll **out, cad_err *e);
void cad_coll_free(cad_coll *c);

int cad_coll_rank(const cad_coll *c);
int cad_coll_world(const cad_coll *c);

/* The backend whose memory the backend ops act on. The CPU backend uses the segment; the
 * CUDA backend gets an NCCL communicator (rank 0 makes the id, the segment carries it). */
int cad_coll_attach_backend(cad_coll *c, const cad_backend *be, cad_err *e);

/* ---- host memory ---- */
int cad_coll_barrier(cad_coll *c, cad_err *e);
int cad_coll_broadcast(cad_coll *c, void *buf, size_t bytes, int root, cad_err *e);
/* buf[i] = sum over ranks, in rank order (float64) */
int cad_coll_allreduce_sum_f64(cad_coll *c, double *buf, size_t n, cad_err *e);
/* Tell every peer this rank failed (msg is shown in their errors); no-op at world 1. */
void cad_coll_abort(cad_coll *c, const char *msg);

/* ---- backend memory ---- */
/* buf[i] = (sum over ranks in rank order) / world, in place. */
int cad_coll_allreduce_mean(cad_coll *c, float *buf, size_t n, cad_err *e);
/* Rank r owns buf[off[r], off[r] + len[r]); afterwards every rank holds every segment. */
int cad_coll_allgather(cad_coll *c, float *buf, const size_t *off, const size_t *len, cad_err *e);

/* ---- backend memory, overlapped ---- */
/* Queue buf[i] = (sum over ranks in rank order) / world and return at once. The caller must not
 * touch buf, nor call any other op of this handle, until cad_coll_wait; every rank must queue
 * the same buffers' lengths in the same order. On CUDA: an event recorded on the backend's
 * stream, the communication stream waits on it, ncclAllReduce (ncclAvg) there. On the CPU: the
 * communication thread (started on first use) reduces it through the segment. A failure of an
 * earlier queued all-reduce is returned here or by cad_coll_wait. */
int cad_coll_allreduce_mean_async(cad_coll *c, float *buf, size_t n, cad_err *e);
/* Every queued all-reduce done before what follows: on CUDA the backend's stream waits on the
 * communication stream (an event; the host does not block); on the CPU the caller blocks until
 * the thread drained the queue. Returns the first failure of the queued ones (its message). */
int cad_coll_wait(cad_coll *c, cad_err *e);

#endif
