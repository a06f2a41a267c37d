/*
 * cuda_emu.c — the runtime behind cuda_emu.h: fibre scheduler, barriers, warp exchange, the
 * host-memory CUDA runtime subset and a reference cuBLAS subset.
 *
 * One emulated launch at a time per OS thread. Within a launch the scheduler (running on the
 * caller's stack) owns a table of fibres for the current block; a fibre gives control back only
 * at a barrier/warp operation or at its end. The scheduler picks the next runnable fibre either
 * by a random priority order (starving low-priority fibres, which exposes ordering bugs) or
 * uniformly at random — the policy and priorities are redrawn at every __syncthreads — and
 * releases a warp operation the moment its last lane arrives. When nothing can run it releases
 * the block barrier if every thread waits there, or aborts: nothing can ever release the fibres
 * that wait, which on the GPU is a hang or undefined behaviour.
 *
 * Not compiled into libcaddie: the emulated-kernel tests #include this file (one translation
 * unit with the kernels they check), so the product binary carries no emulation code.
 * Not here: kernels, the choice of launch geometry (kernels/k_*.cuh do that).
 */
#include "kernels/emu/cuda_emu.h"
#include "engine/gemm_bf16.h" /* the bf16 rounding rule of the CPU backend */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

_Thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

enum emu_fibre_state { EMU_RUNNABLE, EMU_AT_BLOCK_BARRIER, EMU_AT_WARP_OP, EMU_DONE };
enum emu_warp_op { EMU_OP_SYNCWARP = 100, EMU_OP_BALLOT = 101, EMU_OP_MMA = 102, EMU_OP_LDMATRIX = 103 }; /* shuffles: emu_shfl_kind */
enum emu_vtype { EMU_VF, EMU_VD, EMU_VI, EMU_VU };

typedef union emu_value {
    float f;
    double d;
    int i;
    unsigned u;
} emu_value;

#define EMU_CP_MAX 32 /* pending cp.async copies per thread */

typedef struct emu_fibre {
    ucontext_t ctx;
    char *stack; /* usable stack (above the guard page) */
    dim3 tid;
    int linear, lane, warp;
    int state;
    const char *wait_file; /* where it waits (barrier or warp op) */
    int wait_line;
    /* warp operation in flight */
    int op;
    unsigned mask;
    int arg, vtype;
    emu_value val, result;
    /* EMU_OP_MMA: the lane's fragments (on its own stack, alive while it waits) */
    const unsigned *mma_a, *mma_b;
    const float *mma_c;
    float *mma_d;
    /* EMU_OP_LDMATRIX: the lane's row address and destination registers (arg: 2*num + trans) */
    const void *ldm_row;
    unsigned *ldm_out;
    /* cp.async copies not yet performed, each tagged with the group its next commit closes */
    struct emu_cp_pending {
        void *dst;
        const void *src;
        int group;
    } cp[EMU_CP_MAX];
    int ncp, cp_committed;
    void *asan_fake_stack;
} emu_fibre;

#define EMU_MAX_THREADS 1024

/* Per-OS-thread scheduler state. */
typedef struct emu_sched {
    emu_fibre *fibres; /* capacity EMU_MAX_THREADS */
    int nthreads;
    int cur; /* index of the running fibre, -1 on the scheduler */
    ucontext_t sched_ctx;
    const void *sched_stack_bottom; /* learned from ASan at the first switch */
    size_t sched_stack_size;
    void *sched_fake_stack;
    void (*entry)(const void *);
    const void *params;
    const char *kernel, *launch_file;
    int launch_line;
    unsigned char *dyn_shared;
    size_t dyn_shared_bytes;
    int *runq; /* runnable fibres (unordered) */
    int nrun;
    int *prio; /* priority rank of each fibre in this epoch (lower runs first) */
    int policy_priority;
    int warp_waiting[EMU_MAX_THREADS / 32]; /* lanes of each warp now at a warp operation */
} emu_sched;

#define EMU_STACK_BYTES (64 * 1024)
#define EMU_MAX_DYN_SHARED (48 * 1024)

static _Thread_local emu_sched sched;
static _Thread_local uint64_t emu_rng_state;
static _Thread_local int emu_rng_seeded;
static unsigned long long emu_switches;

/* ---- randomness ----------------------------------------------------------------------------- */

void emu_set_seed(uint64_t seed) {
    emu_rng_state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    emu_rng_seeded = 1;
}

