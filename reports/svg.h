/*
 * svg.h — a small chart kit that writes inline SVG for caddie's HTML report.
 *
 * What it draws: an x/y plot frame (nice ticks, grid, units in the axis titles, optional
 * log-x, optional categorical x), and on it lines, seed bands, points with markers, error
 * bars, mean lines and reference lines; a legend under the plot. Separately: a heatmap
 * (categorical x × y with the value written in each cell) and a horizontal bar chart with a
 * budget line. Everything is static SVG (no script), sized in px, styled by attributes so the
 * file renders the same from disk in any browser.
 *
 * Readability rules kept here so every chart follows them: series styles vary colour
 * *lightness*, dash pattern and marker shape together (distinguishable in greyscale and for
 * colour-blind readers); text is at least 12 px; numbers on axes use the fewest digits that
 * tell ticks apart.
 * Not here: what to plot (report.c decides), HTML around the charts, statistics.
 */
#ifndef CADDIE_REPORTS_SVG_H
#define CADDIE_REPORTS_SVG_H

#include <stdio.h>

#define CAD_SVG_MAX_LEGEND 24
#define CAD_SVG_N_STYLES 8
#define CAD_SVG_LABEL_MAX 160 /* a legend item's text */
#define CAD_SVG_NOTE_MAX 200  /* the note under a legend */

/* Series look: index i % CAD_SVG_N_STYLES. */
typedef struct cad_svg_style {
    const char *color;  /* stroke/fill colour, lightness differs between neighbours */
    const char *dash;   /* stroke-dasharray, "" for solid */
    int marker;         /* 0 circle, 1 square, 2 triangle, 3 diamond, 4 down-triangle, 5 cross,
                           6 plus, 7 star */
} cad_svg_style;
const cad_svg_style *cad_svg_style_get(int i);

/* Write s with &, <, >, " escaped (for text nodes and attribute values). */
void cad_svg_write_escaped(FILE *f, const char *s);

/* "Nice" tick positions covering [lo, hi]: at most max_ticks values, steps of 1, 2 or 5
 * times a power of ten. Returns the count written to ticks (<= max_ticks). */
int cad_svg_ticks_linear(double lo, double hi, int max_ticks, double *ticks);
/* Tick positions for a log axis over [lo, hi] (lo > 0): decades, plus 2 and 5 when the
 * range spans fewer than three decades. */
int cad_svg_ticks_log(double lo, double hi, int max_ticks, double *ticks);
/* Format a tick value with the fewest significant digits that keep neighbouring ticks
 * (spaced by step) apart; large values get thousands separators. */
void cad_svg_format_tick(char *buf, size_t n, double v, double step);
/* An integer with thousands separators: 15863489 -> "15,863,489". */
void cad_svg_format_thousands(char *buf, size_t n, long long v);

typedef enum { CAD_SVG_LEGEND_LINE, CAD_SVG_LEGEND_POINT, CAD_SVG_LEGEND_LINE_POINT, CAD_SVG_LEGEND_BAND,
               CAD_SVG_LEGEND_REFLINE } cad_svg_legend_kind;

typedef struct cad_svg_legend_item {
    char label[CAD_SVG_LABEL_MAX];
    int style;
    cad_svg_legend_kind kind;
} cad_svg_legend_item;

/* An x/y plot. Set the fields below, add the legend items (cad_svg_plot_legend_add: the legend
 * height decides the plot area, so it comes first), call cad_svg_plot_begin, draw, then
 * cad_svg_plot_end. */
