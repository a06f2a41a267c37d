/*
 * sched.h — which queued runs start now, and on which devices (pure policy, no I/O).
 *
 * Policy ("EASY backfilling", one reservation):
 *  1. The queue is taken in order (the runner sorts it: priority high first, then the order
 *     runs were queued). A run starts when enough devices are free; it gets the
 *     lowest-numbered free ones.
 *  2. The first run that does NOT fit (typically an 8-device run while 1-device runs are
 *     going) becomes the reservation: from the estimated end times of the running runs we
 *     compute the "shadow time" T at which enough devices will be free for it, and how many
 *     devices will be spare at T beyond its need.
 *  3. Runs behind the reservation may still start now (backfill) only if they fit in the
 *     free devices AND either their estimated end is no later than T, or they fit in the
 *     spare devices at T. So backfill never delays the reserved run (as far as estimates
 *     are right) and the wide run cannot be starved by a stream of narrow runs: once it is
 *     the head of the queue, devices that free up are held for it. A run with no estimate
 *     (infinite) never backfills.
 *  4. Only one reservation; runs behind it that do not fit simply wait.
 * Estimates come from the runner (mean duration of finished runs of the same sweep and
 * device count, else the run's timeout, else a default) — see runner/runner.c.
 * Not here: reading the queue, starting processes, the device list syntax of the CLI.
 */
#ifndef CADDIE_SCHED_H
#define CADDIE_SCHED_H

#include <stdint.h>

#define CAD_SCHED_MAX_DEVICES 64

/* A set of device slots (bit i = device/slot i). */
typedef uint64_t cad_sched_devset;

int cad_sched_devset_count(cad_sched_devset s);

/* Parse "0-7", "0,1,4-5", "3" into a set. Returns 0, or -1 for a malformed list or a
 * device >= CAD_SCHED_MAX_DEVICES. */
int cad_sched_devset_parse(const char *text, cad_sched_devset *out);

/* Write the devices of s as "0,1,2" into buf (always NUL-terminated). */
void cad_sched_devset_format(cad_sched_devset s, char *buf, int cap);

typedef struct cad_sched_running {
    cad_sched_devset devs;
    double est_end;        /* estimated end, same clock as now; may be in the past */
} cad_sched_running;

typedef struct cad_sched_queued {
    int ndev;              /* devices it needs */
    double est_s;          /* estimated duration in seconds; INFINITY = unknown */
} cad_sched_queued;

typedef struct cad_sched_pick {
    int index;             /* index into the queued array */
    cad_sched_devset devs;     /* devices it gets */
} cad_sched_pick;

typedef struct cad_sched_outcome {
    int n_picks;
    int reserved_index;    /* queue index holding the reservation, -1 if none */
    double shadow_time;    /* when the reserved run is estimated to start */
    int n_unrunnable;      /* queued runs needing more devices than `all` has */
} cad_sched_outcome;

/* Decide what starts now. all: every device the runner owns; running: what runs on them.
 * picks must have room for nq entries. */
void cad_sched_decide(cad_sched_devset all, const cad_sched_running *running, int nrun,
                      const cad_sched_queued *queue, int nq, double now, cad_sched_pick *picks,
                      cad_sched_outcome *out);

#endif