static uint64_t emu_rand(void) {
    if (!emu_rng_seeded) {
        const char *s = getenv("CADDIE_EMU_SEED");
        emu_set_seed(s && *s ? strtoull(s, NULL, 10) : 1);
    }
    /* splitmix64 */
    uint64_t z = (emu_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void emu_shuffle(int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(emu_rand() % (uint64_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

unsigned long long emu_switch_count(void) { return emu_switches; }

/* ---- diagnostics ---------------------------------------------------------------------------- */

static void emu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void emu_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda_emu: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (sched.kernel)
        fprintf(stderr, " [kernel %s launched at %s:%d, block (%u,%u,%u)]", sched.kernel,
                sched.launch_file, sched.launch_line, blockIdx.x, blockIdx.y, blockIdx.z);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

static const char *emu_state_name(const emu_fibre *f) {
    switch (f->state) {
    case EMU_RUNNABLE: return "runnable";
    case EMU_AT_BLOCK_BARRIER: return "__syncthreads";
    case EMU_AT_WARP_OP:
        return f->op == EMU_OP_SYNCWARP ? "__syncwarp"
               : f->op == EMU_OP_BALLOT ? "__ballot_sync"
               : f->op == EMU_OP_MMA    ? "mma.sync"
               : f->op == EMU_OP_LDMATRIX ? "ldmatrix"
                                        : "__shfl_*_sync";
    default: return "exited";
    }
}

/* ---- fibre switching ------------------------------------------------------------------------ */

static emu_fibre *emu_self(void) {
    if (sched.cur < 0) emu_die("barrier or warp operation called outside an emulated kernel");
    return &sched.fibres[sched.cur];
}

static void emu_set_builtins(const emu_fibre *f) { threadIdx = f->tid; }

/* Fibre -> scheduler. Returns when the scheduler resumes this fibre. */
static void emu_yield(emu_fibre *f) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&f->asan_fake_stack, sched.sched_stack_bottom,
                                   sched.sched_stack_size);
#endif
    swapcontext(&f->ctx, &sched.sched_ctx);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake_stack, &sched.sched_stack_bottom,
                                    &sched.sched_stack_size);
#endif
}

static void emu_fibre_main(void) {
    emu_fibre *f = &sched.fibres[sched.cur];
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched.sched_stack_bottom, &sched.sched_stack_size);
#endif
    sched.entry(sched.params);
    f->state = EMU_DONE;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(NULL, sched.sched_stack_bottom, sched.sched_stack_size);
#endif
    setcontext(&sched.sched_ctx);
    emu_die("setcontext back to the scheduler failed");
}

/* Scheduler -> fibre i, until it blocks or ends. */
static void emu_run_fibre(int i) {
    emu_fibre *f = &sched.fibres[i];
    sched.cur = i;
    emu_set_builtins(f);
    emu_switches++;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&sched.sched_fake_stack, f->stack, EMU_STACK_BYTES);
#endif
    swapcontext(&sched.sched_ctx, &f->ctx);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(sched.sched_fake_stack, NULL, NULL);
#endif
    sched.cur = -1;
}

static void emu_sched_init(void) {
    if (sched.fibres) return;
    sched.fibres = calloc(EMU_MAX_THREADS, sizeof *sched.fibres);
    sched.runq = calloc(EMU_MAX_THREADS, sizeof *sched.runq);
    sched.prio = calloc(EMU_MAX_THREADS, sizeof *sched.prio);
    sched.dyn_shared = malloc(EMU_MAX_DYN_SHARED);
    if (!sched.fibres || !sched.runq || !sched.prio || !sched.dyn_shared) emu_die("out of memory");
    sched.cur = -1;
}

/* Stacks are mapped on first use and kept (a guard page below each catches overflow). */
static char *emu_stack(int i) {
    static _Thread_local char *stacks[EMU_MAX_THREADS];
    if (!stacks[i]) {
        long page = sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, EMU_STACK_BYTES + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) emu_die("mmap of a %d KiB fibre stack failed", EMU_STACK_BYTES / 1024);
        if (mprotect(m, page, PROT_NONE) != 0) emu_die("mprotect of a stack guard page failed");
        stacks[i] = m + page;
    }
    return stacks[i];
}

/* ---- barriers ------------------------------------------------------------------------------- */

void emu_syncthreads(const char *file, int line) {
    emu_fibre *f = emu_self();
    f->state = EMU_AT_BLOCK_BARRIER;
    f->wait_file = file;
    f->wait_line = line;
    emu_yield(f);
}

static emu_value emu_warp_op(int op, unsigned mask, emu_value v, int vtype, int arg,
                             const char *file, int line) {
    emu_fibre *f = emu_self();
    if (!(mask & (1u << f->lane)))
        emu_die("%s:%d: thread %d (lane %d) calls a warp operation with mask 0x%08x that excludes "
                "its own lane", file, line, f->linear, f->lane, mask);
    f->state = EMU_AT_WARP_OP;
    sched.warp_waiting[f->warp]++;
    f->op = op;
    f->mask = mask;
    f->val = v;
    f->vtype = vtype;
    f->arg = arg;
    f->wait_file = file;
    f->wait_line = line;
    emu_yield(f);
    return f->result;
}

