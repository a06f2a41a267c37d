/*
 * test_reports_svg.c — the chart kit's pieces that are easy to get subtly wrong: nice tick
 * steps, tick label digits, XML escaping, series styles that differ in more than hue, the
 * budget flag on bars, and well-formed output (every element closed, NaN never printed).
 * Not here: how a whole page looks (t0605 renders it in Chromium).
 */
#include "check.h"
#include "reports/svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *capture_begin(FILE **f, size_t *len, char **buf) {
    *f = open_memstream(buf, len);
    return *buf;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_ticks_linear_are_nice(void) {
    double t[16];
    int n = cad_svg_ticks_linear(1.0846, 1.0894, 7, t);
    CHECK(n >= 3 && n <= 7);
    double step = t[1] - t[0];
    CHECK_NEAR(step, 0.001, 1e-12, 0);
    CHECK(t[0] >= 1.0846 - 1e-12 && t[n - 1] <= 1.0894 + 1e-12);
    n = cad_svg_ticks_linear(0, 16.5, 6, t);
    CHECK_NEAR(t[1] - t[0], 5, 1e-12, 0);
    CHECK_NEAR(t[0], 0, 0, 0);
    /* degenerate and reversed ranges do not loop or return garbage */
    CHECK(cad_svg_ticks_linear(2, 2, 5, t) >= 1);
    CHECK(cad_svg_ticks_linear(5, 1, 5, t) >= 2);
    CHECK_EQ_INT(cad_svg_ticks_linear(NAN, 1, 5, t), 0);
}

static void test_ticks_log(void) {
    double t[64];
    int n = cad_svg_ticks_log(1, 10000, 8, t);
    CHECK_EQ_INT(n, 5);
    CHECK_NEAR(t[0], 1, 0, 0);
    CHECK_NEAR(t[4], 10000, 0, 1e-12);
    n = cad_svg_ticks_log(10, 500, 8, t); /* under three decades: 1-2-5 steps */
    CHECK(n >= 5);
    CHECK_NEAR(t[1], 20, 0, 1e-12);
    CHECK_EQ_INT(cad_svg_ticks_log(0, 10, 5, t), 0);
}

static void test_tick_labels(void) {
    char b[64];
    cad_svg_format_tick(b, sizeof b, 1.085, 0.001);
    CHECK_STR(b, "1.085");
    cad_svg_format_tick(b, sizeof b, 2000, 1000);
    CHECK_STR(b, "2000");
    cad_svg_format_tick(b, sizeof b, 16000000, 2000000);
    CHECK_STR(b, "16,000,000");
    cad_svg_format_tick(b, sizeof b, 0.5, 0.5);
    CHECK_STR(b, "0.5");
    cad_svg_format_tick(b, sizeof b, NAN, 1);
    CHECK_STR(b, "–");
}

static void test_escaping(void) {
    FILE *f;
    size_t len;
    char *buf;
    capture_begin(&f, &len, &buf);
    cad_svg_write_escaped(f, "a<b & \"c\" > d'e");
    fclose(f);
    CHECK_STR(buf, "a&lt;b &amp; &quot;c&quot; &gt; d&#39;e");
    free(buf);
}

static void test_styles_differ_beyond_hue(void) {
    for (int i = 0; i < CAD_SVG_N_STYLES; i++)
        for (int j = i + 1; j < CAD_SVG_N_STYLES; j++) {
            const cad_svg_style *a = cad_svg_style_get(i), *b = cad_svg_style_get(j);
            CHECK_MSG(strcmp(a->dash, b->dash) != 0, "styles %d and %d share a dash pattern", i, j);
            CHECK_MSG(a->marker != b->marker, "styles %d and %d share a marker", i, j);
        }
    CHECK(cad_svg_style_get(CAD_SVG_N_STYLES) == cad_svg_style_get(0));
}

