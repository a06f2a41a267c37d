/*
 * svg.c — the chart kit behind the HTML report (see svg.h for what it draws and the rules).
 *
 * Layout is computed, not configured: legend rows are measured first (text width estimated
 * at 0.6 em per character, good enough for the sans-serif fonts browsers use), then the
 * plot rectangle takes what is left. Every element carries a class so the page test can
 * find charts in the DOM (svg.chart, path.series, g.legend, rect.cell, rect.bar ...).
 * Not here: data access, statistics, HTML.
 */
#include "reports/svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FONT "font-family=\"system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif\""
#define TEXT_COLOR "#222"
#define GRID_COLOR "#e3e3e3"
#define AXIS_COLOR "#555"
#define CHAR_W 7.4 /* px per character at 12-13 px text (DejaVu Sans is the widest common one) */

/* Neighbouring styles differ in lightness (dark navy, light orange, mid green, ...), dash and
 * marker, so a greyscale print still tells them apart. */
static const cad_svg_style styles[CAD_SVG_N_STYLES] = {
    {"#1f3a93", "", 0},          /* dark blue, solid, circle */
    {"#e69f00", "8 4", 1},       /* light orange, dashed, square */
    {"#1b9e5a", "2 3", 2},       /* mid green, dotted, triangle */
    {"#b2182b", "10 3 2 3", 3},  /* dark red, dash-dot, diamond */
    {"#74add1", "5 2", 4},       /* light blue, short dash, down triangle */
    {"#5e3c99", "1 2", 5},       /* dark purple, fine dots, cross */
    {"#a6761d", "12 3 3 3", 6},  /* ochre, long dash-dot, plus */
    {"#111111", "4 2 1 2", 7},   /* black, dash-dot-dot, star */
};

const cad_svg_style *cad_svg_style_get(int i) {
    if (i < 0) i = -i;
    return &styles[i % CAD_SVG_N_STYLES];
}

void cad_svg_write_escaped(FILE *f, const char *s) {
    if (!s) return;
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break; /* safe in a single-quoted attribute too */
        default: fputc(*s, f);
        }
    }
}

/* ---- ticks ------------------------------------------------------------------------------ */

static double nice_step(double range, int max_ticks) {
    if (!(range > 0)) return 1;
    double raw = range / (max_ticks > 1 ? max_ticks - 1 : 1);
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    double m = r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10;
    return m * mag;
}

int cad_svg_ticks_linear(double lo, double hi, int max_ticks, double *ticks) {
    if (!isfinite(lo) || !isfinite(hi) || max_ticks < 1) return 0;
    if (hi < lo) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    double step = nice_step(hi - lo, max_ticks);
    int n = 0;
    /* a multiple of step is printed exactly, so snap each tick to the step grid */
    for (double k = ceil(lo / step - 1e-9); n < max_ticks + 1; k++) {
        double v = k * step;
        if (v > hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0;
        ticks[n++] = v;
    }
    return n > max_ticks ? max_ticks : n;
}

int cad_svg_ticks_log(double lo, double hi, int max_ticks, double *ticks) {
    if (!(lo > 0) || !(hi >= lo) || max_ticks < 1) return 0;
    int d0 = (int)floor(log10(lo)), d1 = (int)ceil(log10(hi));
    const double mult_all[] = {1, 2, 5};
    int n_mult = (d1 - d0) < 3 ? 3 : 1;
    int stride = 1;
    for (;;) {
        int n = 0;
        for (int d = d0; d <= d1; d += stride)
            for (int m = 0; m < n_mult; m++) {
                double v = mult_all[m] * pow(10, d);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < 64) ticks[n++] = v;
            }
        if (n <= max_ticks) return n;
        if (n_mult > 1) n_mult = 1;
        else stride++;
    }
}

void cad_svg_format_thousands(char *buf, size_t n, long long v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", v < 0 ? -v : v);
    size_t len = strlen(tmp), o = 0;
    char out[48];
    if (v < 0) out[o++] = '-';
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = 0;
    snprintf(buf, n, "%s", out);
}

