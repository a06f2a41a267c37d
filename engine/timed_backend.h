/*
 * timed_backend.h — a cad_backend that forwards every slot to another backend and records, per
 * slot, how many times it was called and how long it took: the per-op table of `caddie bench`.
 *
 * Times come from a cad_slot_timer, marks taken in the wrapped backend's execution order right
 * before and after each forwarded call: on the CPU the wall clock (slots are synchronous), on
 * CUDA events recorded on the backend's stream (cad_cuda_event_timer, kernels/backend_cuda.cu), so
 * a slot's time is the GPU time between its two events (the kernels it launched, including any
 * gap inside the slot), not the host time of the launch. Marks are resolved only after a sync
 * (cad_timed_flush, or by the wrapper itself when the timer runs out of marks), so profiling does
 * not serialise the stream.
 *
 * No kernel knows about the wrapper: it needs no edit when a kernel changes, and a build fails
 * (a _Static_assert in timed_backend.c) when engine/backend.h gains a slot it does not forward.
 *
 * Not here: the train-step loop (engine/bench.c), printing (cli/cmd_bench.c).
 */
#ifndef CADDIE_TIMED_BACKEND_H
#define CADDIE_TIMED_BACKEND_H

#include "engine/backend.h"
#include "engine/status.h"

/* Time marks in a backend's execution order. mark returns a new mark's index, or -1 when all
 * `capacity` marks are in use (the caller then syncs, reads its spans and resets). span_ms is
 * valid only after the backend synced past both marks. */
typedef struct cad_slot_timer {
    const char *what; /* how times are taken: "wall clock", "CUDA events" */
    void *ctx;
    int capacity;
    int (*mark)(void *ctx);
    double (*span_ms)(void *ctx, int from, int to);
    void (*reset)(void *ctx);
    void (*destroy)(void *ctx);
} cad_slot_timer;

/* A wall-clock timer (CLOCK_MONOTONIC) for synchronous backends (cpu) with `capacity` marks. */
int cad_clock_timer_create(cad_slot_timer **out, int capacity, cad_err *e);
/* CUDA events on the stream of the CUDA backend `cuda` (from cad_backend_cuda), `capacity`
 * marks; implemented in kernels/backend_cuda.cu (builds with CADDIE_CUDA only). */
#ifdef __cplusplus
extern "C" {
#endif
int cad_cuda_event_timer_create(const cad_backend *cuda, cad_slot_timer **out, int capacity, cad_err *e);
#ifdef __cplusplus
}
#endif
void cad_slot_timer_free(cad_slot_timer *t); /* NULL is fine */

/* Number of slots of engine/backend.h (memory slots included). */
#define CAD_TIMED_NSLOTS 47

typedef struct cad_slot_stat {
    const char *slot; /* backend.h slot name */
    long calls;
    double ms;
} cad_slot_stat;

typedef struct cad_timed_backend cad_timed_backend;

/* Wrap inner with timer (neither is owned). *out's backend is cad_timed_backend_get(*out); its
 * name is inner's. Recording starts disabled: slots are forwarded without marks. */
int cad_timed_backend_create(const cad_backend *inner, cad_slot_timer *timer, cad_timed_backend **out,
                             cad_err *e);
void cad_timed_backend_free(cad_timed_backend *tb);
const cad_backend *cad_timed_backend_get(cad_timed_backend *tb);
/* Start (1) or stop (0) recording; stopping flushes. */
void cad_timed_backend_enable(cad_timed_backend *tb, int on);
/* Sync the inner backend and add every pending call's time to its slot's total. */
void cad_timed_flush(cad_timed_backend *tb);
/* Zero every count and total (pending marks are dropped). */
void cad_timed_reset(cad_timed_backend *tb);
/* The per-slot totals after a flush, CAD_TIMED_NSLOTS entries in backend.h order (calls 0 for a
 * slot never called). */
const cad_slot_stat *cad_timed_stats(const cad_timed_backend *tb);

#endif