void emu_syncwarp(unsigned mask, const char *file, int line) {
    emu_value v;
    v.u = 0;
    (void)emu_warp_op(EMU_OP_SYNCWARP, mask, v, EMU_VU, 0, file, line);
}

float emu_shfl_f(unsigned mask, float v, int arg, int kind, const char *file, int line) {
    emu_value x;
    x.f = v;
    return emu_warp_op(kind, mask, x, EMU_VF, arg, file, line).f;
}
double emu_shfl_d(unsigned mask, double v, int arg, int kind, const char *file, int line) {
    emu_value x;
    x.d = v;
    return emu_warp_op(kind, mask, x, EMU_VD, arg, file, line).d;
}
int emu_shfl_i(unsigned mask, int v, int arg, int kind, const char *file, int line) {
    emu_value x;
    x.i = v;
    return emu_warp_op(kind, mask, x, EMU_VI, arg, file, line).i;
}
unsigned emu_shfl_u(unsigned mask, unsigned v, int arg, int kind, const char *file, int line) {
    emu_value x;
    x.u = v;
    return emu_warp_op(kind, mask, x, EMU_VU, arg, file, line).u;
}

unsigned emu_ballot(unsigned mask, int pred, const char *file, int line) {
    emu_value x;
    x.i = pred;
    return emu_warp_op(EMU_OP_BALLOT, mask, x, EMU_VI, 0, file, line).u;
}

void emu_mma_bf16_16816(float *d, const unsigned *a, const unsigned *b, const float *c,
                        const char *file, int line) {
    emu_fibre *f = emu_self();
    f->mma_a = a;
    f->mma_b = b;
    f->mma_c = c;
    f->mma_d = d;
    emu_value v;
    v.u = 0;
    (void)emu_warp_op(EMU_OP_MMA, 0xffffffffu, v, EMU_VU, 0, file, line);
}

void emu_ldmatrix(unsigned *r, int num, int trans, const void *row, const char *file, int line) {
    if (num != 1 && num != 2 && num != 4) emu_die("%s:%d: ldmatrix .x%d (x1, x2 or x4)", file, line, num);
    emu_fibre *f = emu_self();
    f->ldm_row = row;
    f->ldm_out = r;
    emu_value v;
    v.u = 0;
    (void)emu_warp_op(EMU_OP_LDMATRIX, 0xffffffffu, v, EMU_VU, 2 * num + (trans != 0), file, line);
}

/* The whole warp's ldmatrix, once every lane deposited its row address (layout: cuda_emu.h). */
static void emu_ldmatrix_release(emu_fibre *lanes) {
    int arg = lanes[0].arg, num = arg / 2, trans = arg & 1;
    for (int l = 1; l < 32; l++)
        if (lanes[l].arg != arg)
            emu_die("%s:%d: ldmatrix lanes disagree: lane 0 .x%d%s, lane %d .x%d%s", lanes[0].wait_file,
                    lanes[0].wait_line, num, trans ? ".trans" : "", l, lanes[l].arg / 2,
                    lanes[l].arg & 1 ? ".trans" : "");
    for (int i = 0; i < num; i++) {
        uint16_t M[8][8]; /* matrix i as stored: row r from lane 8i + r */
        for (int r = 0; r < 8; r++) {
            const emu_fibre *src = &lanes[8 * i + r];
            if ((uintptr_t)src->ldm_row & 15u)
                emu_die("%s:%d: ldmatrix row address %p of lane %d is not 16-byte aligned",
                        src->wait_file, src->wait_line, src->ldm_row, 8 * i + r);
            memcpy(M[r], src->ldm_row, sizeof M[r]);
        }
        for (int t = 0; t < 32; t++) {
            int a = t / 4, c = 2 * (t % 4);
            unsigned lo = trans ? M[c][a] : M[a][c], hi = trans ? M[c + 1][a] : M[a][c + 1];
            lanes[t].ldm_out[i] = lo | hi << 16;
        }
    }
}

static void emu_cp_check(const void *p, const char *what, const char *file, int line) {
    if ((uintptr_t)p & 15u) emu_die("%s:%d: cp.async %s address %p is not 16-byte aligned", file, line, what, p);
}

void emu_cp_async16(void *dst, const void *src, const char *file, int line) {
    emu_fibre *f = emu_self();
    emu_cp_check(dst, "shared", file, line);
    emu_cp_check(src, "global", file, line);
    if (emu_rand() & 1) { /* completes at once */
        memcpy(dst, src, 16);
        return;
    }
    if (f->ncp == EMU_CP_MAX)
        emu_die("%s:%d: thread %d has %d cp.async copies pending (emulator limit)", file, line, f->linear,
                EMU_CP_MAX);
    f->cp[f->ncp].dst = dst;
    f->cp[f->ncp].src = src;
    f->cp[f->ncp].group = f->cp_committed;
    f->ncp++;
}

