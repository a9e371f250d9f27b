/* Detection quality of anomaly scores (higher = more anomalous): the exact area under the ROC curve and the
 * operating point at a chosen false-positive rate. */
#ifndef ELBO_ROC_H
#define ELBO_ROC_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double threshold;   /* flag an image when its score > threshold */
    double fpr, tpr;    /* fractions of normal and of anomalous images flagged */
} elbo_roc_point;

/* AUROC of score (n) for anomalous[i] != 0 against normal: P(s_anomalous > s_normal) + P(tie) / 2 over all
 * pairs, from average ranks (Mann-Whitney U). NAN when either group is empty or out of memory. */
double elbo_auroc(const double *score, const uint8_t *anomalous, size_t n);

/* The lowest threshold flagging at most a fraction max_fpr of the normal images, with the rates it gives.
 * Returns 0, or -1 when either group is empty or out of memory. */
int elbo_roc_at_fpr(const double *score, const uint8_t *anomalous, size_t n, double max_fpr, elbo_roc_point *out);

#endif
