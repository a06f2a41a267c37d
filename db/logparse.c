/*
 * logparse.c — the state machine behind logparse.h: classifies each line of a
 * train_gpt.py-style log (printed source code, hyperparameter blocks, step lines, size
 * lines, final evaluation lines, noise) and keeps what a run summary needs.
 *
 * Not here: file or pipe reading, the run directory, the DB. Nothing here allocates per
 * line except the growth of the line scratch buffer and the parameter table.
 *
 * Grammar, as found in the Parameter Golf record folders (tests/fixtures/logs):
 *
 * Line prefixes stripped first: a unix timestamp "1776142348.135 " (the 2026-04-13
 * records), a clock "[19:23:20] " (driver scripts), and everything up to the last '\r'
 * (progress bars that redraw a line).
 *
 * Code skipping. train_gpt.py logs its own source, then a line of 100 '='. A code block
 * starts at a line that can only be Python at column 0 ('"""', "import x", "from x import",
 * "def ", "class ", "@", "#", "if __name__", a lone docstring line '"Ternary ..."') and
 * ends at a line of at least 50 '='. Code that starts mid-statement (a log copied after
 * a truncated console capture) is caught at its first such line; the few lines before it
 * cannot match any metric grammar below because those need literal numbers where
 * printed code has "{...}" format fields. As a safety valve a line that can only be
 * output (a step line or a final_* evaluation line with literal digits) ends a code block
 * even without the '=' line.
 *
 * Step lines (metrics; tokens "key:value", "key: value" or "key=value", bracketed
 * phase tags like "[JEPA]" skipped):
 *   step:S/N train_loss:X train_time:Tms step_avg:Ams [tok/s:R]
 *   step:S/N val_loss:X val_bpb:Y train_time:Tms step_avg:Ams
 *   S/N train_loss: X train_time: 8.7m tok/s: R [looping:True]
 *   S/N val_loss: X val_bpb: Y
 *   step:S/N loss:X t:Tms avg:Ams        (ternary/binary family)
 * Names: train_loss (also "loss"), val_loss, val_bpb, step_ms (step_avg / avg),
 * tokens_per_s (tok/s), lr, lr_mul; wall_ms from train_time / t with units ms, s, m.
 * "warmup_step:1/20", "step:1000 churn:0.0" and TTT progress lines are not step lines.
 *
 * Final evaluation lines: any other line at column 0 with a numeric "val_bpb" token;
 * its kind is the text before the first val_loss / val_bpb token without numeric
 * "key:value" tokens ("final_sliding_window_eval stride:64 val_loss:..." has kind
 * final_sliding_window_eval). Kinds naming pre-quantization / post-EMA evaluation are
 * the pre-quant score, every other kind is a score candidate. The "_exact" suffix is
 * dropped to find the kind's twin: a later line of the same kind replaces the earlier.
 *
 * Score precedence, derived from the 80 log files of the fixture set (the table in
 * tests/fixtures/logs/EXPECTED.tsv): the score is the BEST (lowest val_bpb) score
 * candidate of the LAST run in the log, where
 *   - two values equal within the coarser printed precision are a tie, won by the more
 *     precisely printed one (final_x 1.1666 vs final_x_exact 1.16660881), then the earlier;
 *   - a step line after a score candidate starts a new run (logs with an appended
 *     second run: the GDN README scores "the last final_int8_zlib_roundtrip in that
 *     log"), which clears the candidates, sizes and times.
 * Why the lowest and not a fixed ranking of kinds: submitters claim the best legal
 * evaluation of their artifact. Usually that is TTT < sliding window < round trip, and
 * the lowest rule gives exactly that, but 2026-04-04 seed 42 ran TTT, got 1.336 (worse)
 * and claims its sliding window 1.0894; a ranking would misreport it.
 *
 * Size lines: "Serialized model <compressor>: N bytes" (model_bytes, compressor),
 * "Total submission size <compressor>: N bytes" (artifact_bytes), "Code size: N bytes",
 * "Code size (compressed): N bytes" (preferred over "(uncompressed)"), ternary
 * "budget:T/16000000 ..." (artifact) and "artifact:... code:N" (code), summary block
 * "artifact_bytes: N". The raw "Serialized model: N bytes" / "Total submission size: N
 * bytes" (uncompressed torch file) are not the artifact and are ignored.
 *
 * Hyperparameters (params): "Hyperparameters:" followed by indented "  key: value"
 * lines; "--- Hyperparameters ---" followed by one line of "key=value" tokens; indented
 * environment lines "  KEY=value" (key lower-cased); and, before the first step line,
 * lines made only of "key:value" tokens ("seed:1337", "train_seq_len:1024 iterations:
 * 20000"). Progress counters ("warmup_step:1/20") and metric names are not params.
 */
#include "db/logparse.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct lp_candidate {
    char kind[64];      /* as printed, e.g. "final_int6_sliding_window_exact" */
    char base[64];      /* kind without "_exact": twins share it */
    double val_loss, val_bpb;
    int decimals;       /* decimals printed in val_bpb */
    double eval_ms;
    long order;         /* line number, for "earlier wins a tie" */
} lp_candidate;

typedef struct lp_param {
    char *key, *value;
} lp_param;

/* A string -> array position index (open addressing, linear probing, power-of-two size,
 * at most half full), so that a log printing 100k parameters or eval kinds costs O(n), not
 * O(n^2). The keys stay in the owner's array; the index holds positions + hashes. Hashes
 * are of the ASCII-lowercased key, so one index serves exact and case-blind lookups. */
typedef struct lp_index {
    int *slot;       /* position + 1, 0 = empty */
    uint64_t *hash;  /* hash of the entry in that slot */
    size_t cap;      /* 0 or a power of two */
    size_t n;
} lp_index;