void emu_cp_async_commit(void) { emu_self()->cp_committed++; }

void emu_cp_async_wait(int n, const char *file, int line) {
    emu_fibre *f = emu_self();
    if (n < 0) emu_die("%s:%d: cp.async.wait_group %d", file, line, n);
    int keep = 0;
    for (int i = 0; i < f->ncp; i++) {
        struct emu_cp_pending c = f->cp[i];
        if (c.group < f->cp_committed - n) memcpy(c.dst, c.src, 16); /* its group must be complete */
        else f->cp[keep++] = c;
    }
    f->ncp = keep;
}

__nv_bfloat16 __float2bfloat16_rn(float f) {
    __nv_bfloat16 h;
    h.x = cad_bf16_from_float(f);
    return h;
}

static float emu_bf16_lo(unsigned r) { __nv_bfloat16 h; h.x = (unsigned short)(r & 0xffffu); return __bfloat162float(h); }
static float emu_bf16_hi(unsigned r) { __nv_bfloat16 h; h.x = (unsigned short)(r >> 16); return __bfloat162float(h); }

/* The whole warp's m16n8k16 product, once every lane deposited its fragments (layout: cuda_emu.h). */
static void emu_mma_release(emu_fibre *lanes) {
    float A[16][16], B[16][8], D[16][8];
    for (int l = 0; l < 32; l++) {
        const emu_fibre *f = &lanes[l];
        int g = l >> 2, t = l & 3;
        for (int h = 0; h < 2; h++) {
            float (*lo)(unsigned) = emu_bf16_lo, (*hi)(unsigned) = emu_bf16_hi;
            /* PTX ISA, m16n8k16 A fragment: a[h] row g+8h cols 2t+{0,1}; a[h+2] row g+8h
             * cols 2t+8+{0,1} (register order a0..a3 = (g,lo k) (g+8,lo k) (g,hi k) (g+8,hi k)) */
            A[g + 8 * h][2 * t] = lo(f->mma_a[h]);
            A[g + 8 * h][2 * t + 1] = hi(f->mma_a[h]);
            A[g + 8 * h][2 * t + 8] = lo(f->mma_a[h + 2]);
            A[g + 8 * h][2 * t + 9] = hi(f->mma_a[h + 2]);
            /* b[h] rows 2t+8h+{0,1}, col g */
            B[2 * t + 8 * h][g] = lo(f->mma_b[h]);
            B[2 * t + 8 * h + 1][g] = hi(f->mma_b[h]);
            /* c[2h], c[2h+1] row g+8h cols 2t+{0,1} */
            D[g + 8 * h][2 * t] = f->mma_c[2 * h];
            D[g + 8 * h][2 * t + 1] = f->mma_c[2 * h + 1];
        }
    }
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float acc = D[i][j];
            for (int k = 0; k < 16; k++) acc += A[i][k] * B[k][j]; /* exact products */
            D[i][j] = acc;
        }
    for (int l = 0; l < 32; l++) {
        int g = l >> 2, t = l & 3;
        for (int h = 0; h < 2; h++) {
            lanes[l].mma_d[2 * h] = D[g + 8 * h][2 * t];
            lanes[l].mma_d[2 * h + 1] = D[g + 8 * h][2 * t + 1];
        }
    }
}

void *emu_dynamic_shared(void) {
    if (sched.cur < 0) emu_die("dynamic shared memory used outside an emulated kernel");
    return sched.dyn_shared_bytes ? sched.dyn_shared : NULL;
}

/* Try to complete the warp operation `first` waits at: it completes when every lane of its mask
 * has arrived at the same operation. Returns 1 when those lanes were released (made runnable,
 * and appended to the run queue). Lanes outside the mask are not involved (disjoint masks in
 * divergent branches are legal). With `final` (nothing else can run) a lane of the mask that is
 * not there can never arrive: abort with where it is. */