void cad_svg_format_tick(char *buf, size_t n, double v, double step) {
    if (!isfinite(v)) {
        snprintf(buf, n, "–");
        return;
    }
    if (fabs(v) >= 1e9 || (v != 0 && fabs(v) < 1e-4)) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int decimals = 0;
    if (step > 0 && step < 1) decimals = (int)ceil(-log10(step) - 1e-9);
    if (step <= 0 && fabs(v) < 1) decimals = 3;
    if (decimals > 8) decimals = 8;
    if (decimals == 0 && fabs(v) >= 10000) cad_svg_format_thousands(buf, n, llround(v));
    else snprintf(buf, n, "%.*f", decimals, v);
}

/* ---- text and markers ------------------------------------------------------------------- */

/* The <svg> start tag of a chart (class, id, size, the title as its accessible label) and
 * its white background. */
static void svg_open(FILE *f, const char *cls, const char *id, const char *title, double width,
                     double height) {
    fprintf(f, "<svg class=\"%s\" id=\"", cls);
    cad_svg_write_escaped(f, id);
    fprintf(f, "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
            width, height, width, height);
    cad_svg_write_escaped(f, title);
    fprintf(f, "\" " FONT ">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
}

static void text_at(FILE *f, double x, double y, const char *anchor, int size, const char *extra,
                    const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"" TEXT_COLOR
               "\" %s>",
            x, y, anchor, size, extra ? extra : "");
    cad_svg_write_escaped(f, s);
    fputs("</text>\n", f);
}

static void marker_write(FILE *f, double x, double y, double r, int kind, const char *color,
                         int hollow) {
    char paint[96];
    if (hollow) snprintf(paint, sizeof paint, "fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.6\"", color);
    else snprintf(paint, sizeof paint, "fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.8\"", color);
    switch (kind % 8) {
    case 0: fprintf(f, "<circle class=\"marker\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" %s/>\n", x, y, r, paint); break;
    case 1:
        fprintf(f, "<rect class=\"marker\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s/>\n",
                x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8, paint);
        break;
    case 2:
        fprintf(f, "<path class=\"marker\" d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s/>\n", x, y - r * 1.15,
                x + r, y + r * 0.75, x - r, y + r * 0.75, paint);
        break;
    case 3:
        fprintf(f, "<path class=\"marker\" d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s/>\n", x,
                y - r * 1.2, x + r, y, x, y + r * 1.2, x - r, y, paint);
        break;
    case 4:
        fprintf(f, "<path class=\"marker\" d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s/>\n", x, y + r * 1.15,
                x + r, y - r * 0.75, x - r, y - r * 0.75, paint);
        break;
    case 5:
    case 6: {
        /* crosses are strokes: a hollow one is the same shape drawn thinner */
        double a = r * 0.95;
        if (kind % 8 == 5)
            fprintf(f, "<path class=\"marker\" d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"%.1f\" fill=\"none\"/>\n",
                    x - a, y - a, x + a, y + a, x - a, y + a, x + a, y - a, color, hollow ? 1.2 : 2.4);
        else
            fprintf(f, "<path class=\"marker\" d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"%.1f\" fill=\"none\"/>\n",
                    x - a * 1.2, y, x + a * 1.2, y, x, y - a * 1.2, x, y + a * 1.2, color, hollow ? 1.2 : 2.4);
        break;
    }
    default: {
        fprintf(f, "<path class=\"marker\" d=\"");
        for (int i = 0; i < 10; i++) {
            double ang = -M_PI / 2 + i * M_PI / 5, rr = (i % 2) ? r * 0.5 : r * 1.25;
            fprintf(f, "%c%.1f %.1f", i ? 'L' : 'M', x + rr * cos(ang), y + rr * sin(ang));
        }
        fprintf(f, "Z\" %s/>\n", paint);
    }
    }
}

/* ---- legend ----------------------------------------------------------------------------- */

static double legend_item_width(const cad_svg_legend_item *it) {
    return 34 + CHAR_W * (double)strlen(it->label) + 18;
}

/* Rows needed to lay the legend out in `avail` px. */
static int legend_rows(const cad_svg_legend_item *items, int n, double avail) {
    if (n == 0) return 0;
    int rows = 1;
    double x = 0;
    for (int i = 0; i < n; i++) {
        double w = legend_item_width(&items[i]);
        if (x > 0 && x + w > avail) {
            rows++;
            x = 0;
        }
        x += w;
    }
    return rows;
}

static void legend_write(FILE *f, const cad_svg_legend_item *items, int n, double x0, double y0,
                         double avail) {
    fputs("<g class=\"legend\">\n", f);
    double x = 0, y = y0;
    for (int i = 0; i < n; i++) {
        const cad_svg_legend_item *it = &items[i];
        double w = legend_item_width(it);
        if (x > 0 && x + w > avail) {
            x = 0;
            y += 20;
        }
        const cad_svg_style *s = cad_svg_style_get(it->style);
        double lx = x0 + x, ly = y;
        switch (it->kind) {
        case CAD_SVG_LEGEND_BAND:
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"10\" fill=\"%s\" fill-opacity=\"0.22\" stroke=\"%s\" stroke-opacity=\"0.4\"/>\n",
                    lx, ly - 5, s->color, s->color);
            break;
        case CAD_SVG_LEGEND_REFLINE:
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#b2182b\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n",
                    lx, ly, lx + 26, ly);
            break;
        case CAD_SVG_LEGEND_POINT: marker_write(f, lx + 13, ly, 4.5, s->marker, s->color, 0); break;
        case CAD_SVG_LEGEND_LINE:
        case CAD_SVG_LEGEND_LINE_POINT:
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.4\" stroke-dasharray=\"%s\"/>\n",
                    lx, ly, lx + 26, ly, s->color, s->dash);
            if (it->kind == CAD_SVG_LEGEND_LINE_POINT) marker_write(f, lx + 13, ly, 4, s->marker, s->color, 0);
            break;
        }
        text_at(f, lx + 32, ly + 4.5, "start", 12, NULL, it->label);
        x += w;
    }
    fputs("</g>\n", f);
}

