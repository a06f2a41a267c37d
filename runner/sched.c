/*
 * sched.c — the runner's packing policy (documented in sched.h). Pure functions so the
 * policy is unit-tested without processes (tests/unit/test_runner_sched.c).
 */
#include "runner/sched.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cad_sched_devset_count(cad_sched_devset s) {
    return __builtin_popcountll(s);
}

int cad_sched_devset_parse(const char *text, cad_sched_devset *out) {
    cad_sched_devset s = 0;
    const char *p = text;
    if (!p || !*p) return -1;
    for (;;) {
        if (!isdigit((unsigned char)*p)) return -1;
        char *end;
        long a = strtol(p, &end, 10), b = a;
        p = end;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p)) return -1;
            b = strtol(p, &end, 10);
            p = end;
        }
        if (a < 0 || b < a || b >= CAD_SCHED_MAX_DEVICES) return -1;
        for (long i = a; i <= b; i++) s |= (cad_sched_devset)1 << i;
        if (*p == 0) break;
        if (*p != ',') return -1;
        p++;
    }
    *out = s;
    return 0;
}

void cad_sched_devset_format(cad_sched_devset s, char *buf, int cap) {
    int len = 0;
    buf[0] = 0;
    for (int i = 0; i < CAD_SCHED_MAX_DEVICES && len < cap; i++) {
        if (!(s >> i & 1)) continue;
        int n = snprintf(buf + len, (size_t)(cap - len), "%s%d", len ? "," : "", i);
        if (n < 0 || n >= cap - len) break;
        len += n;
    }
}

/* The n lowest devices of free_set (caller checked there are n). */
static cad_sched_devset take_lowest(cad_sched_devset free_set, int n) {
    cad_sched_devset got = 0;
    for (int i = 0; i < CAD_SCHED_MAX_DEVICES && n > 0; i++)
        if (free_set >> i & 1) {
            got |= (cad_sched_devset)1 << i;
            n--;
        }
    return got;
}

typedef struct end_event {
    double t;
    int ndev;
} end_event;

static int end_cmp(const void *a, const void *b) {
    double x = ((const end_event *)a)->t, y = ((const end_event *)b)->t;
    return x < y ? -1 : x > y;
}

void cad_sched_decide(cad_sched_devset all, const cad_sched_running *running, int nrun,
                      const cad_sched_queued *queue, int nq, double now, cad_sched_pick *picks,
                      cad_sched_outcome *out) {
    memset(out, 0, sizeof *out);
    out->reserved_index = -1;
    out->shadow_time = INFINITY;
    cad_sched_devset busy = 0;
    for (int i = 0; i < nrun; i++) busy |= running[i].devs;
    cad_sched_devset free_set = all & ~busy;
    int total = cad_sched_devset_count(all);
    /* end events of running runs plus the runs started in this call */
    end_event *ends = malloc(sizeof *ends * (size_t)(nrun + nq + 1));
    int nend = 0;
    for (int i = 0; i < nrun; i++) {
        double t = running[i].est_end < now ? now : running[i].est_end;
        ends[nend++] = (end_event){t, cad_sched_devset_count(running[i].devs & all)};
    }
    int spare_at_shadow = 0;
    for (int q = 0; q < nq; q++) {
        int need = queue[q].ndev < 1 ? 1 : queue[q].ndev;
        if (need > total) {
            out->n_unrunnable++;
            continue;
        }
        int nfree = cad_sched_devset_count(free_set);
        if (out->reserved_index < 0) {
            if (need <= nfree) {
                cad_sched_devset d = take_lowest(free_set, need);
                free_set &= ~d;
                picks[out->n_picks++] = (cad_sched_pick){q, d};
                ends[nend++] = (end_event){now + queue[q].est_s, need};
                continue;
            }
            /* q is the head that does not fit: reserve, compute when it can start */
            out->reserved_index = q;
            qsort(ends, (size_t)nend, sizeof *ends, end_cmp);
            int avail = nfree;
            double t = INFINITY;
            int k = 0;
            for (; k < nend && avail < need; k++) {
                avail += ends[k].ndev;
                t = ends[k].t;
            }
            for (; k < nend && ends[k].t <= t; k++) avail += ends[k].ndev; /* same moment */
            out->shadow_time = avail >= need ? t : INFINITY;
            spare_at_shadow = avail >= need ? avail - need : 0;
            continue;
        }
        if (need > nfree) continue;
        int ends_in_time = now + queue[q].est_s <= out->shadow_time;
        int fits_spare = need <= spare_at_shadow;
        if (!ends_in_time && !fits_spare) continue;
        if (!ends_in_time) spare_at_shadow -= need;
        cad_sched_devset d = take_lowest(free_set, need);
        free_set &= ~d;
        picks[out->n_picks++] = (cad_sched_pick){q, d};
    }
    free(ends);
}