static int emu_try_release_warp(emu_fibre *first, int final) {
    emu_fibre *fs = sched.fibres;
    int w = first->warp, base = w * 32;
    int n = sched.nthreads - base < 32 ? sched.nthreads - base : 32;
    unsigned mask = first->mask;
    unsigned present = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
    if (mask & ~present)
        emu_die("%s:%d: warp %d has %d threads but the mask 0x%08x names lanes that do not exist",
                first->wait_file, first->wait_line, w, n, mask);
    /* cheap early out: fewer lanes wait than the mask names */
    if (!final && sched.warp_waiting[w] < __builtin_popcount(mask)) return 0;
    for (int l = 0; l < n; l++) {
        if (!(mask & (1u << l))) continue;
        emu_fibre *f = &fs[base + l];
        if (f->state == EMU_RUNNABLE) return 0; /* not arrived yet */
        int same = f->state == EMU_AT_WARP_OP && f->mask == mask && f->op == first->op &&
                   f->wait_line == first->wait_line && f->vtype == first->vtype &&
                   (f->wait_file == first->wait_file || strcmp(f->wait_file, first->wait_file) == 0);
        if (same) continue;
        /* not here (yet): while other fibres can run, its own operation may still complete */
        if (!final) return 0;
        if (f->state == EMU_DONE)
            emu_die("%s:%d: warp operation of warp %d (mask 0x%08x) waits for lane %d, which has "
                    "exited", first->wait_file, first->wait_line, w, mask, l);
        if (f->state != EMU_AT_WARP_OP)
            emu_die("%s:%d: warp operation of warp %d (mask 0x%08x) waits for lane %d, which is "
                    "at %s (%s:%d)", first->wait_file, first->wait_line, w, mask, l,
                    emu_state_name(f), f->wait_file, f->wait_line);
        emu_die("warp %d: lane %d is at %s %s:%d (mask 0x%08x) but lane %d is at %s:%d "
                "(mask 0x%08x): divergent warp operations", w, first->lane,
                emu_state_name(first), first->wait_file, first->wait_line, first->mask, l,
                f->wait_file, f->wait_line, f->mask);
    }
    /* everyone in the mask arrived: exchange at once (so a lane that runs ahead cannot
     * overwrite a value another lane has yet to read) */
    if (first->op == EMU_OP_MMA) {
        if (n != 32 || mask != 0xffffffffu)
            emu_die("%s:%d: mma.sync in warp %d of %d threads (mask 0x%08x): it needs all 32 lanes",
                    first->wait_file, first->wait_line, w, n, mask);
        emu_mma_release(&fs[base]);
    }
    if (first->op == EMU_OP_LDMATRIX) {
        if (n != 32 || mask != 0xffffffffu)
            emu_die("%s:%d: ldmatrix in warp %d of %d threads: it needs all 32 lanes",
                    first->wait_file, first->wait_line, w, n);
        emu_ldmatrix_release(&fs[base]);
    }
    unsigned ballot = 0;
    for (int l = 0; l < n; l++)
        if ((mask & (1u << l)) && fs[base + l].val.i) ballot |= 1u << l;
    for (int l = 0; l < n; l++) {
        if (!(mask & (1u << l))) continue;
        emu_fibre *f = &fs[base + l];
        int src = l;
        switch (f->op) {
        case EMU_SHFL_IDX: src = f->arg & 31; break;
        case EMU_SHFL_XOR: src = l ^ f->arg; break;
        case EMU_SHFL_DOWN: src = l + f->arg < 32 ? l + f->arg : l; break;
        case EMU_SHFL_UP: src = l - f->arg >= 0 ? l - f->arg : l; break;
        default: break; /* __syncwarp */
        }
        if (f->op == EMU_OP_MMA || f->op == EMU_OP_LDMATRIX) continue;
        if (f->op == EMU_OP_BALLOT) {
            f->result.u = ballot;
            continue;
        }
        if (src < 0 || src > 31 || !(mask & (1u << src)))
            emu_die("%s:%d: lane %d of warp %d reads lane %d, which is not in the mask 0x%08x "
                    "(undefined value on the GPU)", f->wait_file, f->wait_line, l, w, src, mask);
        f->result = fs[base + src].val;
    }
    for (int l = 0; l < n; l++)
        if (mask & (1u << l)) {
            fs[base + l].state = EMU_RUNNABLE;
            sched.warp_waiting[w]--;
            sched.runq[sched.nrun++] = base + l;
        }
    return 1;
}

/* Release the block barrier if every live thread waits at the same one; abort if it can never
 * be released. Called only when nothing is runnable and no warp could be released. */
static void emu_release_block_or_die(void) {
    emu_fibre *fs = sched.fibres;
    int waiting = 0, done = 0, first_w = -1, first_d = -1;
    for (int i = 0; i < sched.nthreads; i++) {
        if (fs[i].state == EMU_AT_BLOCK_BARRIER) {
            waiting++;
            if (first_w < 0) first_w = i;
        } else if (fs[i].state == EMU_DONE) {
            done++;
            if (first_d < 0) first_d = i;
        }
    }
    if (waiting == 0 || waiting + done != sched.nthreads) {
        /* somebody waits at a warp op that cannot complete */
        for (int i = 0; i < sched.nthreads; i++)
            if (fs[i].state == EMU_AT_WARP_OP)
                emu_die("deadlock: thread %d waits at %s (%s:%d, mask 0x%08x) and its warp can "
                        "never complete it (%d threads at __syncthreads, %d exited)", i,
                        emu_state_name(&fs[i]), fs[i].wait_file, fs[i].wait_line, fs[i].mask,
                        waiting, done);
        emu_die("scheduler found no runnable thread and no waiting one");
    }
    if (done)
        emu_die("barrier not reached by every thread: %d of %d threads wait at __syncthreads "
                "(%s:%d) but %d exited (e.g. thread %d): a __syncthreads in divergent code",
                waiting, sched.nthreads, fs[first_w].wait_file, fs[first_w].wait_line, done,
                first_d);
    for (int i = 0; i < sched.nthreads; i++)
        if (fs[i].wait_line != fs[first_w].wait_line ||
            strcmp(fs[i].wait_file, fs[first_w].wait_file) != 0)
            emu_die("threads wait at different __syncthreads: thread %d at %s:%d, thread %d at "
                    "%s:%d (divergent barrier)", first_w, fs[first_w].wait_file,
                    fs[first_w].wait_line, i, fs[i].wait_file, fs[i].wait_line);
    for (int i = 0; i < sched.nthreads; i++) fs[i].state = EMU_RUNNABLE;
}