/* ---- x/y plot --------------------------------------------------------------------------- */

static double axis_pos(double v, double lo, double hi, int log_axis) {
    if (log_axis) return (log10(v) - log10(lo)) / (log10(hi) - log10(lo));
    return (v - lo) / (hi - lo);
}

double cad_svg_plot_px_x(const cad_svg_plot *p, double x) {
    if (p->log_x && !(x > 0)) x = p->x_lo;
    double t = axis_pos(x, p->x_lo, p->x_hi, p->log_x);
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    return p->px_left + t * (p->px_right - p->px_left);
}

double cad_svg_plot_px_y(const cad_svg_plot *p, double y) {
    /* values far outside are pulled in only enough to stay finite: the clip path cuts them */
    double t = axis_pos(y, p->y_lo, p->y_hi, 0);
    if (t < -2) t = -2;
    if (t > 3) t = 3;
    return p->px_bottom - t * (p->px_bottom - p->px_top);
}

void cad_svg_plot_legend_add(cad_svg_plot *p, const char *label, int style, cad_svg_legend_kind kind) {
    if (p->n_legend >= CAD_SVG_MAX_LEGEND) return;
    cad_svg_legend_item *it = &p->legend[p->n_legend++];
    snprintf(it->label, sizeof it->label, "%s", label);
    it->style = style;
    it->kind = kind;
}

/* Widen [lo, hi] to the tick grid; a flat range gets a little room. */
static void range_fix(double *lo, double *hi, int log_axis) {
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = log_axis ? 1 : 0;
        *hi = log_axis ? 10 : 1;
    }
    if (*hi < *lo) {
        double t = *lo;
        *lo = *hi;
        *hi = t;
    }
    if (log_axis) {
        if (!(*lo > 0)) *lo = *hi > 0 ? *hi / 100 : 1;
        if (*hi <= *lo) *hi = *lo * 10;
        return;
    }
    if (*hi - *lo <= fabs(*hi) * 1e-12) {
        double pad = fabs(*hi) > 0 ? fabs(*hi) * 0.01 : 1;
        *lo -= pad;
        *hi += pad;
    }
    double step = nice_step(*hi - *lo, 6);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
}