struct cad_logparse {
    /* feed(): partial last line (at most CAD_LOG_MAX_LINE bytes, see lp_bound_pending) */
    char *pend;
    size_t pend_len, pend_cap;
    int skip_line;        /* inside a line longer than CAD_LOG_MAX_LINE: drop to its '\n' */
    /* scratch copy of the current line */
    char *line;
    size_t line_cap;

    int in_code;
    int in_hparams;       /* inside an indented "Hyperparameters:" block */
    int expect_kv_line;   /* the line after "--- Hyperparameters ---" */
    int seen_step;        /* a step line was seen (config lines before it are params) */

    lp_candidate *cand;   /* score candidates of the current run, by first appearance */
    int n_cand, cap_cand;
    lp_index cand_index;  /* base -> position in cand */
    long n_final_seen;    /* final evaluation lines understood (twins and repeats too) */

    double last_step_val_loss, last_step_val_bpb; /* fallback pre-quant score */
    int code_bytes_compressed;                     /* code_bytes came from "(compressed)" */

    cad_log_summary s;  /* everything but the score fields, filled by summary() */

    lp_param *params;
    int n_params, cap_params;
    lp_index param_index; /* key -> position in params */
};

/* ---- small lexical helpers ------------------------------------------------------- */

static int lp_starts(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int lp_is_ident_char(int c) {
    return isalnum(c) || c == '_';
}

/* Parse a number at s (strtod: also nan, inf), return its end or NULL. Counts the
 * decimals after '.' into *decimals when given. */
/* The numbers logs print ("-12.3456", "590009") without strtod, which was most of the
 * parser's time: at most 15 digits and 22 decimals make the mantissa m and 10^k exact
 * doubles, so the correctly rounded m / 10^k is the double strtod returns (Clinger's fast
 * path). 1 with *v and *end set; 0 for anything else (exponents, hex, inf/nan, a leading '+'
 * or '.', longer numbers), which goes to strtod. */
static int lp_plain_decimal(const char *s, double *v, const char **end) {
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *q = s;
    int neg = *q == '-';
    q += neg;
    if (*q < '0' || *q > '9') return 0;
    uint64_t m = 0;
    int nd = 0, k = 0;
    for (; *q >= '0' && *q <= '9'; q++, nd++) m = m * 10 + (uint64_t)(*q - '0');
    if (*q == '.')
        for (q++; *q >= '0' && *q <= '9'; q++, nd++, k++) m = m * 10 + (uint64_t)(*q - '0');
    /* what strtod would read further: an exponent, hex digits after "0x", "0x"/"0X" itself */
    if (nd > 15 || k > 22 || *q == 'e' || *q == 'E' || *q == 'x' || *q == 'X' || *q == 'p' || *q == 'P')
        return 0;
    double d = (double)m / p10[k];
    *v = neg ? -d : d;
    *end = q;
    return 1;
}

static const char *lp_number(const char *s, double *out, int *decimals) {
    char *end;
    if (!*s) return NULL;
    if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.' ||
          tolower((unsigned char)*s) == 'n' || tolower((unsigned char)*s) == 'i'))
        return NULL;
    double v;
    if (lp_plain_decimal(s, &v, (const char **)&end) == 0) {
        v = strtod(s, &end);
        if (end == s) return NULL;
    }
    *out = v;
    if (decimals) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        int d = 0;
        if (dot)
            for (const char *q = dot + 1; q < end && isdigit((unsigned char)*q); q++) d++;
        *decimals = d;
    }
    return end;
}

/* Time with unit suffix ("590009ms", "8.7m", "405.0s") to milliseconds. */
static int lp_time_ms(const char *s, double *ms) {
    double v;
    const char *end = lp_number(s, &v, NULL);
    if (!end) return 0;
    if (lp_starts(end, "ms")) *ms = v;
    else if (*end == 's') *ms = v * 1000.0;
    else if (*end == 'm') *ms = v * 60000.0;
    else if (*end == 'h') *ms = v * 3600000.0;
    else *ms = v; /* bare number: train_gpt.py prints ms */
    return 1;
}

/* A token: key and value spans inside the line. */
typedef struct lp_tok {
    const char *key;
    size_t key_len;
    const char *val;  /* NUL-terminated view is not guaranteed: use val_len */
    size_t val_len;
    char sep;         /* ':' or '=' or 0 for a bare word */
} lp_tok;

/* Split "a:1 b: 2 c=3 [TAG 3%] word" into tokens. A "key:" followed by a space takes the
 * next word as its value. Bracketed groups are skipped. Returns the count (max n). */
static int lp_tokens(const char *s, lp_tok *t, int n) {
    int k = 0;
    while (*s && k < n) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        if (*s == '[' || *s == '(') {
            char close = *s == '[' ? ']' : ')';
            const char *e = strchr(s, close);
            s = e ? e + 1 : s + strlen(s);
            continue;
        }
        const char *w = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        size_t wl = (size_t)(s - w);
        /* key is the ident prefix (allow '/', '-' and '.' inside: tok/s, pre-quant) */
        size_t i = 0;
        while (i < wl && (lp_is_ident_char((unsigned char)w[i]) || w[i] == '/' ||
                          w[i] == '-' || w[i] == '.'))
            i++;
        lp_tok *tk = &t[k++];
        tk->key = w;
        tk->sep = 0;
        tk->val = NULL;
        tk->val_len = 0;
        if (i < wl && (w[i] == ':' || w[i] == '=') && i > 0) {
            tk->key_len = i;
            tk->sep = w[i];
            if (i + 1 < wl) {
                tk->val = w + i + 1;
                tk->val_len = wl - i - 1;
            } else {
                /* "key: value": the value is the next word */
                while (*s == ' ' || *s == '\t') s++;
                const char *v = s;
                while (*s && *s != ' ' && *s != '\t') s++;
                tk->val = v;
                tk->val_len = (size_t)(s - v);
            }
        } else {
            tk->key_len = wl;
        }
    }
    return k;
}

