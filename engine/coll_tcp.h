/*
 * coll_tcp.h — the collective's transport between machines (engine/collective.h picks it when
 * CADDIE_COLL_TCP=HOST:PORT is set, as `caddie launch --nnodes N --master HOST:PORT` does):
 * a star of TCP connections, rank 0 the hub listening on PORT, every other rank connected to it.
 *
 * Every operation is one round per chunk: each rank sends its contribution to the hub, the hub
 * combines them in rank order and sends the result back to every rank. So a sum is
 * ((r0 + r1) + r2) + ... exactly as the shared-memory segment adds it: a run's bits do not
 * depend on which transport carried them. The hub holds one chunk per peer at most
 * (CAD_COLL_TCP_CHUNK_BYTES), not the whole buffer.
 *
 * This carries host data (run id, eval sums, NCCL's id, barriers) and, on the CPU backend,
 * gradients. On CUDA the gradients go through NCCL, which has its own transports between
 * machines; this star is not meant to move gigabytes (the hub's link carries world x the bytes).
 *
 * Failure: a rank whose connection closes before the leave round (cad_coll_tcp_free after a
 * success) is dead; the hub tells every other rank which one, and a rank that loses the hub
 * fails naming it. A rank that calls cad_coll_tcp_abort sends its message to the hub, which
 * forwards it. A machine that vanishes without closing its sockets is found by TCP keepalive
 * (~11 s: idle 5 s, then 3 probes 2 s apart). A slow rank is not a failure: no timeout on work,
 * only on joining.
 * Not here: the shared-memory transport, NCCL and the overlap queue (collective.c).
 */
#ifndef CADDIE_COLL_TCP_H
#define CADDIE_COLL_TCP_H

#include "engine/status.h"

#include <stddef.h>

#define CAD_COLL_TCP_CHUNK_BYTES ((size_t)4 << 20)
#define CAD_COLL_TCP_MAX_PEERS 64 /* = CAD_COLL_MAX_WORLD (collective.c asserts it) */

typedef struct cad_coll_tcp cad_coll_tcp;

/* Join rank `rank` of `world` at addr "HOST:PORT" (or "[IPv6]:PORT"): rank 0 listens on PORT
 * on every interface and waits for the others; the others connect to HOST:PORT, retrying while
 * nobody listens yet. Returns when every rank joined, or fails after join_timeout_s naming the
 * ranks still missing. */
int cad_coll_tcp_open(int rank, int world, const char *addr, double join_timeout_s, cad_coll_tcp **out,
                      cad_err *e);
/* "HOST:PORT" or "[IPv6]:PORT" into host and port (the decimal text); CAD_ECONFIG naming addr. */
int cad_coll_tcp_parse_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap, cad_err *e);
/* Unless an op failed or abort ran: a leave round first (every rank waits until all ranks are
 * here), so that no connection closing afterwards looks like a death. Then close. */
void cad_coll_tcp_free(cad_coll_tcp *t);

int cad_coll_tcp_barrier(cad_coll_tcp *t, cad_err *e);
int cad_coll_tcp_broadcast(cad_coll_tcp *t, void *buf, size_t bytes, int root, cad_err *e);
/* buf[i] = sum over ranks in rank order, on every rank */
int cad_coll_tcp_sum_f32(cad_coll_tcp *t, float *buf, size_t n, cad_err *e);
int cad_coll_tcp_sum_f64(cad_coll_tcp *t, double *buf, size_t n, cad_err *e);
/* Tell the others this rank failed (msg shown in their errors); never blocks on a peer. */
void cad_coll_tcp_abort(cad_coll_tcp *t, const char *msg);
/* Between ops (NCCL work in flight): CAD_ECHILD when a peer's connection closed before the
 * leave round (the hub: any peer's; the others: the hub's). read_cause 1: read what the peer
 * sent last, to name an abort's cause (only the thread that runs the ops may); 0 (a watchdog
 * thread beside it): read nothing. */
int cad_coll_tcp_check(cad_coll_tcp *t, int read_cause, cad_err *e);

#endif
