/*
 * report_html.c — the one-file HTML report: per sweep a verdict line, the group summary table
 * with the challenge's tests and budgets, loss curves with seed bands, val_bpb against each
 * swept parameter (and a heatmap for two), budget bars, throughput, and failed runs.
 *
 * The page is self-contained on purpose (inline CSS and SVG, no script, no fonts or images
 * fetched): it is mailed around and opened from disk the morning after. Element ids and
 * classes are stable because the page test looks for them: section.sweep#sweep-<slug>,
 * table.summary tr.group, svg.chart#<slug>-train-loss|-val-bpb|-param-<key>|-heatmap|
 * -artifact|-time|-step-time|-tokens, table.failures.
 * Not here: loading and statistics (report.c), chart primitives (svg.c).
 */
#include "reports/report.h"
#include "reports/svg.h"

#include "db/views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CURVE_BINS 120
/* A formatted number, p-value or byte count in a cell or chart label. */
#define NUM_TEXT 64
/* Group hashes are shown by their first 16 hex digits. */
#define SHORT_HASH_CHARS 16
/* Element ids and chart titles: a slug plus a key name and a suffix. */
#define CHART_TEXT 200
/* A sweep's slug (and a key's, inside ids). */
#define SLUG_MAX 160
#define KEY_SLUG_MAX 80
/* Legend labels are shortened to this many characters, keeping their end; bar chart labels
 * to fewer, since they sit left of the bars. */
#define LEGEND_LABEL_CHARS 38
#define LEGEND_LABEL_TEXT 120
#define BAR_LABEL_CHARS 30
#define BAR_LABEL_TEXT 48
/* A parameter value as an axis category (paths keep their last component). */
#define CATEGORY_CHARS 18
#define CATEGORY_TEXT 64

static void esc(FILE *f, const char *s) {
    cad_svg_write_escaped(f, s ? s : "");
}