static int lp_key_is(const lp_tok *t, const char *name) {
    return t->key_len == strlen(name) && strncmp(t->key, name, t->key_len) == 0;
}

/* Value of a token as a number (the value text is followed by a space or NUL). */
static int lp_tok_num(const lp_tok *t, double *v, int *decimals) {
    if (!t->val || !t->val_len) return 0;
    return lp_number(t->val, v, decimals) != NULL;
}

/* ---- string index -------------------------------------------------------------- */

static uint64_t lp_hash_lower(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the lowercased bytes */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint64_t)(unsigned char)tolower((unsigned char)s[i]);
        h *= 1099511628211ULL;
    }
    return h;
}

static void lp_index_clear(lp_index *x) {
    if (x->cap) memset(x->slot, 0, x->cap * sizeof *x->slot);
    x->n = 0;
}

static void lp_index_free(lp_index *x) {
    free(x->slot);
    free(x->hash);
    memset(x, 0, sizeof *x);
}

/* Next position whose hash is h, starting after probe *i (start with *i = SIZE_MAX);
 * -1 at the first empty slot. */
static int lp_index_next(const lp_index *x, uint64_t h, size_t *i) {
    if (!x->cap) return -1;
    size_t k = *i == SIZE_MAX ? (size_t)h & (x->cap - 1) : (*i + 1) & (x->cap - 1);
    for (;; k = (k + 1) & (x->cap - 1)) {
        if (!x->slot[k]) return -1;
        if (x->hash[k] == h) {
            *i = k;
            return x->slot[k] - 1;
        }
    }
}

static int lp_index_put_raw(lp_index *x, uint64_t h, int pos) {
    size_t k = (size_t)h & (x->cap - 1);
    while (x->slot[k]) k = (k + 1) & (x->cap - 1);
    x->slot[k] = pos + 1;
    x->hash[k] = h;
    x->n++;
    return 0;
}

/* Add pos under hash h; -1 when out of memory. */
static int lp_index_put(lp_index *x, uint64_t h, int pos) {
    if ((x->n + 1) * 2 > x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 64;
        lp_index g = {calloc(nc, sizeof *g.slot), malloc(nc * sizeof *g.hash), nc, 0};
        if (!g.slot || !g.hash) {
            lp_index_free(&g);
            return -1;
        }
        for (size_t k = 0; k < x->cap; k++)
            if (x->slot[k]) lp_index_put_raw(&g, x->hash[k], x->slot[k] - 1);
        lp_index_free(x);
        *x = g;
    }
    return lp_index_put_raw(x, h, pos);
}

/* ---- parameters ------------------------------------------------------------------ */