static void test_plot_is_well_formed(void) {
    FILE *f;
    size_t len;
    char *buf;
    capture_begin(&f, &len, &buf);
    cad_svg_plot p;
    memset(&p, 0, sizeof p);
    p.f = f;
    p.id = "t<1>";
    p.title = "loss & more";
    p.x_label = "step";
    p.y_label = "loss (nats)";
    p.width = 500;
    p.plot_height = 200;
    p.x_lo = 0;
    p.x_hi = 100;
    p.y_lo = 2;
    p.y_hi = 3;
    cad_svg_plot_legend_add(&p, "a", 0, CAD_SVG_LEGEND_LINE);
    cad_svg_plot_legend_add(&p, "b", 1, CAD_SVG_LEGEND_BAND);
    cad_svg_plot_begin(&p);
    double x[] = {0, 50, NAN, 100}, y[] = {3, 2.5, 2.4, 9}, lo[] = {2.9, 2.4, 2.3, 2.1}, hi[] = {3.1, 2.6, 2.5, 2.3};
    cad_svg_plot_band(&p, x, lo, hi, 4, 1);
    cad_svg_plot_line(&p, x, y, 4, 0, 2);
    cad_svg_plot_points(&p, x, y, 4, 2, 3, 1);
    cad_svg_plot_errorbar(&p, 50, 2.4, 2.6, 0);
    cad_svg_plot_hline(&p, 2.2, "ref", "#b2182b", "6 3");
    cad_svg_plot_end(&p);
    fclose(f);
    CHECK(strstr(buf, "id=\"t&lt;1&gt;\"") != NULL);
    CHECK(strstr(buf, "loss &amp; more") != NULL);
    CHECK(strstr(buf, "nan") == NULL && strstr(buf, "inf") == NULL);
    CHECK_EQ_INT(count(buf, "<svg"), 1);
    CHECK_EQ_INT(count(buf, "</svg>"), 1);
    CHECK_EQ_INT(count(buf, "<text"), count(buf, "</text>"));
    CHECK_EQ_INT(count(buf, "<g"), count(buf, "</g>"));
    /* the NaN x splits the line into two paths */
    CHECK_EQ_INT(count(buf, "class=\"series\""), 2);
    CHECK_EQ_INT(count(buf, "class=\"band\""), 1);
    CHECK_EQ_INT(count(buf, "class=\"marker\"") >= 3, 1);
    free(buf);
}

static void test_hbar_flags_over_budget(void) {
    FILE *f;
    size_t len;
    char *buf;
    capture_begin(&f, &len, &buf);
    const char *labels[] = {"fits", "over", "unknown"};
    double v[] = {15.9, 16.03, NAN};
    cad_svg_hbar b = {f, "bytes", "Artifact", "MB", labels, 3, v, 1, NULL, 16.0, "16,000,000 bytes", "%.3f MB", 500};
    cad_svg_hbar_write(&b);
    fclose(f);
    CHECK_EQ_INT(count(buf, "class=\"bar over\""), 1);
    CHECK_EQ_INT(count(buf, "class=\"bar\""), 1);
    CHECK(strstr(buf, "16.030 MB OVER") != NULL);
    CHECK(strstr(buf, "no data") != NULL);
    CHECK(strstr(buf, "class=\"budget\"") != NULL);
    free(buf);
}

static void test_heatmap_cells(void) {
    FILE *f;
    size_t len;
    char *buf;
    capture_begin(&f, &len, &buf);
    const char *xc[] = {"0.04", "0.095"}, *yc[] = {"4", "5", "5.25"};
    double v[] = {1.0892, 1.0880, 1.0870, NAN, 1.0862, 1.0850};
    cad_svg_heatmap h = {f, "hm", "Mean", "wd", "qk", "val_bpb", "%.4f", xc, 2, yc, 3, v, NULL, 1};
    cad_svg_heatmap_write(&h);
    fclose(f);
    CHECK_EQ_INT(count(buf, "class=\"cell\""), 6);
    CHECK(strstr(buf, ">1.0850<") != NULL);
    CHECK(strstr(buf, ">no runs<") != NULL);
    CHECK(strstr(buf, "darker = better") != NULL);
    free(buf);
}

int main(void) {
    RUN(test_ticks_linear_are_nice);
    RUN(test_ticks_log);
    RUN(test_tick_labels);
    RUN(test_escaping);
    RUN(test_styles_differ_beyond_hue);
    RUN(test_plot_is_well_formed);
    RUN(test_hbar_flags_over_budget);
    RUN(test_heatmap_cells);
    return check_report();
}