static void slug_of(const char *s, char *buf, size_t n) {
    size_t o = 0;
    for (; s && *s && o + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        buf[o++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') ? (char)c
                   : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : '-';
    }
    if (o == 0 && n > 4) o = (size_t)snprintf(buf, n, "none");
    buf[o] = 0;
}

/* Shorten a label for a chart axis or legend, keeping the end (the values) visible. */
static void short_label(const char *s, char *buf, size_t n, size_t max_chars) {
    size_t len = strlen(s);
    if (len <= max_chars || max_chars < 8) snprintf(buf, n, "%s", s);
    else snprintf(buf, n, "…%s", s + len - (max_chars - 1));
}

static const char *CSS =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f6f7f9;color:#1d1f23;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}"
    "main{max-width:1340px;margin:0 auto;padding:18px 24px 40px}"
    "header.top{background:#1f2a44;color:#fff;padding:16px 24px}"
    "header.top h1{margin:0;font-size:22px;font-weight:650;max-width:1292px;margin:0 auto}"
    "header.top p{margin:4px auto 0;opacity:.85;max-width:1292px}"
    "section.sweep{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:16px 20px;margin:18px 0}"
    "h2{margin:0 0 4px;font-size:19px}h3{margin:20px 0 8px;font-size:16px}"
    ".muted{color:#5b6270}"
    ".verdict{border-left:5px solid #1f3a93;background:#eef2fb;padding:10px 14px;margin:12px 0;font-size:15px}"
    ".verdict.good{border-color:#1b7f46;background:#eaf6ef}.verdict.bad{border-color:#b2182b;background:#fbeeee}"
    "table{border-collapse:collapse;width:100%;font-size:13px}.scroll{overflow-x:auto}"
    "th,td{padding:5px 6px;border-bottom:1px solid #e6e8ee;text-align:left;vertical-align:top}th.grp{min-width:230px}"
    "th{background:#f1f3f7;font-weight:600;font-size:12px}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "tr.ref td{background:#f3f6ff}tr.best td{background:#eef8f1}"
    "tr.best td:first-child{box-shadow:inset 4px 0 #1b7f46}tr.ref td:first-child{box-shadow:inset 4px 0 #1f3a93}"
    ".badge{display:inline-block;font-size:11px;font-weight:700;padding:0 6px;border-radius:9px;margin-left:6px;vertical-align:1px}"
    ".b-ref{background:#1f3a93;color:#fff}.b-best{background:#1b7f46;color:#fff}"
    ".yes{color:#1b7f46;font-weight:700}.no{color:#8a1c1c}.na{color:#8a8f99}"
    ".bad{color:#b2182b;font-weight:700}"
    ".charts{display:flex;flex-wrap:wrap;gap:14px;margin-top:8px;align-items:flex-start}"
    ".charts svg{border:1px solid #e3e6ec;border-radius:6px;background:#fff;max-width:100%;height:auto}"
    "pre.err{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;background:#fbf3f3;padding:6px 8px;border-radius:4px;max-height:12em;overflow:auto}"
    "details{margin-top:10px}summary{cursor:pointer;font-weight:600}"
    "code{font-size:12px;background:#f1f3f7;padding:0 4px;border-radius:3px}"
    "footer{color:#5b6270;font-size:12px;margin-top:24px}";

/* ---- summary table ------------------------------------------------------------------------ */

static void td_num(FILE *f, const char *cls, const char *text) {
    fprintf(f, "<td class=\"num%s%s\">", cls && *cls ? " " : "", cls ? cls : "");
    esc(f, text);
    fputs("</td>", f);
}

static void verdict_cell(FILE *f, int verdict, double p, const char *na_reason) {
    char pb[NUM_TEXT];
    cad_report_fmt_p(pb, sizeof pb, p);
    if (verdict == 1) fprintf(f, "<td class=\"num\"><span class=\"yes\">✓ yes</span><br><span class=\"muted\">p=%s</span></td>", pb);
    else if (verdict == 0) fprintf(f, "<td class=\"num\"><span class=\"no\">✗ no</span><br><span class=\"muted\">p=%s</span></td>", pb);
    else fprintf(f, "<td class=\"num na\">– %s</td>", na_reason);
}

static void budget_cells(FILE *f, const cad_report_group *g) {
    char b[NUM_TEXT];
    cad_report_fmt_bytes(b, sizeof b, g->max_artifact_bytes);
    td_num(f, g->max_artifact_bytes > CAD_STATS_BUDGET_BYTES ? "bad" : "", b);
    fputs("<td class=\"num\">", f);
    for (int k = 0; k < 2; k++) {
        double ms = k ? g->max_eval_ms : g->max_train_ms;
        if (k) fputs(" / ", f);
        if (isfinite(ms)) fprintf(f, "<span%s>%.0f</span>", ms > CAD_STATS_BUDGET_MS ? " class=\"bad\"" : "", ms / 1000);
        else fputs("–", f);
    }
    fputs("</td>", f);
    if (g->n_invalid > 0) fprintf(f, "<td class=\"num bad\">✗ %d/%d over</td>", g->n_invalid, g->n_runs);
    else if (g->n_valid == g->n_runs) fprintf(f, "<td class=\"num yes\">✓ all</td>");
    else fprintf(f, "<td class=\"num na\">? unknown</td>");
}

static void summary_row(FILE *f, const cad_report_data *d, int gi, int rank, int best, const char *note) {
    const cad_report_group *g = &d->groups[gi];
    char b[NUM_TEXT], b2[NUM_TEXT];
    fprintf(f, "<tr class=\"group%s%s\" data-group=\"", g->is_ref ? " ref" : "", best ? " best" : "");
    esc(f, g->group_hash);
    fprintf(f, "\"><td class=\"num\">%d</td><td>", rank);
    esc(f, g->label);
    if (g->is_ref) fputs("<span class=\"badge b-ref\">REF</span>", f);
    if (best) fputs("<span class=\"badge b-best\">BEST</span>", f);
    if (note) {
        fputs(" <span class=\"muted\">", f);
        esc(f, note);
        fputs("</span>", f);
    }
    /* 16 hex digits identify a group (and work as a prefix for --ref/compare); the full
     * hash is in the tooltip and in data-group */
    fputs("<br><code title=\"", f);
    esc(f, g->group_hash);
    char short_hash[SHORT_HASH_CHARS + 1];
    snprintf(short_hash, sizeof short_hash, "%s", g->group_hash);
    fputs("\">", f);
    esc(f, short_hash);
    fputs("</code></td>", f);
    fprintf(f, "<td class=\"num\">%d%s</td>", g->n_runs, g->n_partial ? " <span class=\"bad\" title=\"eval limited by val_max_tokens\">partial</span>" : "");
    if (isfinite(g->bpb.std)) snprintf(b, sizeof b, "%.4f ± %.4f", g->bpb.mean, g->bpb.std);
    else snprintf(b, sizeof b, "%.4f", g->bpb.mean);
    fprintf(f, "<td class=\"num\"><b>%s</b><br><span class=\"muted\">best %.4f</span></td>", b, g->bpb.min);
    if (g->cmp.has) {
        cad_report_fmt_signed(b, sizeof b, g->cmp.bpb.delta, 4);
        cad_report_fmt_signed(b2, sizeof b2, g->cmp.delta_nats, 4);
        fprintf(f, "<td class=\"num\"><span class=\"%s\">%s</span><br><span class=\"muted\">%s nats</span></td>",
                g->cmp.bpb.delta < 0 ? "yes" : "", b, b2);
        cad_report_fmt_p(b, sizeof b, g->cmp.bpb.p);
        td_num(f, g->cmp.bpb.ok ? "" : "na", g->cmp.bpb.ok ? b : "– n<2");
        verdict_cell(f, g->cmp.clears_bar, g->cmp.bar.p, g->cmp.bar.ok ? "no val_loss" : "n<2");
        verdict_cell(f, g->cmp.frontier, g->cmp.bpb.p, "n<2");
    } else {
        fputs("<td class=\"num na\">reference</td><td class=\"num na\">–</td><td class=\"num na\">–</td><td class=\"num na\">–</td>", f);
    }
    budget_cells(f, g);
    fputs("</tr>\n", f);
}

#define SUMMARY_SHOWN 30 /* rows before the rest folds away (sweeps can have hundreds) */

static void summary_head(FILE *f, const char *cls, const char *slug) {
    fprintf(f, "<div class=\"scroll\"><table class=\"%s\" id=\"summary-%s%s\">\n<thead><tr>"
               "<th class=\"num\">#</th><th class=\"grp\">group (swept parameters)<br>group hash</th><th class=\"num\">seeds</th>"
               "<th class=\"num\">val_bpb<br>mean ± std</th>"
               "<th class=\"num\">Δ vs ref<br>bpb / nats</th>"
               "<th class=\"num\" title=\"one-sided Welch t-test, H1: group beats the reference\">p<br>Welch 1-sided</th>"
               "<th class=\"num\" title=\"improvement of at least 0.005 nats of val_loss at p &lt; 0.01\">record bar<br>≥0.005 nats, p&lt;0.01</th>"
               "<th class=\"num\" title=\"one-sided Welch p &lt; 0.25 vs the previous best (PR #1902)\">frontier rule<br>p&lt;0.25</th>"
               "<th class=\"num\">artifact bytes<br>(max, ≤16,000,000)</th><th class=\"num\">train / eval s<br>(max, ≤600 each)</th>"
               "<th class=\"num\">budget</th></tr></thead>\n<tbody>\n",
            cls, slug, strcmp(cls, "summary") ? "-more" : "");
}

static void summary_table(FILE *f, const cad_report_data *d, const cad_report_sweep *sw, const char *slug) {
    summary_head(f, "summary", slug);
    int rank = 0, best = -1, ref_here = 0, n = 0;
    for (int g = 0; g < d->n_groups; g++)
        if (!strcmp(d->groups[g].sweep, sw->name)) {
            if (best < 0) best = g;
            if (g == sw->ref_group) ref_here = 1;
            n++;
        }
    if (sw->ref_group >= 0 && !ref_here) {
        char note[CAD_SVG_NOTE_MAX];
        snprintf(note, sizeof note, "(reference from sweep '%s')", d->groups[sw->ref_group].sweep);
        summary_row(f, d, sw->ref_group, 0, 0, note);
    }
    for (int g = 0; g < d->n_groups; g++) {
        if (strcmp(d->groups[g].sweep, sw->name)) continue;
        if (rank == SUMMARY_SHOWN) {
            fprintf(f, "</tbody></table></div>\n<details><summary>%d more groups</summary>\n", n - SUMMARY_SHOWN);
            summary_head(f, "summary more", slug);
        }
        summary_row(f, d, g, ++rank, g == best, NULL);
    }
    fputs(rank > SUMMARY_SHOWN ? "</tbody></table></div></details>\n" : "</tbody></table></div>\n", f);
}

/* ---- verdict -------------------------------------------------------------------------------- */

static void verdict_line(FILE *f, const cad_report_data *d, const cad_report_sweep *sw) {
    int best = -1;
    for (int g = 0; g < d->n_groups && best < 0; g++)
        if (!strcmp(d->groups[g].sweep, sw->name)) best = g;
    if (best < 0) {
        fputs("<p class=\"verdict bad\">No finished run with a val_bpb in this selection yet.</p>\n", f);
        return;
    }
    const cad_report_group *g = &d->groups[best];
    int fits = g->n_invalid == 0 && g->n_valid == g->n_runs;
    const char *cls = g->cmp.clears_bar == 1 && fits ? "good" : g->n_invalid ? "bad" : "";
    fprintf(f, "<p class=\"verdict %s\"><b>Best: ", cls);
    esc(f, g->label);
    fprintf(f, "</b> — val_bpb <b>%.4f</b>", g->bpb.mean);
    if (isfinite(g->bpb.std)) fprintf(f, " ± %.4f", g->bpb.std);
    fprintf(f, " over %d seed%s", g->n_runs, g->n_runs == 1 ? "" : "s");
    if (g->cmp.has) {
        char db[NUM_TEXT], dn[NUM_TEXT], p[NUM_TEXT];
        cad_report_fmt_signed(db, sizeof db, g->cmp.bpb.delta, 4);
        cad_report_fmt_signed(dn, sizeof dn, g->cmp.delta_nats, 4);
        cad_report_fmt_p(p, sizeof p, g->cmp.bpb.p);
        if (g->cmp.bpb.ok) fprintf(f, "; %s bpb (%s nats) vs the reference, one-sided Welch p = %s", db, dn, p);
        else fprintf(f, "; %s bpb (%s nats) vs the reference (the Welch test needs ≥2 seeds in both groups)", db, dn);
        fprintf(f, "; record bar (0.005 nats at p&lt;0.01): %s",
                g->cmp.clears_bar == 1 ? "<span class=\"yes\">✓ cleared</span>"
                : g->cmp.clears_bar == 0 ? "<span class=\"no\">✗ not cleared</span>" : "<span class=\"na\">– needs ≥2 seeds each</span>");
        fprintf(f, "; frontier rule (p&lt;0.25): %s",
                g->cmp.frontier == 1 ? "<span class=\"yes\">✓</span>" : g->cmp.frontier == 0 ? "<span class=\"no\">✗</span>" : "<span class=\"na\">–</span>");
    } else {
        fputs(" (it is the reference group)", f);
    }
    char bytes[NUM_TEXT];
    cad_report_fmt_bytes(bytes, sizeof bytes, g->max_artifact_bytes);
    fprintf(f, "; budget: %s (artifact %s bytes", fits ? "<span class=\"yes\">✓ fits</span>" : g->n_invalid ? "<span class=\"bad\">✗ over</span>" : "<span class=\"na\">unknown</span>", bytes);
    if (isfinite(g->max_train_ms)) fprintf(f, ", train %.0f s", g->max_train_ms / 1000);
    if (isfinite(g->max_eval_ms)) fprintf(f, ", eval %.0f s", g->max_eval_ms / 1000);
    fputs(").</p>\n", f);
    if (sw->ref_group >= 0) {
        const cad_report_group *r = &d->groups[sw->ref_group];
        fputs("<p class=\"muted\">Reference group: <b>", f);
        esc(f, r->label);
        fputs("</b> (", f);
        esc(f, sw->ref_reason);
        fputs(").", f);
        if (isfinite(r->nats_per_bpb) && r->nats_per_bpb > 0)
            fprintf(f, " For its tokenizer 0.005 nats of val_loss = %.4f bpb.", CAD_STATS_BAR_NATS / r->nats_per_bpb);
        fputs(" The bar is tested as H1: improvement &gt; 0.005 nats (Welch, one-sided), so a ✓ means the improvement is significantly larger than the bar.</p>\n", f);
    }
}

/* ---- curves ----------------------------------------------------------------------------- */

typedef struct curve_series {
    double *x, *mean, *lo, *hi;
    int n;
} curve_series;

/* Read one metric of one run, ordered by step, keeping the finite points (a diverged run
 * logs inf, which would flatten every other curve on the chart). */
static int curve_read(cad_view_curves *cv, const char *run_id, const char *metric, double **xs, double **ys, int *n,
                      cad_err *e) {
    int rc = cad_view_curve_read(cv, run_id, metric, xs, ys, n, e);
    if (rc) return rc;
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (isfinite((*ys)[i])) {
            (*xs)[k] = (*xs)[i];
            (*ys)[k] = (*ys)[i];
            k++;
        }
    *n = k;
    return CAD_OK;
}

/* Aggregate the seeds of one group: per bin (binned=1, train loss: noisy per step) or per
 * exact step (binned=0, validation points line up across seeds): mean, min and max. */
static void curve_aggregate(double **xs, double **ys, const int *ns, int nseeds, int binned, double x_max,
                            int log_x, curve_series *out) {
    memset(out, 0, sizeof *out);
    if (binned) {
        int nb = CURVE_BINS;
        double *sum = calloc((size_t)nb * nseeds, sizeof *sum);
        int *cnt = calloc((size_t)nb * nseeds, sizeof *cnt);
        out->x = malloc((size_t)nb * sizeof(double));
        out->mean = malloc((size_t)nb * sizeof(double));
        out->lo = malloc((size_t)nb * sizeof(double));
        out->hi = malloc((size_t)nb * sizeof(double));
        if (!sum || !cnt || !out->x || !out->mean || !out->lo || !out->hi) {
            free(sum); free(cnt);
            return;
        }
        double lmax = log10(x_max > 1 ? x_max : 10);
        for (int s = 0; s < nseeds; s++)
            for (int i = 0; i < ns[s]; i++) {
                double x = xs[s][i];
                double t = log_x ? (x >= 1 ? log10(x) / lmax : 0) : x / x_max;
                int b = (int)(t * nb);
                if (b >= nb) b = nb - 1;
                if (b < 0) b = 0;
                sum[s * nb + b] += ys[s][i];
                cnt[s * nb + b]++;
            }
        for (int b = 0; b < nb; b++) {
            double m = 0, lo = INFINITY, hi = -INFINITY;
            int k = 0;
            for (int s = 0; s < nseeds; s++)
                if (cnt[s * nb + b]) {
                    double v = sum[s * nb + b] / cnt[s * nb + b];
                    m += v;
                    k++;
                    if (v < lo) lo = v;
                    if (v > hi) hi = v;
                }
            if (!k) continue;
            double c = (b + 0.5) / nb;
            out->x[out->n] = log_x ? pow(10, c * lmax) : c * x_max;
            out->mean[out->n] = m / k;
            out->lo[out->n] = lo;
            out->hi[out->n] = hi;
            out->n++;
        }
        free(sum);
        free(cnt);
        return;
    }
    int total = 0;
    for (int s = 0; s < nseeds; s++) total += ns[s];
    out->x = malloc((size_t)(total + 1) * sizeof(double));
    out->mean = malloc((size_t)(total + 1) * sizeof(double));
    out->lo = malloc((size_t)(total + 1) * sizeof(double));
    out->hi = malloc((size_t)(total + 1) * sizeof(double));
    int *pos = calloc((size_t)nseeds + 1, sizeof *pos);
    if (!out->x || !out->mean || !out->lo || !out->hi || !pos) {
        free(pos);
        return;
    }
    /* merge the (sorted) step lists */
    for (;;) {
        double step = INFINITY;
        for (int s = 0; s < nseeds; s++)
            if (pos[s] < ns[s] && xs[s][pos[s]] < step) step = xs[s][pos[s]];
        if (isinf(step)) break;
        double m = 0, lo = INFINITY, hi = -INFINITY;
        int k = 0;
        for (int s = 0; s < nseeds; s++)
            while (pos[s] < ns[s] && xs[s][pos[s]] == step) {
                double v = ys[s][pos[s]++];
                m += v;
                k++;
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
        out->x[out->n] = step;
        out->mean[out->n] = m / k;
        out->lo[out->n] = lo;
        out->hi[out->n] = hi;
        out->n++;
    }
    free(pos);
}

static void curve_series_free(curve_series *c) {
    free(c->x); free(c->mean); free(c->lo); free(c->hi);
    memset(c, 0, sizeof *c);
}

/* The groups drawn in curve charts: the best ones and the reference. */
static int curve_groups(const cad_report_data *d, const cad_report_sweep *sw, int max_groups, int *out) {
    int n = 0;
    for (int g = 0; g < d->n_groups && n < max_groups; g++)
        if (!strcmp(d->groups[g].sweep, sw->name)) out[n++] = g;
    if (sw->ref_group >= 0) {
        int have = 0;
        for (int i = 0; i < n; i++) have |= out[i] == sw->ref_group;
        if (!have) {
            if (n == max_groups) n--;
            out[n++] = sw->ref_group;
        }
    }
    return n;
}

static int curve_chart(FILE *f, cad_db *db, const cad_report_data *d, const cad_report_sweep *sw, const char *slug,
                       const cad_report_html_options *o, const char *metric, cad_err *e) {
    int max_groups = o->max_curve_groups > 0 ? o->max_curve_groups : 8;
    if (max_groups > CAD_SVG_N_STYLES) max_groups = CAD_SVG_N_STYLES;
    int gs[CAD_SVG_N_STYLES];
    int ng = curve_groups(d, sw, max_groups, gs);
    int n_in_sweep = 0;
    for (int g = 0; g < d->n_groups; g++) n_in_sweep += !strcmp(d->groups[g].sweep, sw->name);
    cad_view_curves *cv;
    int orc = cad_view_curves_open(db, &cv, e);
    if (orc) return orc;
    /* read every seed of every drawn group first: the bins need the overall step range */
    struct { double **xs, **ys; int *ns, nseeds; } raw[CAD_SVG_N_STYLES];
    memset(raw, 0, sizeof raw);
    curve_series series[CAD_SVG_N_STYLES];
    memset(series, 0, sizeof series);
    double x_max = 0, y_lo = INFINITY, y_hi = -INFINITY;
    int binned = !strcmp(metric, "train_loss"), rc = CAD_OK;
    for (int i = 0; i < ng && !rc; i++) {
        const cad_report_group *g = &d->groups[gs[i]];
        raw[i].nseeds = g->n_runs;
        raw[i].xs = calloc((size_t)g->n_runs, sizeof *raw[i].xs);
        raw[i].ys = calloc((size_t)g->n_runs, sizeof *raw[i].ys);
        raw[i].ns = calloc((size_t)g->n_runs, sizeof *raw[i].ns);
        if (!raw[i].xs || !raw[i].ys || !raw[i].ns) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
        for (int s = 0; s < g->n_runs && !rc; s++) {
            rc = curve_read(cv, d->runs[g->runs[s]].run_id, metric, &raw[i].xs[s], &raw[i].ys[s], &raw[i].ns[s], e);
            for (int k = 0; k < raw[i].ns[s]; k++)
                if (raw[i].xs[s][k] > x_max) x_max = raw[i].xs[s][k];
        }
    }
    cad_view_curves_close(cv);
    int any = 0;
    for (int i = 0; i < ng; i++) {
        if (!rc && raw[i].xs && raw[i].ys && raw[i].ns)
            curve_aggregate(raw[i].xs, raw[i].ys, raw[i].ns, raw[i].nseeds, binned, x_max > 0 ? x_max : 1, o->log_x, &series[i]);
        for (int s = 0; s < raw[i].nseeds; s++) {
            if (raw[i].xs) free(raw[i].xs[s]);
            if (raw[i].ys) free(raw[i].ys[s]);
        }
        free(raw[i].xs); free(raw[i].ys); free(raw[i].ns);
        for (int k = 0; k < series[i].n; k++) {
            any = 1;
            if (series[i].lo[k] < y_lo) y_lo = series[i].lo[k];
            if (series[i].hi[k] > y_hi) y_hi = series[i].hi[k];
        }
    }
    if (rc) {
        for (int i = 0; i < ng; i++) curve_series_free(&series[i]);
        return rc;
    }
    char id[CHART_TEXT], title[CHART_TEXT];
    int is_train = !strcmp(metric, "train_loss");
    snprintf(id, sizeof id, "%s-%s", slug, is_train ? "train-loss" : "val-bpb");
    snprintf(title, sizeof title, "%s", is_train ? "Training loss (mean of seeds, band = min–max)" : "Validation val_bpb during training (band = seed min–max)");
    if (!any) {
        fprintf(f, "<p class=\"muted\" id=\"%s\">No %s curve recorded for these runs.</p>\n", id, metric);
        for (int i = 0; i < ng; i++) curve_series_free(&series[i]);
        return CAD_OK;
    }
    if (y_hi > y_lo && !o->log_x) {
        /* the first steps' loss (~ln V) would flatten everything else: clip the top at the
         * highest value seen after the first quarter of the run (log-x shows the start) */
        double late_hi = -INFINITY;
        for (int i = 0; i < ng; i++)
            for (int k = 0; k < series[i].n; k++)
                if (series[i].x[k] > 0.25 * x_max && series[i].hi[k] > late_hi) late_hi = series[i].hi[k];
        if (isfinite(late_hi) && late_hi < y_hi) y_hi = late_hi + 0.15 * (late_hi - y_lo);
    }
    cad_svg_plot p;
    memset(&p, 0, sizeof p);
    p.f = f;
    p.id = id;
    p.title = title;
    p.x_label = o->log_x ? "step (log scale)" : "step";
    p.y_label = is_train ? "train loss (nats/token)" : "val_bpb (bits/byte)";
    p.width = 590;
    p.plot_height = 250;
    p.log_x = o->log_x;
    p.x_lo = o->log_x ? 1 : 0;
    p.x_hi = x_max > 0 ? x_max : 1;
    p.y_lo = y_lo;
    p.y_hi = y_hi;
    for (int i = 0; i < ng; i++) {
        char lab[CAD_SVG_LABEL_MAX], sl[LEGEND_LABEL_TEXT];
        short_label(d->groups[gs[i]].label, sl, sizeof sl, LEGEND_LABEL_CHARS);
        snprintf(lab, sizeof lab, "%s%s (n=%d)", sl, d->groups[gs[i]].is_ref ? " [ref]" : "", d->groups[gs[i]].n_runs);
        cad_svg_plot_legend_add(&p, lab, i, is_train ? CAD_SVG_LEGEND_LINE : CAD_SVG_LEGEND_LINE_POINT);
    }
    if (n_in_sweep > ng) snprintf(p.note, sizeof p.note, "%d of %d groups shown: the best by mean val_bpb and the reference", ng, n_in_sweep);
    cad_svg_plot_begin(&p);
    for (int i = 0; i < ng; i++) cad_svg_plot_band(&p, series[i].x, series[i].lo, series[i].hi, series[i].n, i);
    for (int i = 0; i < ng; i++) {
        cad_svg_plot_line(&p, series[i].x, series[i].mean, series[i].n, i, is_train ? 1.8 : 2.2);
        if (!is_train) cad_svg_plot_points(&p, series[i].x, series[i].mean, series[i].n, i, 3.5, 0);
    }
    cad_svg_plot_end(&p);
    for (int i = 0; i < ng; i++) curve_series_free(&series[i]);
    return CAD_OK;
}

/* ---- val_bpb against swept parameters ----------------------------------------------------- */

/* Distinct values of key among the sweep's groups, sorted numerically when all are numbers. */
typedef struct param_values {
    char **texts;
    double *nums;
    int n, numeric;
} param_values;

static const char *group_value(const cad_report_data *d, const cad_report_group *g, const char *key, double *num) {
    const cad_report_run *r = &d->runs[g->runs[0]];
    for (int k = 0; k < r->n_params; k++)
        if (!strcmp(r->param_keys[k], key)) {
            *num = r->param_nums[k];
            return r->param_texts[k];
        }
    *num = NAN;
    return "(unset)";
}

static void param_values_collect(const cad_report_data *d, const cad_report_sweep *sw, const char *key, param_values *pv) {
    memset(pv, 0, sizeof *pv);
    pv->texts = malloc((size_t)(d->n_groups + 1) * sizeof *pv->texts);
    pv->nums = malloc((size_t)(d->n_groups + 1) * sizeof *pv->nums);
    if (!pv->texts || !pv->nums) return;
    pv->numeric = 1;
    for (int g = 0; g < d->n_groups; g++) {
        if (strcmp(d->groups[g].sweep, sw->name)) continue;
        double num;
        const char *t = group_value(d, &d->groups[g], key, &num);
        int seen = 0;
        for (int i = 0; i < pv->n && !seen; i++) seen = !strcmp(pv->texts[i], t);
        if (seen) continue;
        pv->texts[pv->n] = (char *)t;
        pv->nums[pv->n] = num;
        if (!isfinite(num)) pv->numeric = 0;
        pv->n++;
    }
    /* insertion sort: numeric by value, else by text */
    for (int i = 1; i < pv->n; i++)
        for (int j = i; j > 0; j--) {
            int swap = pv->numeric ? pv->nums[j] < pv->nums[j - 1] : strcmp(pv->texts[j], pv->texts[j - 1]) < 0;
            if (!swap) break;
            char *t = pv->texts[j]; pv->texts[j] = pv->texts[j - 1]; pv->texts[j - 1] = t;
            double n = pv->nums[j]; pv->nums[j] = pv->nums[j - 1]; pv->nums[j - 1] = n;
        }
}

static void param_values_free(param_values *pv) {
    free(pv->texts);
    free(pv->nums);
}

static int value_index(const param_values *pv, const char *t) {
    for (int i = 0; i < pv->n; i++)
        if (!strcmp(pv->texts[i], t)) return i;
    return -1;
}

static void short_value(const char *v, char *buf, size_t n) {
    const char *slash = strrchr(v, '/');
    if (slash && slash[1]) v = slash + 1;
    short_label(v, buf, n, CATEGORY_CHARS);
}

static void param_chart(FILE *f, const cad_report_data *d, const cad_report_sweep *sw, const char *slug, int k,
                        double width) {
    const char *key = sw->swept_keys[k];
    param_values pv, other;
    param_values_collect(d, sw, key, &pv);
    /* with exactly two swept keys, one line per value of the other key (interaction plot) */
    const char *other_key = sw->n_swept == 2 ? sw->swept_keys[1 - k] : NULL;
    memset(&other, 0, sizeof other);
    if (other_key) param_values_collect(d, sw, other_key, &other);
    /* more values of the other key than styles: one line, marginal over the other keys */
    if (other_key && other.n > CAD_SVG_N_STYLES) {
        param_values_free(&other);
        memset(&other, 0, sizeof other);
        other_key = NULL;
    }
    int n_series = other_key ? other.n : 1;
    char **cats = NULL;
    double lo = INFINITY, hi = -INFINITY;
    int log_x = 0;
    if (pv.numeric) {
        double mn = pv.nums[0], mx = pv.nums[pv.n - 1];
        log_x = mn > 0 && mx / mn >= 20;
    } else {
        cats = malloc((size_t)pv.n * sizeof *cats);
        for (int i = 0; cats && i < pv.n; i++) {
            cats[i] = malloc(CATEGORY_TEXT);
            if (cats[i]) short_value(pv.texts[i], cats[i], CATEGORY_TEXT);
        }
    }
    for (int g = 0; g < d->n_groups; g++) {
        const cad_report_group *grp = &d->groups[g];
        if (strcmp(grp->sweep, sw->name)) continue;
        for (int i = 0; i < grp->n_runs; i++) {
            double v = d->runs[grp->runs[i]].val_bpb;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (isfinite(grp->bpb.std)) {
            if (grp->bpb.mean - grp->bpb.std < lo) lo = grp->bpb.mean - grp->bpb.std;
            if (grp->bpb.mean + grp->bpb.std > hi) hi = grp->bpb.mean + grp->bpb.std;
        }
    }
    char id[CHART_TEXT], title[CHART_TEXT], xl[CHART_TEXT], sk[KEY_SLUG_MAX];
    slug_of(key, sk, sizeof sk);
    snprintf(id, sizeof id, "%s-param-%s", slug, sk);
    snprintf(title, sizeof title, "val_bpb vs %s", key);
    snprintf(xl, sizeof xl, "%s%s", key, log_x ? " (log scale)" : "");
    cad_svg_plot p;
    memset(&p, 0, sizeof p);
    p.f = f;
    p.id = id;
    p.title = title;
    p.x_label = xl;
    p.y_label = "final val_bpb (bits/byte)";
    p.width = width;
    p.plot_height = 250;
    p.log_x = log_x;
    if (cats) {
        p.x_cats = (const char *const *)cats;
        p.n_cats = pv.n;
    } else {
        double mn = pv.nums[0], mx = pv.nums[pv.n - 1], pad = log_x ? 0 : (mx - mn) * 0.06;
        p.x_lo = log_x ? mn / 1.3 : mn - pad;
        p.x_hi = log_x ? mx * 1.3 : mx + pad;
    }
    p.y_lo = lo;
    p.y_hi = hi;
    int ref_line = sw->ref_group >= 0;
    for (int s = 0; s < n_series; s++) {
        char lab[CAD_SVG_LABEL_MAX], sv[NUM_TEXT];
        if (other_key) {
            short_value(other.texts[s], sv, sizeof sv);
            snprintf(lab, sizeof lab, "%s=%s: seeds, mean ± std", other_key, sv);
        } else if (sw->n_swept > 1) {
            snprintf(lab, sizeof lab, "seeds (points); mean ± std over the other swept keys");
        } else {
            snprintf(lab, sizeof lab, "seeds (points), mean ± std (line, bars)");
        }
        cad_svg_plot_legend_add(&p, lab, s, CAD_SVG_LEGEND_LINE_POINT);
    }
    if (ref_line) cad_svg_plot_legend_add(&p, "reference mean", 0, CAD_SVG_LEGEND_REFLINE);
    int any_invalid = 0;
    for (int g = 0; g < d->n_groups; g++)
        if (!strcmp(d->groups[g].sweep, sw->name) && d->groups[g].n_invalid) any_invalid = 1;
    if (any_invalid) snprintf(p.note, sizeof p.note, "hollow markers: runs over a budget (invalid)");
    cad_svg_plot_begin(&p);
    if (ref_line) cad_svg_plot_hline(&p, d->groups[sw->ref_group].bpb.mean, "ref", "#b2182b", "6 3");
    int cap = d->n_runs + 1;
    double *vals = malloc((size_t)cap * sizeof *vals);
    double *mx = malloc((size_t)(pv.n + 1) * sizeof *mx), *my = malloc((size_t)(pv.n + 1) * sizeof *my);
    for (int s = 0; s < n_series && vals && mx && my; s++) {
        int nm = 0;
        for (int i = 0; i < pv.n; i++) {
            double x = cats ? i : pv.nums[i];
            /* slight horizontal offset per series on categorical axes so bars do not overlap */
            if (cats && n_series > 1) x += (s - (n_series - 1) / 2.0) * 0.08;
            /* every run with key = value i (and other key = value s): one point per seed; the
             * mean and ±std over them (one group when one key is swept, else the marginal) */
            int nv = 0;
            for (int g = 0; g < d->n_groups; g++) {
                const cad_report_group *grp = &d->groups[g];
                if (strcmp(grp->sweep, sw->name)) continue;
                double num;
                if (value_index(&pv, group_value(d, grp, key, &num)) != i) continue;
                if (other_key && value_index(&other, group_value(d, grp, other_key, &num)) != s) continue;
                for (int r = 0; r < grp->n_runs; r++) {
                    const cad_report_run *run = &d->runs[grp->runs[r]];
                    double px = x, py = run->val_bpb;
                    cad_svg_plot_points(&p, &px, &py, 1, s, 3.6, run->valid == 0);
                    if (nv < cap) vals[nv++] = run->val_bpb;
                }
            }
            if (nv == 0) continue;
            cad_stats_summary sm;
            cad_stats_summarize(vals, nv, &sm);
            if (isfinite(sm.std)) cad_svg_plot_errorbar(&p, x, sm.mean - sm.std, sm.mean + sm.std, s);
            mx[nm] = x;
            my[nm] = sm.mean;
            nm++;
        }
        cad_svg_plot_line(&p, mx, my, nm, s, 2.2);
    }
    free(vals);
    free(mx);
    free(my);
    cad_svg_plot_end(&p);
    if (cats) {
        for (int i = 0; i < pv.n; i++) free(cats[i]);
        free(cats);
    }
    param_values_free(&pv);
    if (other_key) param_values_free(&other);
}

static void heatmap_chart(FILE *f, const cad_report_data *d, const cad_report_sweep *sw, const char *slug) {
    param_values xv, yv;
    param_values_collect(d, sw, sw->swept_keys[0], &xv);
    param_values_collect(d, sw, sw->swept_keys[1], &yv);
    int nx = xv.n, ny = yv.n;
    double *vals = malloc((size_t)(nx * ny + 1) * sizeof *vals);
    char **notes = calloc((size_t)(nx * ny + 1), sizeof *notes);
    char **xc = calloc((size_t)nx + 1, sizeof *xc), **yc = calloc((size_t)ny + 1, sizeof *yc);
    if (!vals || !notes || !xc || !yc) goto done;
    for (int i = 0; i < nx * ny; i++) vals[i] = NAN;
    for (int i = 0; i < nx; i++) if ((xc[i] = malloc(CATEGORY_TEXT))) short_value(xv.texts[i], xc[i], CATEGORY_TEXT);
    for (int i = 0; i < ny; i++) if ((yc[i] = malloc(CATEGORY_TEXT))) short_value(yv.texts[i], yc[i], CATEGORY_TEXT);
    for (int g = 0; g < d->n_groups; g++) {
        const cad_report_group *grp = &d->groups[g];
        if (strcmp(grp->sweep, sw->name)) continue;
        double num;
        int ix = value_index(&xv, group_value(d, grp, sw->swept_keys[0], &num));
        int iy = value_index(&yv, group_value(d, grp, sw->swept_keys[1], &num));
        if (ix < 0 || iy < 0) continue;
        vals[iy * nx + ix] = grp->bpb.mean;
        if ((notes[iy * nx + ix] = malloc(NUM_TEXT))) {
            if (isfinite(grp->bpb.std)) snprintf(notes[iy * nx + ix], NUM_TEXT, "±%.4f n=%d", grp->bpb.std, grp->n_runs);
            else snprintf(notes[iy * nx + ix], NUM_TEXT, "n=%d", grp->n_runs);
        }
    }
    char id[CHART_TEXT], title[CHART_TEXT];
    snprintf(id, sizeof id, "%s-heatmap", slug);
    snprintf(title, sizeof title, "Mean val_bpb: %s × %s", sw->swept_keys[0], sw->swept_keys[1]);
    cad_svg_heatmap h = {f, id, title, sw->swept_keys[0], sw->swept_keys[1], "mean val_bpb", "%.4f",
                     (const char *const *)xc, nx, (const char *const *)yc, ny, vals,
                     (const char *const *)notes, 1};
    cad_svg_heatmap_write(&h);
done:
    for (int i = 0; notes && i < nx * ny; i++) free(notes[i]);
    for (int i = 0; xc && i < nx; i++) free(xc[i]);
    for (int i = 0; yc && i < ny; i++) free(yc[i]);
    free(vals); free(notes); free(xc); free(yc);
    param_values_free(&xv);
    param_values_free(&yv);
}

/* ---- budget and throughput bars --------------------------------------------------------- */

#define BAR_MAX_GROUPS 24 /* rows per bar chart: more is a wall, not a chart */

static void bar_charts(FILE *f, const cad_report_data *d, const cad_report_sweep *sw, const char *slug) {
    int n = 0, n_all = 0;
    for (int g = 0; g < d->n_groups; g++) n_all += !strcmp(d->groups[g].sweep, sw->name);
    n = n_all < BAR_MAX_GROUPS ? n_all : BAR_MAX_GROUPS;
    if (n == 0) return;
    if (n < n_all)
        fprintf(f, "<p class=\"muted\" style=\"flex-basis:100%%;margin:0\">Bars show the %d best of %d groups (and the reference); the summary table has all of them.</p>\n",
                n, n_all);
    char **labels = calloc((size_t)n, sizeof *labels);
    double *mb = malloc((size_t)n * sizeof *mb), *secs = malloc((size_t)n * 2 * sizeof *secs);
    double *step = malloc((size_t)n * sizeof *step), *tps = malloc((size_t)n * sizeof *tps);
    if (!labels || !mb || !secs || !step || !tps) goto done;
    int i = 0;
    double tps_max = 0;
    int ref = sw->ref_group, ref_here = ref >= 0 && !strcmp(d->groups[ref].sweep, sw->name), ref_shown = 0;
    for (int g = 0; g < d->n_groups && i < n; g++) {
        if (strcmp(d->groups[g].sweep, sw->name)) continue;
        /* the last slot goes to the reference when it is not among the best */
        int pick = (i == n - 1 && ref_here && !ref_shown) ? ref : g;
        const cad_report_group *grp = &d->groups[pick];
        if (pick == ref) ref_shown = 1;
        labels[i] = malloc(BAR_LABEL_TEXT);
        if (labels[i]) short_label(grp->label, labels[i], BAR_LABEL_TEXT, BAR_LABEL_CHARS);
        mb[i] = grp->max_artifact_bytes / 1e6;
        secs[2 * i] = grp->max_train_ms / 1000;
        secs[2 * i + 1] = grp->max_eval_ms / 1000;
        step[i] = grp->mean_step_ms;
        tps[i] = grp->mean_tokens_per_s;
        if (tps[i] > tps_max) tps_max = tps[i];
        i++;
    }
    int millions = tps_max >= 1e6;
    for (i = 0; i < n; i++) tps[i] /= millions ? 1e6 : 1e3;
    char id[CHART_TEXT];
    snprintf(id, sizeof id, "%s-artifact", slug);
    cad_svg_hbar a = {f, id, "Artifact size per group (max over seeds)", "artifact = code + compressed model (MB, 10⁶ bytes)",
                  (const char *const *)labels, n, mb, 1, NULL, 16.0, "16,000,000 bytes", "%.3f MB", 600};
    cad_svg_hbar_write(&a);
    static const char *const time_names[] = {"train", "eval"};
    snprintf(id, sizeof id, "%s-time", slug);
    cad_svg_hbar t = {f, id, "Wall-clock time per group (max over seeds)", "seconds",
                  (const char *const *)labels, n, secs, 2, time_names, 600, "600 s cap", "%.0f s", 600};
    cad_svg_hbar_write(&t);
    snprintf(id, sizeof id, "%s-step-time", slug);
    cad_svg_hbar s = {f, id, "Step time (mean over seeds)", "ms per training step",
                  (const char *const *)labels, n, step, 1, NULL, 0, NULL, "%.1f ms", 600};
    cad_svg_hbar_write(&s);
    snprintf(id, sizeof id, "%s-tokens", slug);
    cad_svg_hbar k = {f, id, "Training throughput (mean over seeds)",
                  millions ? "million tokens per second" : "thousand tokens per second",
                  (const char *const *)labels, n, tps, 1, NULL, 0, NULL, millions ? "%.2f M/s" : "%.1f k/s", 600};
    cad_svg_hbar_write(&k);
done:
    for (i = 0; labels && i < n; i++) free(labels[i]);
    free(labels); free(mb); free(secs); free(step); free(tps);
}

/* ---- run tables ------------------------------------------------------------------------- */

static void runs_table(FILE *f, const cad_report_data *d, const cad_report_sweep *sw) {
    fputs("<details><summary>Every run of this sweep (per seed)</summary>\n<table class=\"runs\"><thead><tr>"
          "<th>run</th><th>group</th><th class=\"num\">seed</th><th>status</th><th class=\"num\">val_bpb</th>"
          "<th class=\"num\">val_loss</th><th class=\"num\">pre-quant bpb</th><th class=\"num\">artifact bytes</th>"
          "<th class=\"num\">train s</th><th class=\"num\">eval s</th><th class=\"num\">steps</th><th>valid</th></tr></thead><tbody>\n", f);
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (strcmp(r->sweep ? r->sweep : "", sw->name)) continue;
        char b[NUM_TEXT];
        fputs("<tr><td><code>", f);
        esc(f, r->run_id);
        fputs("</code> ", f);
        esc(f, r->name);
        fputs("</td><td>", f);
        esc(f, r->group >= 0 ? d->groups[r->group].label : "");
        fputs("</td>", f);
        if (r->has_seed) fprintf(f, "<td class=\"num\">%lld</td>", r->seed);
        else fputs("<td class=\"num na\">–</td>", f);
        fprintf(f, "<td>%s", strcmp(r->status, "done") ? "<span class=\"bad\">" : "<span>");
        esc(f, r->status);
        fputs("</span></td>", f);
        snprintf(b, sizeof b, isfinite(r->val_bpb) ? "%.5f" : "–", r->val_bpb);
        td_num(f, "", b);
        snprintf(b, sizeof b, isfinite(r->val_loss) ? "%.5f" : "–", r->val_loss);
        td_num(f, "", b);
        snprintf(b, sizeof b, isfinite(r->prequant_val_bpb) ? "%.5f" : "–", r->prequant_val_bpb);
        td_num(f, "", b);
        cad_report_fmt_bytes(b, sizeof b, r->artifact_bytes);
        td_num(f, r->artifact_bytes > CAD_STATS_BUDGET_BYTES ? "bad" : "", b);
        snprintf(b, sizeof b, isfinite(r->train_ms) ? "%.1f" : "–", r->train_ms / 1000);
        td_num(f, r->train_ms > CAD_STATS_BUDGET_MS ? "bad" : "", b);
        snprintf(b, sizeof b, isfinite(r->eval_ms) ? "%.1f" : "–", r->eval_ms / 1000);
        td_num(f, r->eval_ms > CAD_STATS_BUDGET_MS ? "bad" : "", b);
        snprintf(b, sizeof b, isfinite(r->steps) ? "%.0f" : "–", r->steps);
        td_num(f, "", b);
        fprintf(f, "<td>%s%s</td></tr>\n",
                r->valid == 1 ? "<span class=\"yes\">✓</span>" : r->valid == 0 ? "<span class=\"bad\">✗ invalid</span>" : "<span class=\"na\">–</span>",
                r->partial ? " <span class=\"bad\">partial eval</span>" : "");
    }
    fputs("</tbody></table></details>\n", f);
}

static void failures_table(FILE *f, const cad_report_data *d, const cad_report_sweep *sw, const char *slug) {
    int n = 0;
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (!strcmp(r->sweep ? r->sweep : "", sw->name) &&
            (!strcmp(r->status, "failed") || !strcmp(r->status, "interrupted") || !strcmp(r->status, "cancelled")))
            n++;
    }
    fprintf(f, "<h3>Failed and interrupted runs (%d)</h3>\n", n);
    if (n == 0) {
        fputs("<p class=\"muted\">None.</p>\n", f);
        return;
    }
    fprintf(f, "<table class=\"failures\" id=\"failures-%s\"><thead><tr><th>run</th><th>status</th><th class=\"num\">attempts</th>"
               "<th class=\"num\">seed</th><th>ended</th><th style=\"width:55%%\">error (last lines)</th></tr></thead><tbody>\n", slug);
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (strcmp(r->sweep ? r->sweep : "", sw->name) ||
            !(!strcmp(r->status, "failed") || !strcmp(r->status, "interrupted") || !strcmp(r->status, "cancelled")))
            continue;
        fputs("<tr class=\"failure\"><td><code>", f);
        esc(f, r->run_id);
        fputs("</code><br>", f);
        esc(f, r->name);
        fprintf(f, "</td><td class=\"bad\">");
        esc(f, r->status);
        fprintf(f, "</td><td class=\"num\">%d</td>", r->attempts);
        if (r->has_seed) fprintf(f, "<td class=\"num\">%lld</td>", r->seed);
        else fputs("<td class=\"num\">–</td>", f);
        fputs("<td>", f);
        esc(f, r->ended_at ? r->ended_at : "–");
        fputs("</td><td><pre class=\"err\">", f);
        const char *err = r->error ? r->error : "(no error text recorded)";
        size_t len = strlen(err);
        if (len > 1500) {
            fputs("…", f);
            err += len - 1500;
        }
        esc(f, err);
        fputs("</pre></td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

/* Runs the sweep's stop: rule ended early (docs/sweeps.md#early-stopping): their partial
 * val_bpb curves drawn over the sweep's finished ones (grey), and a table with the reason
 * (the rule and the numbers). */
#define STOPPED_CHART_MAX 24 /* stopped runs drawn (the table lists every one) */
static int stopped_section(FILE *f, cad_db *db, const cad_report_data *d, const cad_report_sweep *sw, const char *slug,
                           cad_err *e) {
    int n = 0;
    for (int i = 0; i < d->n_runs; i++)
        n += !strcmp(d->runs[i].sweep ? d->runs[i].sweep : "", sw->name) && !strcmp(d->runs[i].status, "stopped");
    if (n == 0) return CAD_OK;
    fprintf(f, "<h3>Stopped early (%d)</h3>\n", n);
    cad_view_curves *cv = NULL;
    int rc = cad_view_curves_open(db, &cv, e);
    if (rc) return rc;
    /* every curve of the chart: finished runs first (context), then the stopped ones */
    int cap = d->n_runs, nc = 0;
    double **xs = calloc((size_t)cap, sizeof *xs), **ys = calloc((size_t)cap, sizeof *ys);
    int *np = calloc((size_t)cap, sizeof *np), *stopped = calloc((size_t)cap, sizeof *stopped);
    if (!xs || !ys || !np || !stopped) rc = cad_fail(e, CAD_ENOMEM, "out of memory");
    double x_hi = 1, y_lo = INFINITY, y_hi = -INFINITY;
    int n_drawn = 0;
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (int i = 0; i < d->n_runs && !rc; i++) {
            const cad_report_run *r = &d->runs[i];
            if (strcmp(r->sweep ? r->sweep : "", sw->name)) continue;
            int is_stopped = !strcmp(r->status, "stopped");
            if (pass == 0 ? strcmp(r->status, "done") != 0 : !is_stopped) continue;
            if (is_stopped && n_drawn++ >= STOPPED_CHART_MAX) continue;
            rc = curve_read(cv, r->run_id, "val_bpb", &xs[nc], &ys[nc], &np[nc], e);
            if (rc) break;
            stopped[nc] = is_stopped;
            for (int k = 0; k < np[nc]; k++) {
                if (xs[nc][k] > x_hi) x_hi = xs[nc][k];
                if (ys[nc][k] < y_lo) y_lo = ys[nc][k];
                if (ys[nc][k] > y_hi) y_hi = ys[nc][k];
            }
            nc++;
        }
    cad_view_curves_close(cv);
    if (!rc && isfinite(y_lo) && y_hi >= y_lo) {
        char id[SLUG_MAX + 32];
        snprintf(id, sizeof id, "stopped-%s", slug);
        cad_svg_plot p;
        memset(&p, 0, sizeof p);
        p.f = f;
        p.id = id;
        p.title = "val_bpb of the stopped runs (partial curves) over the finished ones";
        p.x_label = "step";
        p.y_label = "val_bpb (bits/byte)";
        p.width = 590;
        p.plot_height = 220;
        p.x_lo = 0;
        p.x_hi = x_hi;
        p.y_lo = y_lo;
        p.y_hi = y_hi > y_lo ? y_hi : y_lo + 1;
        cad_svg_plot_legend_add(&p, "finished runs", 7, CAD_SVG_LEGEND_LINE);
        cad_svg_plot_legend_add(&p, "stopped runs", 1, CAD_SVG_LEGEND_LINE_POINT);
        if (n > STOPPED_CHART_MAX) snprintf(p.note, sizeof p.note, "%d of %d stopped runs shown", STOPPED_CHART_MAX, n);
        fputs("<div class=\"charts\">\n", f);
        cad_svg_plot_begin(&p);
        for (int c = 0; c < nc; c++) {
            cad_svg_plot_line(&p, xs[c], ys[c], np[c], stopped[c] ? 1 : 7, stopped[c] ? 2.0 : 1.0);
            if (stopped[c]) cad_svg_plot_points(&p, xs[c], ys[c], np[c], 1, 3.0, 0);
        }
        cad_svg_plot_end(&p);
        fputs("</div>\n", f);
    }
    for (int c = 0; c < nc; c++) {
        free(xs[c]);
        free(ys[c]);
    }
    free(xs);
    free(ys);
    free(np);
    free(stopped);
    if (rc) return rc;
    fprintf(f, "<table class=\"stopped\" id=\"stopped-runs-%s\"><thead><tr><th>run</th><th>ended</th>"
               "<th style=\"width:60%%\">reason (the rule and the numbers)</th></tr></thead><tbody>\n", slug);
    for (int i = 0; i < d->n_runs; i++) {
        const cad_report_run *r = &d->runs[i];
        if (strcmp(r->sweep ? r->sweep : "", sw->name) || strcmp(r->status, "stopped")) continue;
        fputs("<tr class=\"stopped\"><td><code>", f);
        esc(f, r->run_id);
        fputs("</code><br>", f);
        esc(f, r->name);
        fputs("</td><td>", f);
        esc(f, r->ended_at ? r->ended_at : "–");
        fputs("</td><td>", f);
        esc(f, r->error ? r->error : "(no reason recorded)");
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
    return CAD_OK;
}

/* ---- page -------------------------------------------------------------------------------- */

static int sweep_section(FILE *f, cad_db *db, const cad_report_data *d, const cad_report_sweep *sw,
                         const cad_report_html_options *o, cad_err *e) {
    char slug[SLUG_MAX];
    slug_of(sw->name, slug, sizeof slug);
    fprintf(f, "<section class=\"sweep\" id=\"sweep-%s\">\n<h2>Sweep ", slug);
    esc(f, sw->name[0] ? sw->name : "(runs outside any sweep)");
    fputs("</h2>\n", f);
    int ng = 0;
    for (int g = 0; g < d->n_groups; g++) ng += !strcmp(d->groups[g].sweep, sw->name);
    fprintf(f, "<p class=\"muted\">%d runs: %d done, %d failed or interrupted, %d running, %d queued%s · %d config groups",
            sw->n_total, sw->n_done, sw->n_failed, sw->n_running, sw->n_queued, sw->n_other ? ", some other" : "", ng);
    if (sw->n_swept) {
        fputs(" · swept: ", f);
        for (int k = 0; k < sw->n_swept; k++) {
            fputs(k ? ", <code>" : "<code>", f);
            esc(f, sw->swept_keys[k]);
            fputs("</code>", f);
        }
    }
    fputs("</p>\n", f);
    verdict_line(f, d, sw);
    if (ng > 0) {
        summary_table(f, d, sw, slug);
        runs_table(f, d, sw);
        fputs("<h3>Curves</h3>\n<div class=\"charts\">\n", f);
        int rc = curve_chart(f, db, d, sw, slug, o, "train_loss", e);
        if (!rc) rc = curve_chart(f, db, d, sw, slug, o, "val_bpb", e);
        if (rc) return rc;
        fputs("</div>\n", f);
        if (sw->n_swept > 0) {
            fputs("<h3>val_bpb against the swept parameters</h3>\n<div class=\"charts\">\n", f);
            /* two swept keys: both response charts and the heatmap side by side */
            for (int k = 0; k < sw->n_swept; k++) param_chart(f, d, sw, slug, k, sw->n_swept == 2 ? 395 : 590);
            if (sw->n_swept == 2) heatmap_chart(f, d, sw, slug);
            fputs("</div>\n", f);
        }
        fputs("<h3>Budgets and throughput</h3>\n<div class=\"charts\">\n", f);
        bar_charts(f, d, sw, slug);
        fputs("</div>\n", f);
    }
    int src = stopped_section(f, db, d, sw, slug, e);
    if (src) return src;
    failures_table(f, d, sw, slug);
    fputs("</section>\n", f);
    return CAD_OK;
}

int cad_report_html_write(cad_db *db, const cad_report_data *d, const cad_report_html_options *o, FILE *f, cad_err *e) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>caddie report", f);
    for (int s = 0; s < d->n_sweeps && s < 4; s++) {
        fputs(s ? ", " : " — ", f);
        esc(f, d->sweeps[s].name[0] ? d->sweeps[s].name : "(no sweep)");
    }
    fprintf(f, "</title>\n<style>%s</style>\n</head><body>\n<header class=\"top\"><h1>caddie report", CSS);
    fputs("</h1><p>", f);
    int n_runs = d->n_runs;
    fprintf(f, "%d sweep%s · %d runs · %d config groups · database <code style=\"color:#fff;background:transparent\">",
            d->n_sweeps, d->n_sweeps == 1 ? "" : "s", n_runs, d->n_groups);
    esc(f, o->db_path ? o->db_path : "?");
    fputs("</code>", f);
    if (o->generated_at) {
        fputs(" · generated ", f);
        esc(f, o->generated_at);
    }
    fputs("</p></header>\n<main>\n", f);
    if (d->n_sweeps == 0)
        fputs("<section class=\"sweep\"><h2>No runs</h2><p>The selection matched no run. Check --sweep / --runs, or queue a sweep with <code>caddie sweep add</code>.</p></section>\n", f);
    for (int s = 0; s < d->n_sweeps; s++) {
        int rc = sweep_section(f, db, d, &d->sweeps[s], o, e);
        if (rc) return rc;
    }
    fputs("<footer>Statistics: groups are configs without the seed; std is the sample std (n−1). p is the one-sided "
          "Welch t-test (Welch–Satterthwaite df) that the group's mean val_bpb is below the reference's. "
          "Record bar (challenge README): the improvement is larger than 0.005 nats of val_loss at p &lt; 0.01, "
          "tested on val_bpb with the margin converted by val_loss/val_bpb. "
          "Frontier rule: p &lt; 0.25 vs the previous best (parameter-golf PR #1902). "
          "Budgets: artifact ≤ 16,000,000 bytes, train ≤ 600 s, eval ≤ 600 s. Generated by <code>caddie report</code>.</footer>\n"
          "</main></body></html>\n", f);
    if (ferror(f)) return cad_fail(e, CAD_EIO, "writing the report failed");
    return CAD_OK;
}