void cad_svg_plot_begin(cad_svg_plot *p) {
    FILE *f = p->f;
    if (p->width <= 0) p->width = 560;
    if (p->x_cats) {
        p->x_lo = -0.5;
        p->x_hi = p->n_cats - 0.5;
        p->log_x = 0;
    } else {
        range_fix(&p->x_lo, &p->x_hi, p->log_x);
    }
    range_fix(&p->y_lo, &p->y_hi, 0);
    int rotate = 0;
    if (p->x_cats) {
        double slot = (p->width - 90) / (p->n_cats > 0 ? p->n_cats : 1);
        for (int i = 0; i < p->n_cats; i++)
            if (CHAR_W * (double)strlen(p->x_cats[i]) > slot - 6) rotate = 1;
    }
    double legend_h = legend_rows(p->legend, p->n_legend, p->width - 20) * 20.0;
    double note_h = p->note[0] ? 18 : 0;
    /* below the plot: tick labels + axis title (56 px, +40 for rotated category labels),
     * then the legend rows and the note */
    double below = 56 + (rotate ? 40 : 0) + legend_h + note_h;
    p->px_left = 72;
    p->px_right = p->width - 30;
    p->px_top = 38;
    if (p->plot_height > 0) p->height = p->px_top + p->plot_height + below;
    if (p->height <= 0) p->height = 360;
    p->px_bottom = p->height - below;
    if (p->px_bottom < p->px_top + 60) p->px_bottom = p->px_top + 60;

    svg_open(f, "chart", p->id, p->title, p->width, p->height);
    text_at(f, 12, 22, "start", 15, "font-weight=\"600\" class=\"title\"", p->title);

    /* y grid + ticks */
    double ticks[64];
    int nt = cad_svg_ticks_linear(p->y_lo, p->y_hi, 7, ticks);
    double ystep = nt > 1 ? ticks[1] - ticks[0] : 0;
    fputs("<g class=\"axis y\">\n", f);
    for (int i = 0; i < nt; i++) {
        double y = cad_svg_plot_px_y(p, ticks[i]);
        char lab[48];
        cad_svg_format_tick(lab, sizeof lab, ticks[i], ystep);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>\n",
                p->px_left, p->px_right, y, y);
        text_at(f, p->px_left - 6, y + 4, "end", 12, NULL, lab);
    }
    fputs("</g>\n<g class=\"axis x\">\n", f);
    /* x grid + ticks */
    if (p->x_cats) {
        for (int i = 0; i < p->n_cats; i++) {
            double x = cad_svg_plot_px_x(p, i);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>\n",
                    x, x, p->px_top, p->px_bottom);
            if (rotate) {
                char tr[96];
                snprintf(tr, sizeof tr, "transform=\"rotate(-30 %.1f %.1f)\"", x, p->px_bottom + 16);
                text_at(f, x, p->px_bottom + 16, "end", 12, tr, p->x_cats[i]);
            } else {
                text_at(f, x, p->px_bottom + 17, "middle", 12, NULL, p->x_cats[i]);
            }
        }
    } else {
        nt = p->log_x ? cad_svg_ticks_log(p->x_lo, p->x_hi, 8, ticks) : cad_svg_ticks_linear(p->x_lo, p->x_hi, 7, ticks);
        double xstep = nt > 1 ? ticks[1] - ticks[0] : 0;
        for (int i = 0; i < nt; i++) {
            double x = cad_svg_plot_px_x(p, ticks[i]);
            char lab[48];
            cad_svg_format_tick(lab, sizeof lab, ticks[i], p->log_x ? ticks[i] : xstep);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>\n",
                    x, x, p->px_top, p->px_bottom);
            text_at(f, x, p->px_bottom + 17, "middle", 12, NULL, lab);
        }
    }
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"" AXIS_COLOR "\"/>\n",
            p->px_left, p->px_top, p->px_right - p->px_left, p->px_bottom - p->px_top);
    /* axis titles (x under the ticks, y rotated along the left edge) */
    text_at(f, (p->px_left + p->px_right) / 2, p->px_bottom + (rotate ? 72 : 36), "middle", 13,
            "class=\"axis-title\"", p->x_label);
    char tr[96];
    snprintf(tr, sizeof tr, "transform=\"rotate(-90 16 %.1f)\" class=\"axis-title\"",
             (p->px_top + p->px_bottom) / 2);
    text_at(f, 16, (p->px_top + p->px_bottom) / 2, "middle", 13, tr, p->y_label);
    /* clip series to the plot box */
    fprintf(f, "<clipPath id=\"");
    cad_svg_write_escaped(f, p->id);
    fprintf(f, "-clip\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n<g clip-path=\"url(#",
            p->px_left - 8, p->px_top - 8, p->px_right - p->px_left + 16, p->px_bottom - p->px_top + 16);
    cad_svg_write_escaped(f, p->id);
    fputs("-clip)\">\n", f);
}

