/* The classifier: an MLP (default 784-256-256-10, ReLU) trained with softmax cross-entropy on the class labels.
 * It is the second model on the training blocks, and the reference network whose last hidden layer scores
 * generated images (Fréchet distance, class coverage). Shapes: B = batch rows, D = input_dim, C = classes,
 * F = the last hidden width. Weights are (out, in) row-major like nn.Linear. */
#ifndef ELBO_CLASSIFIER_H
#define ELBO_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "act_arena.h"
#include "checkpoint.h"
#include "config.h"
#include "linear.h"
#include "mlp.h"
#include "model.h"
#include "params.h"
#include "team.h"

typedef struct {
    size_t input_dim;                    /* pixels per image (from the data) */
    size_t n_hidden;                     /* hidden layers (at least one: the features) */
    size_t hidden[ELBO_MAX_HIDDEN];      /* their widths, input side first */
    size_t classes;                      /* C */
} elbo_classifier_config;

typedef struct {
    elbo_classifier_config cfg;
    elbo_param_layout layout;
    const elbo_kernels *kern;
    float *params, *grads;               /* arenas (layout.total) */
    elbo_linear layer[ELBO_MAX_HIDDEN + 1];
} elbo_classifier;

/* Activations of up to max_batch rows (views of one arena). */
typedef struct {
    size_t max_batch;
    float *h[ELBO_MAX_HIDDEN];           /* (B, hidden[i]) post-ReLU; h[n_hidden - 1] are the features */
    float *dh[ELBO_MAX_HIDDEN];          /* d loss / d h[i] */
    float *logits;                       /* (B, C), then d loss / d logits */
    float *loss;                         /* (B) cross-entropy per row */
    float *correct;                      /* (B) 1 where the argmax is the label, else 0 */
    uint32_t *pred;                      /* (B) argmax of the logits */
    elbo_mlp mlp;
    elbo_act_arena arena;
    elbo_gemm_workspace ws;              /* for single-threaded callers */
} elbo_classifier_activations;

/* 784-256-256-10 for input_dim pixels and `classes` classes. */
elbo_classifier_config elbo_classifier_config_default(size_t input_dim, size_t classes);
/* Checks every field; returns 0, or -1 with a message in err naming the field. */
int elbo_classifier_config_validate(const elbo_classifier_config *c, char *err, size_t errlen);
/* "784-256-256-10 classifier". */
void elbo_classifier_config_describe(const elbo_classifier_config *c, char *out, size_t outlen);
/* The parameter layout: hidden.0 .. hidden.{n-1}, then fc_out. */
void elbo_classifier_layout_build(elbo_param_layout *l, const elbo_classifier_config *c);

/* Allocates a model for a valid config with zeroed parameters; returns 0 or -1 (message in err). */
int elbo_classifier_init(elbo_classifier *m, const elbo_classifier_config *cfg, const elbo_kernels *kern, char *err,
                         size_t errlen);
/* Frees everything elbo_classifier_init allocated (safe on a zeroed struct). */
void elbo_classifier_free(elbo_classifier *m);
/* Packs every weight for the GEMMs; call after the parameters change. */
void elbo_classifier_pack_weights(elbo_classifier *m);

/* Allocates activations for up to max_batch rows; returns 0 or -1 on out-of-memory. */
int elbo_classifier_activations_init(elbo_classifier_activations *a, const elbo_classifier *m, size_t max_batch);
/* Frees activations (safe on a zeroed struct). */
void elbo_classifier_activations_free(elbo_classifier_activations *a);

/* Forward pass of rows [r0, r1) of x (B x D uint8): hidden activations (the features), logits and pred. */
void elbo_classifier_forward_rows(const elbo_classifier *m, elbo_classifier_activations *a, elbo_gemm_workspace *ws,
                                  const uint8_t *x, size_t r0, size_t r1);
/* Single-threaded forward and backward over b rows with labels: per-row losses and m->grads = d (sum of the rows'
 * cross-entropies) / d params. Returns the sum of the losses. */
double elbo_classifier_forward_backward(elbo_classifier *m, elbo_classifier_activations *a, const uint8_t *x,
                                        const uint8_t *labels, size_t b);

/* The features (n, F: the last hidden layer, post-ReLU) and predicted classes (n) of n images x (n, D), in chunks
 * of a few hundred rows split over team's threads. Returns 0, or -1 when out of memory. */
int elbo_classifier_features(const elbo_classifier *m, elbo_team *team, const uint8_t *x, size_t n, float *features,
                             uint8_t *pred);

/* The model as the trainer, the evaluation loop and the checkpoint see it (pointers into m, which must outlive it).
 * Its loss parts are the cross-entropy sum and the count of correct predictions. */
elbo_model elbo_classifier_model(elbo_classifier *m);

/* Reads a classifier checkpoint (kind "classifier"; every config field and tensor checked), initializes m with
 * kernels kern and packs its weights; st may be NULL. Returns 0, or -1 with a one-line message naming the field. */
int elbo_classifier_load(const char *path, elbo_classifier *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen);

/* FLOPs of one training sample (forward + backward, the first layer's data gradient excluded). */
double elbo_classifier_train_flops_per_sample(const elbo_classifier *m);

#endif
