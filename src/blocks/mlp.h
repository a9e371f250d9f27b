/* The MLP: a stack of linear layers, each with its own activation, run forward and backward over a slice of the
 * batch by one thread of a team. The barriers a team needs between layers (where one layer is split by output
 * features and the next reads whole rows, or the reverse) live here, once, for every model.
 *
 * Shapes: B = batch rows; layer i maps (B, in_i) to (B, out_i), in_{i+1} = out_i. out[i] holds layer i's output
 * (post-activation), dout[i] the gradient of the loss with respect to it; the last layer's out and dout are the
 * model's (e.g. logits whose gradient the fused loss writes in place). */
#ifndef ELBO_MLP_H
#define ELBO_MLP_H

#include <stddef.h>

#include "linear.h"

#define ELBO_MLP_MAX_LAYERS 16

typedef struct {
    size_t n;                            /* layers */
    const elbo_linear *layer;            /* (n), the model's */
    size_t first_index;                  /* the model-wide index of layer 0 (which part gets a larger block) */
    float *out[ELBO_MLP_MAX_LAYERS];     /* (B, out_i) layer i's output (in bf16 where elbo_mlp_keeps_bf16) */
    float *dout[ELBO_MLP_MAX_LAYERS];    /* (B, out_i) d loss / d out[i]; masked by nothing (the data gradient of the
                                          * next layer applies layer i's activation mask when it writes it) */
    float *dx;                           /* NULL, or (B, in_0): d loss / d input, for an input that needs it */
    float *pre[ELBO_MLP_MAX_LAYERS];     /* NULL, or (B, out_i): layer i's pre-activation, stored by its forward */
} elbo_mlp;

/* 1 when layer i's output is kept in bf16 in the first half of out[i]'s bytes (row stride out_i): a hidden layer
 * of a BF16 model whose output feeds only the next layer's GEMMs and its activation's sign-only derivative
 * (elbo_linear_output_bf16_ok), unless the environment sets ELBO_BF16_ACTIVATIONS=fp32. Read it through
 * elbo_mlp_layer_input. */
int elbo_mlp_keeps_bf16(const elbo_mlp *m, size_t i);

/* The input operand of layer i at row r0: x (the MLP's input at row 0) for layer 0, else out[i - 1]. */
elbo_operand elbo_mlp_layer_input(const elbo_mlp *m, elbo_operand x, size_t i, size_t r0);

/* Rows [r0, r1) of every layer's forward, from the input x (at row 0). */
void elbo_mlp_forward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t r0, size_t r1,
                           const float *params);

/* Part `part` of `nparts` of the forward over b rows in a training step, called by every thread of an OpenMP team
 * (it holds team barriers). Requires rows [r0, r1) of x to be written by this thread (or all rows by anyone, before
 * a barrier); each layer then runs either the part's rows or, where that moves fewer bytes between cores, the
 * output features the part owns in elbo_linear_features_of_part, for all rows, with a barrier wherever a layer
 * needs rows other threads wrote. On return, rows [r0, r1) of the last layer's output are complete. Leaves the bits
 * of elbo_mlp_forward_rows over [0, b). */
void elbo_mlp_forward_part(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t b, size_t r0,
                           size_t r1, size_t part, size_t nparts, const float *params);

/* Rows [r0, r1) of the data gradients after those rows' forward and the last layer's dout: dout[i] for every layer
 * below the last (masked by its activation), then dx when not NULL (masked by x_act of the saved input x_saved,
 * (B, in_0), or not at all when x_act is NONE). */
void elbo_mlp_backward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, size_t r0, size_t r1,
                            const float *x_saved, elbo_activation x_act);

/* 1 when rows [r0, r1) of every layer's dout (what its weight and bias gradients are summed from) are finite. */
int elbo_mlp_output_grads_finite(const elbo_mlp *m, size_t r0, size_t r1);

#endif