void cad_svg_plot_line(cad_svg_plot *p, const double *x, const double *y, int n, int style, double width) {
    const cad_svg_style *s = cad_svg_style_get(style);
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || (p->log_x && !(x[i] > 0))) {
            if (open) fprintf(p->f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-dasharray=\"%s\" stroke-linejoin=\"round\"/>\n", s->color, width, s->dash);
            open = 0;
            continue;
        }
        if (!open) fprintf(p->f, "<path class=\"series\" d=\"M");
        else fputc('L', p->f);
        fprintf(p->f, "%.1f %.1f", cad_svg_plot_px_x(p, x[i]), cad_svg_plot_px_y(p, y[i]));
        open = 1;
    }
    if (open)
        fprintf(p->f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-dasharray=\"%s\" stroke-linejoin=\"round\"/>\n",
                s->color, width, s->dash);
}

void cad_svg_plot_band(cad_svg_plot *p, const double *x, const double *lo, const double *hi, int n,
                   int style) {
    const cad_svg_style *s = cad_svg_style_get(style);
    int i = 0;
    while (i < n) {
        while (i < n && !(isfinite(x[i]) && isfinite(lo[i]) && isfinite(hi[i]))) i++;
        int j = i;
        while (j < n && isfinite(x[j]) && isfinite(lo[j]) && isfinite(hi[j])) j++;
        if (j - i >= 2) {
            fprintf(p->f, "<path class=\"band\" d=\"");
            for (int k = i; k < j; k++)
                fprintf(p->f, "%c%.1f %.1f", k == i ? 'M' : 'L', cad_svg_plot_px_x(p, x[k]), cad_svg_plot_px_y(p, hi[k]));
            for (int k = j - 1; k >= i; k--)
                fprintf(p->f, "L%.1f %.1f", cad_svg_plot_px_x(p, x[k]), cad_svg_plot_px_y(p, lo[k]));
            fprintf(p->f, "Z\" fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\"/>\n", s->color);
        }
        i = j;
    }
}

void cad_svg_plot_points(cad_svg_plot *p, const double *x, const double *y, int n, int style, double size,
                     int hollow) {
    const cad_svg_style *s = cad_svg_style_get(style);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        marker_write(p->f, cad_svg_plot_px_x(p, x[i]), cad_svg_plot_px_y(p, y[i]), size, s->marker, s->color, hollow);
    }
}

void cad_svg_plot_errorbar(cad_svg_plot *p, double x, double y_lo, double y_hi, int style) {
    if (!isfinite(x) || !isfinite(y_lo) || !isfinite(y_hi)) return;
    const cad_svg_style *s = cad_svg_style_get(style);
    double px = cad_svg_plot_px_x(p, x), a = cad_svg_plot_px_y(p, y_lo), b = cad_svg_plot_px_y(p, y_hi);
    fprintf(p->f, "<path class=\"errorbar\" d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"1.6\" fill=\"none\"/>\n",
            px, a, px, b, px - 5, a, px + 5, a, px - 5, b, px + 5, b, s->color);
}

