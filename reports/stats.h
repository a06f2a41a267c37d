/*
 * stats.h — the seed statistics caddie's reports and terminal tables use, written once, in C:
 * mean/std, Student t CDF and quantile, confidence intervals, the one-sided Welch t-test
 * (Welch–Satterthwaite degrees of freedom), the Parameter Golf significance bar and the
 * "how many seeds would I need" planner.
 *
 * Conventions: lower is better (losses). A "candidate" sample `a` is compared with a
 * "reference" sample `b`; an improvement is mean(a) < mean(b). p-values are one-sided,
 * H1: mean(b) - mean(a) > margin, exactly scipy's
 *     ttest_ind(a + margin, b, equal_var=False, alternative='less').pvalue
 * Standard deviations are sample std (ddof = 1), as scipy and the records' READMEs use.
 *
 * The challenge's rules (docs: parameter-golf README, PR #1902):
 *   - record bar: beat the previous record by at least 0.005 nats of val_loss at p < 0.01.
 *     It is the shifted hypothesis above with margin 0.005 nats, so "clears the bar" means
 *     the improvement is *significantly larger than* 0.005 nats, not merely that the
 *     observed delta exceeds 0.005 and some p is small. (reports/report.c runs it on val_bpb
 *     with the margin converted by val_loss/val_bpb, which also works across tokenizers.)
 *   - frontier rule (since PR #1902): one-sided Welch p < 0.25 vs the previous best, margin 0.
 *
 * Not here: reading the database, formatting, anything about HTML (report.c / cmd_report.c).
 */
#ifndef CADDIE_REPORTS_STATS_H
#define CADDIE_REPORTS_STATS_H

/* The challenge's constants, in one place. */
#define CAD_STATS_BAR_NATS 0.005        /* record bar: improvement in val_loss nats */
#define CAD_STATS_BAR_ALPHA 0.01        /* ... at one-sided p < 0.01 */
#define CAD_STATS_FRONTIER_ALPHA 0.25   /* later frontier rule: Welch p < 0.25 vs previous best */
#define CAD_STATS_BUDGET_BYTES 16000000 /* code + compressed model, decimal bytes */
#define CAD_STATS_BUDGET_MS 600000      /* train and eval wall-clock caps, each */

/* Summary of one sample (NaN inputs must be filtered out by the caller). */
typedef struct cad_stats_summary {
    int n;
    double mean;
    double std; /* sample std, ddof=1; NaN when n < 2 */
    double min, max;
} cad_stats_summary;

void cad_stats_summarize(const double *x, int n, cad_stats_summary *out);
double cad_stats_mean(const double *x, int n);  /* NaN when n == 0 */
double cad_stats_std(const double *x, int n);   /* ddof=1; NaN when n < 2 */

/* Regularized incomplete beta I_x(a, b), a, b > 0, 0 <= x <= 1 (continued fraction,
 * modified Lentz). NaN outside the domain. */
double cad_stats_betainc(double a, double b, double x);

/* Student t with df > 0 degrees of freedom (non-integer allowed; df = INFINITY is the
 * normal distribution). cdf = P(T <= t), sf = P(T > t) computed without cancellation. */
double cad_stats_t_cdf(double t, double df);
double cad_stats_t_sf(double t, double df);
/* Inverse CDF: the t with P(T <= t) = p, 0 < p < 1, by bisection on cad_stats_t_cdf. */
double cad_stats_t_quantile(double p, double df);

/* Two-sided confidence interval half-width for the mean: t_{(1+level)/2, n-1} * std/sqrt(n).
 * NaN when n < 2. */
double cad_stats_ci_halfwidth(double std, int n, double level);

/* One-sided Welch test of H1: mean(b) - mean(a) > margin. */
typedef struct cad_stats_welch {
    int ok;       /* 0 when a test is impossible (a sample has < 2 values); fields NaN */
    double delta; /* mean(a) - mean(b): negative = a is better */
    double se;    /* sqrt(var_a/n_a + var_b/n_b) */
    double t;     /* (delta + margin) / se; -INF/+INF/NaN when se == 0 */
    double df;    /* Welch–Satterthwaite */
    double p;     /* one-sided p-value */
} cad_stats_welch;

/* Fills *out; when se == 0 (every seed identical in both samples) the p-value is 0 when
 * the shifted difference favours a, 1 otherwise (a deterministic difference). */
void cad_stats_welch_test(const double *a, int na, const double *b, int nb, double margin,
                      cad_stats_welch *out);
/* Same from summaries (mean, std, n): what the tables use once per-group values exist. */
void cad_stats_welch_from_summary(const cad_stats_summary *a, const cad_stats_summary *b, double margin,
                              cad_stats_welch *out);

/* Seeds per group (same n for both) so that, if the true improvement is `delta` and the
 * seed std of the two groups is std_a, std_b, the expected t statistic
 * (delta - margin)/sqrt((sa²+sb²)/n) reaches the one-sided critical value
 * t_{1-alpha}(df_Welch(n)) — i.e. the median p-value is below alpha. Returns the smallest
 * such n >= 2, 0 when no n <= max_n suffices (delta <= margin, or too noisy), and 2 when
 * both stds are 0 and delta > margin. */
int cad_stats_seeds_needed(double delta, double margin, double std_a, double std_b, double alpha,
                       int max_n);

#endif