/* ---- launches ------------------------------------------------------------------------------- */

/* Fresh fibre i of the current block (its own function: getcontext returns twice, which would
 * make the caller's loop variables "might be clobbered"). */
static __attribute__((noinline)) void emu_fibre_setup(int i) {
    emu_fibre *f = &sched.fibres[i];
    memset(f, 0, sizeof *f);
    f->linear = i;
    f->lane = i % 32;
    f->warp = i / 32;
    f->tid.x = (unsigned)i % blockDim.x;
    f->tid.y = ((unsigned)i / blockDim.x) % blockDim.y;
    f->tid.z = (unsigned)i / (blockDim.x * blockDim.y);
    f->state = EMU_RUNNABLE;
    f->stack = emu_stack(i);
#if EMU_ASAN
    /* frames of the previous block's fibres never returned: clear their shadow */
    __asan_unpoison_memory_region(f->stack, EMU_STACK_BYTES);
#endif
    if (getcontext(&f->ctx) != 0) emu_die("getcontext failed");
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = EMU_STACK_BYTES;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, emu_fibre_main, 0);
    /* makecontext has consumed the stack description. Clearing it stops ASan's swapcontext
     * interceptor from wiping this stack's shadow at every switch (2 x 8 KiB of memset per
     * resume, and it would erase the redzones of live kernel frames); the stack was unpoisoned
     * above and the fibre switches are annotated instead. */
    f->ctx.uc_stack.ss_sp = NULL;
    f->ctx.uc_stack.ss_size = 0;
}

/* A new scheduling epoch (block start, after each __syncthreads): fresh random priorities and a
 * fresh policy. "priority" always runs the highest-priority runnable fibre, which starves the
 * low-priority ones until everything else blocks (the schedule that exposes most ordering bugs,
 * as in probabilistic concurrency testing); "uniform" picks any runnable fibre at random. */
static void emu_new_epoch(void) {
    int nt = sched.nthreads;
    for (int i = 0; i < nt; i++) sched.prio[i] = i;
    emu_shuffle(sched.prio, nt);
    sched.policy_priority = (int)(emu_rand() & 1);
}

static int emu_pick(void) {
    int k = 0;
    if (sched.policy_priority) {
        for (int j = 1; j < sched.nrun; j++)
            if (sched.prio[sched.runq[j]] < sched.prio[sched.runq[k]]) k = j;
    } else {
        k = (int)(emu_rand() % (uint64_t)sched.nrun);
    }
    int i = sched.runq[k];
    sched.runq[k] = sched.runq[--sched.nrun];
    return i;
}

static void emu_run_block(void) {
    emu_fibre *fs = sched.fibres;
    int nt = sched.nthreads;
    for (int i = 0; i < nt; i++) emu_fibre_setup(i);
    if (sched.dyn_shared_bytes) memset(sched.dyn_shared, 0xff, sched.dyn_shared_bytes);
    sched.nrun = 0;
    for (int i = 0; i < nt; i++) sched.runq[sched.nrun++] = i;
    memset(sched.warp_waiting, 0, sizeof sched.warp_waiting);
    emu_new_epoch();
    for (;;) {
        if (sched.nrun) {
            int i = emu_pick();
            emu_run_fibre(i);
            /* release a warp as soon as its last lane arrives, so the other warps' progress
             * interleaves with it */
            if (fs[i].state == EMU_AT_WARP_OP) emu_try_release_warp(&fs[i], 0);
            continue;
        }
        int live = 0;
        for (int i = 0; i < nt; i++) live += fs[i].state != EMU_DONE;
        if (!live) return;
        /* nothing runnable: any warp op still waiting can never complete -> diagnose */
        for (int i = 0; i < nt; i++)
            if (fs[i].state == EMU_AT_WARP_OP && emu_try_release_warp(&fs[i], 1)) break;
        if (sched.nrun) continue;
        emu_release_block_or_die();
        for (int i = 0; i < nt; i++) sched.runq[sched.nrun++] = i;
        emu_new_epoch();
    }
}

