/* Feature-set statistics: mean and covariance (two passes, double), the Fréchet distance through LAPACK's
 * symmetric eigensolver, class coverage. */
#include "scoring.h"

#include "errmsg.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of centred features accumulated into the covariance together (one pass over it per block). */
#define COV_ROW_BLOCK 8

/* mean (d) = the mean of the n rows of x (n, d), summed in double; -1 (with a message) at a non-finite value. */
static int column_means(const float *x, size_t n, size_t d, double *mean, char *err, size_t errlen)
{
    memset(mean, 0, d * sizeof *mean);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            float v = x[i * d + j];
            if (!isfinite(v)) {
                elbo_errf(err, errlen, "feature %zu of row %zu is %g (features must be finite)", j, i, (double)v);
                return -1;
            }
            mean[j] += v;
        }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    return 0;
}

/* cov (d, d) = sum over the rows of x (n, d) of (x - mean)(x - mean)^T / (n - 1), upper triangle accumulated
 * COV_ROW_BLOCK rows at a time, then mirrored. c: scratch (COV_ROW_BLOCK, d). */
static void covariance(const float *x, size_t n, size_t d, const double *mean, double *cov, double *c)
{
    memset(cov, 0, d * d * sizeof *cov);
    for (size_t i0 = 0; i0 < n; i0 += COV_ROW_BLOCK) {
        size_t rows = n - i0 < COV_ROW_BLOCK ? n - i0 : COV_ROW_BLOCK;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < d; j++)
                c[r * d + j] = (double)x[(i0 + r) * d + j] - mean[j];
        for (size_t j = 0; j < d; j++) {
            double *row = cov + j * d;
            for (size_t r = 0; r < rows; r++) {
                const double *cr = c + r * d;
                double cj = cr[j];
                for (size_t k = j; k < d; k++)
                    row[k] += cj * cr[k];
            }
        }
    }
    double scale = 1.0 / (double)(n - 1);
    for (size_t j = 0; j < d; j++) {
        for (size_t k = j; k < d; k++)
            cov[j * d + k] *= scale;
        for (size_t k = 0; k < j; k++)
            cov[j * d + k] = cov[k * d + j];
    }
}

int elbo_feature_stats_compute(const float *x, size_t n, size_t d, elbo_feature_stats *s, char *err,
                               size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n < 2 || d == 0) {
        elbo_errf(err, errlen, "%zu feature vectors of %zu dimensions (a covariance needs at least 2 of at least 1)",
                  n, d);
        return -1;
    }
    if (d > SIZE_MAX / sizeof(double) / d / COV_ROW_BLOCK) {
        elbo_errf(err, errlen, "%zu feature dimensions: the covariance does not fit in memory", d);
        return -1;
    }
    s->n = n;
    s->d = d;
    s->mean = malloc(d * sizeof *s->mean);
    s->cov = malloc(d * d * sizeof *s->cov);
    double *scratch = malloc(COV_ROW_BLOCK * d * sizeof *scratch);
    int rc = s->mean && s->cov && scratch ? 0 : -1;
    if (rc != 0)
        elbo_errf(err, errlen, "out of memory for the statistics of %zu features", d);
    else if ((rc = column_means(x, n, d, s->mean, err, errlen)) == 0)
        covariance(x, n, d, s->mean, s->cov, scratch);
    free(scratch);
    if (rc != 0)
        elbo_feature_stats_free(s);
    return rc;
}

void elbo_feature_stats_free(elbo_feature_stats *s)
{
    free(s->mean);
    free(s->cov);
    memset(s, 0, sizeof *s);
}

/* Eigenvalues w (d) of the symmetric a (d, d), and in a its eigenvectors as columns (column-major, which is
 * the same layout as row-major for the symmetric input) when vectors is set; 0, or -1 with a message. */
static int sym_eigen(double *a, size_t d, int vectors, double *w, const char *what, char *err, size_t errlen)
{
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)d, a, (lapack_int)d, w);
    if (info != 0) {
        elbo_errf(err, errlen, "eigendecomposition of %s (%zu x %zu) failed: LAPACK dsyevd info %d%s", what, d, d,
                  (int)info, info > 0 ? " (did not converge)" : info == LAPACK_WORK_MEMORY_ERROR ? " (out of memory)" : "");
        return -1;
    }
    return 0;
}

/* r (d, d) = V diag(sqrt(max(w, 0))) V^T from the eigenvectors v (columns, column-major) and values w;
 * scratch b (d, d). */
static void sqrt_from_eigen(const double *v, const double *w, size_t d, double *r, double *b)
{
    /* b row k = sqrt(w_k) * (column k of V) */
    for (size_t k = 0; k < d; k++) {
        double s = sqrt(w[k] > 0 ? w[k] : 0);
        for (size_t i = 0; i < d; i++)
            b[k * d + i] = s * v[k * d + i];
    }
    /* r_ij = sum_k V_ik sqrt(w_k) V_jk = sum_k b[k][i] * v[k][j] */
    memset(r, 0, d * d * sizeof *r);
    for (size_t k = 0; k < d; k++)
        for (size_t i = 0; i < d; i++) {
            double bik = b[k * d + i];
            const double *vk = v + k * d;
            double *ri = r + i * d;
            for (size_t j = 0; j < d; j++)
                ri[j] += bik * vk[j];
        }
}