static char *lp_strndup(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

static int lp_param_set(cad_logparse *p, const char *key, size_t kl, const char *val,
                        size_t vl, int lower) {
    while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t')) vl--;
    uint64_t h = lp_hash_lower(key, kl);
    size_t probe = SIZE_MAX;
    for (int i; (i = lp_index_next(&p->param_index, h, &probe)) >= 0;) {
        lp_param *q = &p->params[i];
        if (strlen(q->key) == kl &&
            (lower ? strncasecmp(q->key, key, kl) : strncmp(q->key, key, kl)) == 0) {
            char *nv = lp_strndup(val, vl);
            if (!nv) return -1;
            free(q->value);
            q->value = nv;
            return 0;
        }
    }
    if (p->n_params == p->cap_params) {
        int nc = p->cap_params ? p->cap_params * 2 : 32;
        lp_param *np = realloc(p->params, (size_t)nc * sizeof *np);
        if (!np) return -1;
        p->params = np;
        p->cap_params = nc;
    }
    char *k = lp_strndup(key, kl), *v = lp_strndup(val, vl);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    if (lower)
        for (char *c = k; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (lp_index_put(&p->param_index, h, p->n_params)) {
        free(k);
        free(v);
        return -1;
    }
    p->params[p->n_params].key = k;
    p->params[p->n_params].value = v;
    p->n_params++;
    return 0;
}

/* Names that are results or progress counters, never hyperparameters. */
static int lp_param_key_rejected(const char *k, size_t kl) {
    static const char *const bad[] = {"val_bpb", "val_loss", "train_loss", "step", "warmup",
                                      "loss", NULL};
    for (int i = 0; bad[i]; i++)
        if (kl == strlen(bad[i]) && strncmp(k, bad[i], kl) == 0) return 1;
    if (kl >= 4 && strncmp(k + kl - 4, "step", 4) == 0) return 1; /* warmup_step... */
    return 0;
}

/* "seed:1337", "train_seq_len:1024 iterations:20000": every token key:value with an
 * identifier key and a value without spaces, and no value that is a progress counter. */
static int lp_try_config_line(cad_logparse *p, const char *s) {
    lp_tok t[32];
    if (!isalpha((unsigned char)*s)) return 0;
    int n = lp_tokens(s, t, 32);
    if (n == 0 || n == 32) return 0;
    for (int i = 0; i < n; i++) {
        if (t[i].sep != ':' || !t[i].val_len) return 0;
        for (size_t j = 0; j < t[i].key_len; j++)
            if (!lp_is_ident_char((unsigned char)t[i].key[j])) return 0;
        /* "key: value" (space) is the Hyperparameters family's noise, e.g.
         * "train_shards: 143": only accept the glued form here */
        if (t[i].val != t[i].key + t[i].key_len + 1) return 0;
        if (lp_param_key_rejected(t[i].key, t[i].key_len)) return 0;
        const char *slash = memchr(t[i].val, '/', t[i].val_len);
        if (slash && isdigit((unsigned char)t[i].val[0])) return 0;
    }
    for (int i = 0; i < n; i++)
        if (lp_param_set(p, t[i].key, t[i].key_len, t[i].val, t[i].val_len, 0)) return -1;
    return 1;
}

/* ---- code detection ------------------------------------------------------------- */

static int lp_is_separator(const char *s) {
    size_t n = 0;
    while (s[n] == '=') n++;
    const char *r = s + n;
    while (*r == ' ' || *r == '\t') r++;
    return n >= 50 && !*r;
}

static int lp_looks_like_code_start(const char *s) {
    if (lp_starts(s, "\"\"\"") || lp_starts(s, "'''") || lp_starts(s, "import ") ||
        lp_starts(s, "def ") || lp_starts(s, "class ") || lp_starts(s, "@") ||
        lp_starts(s, "#") || lp_starts(s, "if __name__") || lp_starts(s, "async def "))
        return 1;
    if (lp_starts(s, "from ") && strstr(s, " import ")) return 1;
    size_t n = strlen(s);
    /* a lone module docstring: "Ternary training script for ..." */
    if (n >= 3 && s[0] == '"' && isupper((unsigned char)s[1]) && s[n - 1] == '"') return 1;
    return 0;
}

/* A line only training output can be (literal digits where code has "{...}"). */
static int lp_is_step_prefix(const char *s, long *step, long *total, const char **rest);

static int lp_is_unambiguous_output(const char *s) {
    long a, b;
    const char *rest;
    if (lp_is_step_prefix(s, &a, &b, &rest) && !strchr(s, '{')) return 1;
    if (lp_starts(s, "final_") && !strchr(s, '{')) {
        const char *v = strstr(s, " val_bpb:");
        if (v && isdigit((unsigned char)v[9])) return 1;
    }
    return 0;
}

/* ---- step lines ----------------------------------------------------------------- */

/* "step:S/N " or "S/N " at the start. */
static int lp_is_step_prefix(const char *s, long *step, long *total, const char **rest) {
    const char *q = s;
    if (lp_starts(q, "step:")) q += 5;
    if (!isdigit((unsigned char)*q)) return 0;
    char *e;
    long a = strtol(q, &e, 10);
    if (*e != '/' || !isdigit((unsigned char)e[1])) return 0;
    long b = strtol(e + 1, &e, 10);
    if (*e != ' ') return 0;
    *step = a;
    *total = b;
    *rest = e + 1;
    return 1;
}

/* Loss and bpb are non-negative: a negative one is a broken or forged line, never a score
 * or a curve point (it would rank first). */
static int lp_loss_in_range(double v) {
    return !(v < 0);
}

static int lp_emit(cad_log_metric *out, int max_out, int n, const char *name, long step,
                   double value, double wall_ms) {
    if (n >= max_out) return n;
    cad_log_metric *m = &out[n];
    size_t len = strnlen(name, sizeof m->name - 1); /* snprintf here was 5% of an import */
    memcpy(m->name, name, len);
    m->name[len] = 0;
    m->step = step;
    m->value = value;
    m->wall_ms = wall_ms;
    return n + 1;
}

static void lp_new_run(cad_logparse *p) {
    /* A step line after a final evaluation: the log holds a second run appended to the
     * first; its results replace the first run's. */
    p->n_cand = 0;
    lp_index_clear(&p->cand_index);
    p->s.prequant_val_loss = p->s.prequant_val_bpb = NAN;
    p->last_step_val_loss = p->last_step_val_bpb = NAN;
    p->s.artifact_bytes = p->s.model_bytes = p->s.code_bytes = -1;
    p->code_bytes_compressed = 0;
    p->s.compressor[0] = 0;
    p->s.train_ms = NAN;
    p->s.steps = p->s.total_steps = -1;
    p->s.last_train_loss = NAN;
}

static int lp_step_line(cad_logparse *p, long step, long total, const char *rest,
                        cad_log_metric *out, int max_out) {
    lp_tok t[24];
    int n = lp_tokens(rest, t, 24);
    double wall = -1;
    if (p->n_cand > 0) lp_new_run(p);
    p->seen_step = 1;
    p->in_hparams = 0;
    for (int i = 0; i < n; i++) {
        if (lp_key_is(&t[i], "train_time") || lp_key_is(&t[i], "t")) {
            double ms;
            if (t[i].val && lp_time_ms(t[i].val, &ms)) wall = ms;
        }
    }
    int k = 0;
    int any_loss = 0;
    for (int i = 0; i < n; i++) {
        double v;
        if (!lp_tok_num(&t[i], &v, NULL)) continue;
        const char *name = NULL;
        if (lp_key_is(&t[i], "train_loss") || lp_key_is(&t[i], "loss")) name = "train_loss";
        else if (lp_key_is(&t[i], "val_loss")) name = "val_loss";
        else if (lp_key_is(&t[i], "val_bpb")) name = "val_bpb";
        else if (lp_key_is(&t[i], "step_avg") || lp_key_is(&t[i], "avg")) name = "step_ms";
        else if (lp_key_is(&t[i], "tok/s")) name = "tokens_per_s";
        else if (lp_key_is(&t[i], "lr")) name = "lr";
        else if (lp_key_is(&t[i], "lr_mul") || lp_key_is(&t[i], "lr_scale")) name = "lr_mul";
        if (!name) continue;
        if (strcmp(name, "step_ms") == 0) {
            double ms;
            if (lp_time_ms(t[i].val, &ms)) v = ms;
        }
        if (strcmp(name, "train_loss") == 0 || strcmp(name, "val_loss") == 0 ||
            strcmp(name, "val_bpb") == 0) {
            any_loss = 1;
            if (!isfinite(v)) p->s.n_nan++;
            else if (!lp_loss_in_range(v)) {
                p->s.n_out_of_range++;
                continue;
            }
            if (strcmp(name, "train_loss") == 0) p->s.last_train_loss = v;
            if (strcmp(name, "val_loss") == 0) p->last_step_val_loss = v;
            if (strcmp(name, "val_bpb") == 0) p->last_step_val_bpb = v;
        }
        k = lp_emit(out, max_out, k, name, step, v, wall);
    }
    if (!any_loss) return k;
    if (step > p->s.steps) p->s.steps = step;
    p->s.total_steps = total;
    if (wall >= 0) p->s.train_ms = wall;
    return k;
}

/* ---- final evaluation lines ----------------------------------------------------- */

static int lp_kind_is_prequant(const char *kind) {
    char low[64];
    size_t i;
    for (i = 0; kind[i] && i < sizeof low - 1; i++) low[i] = (char)tolower((unsigned char)kind[i]);
    low[i] = 0;
    return strstr(low, "pre-quant") || strstr(low, "pre_quant") || strstr(low, "prequant") ||
           strstr(low, "post_ema") || strstr(low, "post-ema");
}

/* Is a better than b as the score? */
static int lp_cand_better(const lp_candidate *a, const lp_candidate *b) {
    int d = a->decimals < b->decimals ? a->decimals : b->decimals;
    double tol = 0.5 * pow(10.0, -d) + 1e-12;
    if (fabs(a->val_bpb - b->val_bpb) <= tol) {
        if (a->decimals != b->decimals) return a->decimals > b->decimals;
        return a->order < b->order;
    }
    return a->val_bpb < b->val_bpb;
}

/* -1 when out of memory. */
static int lp_final_line(cad_logparse *p, const char *s) {
    lp_tok t[24];
    int n = lp_tokens(s, t, 24);
    int i_bpb = -1, i_loss = -1, first = -1;
    for (int i = 0; i < n; i++) {
        double v;
        if (lp_key_is(&t[i], "val_bpb") && t[i].sep && lp_tok_num(&t[i], &v, NULL)) {
            if (i_bpb < 0) i_bpb = i;
            if (first < 0) first = i;
        } else if (lp_key_is(&t[i], "val_loss") && t[i].sep && lp_tok_num(&t[i], &v, NULL)) {
            if (i_loss < 0) i_loss = i;
            if (first < 0) first = i;
        }
    }
    if (i_bpb < 0) return 0;
    lp_candidate c;
    memset(&c, 0, sizeof c);
    /* kind: the words before the first val_* token, numeric key:value tokens dropped */
    size_t kl = 0;
    for (int i = 0; i < first; i++) {
        double v;
        if (t[i].sep && lp_tok_num(&t[i], &v, NULL)) continue;
        size_t wl = t[i].sep ? (size_t)((t[i].val ? t[i].val + t[i].val_len : t[i].key + t[i].key_len + 1) - t[i].key)
                             : t[i].key_len;
        if (kl && kl < sizeof c.kind - 1) c.kind[kl++] = ' ';
        for (size_t j = 0; j < wl && kl < sizeof c.kind - 1; j++) c.kind[kl++] = t[i].key[j];
    }
    c.kind[kl] = 0;
    if (!kl) snprintf(c.kind, sizeof c.kind, "val_bpb");
    snprintf(c.base, sizeof c.base, "%s", c.kind);
    size_t bl = strlen(c.base);
    if (bl > 6 && strcmp(c.base + bl - 6, "_exact") == 0) c.base[bl - 6] = 0;
    lp_tok_num(&t[i_bpb], &c.val_bpb, &c.decimals);
    c.val_loss = NAN;
    if (i_loss >= 0) lp_tok_num(&t[i_loss], &c.val_loss, NULL);
    c.eval_ms = NAN;
    for (int i = 0; i < n; i++)
        if (lp_key_is(&t[i], "eval_time") && t[i].val) {
            double ms;
            if (lp_time_ms(t[i].val, &ms)) c.eval_ms = ms;
        }
    c.order = p->s.n_lines;
    p->n_final_seen++; /* understood, whatever it changes */
    if (!isfinite(c.val_bpb) || (i_loss >= 0 && !isfinite(c.val_loss))) {
        p->s.n_nan++;
        return 0;
    }
    if (!lp_loss_in_range(c.val_bpb) || (i_loss >= 0 && !lp_loss_in_range(c.val_loss))) {
        p->s.n_out_of_range++;
        return 0;
    }
    if (lp_kind_is_prequant(c.kind)) {
        p->s.prequant_val_loss = c.val_loss;
        p->s.prequant_val_bpb = c.val_bpb;
        return 0;
    }
    uint64_t h = lp_hash_lower(c.base, strlen(c.base));
    size_t probe = SIZE_MAX;
    for (int i; (i = lp_index_next(&p->cand_index, h, &probe)) >= 0;)
        if (strcmp(p->cand[i].base, c.base) == 0) {
            /* the twin: keep the exact one's value, a later line replaces the earlier */
            if (c.decimals >= p->cand[i].decimals || strcmp(p->cand[i].kind, c.kind) == 0) {
                c.order = p->cand[i].order;
                if (isnan(c.eval_ms)) c.eval_ms = p->cand[i].eval_ms; /* only the rounded twin prints it */
                p->cand[i] = c;
            }
            return 0;
        }
    /* every distinct evaluation kind is kept: the score may be the 41st kind printed */
    if (p->n_cand == p->cap_cand) {
        int nc = p->cap_cand ? p->cap_cand * 2 : 16;
        lp_candidate *ncand = realloc(p->cand, (size_t)nc * sizeof *ncand);
        if (!ncand) return -1;
        p->cand = ncand;
        p->cap_cand = nc;
    }
    if (lp_index_put(&p->cand_index, h, p->n_cand)) return -1;
    p->cand[p->n_cand++] = c;
    return 0;
}

/* ---- size and time lines -------------------------------------------------------- */

static long lp_bytes_after_colon(const char *s) {
    const char *c = strchr(s, ':');
    if (!c) return -1;
    c++;
    while (*c == ' ') c++;
    if (!isdigit((unsigned char)*c)) return -1;
    char *e;
    long v = strtol(c, &e, 10);
    while (*e == ' ') e++;
    if (!lp_starts(e, "bytes")) return -1;
    return v;
}

/* The compressor between prefix and ':' ("Serialized model int6+zstd-22: N bytes"). */
static void lp_compressor(const char *after_prefix, char *out, size_t cap) {
    while (*after_prefix == ' ') after_prefix++;
    const char *c = strchr(after_prefix, ':');
    size_t n = c ? (size_t)(c - after_prefix) : 0;
    if (n >= cap) n = cap - 1;
    memcpy(out, after_prefix, n);
    out[n] = 0;
}

static int lp_size_line(cad_logparse *p, const char *s) {
    long v;
    if (lp_starts(s, "Serialized model")) {
        v = lp_bytes_after_colon(s);
        char comp[32];
        lp_compressor(s + 16, comp, sizeof comp);
        if (v >= 0 && comp[0]) {
            p->s.model_bytes = v;
            snprintf(p->s.compressor, sizeof p->s.compressor, "%s", comp);
        }
        return 1;
    }
    if (lp_starts(s, "Total submission size")) {
        v = lp_bytes_after_colon(s);
        char comp[32];
        lp_compressor(s + 21, comp, sizeof comp);
        if (v >= 0 && comp[0]) {
            p->s.artifact_bytes = v;
            if (!p->s.compressor[0])
                snprintf(p->s.compressor, sizeof p->s.compressor, "%s", comp);
        }
        return 1;
    }
    if (lp_starts(s, "Code size")) {
        v = lp_bytes_after_colon(s);
        if (v < 0) return 1;
        if (lp_starts(s, "Code size (compressed)")) {
            p->s.code_bytes = v;
            p->code_bytes_compressed = 1;
        } else if (!p->code_bytes_compressed) {
            p->s.code_bytes = v;
        }
        return 1;
    }
    if (lp_starts(s, "budget:") && isdigit((unsigned char)s[7])) {
        char *e;
        long tot = strtol(s + 7, &e, 10);
        if (*e == '/') p->s.artifact_bytes = tot;
        return 1;
    }
    if (lp_starts(s, "artifact:")) {
        const char *c = strstr(s, " code:");
        if (c && isdigit((unsigned char)c[6])) p->s.code_bytes = strtol(c + 6, NULL, 10);
        return 1;
    }
    if (lp_starts(s, "artifact_bytes:")) {
        const char *c = s + 15;
        while (*c == ' ') c++;
        if (isdigit((unsigned char)*c)) p->s.artifact_bytes = strtol(c, NULL, 10);
        return 1;
    }
    return 0;
}

static void lp_stopping_line(cad_logparse *p, const char *s) {
    /* "stopping_early: wallclock_cap train_time:600061ms step:13764/20000" (also with
     * spaces after the colons) */
    lp_tok t[8];
    int n = lp_tokens(s, t, 8);
    for (int i = 0; i < n; i++) {
        if (lp_key_is(&t[i], "train_time") && t[i].val) {
            double ms;
            if (lp_time_ms(t[i].val, &ms)) p->s.train_ms = ms;
        } else if (lp_key_is(&t[i], "step") && t[i].val && isdigit((unsigned char)t[i].val[0])) {
            char *e;
            long a = strtol(t[i].val, &e, 10);
            p->s.steps = a;
            if (*e == '/') p->s.total_steps = strtol(e + 1, NULL, 10);
        }
    }
}

/* ---- the line entry point ------------------------------------------------------- */

cad_logparse *cad_logparse_new(void) {
    cad_logparse *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->s.val_loss = p->s.val_bpb = NAN;
    p->s.eval_ms = NAN;
    p->s.seed = -1;
    lp_new_run(p);
    return p;
}

void cad_logparse_free(cad_logparse *p) {
    if (!p) return;
    for (int i = 0; i < p->n_params; i++) {
        free(p->params[i].key);
        free(p->params[i].value);
    }
    free(p->params);
    lp_index_free(&p->param_index);
    free(p->cand);
    lp_index_free(&p->cand_index);
    free(p->pend);
    free(p->line);
    free(p);
}

/* Strip a unix timestamp "1776142348.135 " or a clock "[19:23:20] " prefix. */
static const char *lp_strip_prefix(const char *s) {
    const char *q = s;
    int digits = 0;
    while (isdigit((unsigned char)*q)) q++, digits++;
    if (digits >= 9 && digits <= 11) {
        if (*q == '.') {
            q++;
            while (isdigit((unsigned char)*q)) q++;
        }
        if (*q == ' ' || *q == '\t') return q + 1;
    }
    if (s[0] == '[' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
        s[3] == ':' && isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]) &&
        s[6] == ':' && isdigit((unsigned char)s[7]) && isdigit((unsigned char)s[8]) &&
        s[9] == ']' && s[10] == ' ')
        return s + 11;
    return s;
}