void emu_launch(void (*entry)(const void *), const void *params, dim3 grid, dim3 block,
                size_t shmem, const char *kernel, const char *file, int line) {
    emu_sched_init();
    if (sched.kernel)
        emu_die("kernel %s launched (%s:%d) from inside another emulated kernel", kernel, file,
                line);
    sched.kernel = kernel;
    sched.launch_file = file;
    sched.launch_line = line;
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > EMU_MAX_THREADS || block.z > 64)
        emu_die("invalid launch: block (%u,%u,%u) has %llu threads (1..1024, z <= 64)", block.x,
                block.y, block.z, nthreads);
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 2147483647u)
        emu_die("invalid launch: grid (%u,%u,%u) (each >= 1, y,z <= 65535)", grid.x, grid.y,
                grid.z);
    if (shmem > EMU_MAX_DYN_SHARED)
        emu_die("invalid launch: %zu bytes of dynamic shared memory (default limit %d)", shmem,
                EMU_MAX_DYN_SHARED);
    sched.entry = entry;
    sched.params = params;
    sched.nthreads = (int)nthreads;
    sched.dyn_shared_bytes = shmem;
    gridDim = grid;
    blockDim = block;
    /* blocks in a random order (a permutation, shuffled by Fisher-Yates over the linear ids) */
    unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
    uint64_t *perm = malloc(nblocks * sizeof *perm);
    if (!perm) emu_die("out of memory for %llu blocks", nblocks);
    for (unsigned long long b = 0; b < nblocks; b++) perm[b] = b;
    for (unsigned long long b = nblocks; b > 1; b--) {
        unsigned long long j = emu_rand() % b;
        uint64_t t = perm[b - 1];
        perm[b - 1] = perm[j];
        perm[j] = t;
    }
    for (unsigned long long b = 0; b < nblocks; b++) {
        uint64_t id = perm[b];
        blockIdx.x = (unsigned)(id % grid.x);
        blockIdx.y = (unsigned)((id / grid.x) % grid.y);
        blockIdx.z = (unsigned)(id / ((uint64_t)grid.x * grid.y));
        emu_run_block();
    }
    free(perm);
    sched.kernel = NULL;
}

/* ---- runtime subset ------------------------------------------------------------------------- */

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    }
    return "unknown error";
}

/* Launch errors abort inside emu_launch, so there is never a pending one. */
cudaError_t cudaGetLastError(void) { return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    size_t rounded = (bytes + 255) & ~(size_t)255; /* cudaMalloc aligns to 256 bytes */
    *p = aligned_alloc(256, rounded ? rounded : 256);
    if (!*p) return cudaErrorMemoryAllocation;
    /* device memory is not zeroed: make reading it before writing visible */
    memset(*p, 0xff, rounded ? rounded : 256);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s) {
    (void)kind;
    (void)s;
    if (bytes) memcpy(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    (void)s;
    if (bytes) memset(p, value, bytes);
    return cudaSuccess;
}

struct emu_stream { int unused; };
cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = calloc(1, sizeof **s);
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) { free(s); return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; return cudaSuccess; }

/* ---- cuBLAS subset -------------------------------------------------------------------------- */

