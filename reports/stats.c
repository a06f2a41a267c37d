/*
 * stats.c — t distribution, Welch's test and the seed planner (see stats.h for conventions).
 *
 * Numerics: the t tail is 0.5 * I_{df/(df+t²)}(df/2, 1/2), the regularized incomplete beta
 * evaluated by its continued fraction (modified Lentz), using the symmetry
 * I_x(a,b) = 1 - I_{1-x}(b,a) where the fraction converges slowly. Computing the tail
 * directly (not 1 - cdf) keeps tiny p-values accurate, which matters for p < 0.01 and for
 * the seed planner. The quantile is a plain bisection: it is called a few hundred times
 * per report, so robustness beats speed. Not here: data access or formatting.
 */
#include "reports/stats.h"

#include <math.h>

double cad_stats_mean(const double *x, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

double cad_stats_std(const double *x, int n) {
    if (n < 2) return NAN;
    double m = cad_stats_mean(x, n), ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (n - 1));
}

void cad_stats_summarize(const double *x, int n, cad_stats_summary *out) {
    out->n = n;
    out->mean = cad_stats_mean(x, n);
    out->std = cad_stats_std(x, n);
    out->min = n > 0 ? x[0] : NAN;
    out->max = n > 0 ? x[0] : NAN;
    for (int i = 1; i < n; i++) {
        if (x[i] < out->min) out->min = x[i];
        if (x[i] > out->max) out->max = x[i];
    }
}

/* Continued fraction for I_x(a,b) (Numerical Recipes' betacf, modified Lentz). */
static double betainc_cf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 100000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

/* I_x(a,b) given both x and y = 1 - x, each exact to full precision (the t distribution
 * knows y = t²/(df+t²) better than 1 - x). The fraction converges fast for
 * x < (a+1)/(a+b+2), so beyond it we evaluate the complement I_y(b,a) — unless the result
 * we want is small (< 0.1), where 1 - complement would cancel: then the direct fraction is
 * still convergent, just slower, and keeps full relative precision in the tail. */
/* log Γ(z) Stirling tail 1/(12z) - 1/(360z³) + 1/(1260z⁵), accurate to 1e-16 for z >= 10 */
static double lgamma_stirling_tail(double z) {
    double z2 = z * z;
    return 1 / (12 * z) - 1 / (360 * z * z2) + 1 / (1260 * z * z2 * z2);
}

/* log Γ(a+b) - log Γ(a) - log Γ(b). With df up to 1e5 the lgamma values are ~1e6 and their
 * difference would lose ~1e-10 relative, so for large a (or b) the difference of the two big
 * lgammas is expanded: lgamma(a+b) - lgamma(a) = b ln a + (a+b-1/2) log1p(b/a) - b + tails. */
static double log_inv_beta(double a, double b) {
    if (a < b) {
        double tmp = a;
        a = b;
        b = tmp;
    }
    if (a < 20) return lgamma(a + b) - lgamma(a) - lgamma(b);
    double diff = b * log(a) + (a + b - 0.5) * log1p(b / a) - b +
                  lgamma_stirling_tail(a + b) - lgamma_stirling_tail(a);
    return diff - lgamma(b);
}

static double betainc_xy(double a, double b, double x, double y) {
    if (x <= 0) return 0;
    if (y <= 0) return 1;
    /* front factor x^a y^b / B(a,b), in logs to survive large a, b */
    double lfront = log_inv_beta(a, b) + a * log(x) + b * log(y);
    double front = exp(lfront);
    if (x < (a + 1) / (a + b + 2)) return front * betainc_cf(a, b, x) / a;
    double complement = front * betainc_cf(b, a, y) / b;
    if (complement < 0.9) return 1 - complement;
    return front * betainc_cf(a, b, x) / a;
}

double cad_stats_betainc(double a, double b, double x) {
    if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1)) return NAN;
    return betainc_xy(a, b, x, 1 - x);
}

