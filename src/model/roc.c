/* AUROC by ranks and the threshold at a false-positive rate. */
#include "roc.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double score;
    uint8_t anomalous;
} scored;

/* qsort order: ascending score. */
static int by_score(const void *a, const void *b)
{
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

/* qsort order: ascending double. */
static int by_score_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double elbo_auroc(const double *score, const uint8_t *anomalous, size_t n)
{
    scored *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return NAN;
    size_t n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].score = score[i];
        s[i].anomalous = anomalous[i] != 0;
        n_pos += s[i].anomalous;
    }
    size_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(s);
        return NAN;
    }
    qsort(s, n, sizeof *s, by_score);
    double rank_sum = 0;    /* sum of the anomalous images' ranks (1-based, ties averaged) */
    for (size_t i = 0; i < n;) {
        size_t j = i, pos = 0;
        while (j < n && s[j].score == s[i].score)
            pos += s[j++].anomalous;
        rank_sum += (double)pos * 0.5 * (double)(i + 1 + j);
        i = j;
    }
    free(s);
    double u = rank_sum - 0.5 * (double)n_pos * (double)(n_pos + 1);
    return u / ((double)n_pos * (double)n_neg);
}

int elbo_roc_at_fpr(const double *score, const uint8_t *anomalous, size_t n, double max_fpr, elbo_roc_point *out)
{
    double *neg = malloc((n ? n : 1) * sizeof *neg);
    if (!neg)
        return -1;
    size_t n_neg = 0;
    for (size_t i = 0; i < n; i++)
        if (!anomalous[i])
            neg[n_neg++] = score[i];
    if (n_neg == 0 || n_neg == n) {
        free(neg);
        return -1;
    }
    double *sorted = neg;
    qsort(sorted, n_neg, sizeof *sorted, by_score_double);
    /* At most `allowed` normal scores may lie above the threshold: the (allowed+1)-th largest is the lowest. */
    size_t allowed = (size_t)floor(max_fpr * (double)n_neg);
    out->threshold = allowed >= n_neg ? -INFINITY : sorted[n_neg - 1 - allowed];
    free(neg);
    size_t fp = 0, tp = 0;
    for (size_t i = 0; i < n; i++)
        if (score[i] > out->threshold) {
            if (anomalous[i])
                tp++;
            else
                fp++;
        }
    out->fpr = (double)fp / (double)n_neg;
    out->tpr = (double)tp / (double)(n - n_neg);
    return 0;
}