struct emu_cublas { cudaStream_t stream; };

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = calloc(1, sizeof **h);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) { free(h); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

/* Column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, fp32 accumulation in k order;
 * beta == 0 does not read C (cuBLAS semantics). Argument checks are cuBLAS's. */
/* bf16 != 0: operands rounded to bfloat16 first (CUBLAS_COMPUTE_32F_FAST_16BF). */
static cublasStatus_t emu_gemm_one(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                   int k, float alpha, const float *A, int lda, const float *B,
                                   int ldb, float beta, float *C, int ldc, int bf16) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            if (alpha != 0.0f)
                for (int p = 0; p < k; p++) {
                    float a = ta == CUBLAS_OP_N ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                    float b = tb == CUBLAS_OP_N ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                    if (bf16) a = cad_bf16_to_float(cad_bf16_from_float(a)), b = cad_bf16_to_float(cad_bf16_from_float(b));
                    acc += a * b;
                }
            float *c = &C[(size_t)j * ldc + i];
            *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t emu_sgemm_check(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                      int m, int n, int k, int lda, int ldb, int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
        m < 0 || n < 0 || k < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
    if (lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cuda_emu: cublasSgemm: bad leading dimension (m=%d n=%d k=%d ta=%d tb=%d "
                "lda=%d ldb=%d ldc=%d)\n", m, n, k, ta, tb, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc) {
    cublasStatus_t st = emu_sgemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    return emu_gemm_one(ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, 0);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long strideA, const float *B, int ldb,
                                         long long strideB, const float *beta, float *C, int ldc,
                                         long long strideC, int batch) {
    cublasStatus_t st = emu_sgemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int b = 0; b < batch; b++)
        emu_gemm_one(ta, tb, m, n, k, *alpha, A + b * strideA, lda, B + b * strideB, ldb, *beta,
                     C + b * strideC, ldc, 0);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLAS subset: bf16 operands, stream query ---------------------------------------------- */

cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!s) return CUBLAS_STATUS_INVALID_VALUE;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

/* The bf16 x bf16 -> fp32 product of cublasGemm(StridedBatched)Ex (leading dimensions already
 * validated): operands widened exactly, fp32 accumulation in k order, beta == 0 does not read C. */
static cublasStatus_t emu_gemm_ex_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                       const void *alpha, const void *A, cudaDataType_t Atype, int lda,
                                       long long strideA, const void *B, cudaDataType_t Btype, int ldb,
                                       long long strideB, const void *beta, void *C, cudaDataType_t Ctype,
                                       int ldc, long long strideC, int batch, cublasComputeType_t compute,
                                       cublasGemmAlgo_t algo) {
    if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || Ctype != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F ||
        algo != CUBLAS_GEMM_DEFAULT || batch < 0) {
        fprintf(stderr, "cuda_emu: cublasGemmEx: unsupported bf16 combination (A %d B %d C %d compute %d "
                "algo %d batch %d)\n", Atype, Btype, Ctype, compute, algo, batch);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    float al = *(const float *)alpha, bt = *(const float *)beta;
    for (int q = 0; q < batch; q++) {
        const uint16_t *a = (const uint16_t *)A + q * strideA, *b = (const uint16_t *)B + q * strideB;
        float *c = (float *)C + q * strideC;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                if (al != 0.0f)
                    for (int p = 0; p < k; p++) {
                        uint16_t x = ta == CUBLAS_OP_N ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                        uint16_t y = tb == CUBLAS_OP_N ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                        acc += cad_bf16_to_float(x) * cad_bf16_to_float(y);
                    }
                float *o = &c[(size_t)j * ldc + i];
                *o = bt == 0.0f ? al * acc : al * acc + bt * *o;
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                          int m, int n, int k, const void *alpha, const void *A,
                                          cudaDataType_t Atype, int lda, long long strideA,
                                          const void *B, cudaDataType_t Btype, int ldb,
                                          long long strideB, const void *beta, void *C,
                                          cudaDataType_t Ctype, int ldc, long long strideC,
                                          int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
    cublasStatus_t st = emu_sgemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (Atype == CUDA_R_16BF || Btype == CUDA_R_16BF)
        return emu_gemm_ex_bf16(ta, tb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta,
                                C, Ctype, ldc, strideC, batch, compute, algo);
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F || algo != CUBLAS_GEMM_DEFAULT ||
        (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16BF) || batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    const float *a = A, *b = B;
    float *c = C, al = *(const float *)alpha, be = *(const float *)beta;
    for (int i = 0; i < batch; i++)
        emu_gemm_one(ta, tb, m, n, k, al, a + i * strideA, lda, b + i * strideB, ldb, be, c + i * strideC, ldc,
                     compute == CUBLAS_COMPUTE_32F_FAST_16BF);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda,
                            const void *B, cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta,
                                      C, Ctype, ldc, 0, 1, compute, algo);
}

cublasStatus_t cublasSsyrk(cublasHandle_t h, cublasFillMode_t uplo, cublasOperation_t trans, int n,
                           int k, const float *alpha, const float *A, int lda, const float *beta,
                           float *C, int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) ||
        (trans != CUBLAS_OP_N && trans != CUBLAS_OP_T) || n < 0 || k < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int arows = trans == CUBLAS_OP_N ? n : k;
    if (lda < (arows > 1 ? arows : 1) || ldc < (n > 1 ? n : 1)) {
        fprintf(stderr, "cuda_emu: cublasSsyrk: bad leading dimension (n=%d k=%d trans=%d lda=%d "
                "ldc=%d)\n", n, k, trans, lda, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int j = 0; j < n; j++)
        for (int i = uplo == CUBLAS_FILL_MODE_UPPER ? 0 : j; i < (uplo == CUBLAS_FILL_MODE_UPPER ? j + 1 : n); i++) {
            float acc = 0.0f;
            if (*alpha != 0.0f)
                for (int p = 0; p < k; p++) {
                    /* op(A)[i,p] * op(A)[j,p] */
                    float a = trans == CUBLAS_OP_N ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                    float b = trans == CUBLAS_OP_N ? A[(size_t)p * lda + j] : A[(size_t)j * lda + p];
                    acc += a * b;
                }
            float *c = &C[(size_t)j * ldc + i];
            *c = *beta == 0.0f ? *alpha * acc : *alpha * acc + *beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}