void cad_svg_plot_hline(cad_svg_plot *p, double y, const char *label, const char *color, const char *dash) {
    if (!isfinite(y)) return;
    double py = cad_svg_plot_px_y(p, y);
    fprintf(p->f, "<line class=\"refline\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.6\" stroke-dasharray=\"%s\"/>\n",
            p->px_left, p->px_right, py, py, color, dash ? dash : "");
    if (label && *label) {
        char extra[64];
        snprintf(extra, sizeof extra, "fill=\"%s\"", color);
        fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\" %s>", p->px_right - 4, py - 5, extra);
        cad_svg_write_escaped(p->f, label);
        fputs("</text>\n", p->f);
    }
}

void cad_svg_plot_end(cad_svg_plot *p) {
    fputs("</g>\n", p->f); /* clip group */
    int rotate_extra = 0;
    if (p->x_cats) {
        double slot = (p->width - 90) / (p->n_cats > 0 ? p->n_cats : 1);
        for (int i = 0; i < p->n_cats; i++)
            if (CHAR_W * (double)strlen(p->x_cats[i]) > slot - 6) rotate_extra = 40;
    }
    double ly = p->px_bottom + 58 + rotate_extra;
    legend_write(p->f, p->legend, p->n_legend, 14, ly, p->width - 20);
    if (p->note[0]) {
        double ny = ly + legend_rows(p->legend, p->n_legend, p->width - 20) * 20.0 + 2;
        text_at(p->f, 14, ny, "start", 12, "fill-opacity=\"0.75\" font-style=\"italic\"", p->note);
    }
    fputs("</svg>\n", p->f);
}

/* ---- heatmap ---------------------------------------------------------------------------- */

/* Lightness ramp from pale yellow to deep blue (viridis-like endpoints, monotone in
 * lightness, so greyscale keeps the order). t in [0,1], 1 = darkest. */