static int lp_parse(cad_logparse *p, char *line, cad_log_metric *out, int max_out) {
    /* a progress bar redrawn with '\r': keep what the terminal shows last */
    /* one backward pass (a line of 300 MB of '\r' must not cost a rescan per '\r') */
    size_t len = strlen(line);
    while (len && line[len - 1] == '\r') line[--len] = 0; /* trailing "\r" of CRLF */
    for (size_t i = len; i > 0; i--)
        if (line[i - 1] == '\r') {
            line += i;
            break;
        }
    const char *s = lp_strip_prefix(line);

    if (p->in_code) {
        if (lp_is_separator(s)) {
            p->in_code = 0;
            p->s.n_code_lines++;
            return 0;
        }
        if (!lp_is_unambiguous_output(s)) {
            p->s.n_code_lines++;
            return 0;
        }
        p->in_code = 0;
    } else if (lp_looks_like_code_start(s)) {
        p->in_code = 1;
        p->in_hparams = 0;
        p->s.n_code_lines++;
        return 0;
    }

    if (p->expect_kv_line) {
        p->expect_kv_line = 0;
        lp_tok t[512];
        int n = lp_tokens(s, t, 512);
        for (int i = 0; i < n; i++)
            if (t[i].sep == '=' && t[i].val == t[i].key + t[i].key_len + 1)
                if (lp_param_set(p, t[i].key, t[i].key_len, t[i].val, t[i].val_len, 0))
                    return -1;
        return 0;
    }

    if (p->in_hparams) {
        /* "  key: value" (value may be empty) */
        const char *q = s;
        if (*q == ' ' || *q == '\t') {
            while (*q == ' ' || *q == '\t') q++;
            const char *k = q;
            while (lp_is_ident_char((unsigned char)*q)) q++;
            if (q > k && *q == ':' && (q[1] == ' ' || q[1] == 0)) {
                const char *v = q[1] ? q + 2 : q + 1;
                if (lp_param_set(p, k, (size_t)(q - k), v, strlen(v), 0)) return -1;
                return 0;
            }
        }
        p->in_hparams = 0;
    }

    if (strcmp(s, "Hyperparameters:") == 0) {
        p->in_hparams = 1;
        return 0;
    }
    if (lp_starts(s, "--- Hyperparameters ---")) {
        p->expect_kv_line = 1;
        return 0;
    }

    long step, total;
    const char *rest;
    if (lp_is_step_prefix(s, &step, &total, &rest)) {
        int k = lp_step_line(p, step, total, rest, out, max_out);
        if (k > 0) p->s.n_metric_lines++;
        return k;
    }

    if (*s == ' ' || *s == '\t') {
        /* indented environment dump: "  TRAIN_SEQ_LEN=32768" */
        const char *q = s;
        while (*q == ' ' || *q == '\t') q++;
        const char *k = q;
        while (isupper((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '_') q++;
        if (q > k && *q == '=' && isupper((unsigned char)*k) && !strchr(q, ' ') && !p->seen_step)
            if (lp_param_set(p, k, (size_t)(q - k), q + 1, strlen(q + 1), 1)) return -1;
        return 0; /* indented lines are progress output or dumps, never results */
    }

    if (lp_size_line(p, s)) return 0;
    if (lp_starts(s, "stopping_early:")) {
        lp_stopping_line(p, s);
        return 0;
    }
    if (strstr(s, "val_bpb")) return lp_final_line(p, s);
    if (!p->seen_step) {
        int r = lp_try_config_line(p, s);
        if (r < 0) return -1;
    }
    return 0;
}

/* A line that looks like it prints a score: "bpb" followed (after ' ', ':', '=') by a
 * number; progress lines the parser ignores on purpose (TTT chunks and batches, running
 * averages) are not. */
static int lp_names_score(const char *line) {
    /* most lines (step lines) have no "bpb" in any case: a plain scan says so before
     * strcasestr's setup, which was a tenth of an import's parse time */
    const char *c = line;
    for (; *c; c++)
        if ((*c | 0x20) == 'b' && (c[1] | 0x20) == 'p' && (c[2] | 0x20) == 'b') break;
    if (!*c) return 0;
    const char *b = strcasestr(line, "bpb");
    if (!b) return 0;
    if (strcasestr(line, "ttt") || strcasestr(line, "running_bpb") || strcasestr(line, "batch_bpb"))
        return 0;
    for (; b; b = strcasestr(b + 3, "bpb")) {
        const char *c = b + 3;
        while (*c == ' ' || *c == ':' || *c == '=' || *c == '*') c++;
        if (isdigit((unsigned char)*c)) return 1;
    }
    return 0;
}

/* A line that names a score but changed nothing in the summary: counted, and the first one
 * kept (line number and text) for the import to name. */
static void lp_note_unread(cad_logparse *p, const cad_log_summary *b) {
    const cad_log_summary *a = &p->s;
    if (a->n_code_lines != b->n_code_lines || a->has_score != b->has_score ||
        a->n_out_of_range != b->n_out_of_range || a->n_nan != b->n_nan)
        return;
#define LP_SAME(x) ((isnan(a->x) && isnan(b->x)) || a->x == b->x)
    if (!LP_SAME(val_bpb) || !LP_SAME(prequant_val_bpb) || !LP_SAME(eval_ms) ||
        a->artifact_bytes != b->artifact_bytes || a->model_bytes != b->model_bytes ||
        a->code_bytes != b->code_bytes || a->steps != b->steps)
        return;
#undef LP_SAME
    if (strcmp(a->score_line_kind, b->score_line_kind) != 0) return;
    if (p->s.n_unread_score_lines++ == 0) {
        p->s.first_unread_score_line = p->s.n_lines + p->s.n_long_lines;
        size_t o = 0;
        for (const unsigned char *c = (const unsigned char *)p->line;
             *c && o + 1 < sizeof p->s.first_unread_score_text; c++)
            p->s.first_unread_score_text[o++] = *c >= 0x20 && *c < 0x7f ? (char)*c : '?';
        p->s.first_unread_score_text[o] = 0;
    }
}

int cad_logparse_line(cad_logparse *p, const char *line, size_t len, cad_log_metric *out,
                      int max_out) {
    if (len && line[len - 1] == '\n') len--;
    if (len + 1 > p->line_cap) {
        size_t nc = p->line_cap ? p->line_cap : 256;
        while (nc < len + 1) nc *= 2;
        char *nb = realloc(p->line, nc);
        if (!nb) return 0;
        p->line = nb;
        p->line_cap = nc;
    }
    memcpy(p->line, line, len);
    p->line[len] = 0;
    /* an embedded NUL (binary garbage) ends the line */
    p->s.n_lines++;
    /* only a line naming a score can be an unread one: the summary is copied for those */
    int scoreish = lp_names_score(p->line);
    cad_log_summary before;
    int cand_before = p->n_cand, params_before = p->n_params;
    long final_before = p->n_final_seen;
    if (scoreish) before = p->s;
    int k = lp_parse(p, p->line, out, max_out);
    if (scoreish && k <= 0 && p->n_cand == cand_before && p->n_params == params_before &&
        p->n_final_seen == final_before)
        lp_note_unread(p, &before);
    return k < 0 ? 0 : k;
}

static int lp_feed_one(cad_logparse *p, const char *line, size_t len, cad_log_metric_fn fn,
                       void *ctx) {
    cad_log_metric m[CAD_LOG_MAX_METRICS_PER_LINE];
    int k = cad_logparse_line(p, line, len, m, CAD_LOG_MAX_METRICS_PER_LINE);
    for (int i = 0; i < k && fn; i++) {
        int r = fn(ctx, &m[i]);
        if (r) return r;
    }
    return 0;
}

/* Bound the partial line. A progress bar redrawn with '\r' for hours is one endless
 * "line" whose meaning is its last segment: drop everything up to the last '\r' that has
 * a non-'\r' byte after it (the meaning of pend + any continuation is unchanged, see
 * lp_parse). A line still longer than CAD_LOG_MAX_LINE is skipped up to its newline and
 * counted, never held in memory. */
static void lp_bound_pending(cad_logparse *p) {
    if (p->pend_len <= CAD_LOG_MAX_LINE) return;
    for (size_t i = p->pend_len - 1; i > 0; i--)
        if (p->pend[i - 1] == '\r' && p->pend[i] != '\r') {
            memmove(p->pend, p->pend + i, p->pend_len - i);
            p->pend_len -= i;
            break;
        }
    if (p->pend_len <= CAD_LOG_MAX_LINE) return;
    p->pend_len = 0;
    p->skip_line = 1;
    if (p->s.n_long_lines++ == 0) p->s.first_long_line = p->s.n_lines + 1;
}

int cad_logparse_feed(cad_logparse *p, const char *buf, size_t len, cad_log_metric_fn fn,
                      void *ctx) {
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t chunk = nl ? (size_t)(nl - (buf + i)) : len - i;
        if (p->skip_line) { /* the rest of an over-long line */
            if (nl) p->skip_line = 0;
        } else if (!nl || p->pend_len || chunk > CAD_LOG_MAX_LINE) {
            /* a line over the limit fed whole goes through the pending buffer too, so
             * lp_bound_pending skips it as it would one fed in pieces (same result for any
             * chunking) */
            if (p->pend_len + chunk + 1 > p->pend_cap) {
                size_t nc = p->pend_cap ? p->pend_cap : 256;
                while (nc < p->pend_len + chunk + 1) nc *= 2;
                char *nb = realloc(p->pend, nc);
                if (!nb) return -1;
                p->pend = nb;
                p->pend_cap = nc;
            }
            memcpy(p->pend + p->pend_len, buf + i, chunk);
            p->pend_len += chunk;
            lp_bound_pending(p);
            if (nl && p->skip_line) {
                p->skip_line = 0;
            } else if (nl) {
                size_t l = p->pend_len;
                p->pend_len = 0;
                int r = lp_feed_one(p, p->pend, l, fn, ctx);
                if (r) return r;
            }
        } else {
            int r = lp_feed_one(p, buf + i, chunk, fn, ctx);
            if (r) return r;
        }
        i += chunk + (nl ? 1 : 0);
    }
    return 0;
}

int cad_logparse_finish(cad_logparse *p, cad_log_metric_fn fn, void *ctx) {
    p->skip_line = 0;
    if (!p->pend_len) return 0;
    size_t l = p->pend_len;
    p->pend_len = 0;
    return lp_feed_one(p, p->pend, l, fn, ctx);
}

void cad_logparse_summary(const cad_logparse *p, cad_log_summary *out) {
    *out = p->s;
    out->has_score = 0;
    out->val_loss = out->val_bpb = NAN;
    out->eval_ms = NAN;
    out->score_line_kind[0] = 0;
    const lp_candidate *best = NULL;
    for (int i = 0; i < p->n_cand; i++)
        if (!best || lp_cand_better(&p->cand[i], best)) best = &p->cand[i];
    if (best) {
        out->has_score = 1;
        out->val_loss = best->val_loss;
        out->val_bpb = best->val_bpb;
        out->eval_ms = best->eval_ms;
        snprintf(out->score_line_kind, sizeof out->score_line_kind, "%s", best->kind);
    }
    if (isnan(out->prequant_val_bpb) && !isnan(p->last_step_val_bpb)) {
        out->prequant_val_loss = p->last_step_val_loss;
        out->prequant_val_bpb = p->last_step_val_bpb;
    }
    out->seed = -1;
    for (int i = 0; i < p->n_params; i++)
        if (strcmp(p->params[i].key, "seed") == 0) {
            char *e;
            long v = strtol(p->params[i].value, &e, 10);
            if (e != p->params[i].value && !*e) out->seed = (int)v;
        }
}

int cad_logparse_param_count(const cad_logparse *p) {
    return p->n_params;
}

int cad_logparse_param_get(const cad_logparse *p, int i, const char **key, const char **value) {
    if (i < 0 || i >= p->n_params) return -1;
    *key = p->params[i].key;
    *value = p->params[i].value;
    return 0;
}