typedef struct cad_svg_plot {
    FILE *f;
    const char *id;       /* element id (for tests/links), required */
    const char *title;    /* shown above the plot */
    const char *x_label;  /* axis titles, with units: "step", "val_bpb (bits/byte)" */
    const char *y_label;
    double width, height; /* total px, legend included */
    double plot_height;   /* > 0: height of the plotting area; the total grows with the legend */
    double x_lo, x_hi, y_lo, y_hi; /* data ranges (set before begin; widened to ticks) */
    int log_x;
    const char *const *x_cats; /* categorical x: labels at x = 0..n_cats-1 */
    int n_cats;
    /* filled by cad_svg_plot_begin: the plotting rectangle in px */
    double px_left, px_right, px_top, px_bottom;
    cad_svg_legend_item legend[CAD_SVG_MAX_LEGEND];
    int n_legend;
    char note[CAD_SVG_NOTE_MAX]; /* optional one-line note under the legend (e.g. "8 of 20 shown") */
} cad_svg_plot;

/* Compute layout, write <svg>, title, grid, ticks and axis titles. */
void cad_svg_plot_begin(cad_svg_plot *p);
/* Data -> px. x is clamped to the plot area; y is only kept finite (series are drawn inside
 * a clip path, so a curve leaving the range is cut at the frame, not flattened on it). */
double cad_svg_plot_px_x(const cad_svg_plot *p, double x);
double cad_svg_plot_px_y(const cad_svg_plot *p, double y);
/* A polyline through finite points (NaN breaks the line). width in px. */
void cad_svg_plot_line(cad_svg_plot *p, const double *x, const double *y, int n, int style, double width);
/* A filled band between lo and hi (NaN breaks it), translucent in the series colour. */
void cad_svg_plot_band(cad_svg_plot *p, const double *x, const double *lo, const double *hi, int n,
                   int style);
/* Markers at finite points; hollow draws the outline only (used for invalid runs). */
void cad_svg_plot_points(cad_svg_plot *p, const double *x, const double *y, int n, int style, double size,
                     int hollow);
/* A vertical error bar with caps from y_lo to y_hi at x. */
void cad_svg_plot_errorbar(cad_svg_plot *p, double x, double y_lo, double y_hi, int style);
/* A horizontal reference line across the plot with a label at its right end. */
void cad_svg_plot_hline(cad_svg_plot *p, double y, const char *label, const char *color, const char *dash);
/* Add a legend item (before cad_svg_plot_begin). Items beyond CAD_SVG_MAX_LEGEND are dropped. */
void cad_svg_plot_legend_add(cad_svg_plot *p, const char *label, int style, cad_svg_legend_kind kind);
/* Legend, note, closing tag. */
void cad_svg_plot_end(cad_svg_plot *p);

/* Heatmap: values[iy * nx + ix] (NaN = no runs there), x categories left to right, y top
 * to bottom. Cells are shaded by value on a lightness ramp (best = darkest when
 * lower_is_better) and carry the value as text; fmt formats it (printf, one double). */
typedef struct cad_svg_heatmap {
    FILE *f;
    const char *id, *title, *x_label, *y_label, *value_label, *fmt;
    const char *const *x_cats;
    int nx;
    const char *const *y_cats;
    int ny;
    const double *values;
    const char *const *cell_notes; /* optional second line per cell ("n=3"), may be NULL */
    int lower_is_better;
} cad_svg_heatmap;
void cad_svg_heatmap_write(const cad_svg_heatmap *h);

/* Horizontal bars, one row per label, n_series values per row (values[row * n_series + s]),
 * with an optional budget line (budget > 0): bars over it are drawn hatched in red and
 * flagged "over" so greyscale readers see them too. */
typedef struct cad_svg_hbar {
    FILE *f;
    const char *id, *title, *x_label;
    const char *const *labels;
    int n;
    const double *values;
    int n_series;
    const char *const *series_names; /* legend (n_series > 1), may be NULL */
    double budget;                   /* <= 0: none */
    const char *budget_label;
    const char *value_fmt;           /* printf for the value at the bar end, one double */
    double width;                    /* values and budget are in display units (MB, s) */
} cad_svg_hbar;
void cad_svg_hbar_write(const cad_svg_hbar *b);

#endif