static void ramp_color(double t, char *buf, size_t n) {
    static const double stops[5][3] = {
        {253, 245, 200}, {180, 222, 170}, {80, 170, 170}, {40, 100, 160}, {25, 35, 100}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double pos = t * 4;
    int i = (int)pos;
    if (i > 3) i = 3;
    double u = pos - i;
    int c[3];
    for (int k = 0; k < 3; k++) c[k] = (int)lround(stops[i][k] + u * (stops[i + 1][k] - stops[i][k]));
    snprintf(buf, n, "#%02x%02x%02x", c[0], c[1], c[2]);
}

void cad_svg_heatmap_write(const cad_svg_heatmap *h) {
    FILE *f = h->f;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < h->nx * h->ny; i++)
        if (isfinite(h->values[i])) {
            if (h->values[i] < lo) lo = h->values[i];
            if (h->values[i] > hi) hi = h->values[i];
        }
    size_t ylab_max = 4;
    for (int i = 0; i < h->ny; i++)
        if (strlen(h->y_cats[i]) > ylab_max) ylab_max = strlen(h->y_cats[i]);
    double left = 40 + CHAR_W * (double)(ylab_max > 24 ? 24 : ylab_max);
    double cell_w = h->nx <= 4 ? 110 : h->nx <= 8 ? 80 : 56, cell_h = 44;
    double top = 40, grid_w = cell_w * h->nx, grid_h = cell_h * h->ny;
    /* the second line ("±0.0004 n=3") only fits in the wider cells */
    const char *const *notes = cell_w >= 80 ? h->cell_notes : NULL;
    double scale_w = grid_w < 240 ? 240 : grid_w;
    double width = left + scale_w + 30, height = top + grid_h + 110;
    if (width < 400) width = 400;
    svg_open(f, "chart heatmap", h->id, h->title, width, height);
    text_at(f, 12, 22, "start", 15, "font-weight=\"600\" class=\"title\"", h->title);
    for (int iy = 0; iy < h->ny; iy++) {
        double y = top + iy * cell_h;
        text_at(f, left - 8, y + cell_h / 2 + 4, "end", 12, NULL, h->y_cats[iy]);
        for (int ix = 0; ix < h->nx; ix++) {
            double x = left + ix * cell_w, v = h->values[iy * h->nx + ix];
            char col[16] = "#f4f4f4";
            double t = 0;
            if (isfinite(v)) {
                t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
                if (h->lower_is_better) t = 1 - t;
                ramp_color(t, col, sizeof col);
            }
            fprintf(f, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"2\"/>\n",
                    x, y, cell_w, cell_h, col);
            char txt[64];
            if (isfinite(v)) snprintf(txt, sizeof txt, h->fmt, v);
            else snprintf(txt, sizeof txt, "no runs");
            const char *ink = t > 0.55 ? "#fff" : "#222";
            double ty = y + cell_h / 2 + ((notes && notes[iy * h->nx + ix]) ? 0 : 5);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%d\" font-weight=\"600\" fill=\"%s\">",
                    x + cell_w / 2, ty, cell_w >= 80 ? 13 : 11, ink);
            cad_svg_write_escaped(f, txt);
            fputs("</text>\n", f);
            if (notes && notes[iy * h->nx + ix])
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\" fill=\"%s\">%s</text>\n",
                        x + cell_w / 2, y + cell_h / 2 + 15, ink, notes[iy * h->nx + ix]);
        }
    }
    for (int ix = 0; ix < h->nx; ix++)
        text_at(f, left + ix * cell_w + cell_w / 2, top + grid_h + 17, "middle", 12, NULL, h->x_cats[ix]);
    text_at(f, left + grid_w / 2, top + grid_h + 38, "middle", 13, "class=\"axis-title\"", h->x_label);
    char tr[96];
    snprintf(tr, sizeof tr, "transform=\"rotate(-90 14 %.1f)\" class=\"axis-title\"", top + grid_h / 2);
    text_at(f, 14, top + grid_h / 2, "middle", 13, tr, h->y_label);
    /* colour scale: a gradient bar from best to worst with both ends labelled */
    double sy = top + grid_h + 56, sx = left, sw = scale_w;
    fprintf(f, "<g class=\"scale\">\n");
    for (int i = 0; i < 40; i++) {
        char col[16];
        ramp_color(i / 39.0, col, sizeof col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"10\" fill=\"%s\"/>\n", sx + sw * i / 40.0, sy,
                sw / 40.0 + 0.5, col);
    }
    char a[64], b[64], lab[200];
    snprintf(a, sizeof a, h->fmt, h->lower_is_better ? hi : lo);
    snprintf(b, sizeof b, h->fmt, h->lower_is_better ? lo : hi);
    text_at(f, sx, sy + 24, "start", 12, NULL, a);
    text_at(f, sx + sw, sy + 24, "end", 12, NULL, b);
    snprintf(lab, sizeof lab, "%s (darker = %s)", h->value_label, h->lower_is_better ? "better" : "higher");
    text_at(f, sx + sw / 2, sy + 40, "middle", 12, NULL, lab);
    fputs("</g>\n</svg>\n", f);
}

/* ---- horizontal bars -------------------------------------------------------------------- */