/* P(T > |t|) for t != 0, the shared tail: 0.5 * I_{df/(df+t²)}(df/2, 1/2). */
static double t_upper_tail_abs(double t, double df) {
    /* beyond 1e7 degrees of freedom t and the normal differ by O(1/df) < 1e-6 */
    if (df > 1e7) return 0.5 * erfc(fabs(t) / sqrt(2.0));
    if (isinf(t)) return 0;
    double r = t * t / df; /* x = 1/(1+r), y = r/(1+r): no 1 - x anywhere */
    return 0.5 * betainc_xy(df / 2, 0.5, 1 / (1 + r), r / (1 + r));
}

double cad_stats_t_sf(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (t == 0) return 0.5;
    double tail = t_upper_tail_abs(t, df);
    return t > 0 ? tail : 1 - tail;
}

double cad_stats_t_cdf(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (t == 0) return 0.5;
    double tail = t_upper_tail_abs(t, df);
    return t > 0 ? 1 - tail : tail;
}

double cad_stats_t_quantile(double p, double df) {
    if (!(p > 0) || !(p < 1) || !(df > 0)) return NAN;
    if (p == 0.5) return 0;
    /* Solve in the tail that holds p so that small p keep full relative precision. */
    int upper = p > 0.5;
    double q = upper ? 1 - p : p; /* target lower-tail probability of -|t| */
    double lo = 0, hi = 1;
    while (cad_stats_t_cdf(-hi, df) > q && hi < 1e300) hi *= 2;
    for (int i = 0; i < 2000 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (cad_stats_t_cdf(-mid, df) > q) lo = mid;
        else hi = mid;
    }
    double t = 0.5 * (lo + hi);
    return upper ? t : -t;
}

double cad_stats_ci_halfwidth(double std, int n, double level) {
    if (n < 2 || !isfinite(std) || !(level > 0) || !(level < 1)) return NAN;
    return cad_stats_t_quantile(0.5 + level / 2, n - 1) * std / sqrt((double)n);
}

void cad_stats_welch_from_summary(const cad_stats_summary *a, const cad_stats_summary *b, double margin,
                              cad_stats_welch *out) {
    out->ok = 0;
    out->delta = a->mean - b->mean;
    out->se = out->t = out->df = out->p = NAN;
    if (a->n < 2 || b->n < 2 || !isfinite(a->std) || !isfinite(b->std)) return;
    double va = a->std * a->std / a->n, vb = b->std * b->std / b->n;
    out->ok = 1;
    out->se = sqrt(va + vb);
    double shifted = out->delta + margin; /* < 0 supports H1 */
    if (out->se == 0) {
        out->t = shifted < 0 ? -INFINITY : shifted > 0 ? INFINITY : NAN;
        out->df = a->n + b->n - 2;
        out->p = shifted < 0 ? 0 : 1;
        return;
    }
    out->t = shifted / out->se;
    double den = 0;
    if (va > 0) den += va * va / (a->n - 1);
    if (vb > 0) den += vb * vb / (b->n - 1);
    out->df = (va + vb) * (va + vb) / den;
    out->p = cad_stats_t_cdf(out->t, out->df);
}

void cad_stats_welch_test(const double *a, int na, const double *b, int nb, double margin,
                      cad_stats_welch *out) {
    cad_stats_summary sa, sb;
    cad_stats_summarize(a, na, &sa);
    cad_stats_summarize(b, nb, &sb);
    cad_stats_welch_from_summary(&sa, &sb, margin, out);
}

int cad_stats_seeds_needed(double delta, double margin, double std_a, double std_b, double alpha,
                       int max_n) {
    double effect = delta - margin;
    if (!(effect > 0) || !isfinite(std_a) || !isfinite(std_b)) return 0;
    double sa2 = std_a * std_a, sb2 = std_b * std_b;
    if (sa2 + sb2 == 0) return 2;
    for (int n = 2; n <= max_n; n++) {
        double se = sqrt((sa2 + sb2) / n);
        /* Welch–Satterthwaite with equal n: (n-1)(sa²+sb²)² / (sa⁴+sb⁴) */
        double df = (n - 1) * (sa2 + sb2) * (sa2 + sb2) / (sa2 * sa2 + sb2 * sb2);
        if (effect / se >= cad_stats_t_quantile(1 - alpha, df)) return n;
    }
    return 0;
}
