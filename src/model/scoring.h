/* Statistics of feature sets, for scoring generated images against real ones: the mean and covariance of a
 * set of feature vectors, the Fréchet distance between two such Gaussians (the FID formula when the features
 * come from a classifier's last hidden layer), and how a set of predicted classes covers the classes.
 *
 * Everything is in double precision. The matrix square roots come from LAPACK's symmetric eigensolver (dsyevd):
 *   FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2),
 * with S1^1/2 = V diag(sqrt(max(w, 0))) V^T from S1 = V diag(w) V^T, and tr(M^1/2) = sum sqrt(max(eig(M), 0))
 * for the symmetric positive semi-definite M = S1^1/2 S2 S1^1/2. This equals the usual
 * tr(sqrtm(S1 S2)) without a non-symmetric matrix square root. Rounding can leave FD slightly below 0 (by
 * about 1e-13 of tr(S1) + tr(S2)) for identical sets; it is returned as computed. Errors are one line in err. */
#ifndef ELBO_SCORING_H
#define ELBO_SCORING_H

#include <stddef.h>
#include <stdint.h>

#define ELBO_COVERAGE_MAX_CLASSES 256

/* Mean and covariance of n feature vectors of d dimensions. */
typedef struct {
    size_t n, d;
    double *mean; /* (d) */
    double *cov;  /* (d, d) row-major, symmetric: sum (x - mean)(x - mean)^T / (n - 1) (numpy.cov's default) */
} elbo_feature_stats;

/* Mean and covariance of the n rows of x (n, d) floats, in two passes in double. n >= 2, d >= 1, every value
 * finite. Returns 0 (s owns its arrays: elbo_feature_stats_free), or -1 with a message in err and *s zeroed. */
int elbo_feature_stats_compute(const float *x, size_t n, size_t d, elbo_feature_stats *s, char *err,
                               size_t errlen);

/* Frees what elbo_feature_stats_compute allocated and zeroes *s (safe on a zeroed struct). */
void elbo_feature_stats_free(elbo_feature_stats *s);

/* The Fréchet distance between N(a->mean, a->cov) and N(b->mean, b->cov) (the same d) into *fd. Returns 0, or
 * -1 with a message in err (dimensions differ, out of memory, the eigensolver did not converge). */
int elbo_frechet_distance(const elbo_feature_stats *a, const elbo_feature_stats *b, double *fd, char *err,
                          size_t errlen);

/* The Fréchet distance between the feature sets f1 (n1, d) and f2 (n2, d): statistics of each, then
 * elbo_frechet_distance. Returns 0, or -1 with a message in err naming the set ("set 1: ..."). */
int elbo_score_features(const float *f1, size_t n1, const float *f2, size_t n2, size_t d, double *fd, char *err,
                        size_t errlen);

/* How n predicted classes cover `classes` classes. */
typedef struct {
    size_t classes, total;
    size_t counts[ELBO_COVERAGE_MAX_CLASSES]; /* images predicted as each class (the first `classes` used) */
    double entropy_bits; /* -sum p log2 p of the histogram: log2(classes) when uniform, 0 for one class */
    double min_share;    /* the smallest class's count / total (0 when a class is never predicted) */
    size_t min_class;    /* that class (the lowest index on a tie) */
} elbo_class_coverage;

/* Coverage of pred[0..n) (each < classes; 1 <= classes <= ELBO_COVERAGE_MAX_CLASSES, n >= 1) into *out.
 * Returns 0, or -1 with a message in err. */
int elbo_class_coverage_compute(const uint8_t *pred, size_t n, size_t classes, elbo_class_coverage *out,
                                char *err, size_t errlen);

#endif