void cad_svg_hbar_write(const cad_svg_hbar *b) {
    FILE *f = b->f;
    int ns = b->n_series > 0 ? b->n_series : 1;
    double width = b->width > 0 ? b->width : 560;
    size_t lab_max = 4;
    for (int i = 0; i < b->n; i++)
        if (strlen(b->labels[i]) > lab_max) lab_max = strlen(b->labels[i]);
    if (lab_max > 30) lab_max = 30;
    double left = 16 + CHAR_W * (double)lab_max, right = width - 70;
    double bar_h = 16, row_h = ns * bar_h + 10, top = 54; /* room for the budget label under the title */
    double legend_h = ns > 1 ? 22 : 0;
    double height = top + b->n * row_h + 50 + legend_h;
    double vmax = b->budget > 0 ? b->budget : 0;
    for (int i = 0; i < b->n * ns; i++)
        if (isfinite(b->values[i]) && b->values[i] > vmax) vmax = b->values[i];
    if (!(vmax > 0)) vmax = 1;
    double ticks[16];
    /* 12% headroom so the value labels of the longest bars stay clear of the budget line */
    double want = vmax * 1.12;
    int nt = cad_svg_ticks_linear(0, want, 6, ticks);
    double step = nt > 1 ? ticks[1] - ticks[0] : want;
    double xmax = nt > 0 ? ticks[nt - 1] : want;
    while (xmax < want) xmax += step;
    nt = cad_svg_ticks_linear(0, xmax, 8, ticks); /* label the axis up to its end */
    step = nt > 1 ? ticks[1] - ticks[0] : step;
    svg_open(f, "chart hbar", b->id, b->title, width, height);
    fprintf(f, "<defs><pattern id=\"%s-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f2b8b5\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b2182b\" stroke-width=\"3\"/></pattern></defs>\n",
            b->id);
    text_at(f, 12, 22, "start", 15, "font-weight=\"600\" class=\"title\"", b->title);
    double plot_bottom = top + b->n * row_h;
    for (int i = 0; i < nt; i++) {
        double x = left + (right - left) * ticks[i] / xmax;
        char lab[48];
        cad_svg_format_tick(lab, sizeof lab, ticks[i], step);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>\n", x, x, top - 4, plot_bottom);
        text_at(f, x, plot_bottom + 16, "middle", 12, NULL, lab);
    }
    text_at(f, (left + right) / 2, plot_bottom + 36, "middle", 13, "class=\"axis-title\"", b->x_label);
    for (int i = 0; i < b->n; i++) {
        double y0 = top + i * row_h + 5;
        text_at(f, left - 8, y0 + ns * bar_h / 2 + 4, "end", 12, NULL, b->labels[i]);
        for (int s = 0; s < ns; s++) {
            double v = b->values[i * ns + s];
            double y = y0 + s * bar_h;
            if (!isfinite(v)) {
                text_at(f, left + 4, y + bar_h - 4, "start", 11, "fill-opacity=\"0.7\"", "no data");
                continue;
            }
            double w = (right - left) * v / xmax;
            int over = b->budget > 0 && v > b->budget;
            const cad_svg_style *st = cad_svg_style_get(s);
            char fill[64];
            if (over) snprintf(fill, sizeof fill, "url(#%s-hatch)", b->id);
            else snprintf(fill, sizeof fill, "%s", ns > 1 ? st->color : "#4a6fa5");
            fprintf(f, "<rect class=\"bar%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"%s/>\n",
                    over ? " over" : "", left, y + 1, w > 0 ? w : 0, bar_h - 2, fill,
                    over ? " stroke=\"#b2182b\"" : "");
            char val[64], txt[96];
            snprintf(val, sizeof val, b->value_fmt ? b->value_fmt : "%g", v);
            snprintf(txt, sizeof txt, "%s%s", val, over ? " OVER" : "");
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\"%s>", left + w + 4, y + bar_h - 4,
                    over ? "#b2182b" : TEXT_COLOR, over ? " font-weight=\"700\"" : "");
            cad_svg_write_escaped(f, txt);
            fputs("</text>\n", f);
        }
    }
    if (b->budget > 0) {
        double x = left + (right - left) * b->budget / xmax;
        fprintf(f, "<line class=\"budget\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#b2182b\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n",
                x, x, top - 8, plot_bottom);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\" fill=\"#b2182b\">", x - 3, top - 10);
        cad_svg_write_escaped(f, b->budget_label);
        fputs("</text>\n", f);
    }
    if (ns > 1 && b->series_names) {
        double x = left;
        for (int s = 0; s < ns; s++) {
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n", x, plot_bottom + 46,
                    cad_svg_style_get(s)->color);
            text_at(f, x + 18, plot_bottom + 55, "start", 12, NULL, b->series_names[s]);
            x += 40 + CHAR_W * (double)strlen(b->series_names[s]);
        }
    }
    fputs("</svg>\n", f);
}