/* c (d, d) = a (d, d) b (d, d), all row-major. */
static void matmul(const double *a, const double *b, size_t d, double *c)
{
    memset(c, 0, d * d * sizeof *c);
    for (size_t i = 0; i < d; i++)
        for (size_t k = 0; k < d; k++) {
            double aik = a[i * d + k];
            const double *bk = b + k * d;
            double *ci = c + i * d;
            for (size_t j = 0; j < d; j++)
                ci[j] += aik * bk[j];
        }
}

/* tr((S1^1/2 S2 S1^1/2)^1/2) for s1, s2 (d, d) into *tr; work: 4 d*d + d doubles. 0, or -1 with a message. */
static int trace_sqrt_product(const double *s1, const double *s2, size_t d, double *work, double *tr, char *err,
                              size_t errlen)
{
    double *a = work, *r = a + d * d, *t = r + d * d, *m = t + d * d, *w = m + d * d;
    memcpy(a, s1, d * d * sizeof *a);
    if (sym_eigen(a, d, 1, w, "the first covariance", err, errlen) != 0)
        return -1;
    sqrt_from_eigen(a, w, d, r, t);   /* r = S1^1/2 */
    matmul(r, s2, d, t);              /* t = S1^1/2 S2 */
    matmul(t, r, d, m);               /* m = S1^1/2 S2 S1^1/2 */
    for (size_t i = 0; i < d; i++)    /* exactly symmetric (the solver reads one triangle) */
        for (size_t j = i + 1; j < d; j++)
            m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
    if (sym_eigen(m, d, 0, w, "S1^1/2 S2 S1^1/2", err, errlen) != 0)
        return -1;
    double sum = 0;
    for (size_t i = 0; i < d; i++)
        sum += sqrt(w[i] > 0 ? w[i] : 0);
    *tr = sum;
    return 0;
}

int elbo_frechet_distance(const elbo_feature_stats *a, const elbo_feature_stats *b, double *fd, char *err,
                          size_t errlen)
{
    size_t d = a->d;
    if (b->d != d || d == 0) {
        elbo_errf(err, errlen, "feature sets of %zu and %zu dimensions", a->d, b->d);
        return -1;
    }
    double *work = malloc((4 * d * d + d) * sizeof *work);
    if (!work) {
        elbo_errf(err, errlen, "out of memory for the Fréchet distance of %zu features", d);
        return -1;
    }
    double mean_term = 0, trace_a = 0, trace_b = 0, trace_sqrt = 0;
    for (size_t i = 0; i < d; i++) {
        double diff = a->mean[i] - b->mean[i];
        mean_term += diff * diff;
        trace_a += a->cov[i * d + i];
        trace_b += b->cov[i * d + i];
    }
    int rc = trace_sqrt_product(a->cov, b->cov, d, work, &trace_sqrt, err, errlen);
    free(work);
    if (rc == 0)
        *fd = mean_term + trace_a + trace_b - 2 * trace_sqrt;
    return rc;
}

int elbo_score_features(const float *f1, size_t n1, const float *f2, size_t n2, size_t d, double *fd, char *err,
                        size_t errlen)
{
    elbo_feature_stats s1, s2;
    char why[256];
    if (elbo_feature_stats_compute(f1, n1, d, &s1, why, sizeof why) != 0) {
        elbo_errf(err, errlen, "set 1: %s", why);
        return -1;
    }
    if (elbo_feature_stats_compute(f2, n2, d, &s2, why, sizeof why) != 0) {
        elbo_errf(err, errlen, "set 2: %s", why);
        elbo_feature_stats_free(&s1);
        return -1;
    }
    int rc = elbo_frechet_distance(&s1, &s2, fd, err, errlen);
    elbo_feature_stats_free(&s1);
    elbo_feature_stats_free(&s2);
    return rc;
}

int elbo_class_coverage_compute(const uint8_t *pred, size_t n, size_t classes, elbo_class_coverage *out,
                                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (classes == 0 || classes > ELBO_COVERAGE_MAX_CLASSES || n == 0) {
        elbo_errf(err, errlen, "coverage of %zu predictions over %zu classes (need at least 1 of 1 to %d)", n,
                  classes, ELBO_COVERAGE_MAX_CLASSES);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (pred[i] >= classes) {
            elbo_errf(err, errlen, "prediction %zu is class %u, past the last class %zu", i, (unsigned)pred[i],
                      classes - 1);
            memset(out, 0, sizeof *out);
            return -1;
        }
        out->counts[pred[i]]++;
    }
    out->classes = classes;
    out->total = n;
    double h = 0;
    for (size_t c = 0; c < classes; c++) {
        double p = (double)out->counts[c] / (double)n;
        if (p > 0)
            h -= p * log2(p);
        if (out->counts[c] < out->counts[out->min_class])
            out->min_class = c;
    }
    out->entropy_bits = h;
    out->min_share = (double)out->counts[out->min_class] / (double)n;
    return 0;
}
