/* The linear layer, the training block every model is made of: y = act(x W^T + b) with the bias and the
 * activation fused into the GEMM's epilogue, its data gradient (the activation's mask fused into the GEMM that
 * reads the next layer's output gradient), and its weight and bias gradients, each over a slice of the batch
 * rows or of the output features, so a team of threads can split any of them.
 *
 * Shapes: B = batch rows, x is (B, in), y and dy are (B, out), W is (out, in) row-major as nn.Linear's, b is
 * (out). The layer holds no tensors of its own: W and b live in a parameter arena at w_off and b_off, their
 * gradients at the same offsets of a gradient arena; the layer keeps only its packed copies of W.
 *
 * Precision: the layer takes its kernel table's (kernels.h). In BF16 its three GEMMs run the bf16 GEMM (gemm_bf16.h:
 * operands rounded to bf16, to nearest even, while packed; fp32 accumulation; the same fused epilogues), its packed
 * copies of W are bf16 pair panels (fwd16, bwd16: the bf16 copy of the weights, refreshed wherever the fp32 panels
 * would be repacked, e.g. the tail's repack right after the optimizer's update), and its GEMMs use the bf16 scratch of
 * the workspace (ws->bf16). A layer's output may be kept in bf16 (elbo_linear_forward_bf16: the MLP's hidden outputs
 * that feed only GEMMs and a sign-only derivative, elbo_mlp_keeps_bf16); parameters, gradients, biases, epilogues
 * and everything else outside the GEMMs stay fp32. */
#ifndef ELBO_LINEAR_H
#define ELBO_LINEAR_H

#include <stddef.h>

#include "gemm.h"
#include "gemm_bf16.h"
#include "kernels.h"

/* The activation fused after a linear layer is the GEMM epilogue's elbo_activation (gemm.h): NONE, RELU,
 * LEAKY_RELU, TANH, SIGMOID, SILU, as PyTorch defines them. */

typedef struct {
    size_t in, out;
    size_t w_off, b_off;   /* in floats, into the parameter (and gradient) arena */
    elbo_activation act;
    float slope;           /* LeakyReLU's negative slope: ELBO_LEAKY_RELU_SLOPE (nn.LeakyReLU's) after init;
                            * assign another before the first forward */
    const elbo_kernels *kern;
    elbo_packed_b fwd;     /* W^T (in x out) packed for the forward GEMM */
    elbo_packed_b bwd;     /* W (out x in) for the data-gradient GEMM: a view of the arena where the kernels read
                            * it in place, else a packed copy; empty when the layer needs no data gradient */
    elbo_precision precision;  /* kern->precision: FP32 uses fwd and bwd, BF16 fwd16 and bwd16 (the others empty) */
    elbo_packed_b_bf16 fwd16;  /* BF16: W^T (in x out) rounded to bf16, packed for the forward GEMM */
    elbo_packed_b_bf16 bwd16;  /* BF16: W (out x in) rounded to bf16 for the data-gradient GEMM (empty without it) */
    int stream_packs;          /* 1: elbo_linear_pack_features writes the FP32 panels with non-temporal stores
                                * (elbo_pack_b_region_stream), for a model whose weights, packed copies and optimizer
                                * state far exceed the caches, so that the panels come from memory at their next use
                                * anyway; 0 after init */
} elbo_linear;

/* Sets up a layer of the arena `params` (which must outlive it) and allocates its packed weights; with_data_grad
 * says whether its data gradient dx is ever computed. Returns 0 or -1 on out-of-memory (l is then freed). */
int elbo_linear_init(elbo_linear *l, const elbo_kernels *kern, size_t in, size_t out, size_t w_off, size_t b_off,
                     elbo_activation act, const float *params, int with_data_grad);
/* Frees the packed weights (safe on a zeroed struct). */
void elbo_linear_free(elbo_linear *l);

/* Packs W for both GEMMs after the parameters changed. */
void elbo_linear_pack(elbo_linear *l, const float *params);
/* Packs the rows [lo, hi) of W (output features; whole NR panels) for both GEMMs, after only they changed. */
void elbo_linear_pack_features(elbo_linear *l, const float *params, size_t lo, size_t hi);

/* y rows [0, rows) (row stride out) = act(x (rows, in) . W^T + b), in one GEMM. */
void elbo_linear_forward(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, elbo_operand x, size_t rows,
                         const float *params);
/* Output features [lo, hi) (lo a multiple of NR) of elbo_linear_forward over all b rows, the same bits. */
void elbo_linear_forward_features(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, elbo_operand x,
                                  size_t b, size_t lo, size_t hi, const float *params);

/* As elbo_linear_forward, also storing the pre-activation u = x . W^T + b into u (same shape and row stride as
 * y) in the same pass: what a SILU layer's data gradient needs (its x_saved), where the other activations
 * need only y. u NULL is elbo_linear_forward. */
void elbo_linear_forward_saving(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u, elbo_operand x,
                                size_t rows, const float *params);
/* As elbo_linear_forward_features, also storing those features of u (as elbo_linear_forward_saving). */
void elbo_linear_forward_features_saving(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u,
                                         elbo_operand x, size_t b, size_t lo, size_t hi, const float *params);

/* As elbo_linear_forward_saving over an addend already in y: y = act(x . W^T + b + y_in), u (NULL or as y) =
 * x . W^T + b + y_in, in one GEMM (its beta = 1): a second linear's output summed into this one's pre-activation
 * (a diffusion block's W1 s + U e), or a residual stream h + W a. */
void elbo_linear_forward_accumulate(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u,
                                    elbo_operand x, size_t rows, const float *params);

/* 1 when l's output may be kept in bf16 (elbo_linear_forward_bf16): a BF16 layer whose activation's derivative
 * needs only the output's sign (none, ReLU, LeakyReLU; a positive fp32 denormal reads as zero, as the next GEMM
 * reads it), over a depth (in) of one K block of the bf16 GEMM. */
int elbo_linear_output_bf16_ok(const elbo_linear *l);
/* As elbo_linear_forward with y (rows, out) kept in bf16: the GEMM's epilogue rounds each output (bf16.h's rules)
 * from the tile in L1, so the fp32 output is never stored; what the next layer's GEMMs then read as stored (the
 * bits they would round to themselves from the fp32 output). Needs elbo_linear_output_bf16_ok. */
void elbo_linear_forward_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, elbo_bf16 *y, elbo_operand x,
                              size_t rows, const float *params);
/* Output features [lo, hi) of elbo_linear_forward_bf16 over all b rows (as elbo_linear_forward_features). */
void elbo_linear_forward_features_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, elbo_bf16 *y, elbo_operand x,
                                       size_t b, size_t lo, size_t hi, const float *params);
/* As elbo_linear_data_grad_after with x_saved (rows, in) the bf16 output of x_layer's elbo_linear_forward_bf16. */
void elbo_linear_data_grad_after_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                      const elbo_linear *x_layer, const elbo_bf16 *x_saved, size_t rows);

/* What the data gradient of the layer after l needs from l's forward (its x_saved): u for a SILU layer, else y. */
static inline const float *elbo_linear_saved(const elbo_linear *l, const float *y, const float *u)
{
    return l->act == ELBO_ACT_SILU ? u : y;
}

/* dx rows [0, rows) (row stride in) = dy (rows, out) . W, times the derivative of the activation x_layer applied
 * to produce x (x_layer NULL or act NONE: none), computed from x_saved (those rows of what x_layer's forward
 * saved, row stride in: elbo_linear_saved). */
void elbo_linear_data_grad_after(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                 const elbo_linear *x_layer, const float *x_saved, size_t rows);
/* As elbo_linear_data_grad_after with an x_layer of activation x_act (LeakyReLU: slope ELBO_LEAKY_RELU_SLOPE). */
void elbo_linear_data_grad(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                           const float *x_saved, elbo_activation x_act, size_t rows);

/* dx rows [0, rows) (row stride in) += dy (rows, out) . W, with no activation derivative: the data gradient of an
 * input several layers read (a diffusion model's time embedding), summed layer by layer in a fixed order. */
void elbo_linear_data_grad_accumulate(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                      size_t rows);

/* Rows [lo, hi) of dW = dy^T . x over all b rows (dy (b, out), x (b, in)) into grads + w_off, and the same
 * features of db = the column sums of dy into grads + b_off: every element whole, in a fixed order. */
void elbo_linear_param_grads(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                             elbo_operand x, size_t b, size_t lo, size_t hi);

/* As elbo_linear_param_grads with x (b, in) already packed as that GEMM's B (elbo_pack_b's layout for l's kernels,
 * K = b; FP32 layers only): the same bits, without packing x again for every block of features. */
void elbo_linear_param_grads_packed(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                                    const elbo_packed_b *x, size_t b, size_t lo, size_t hi);

/* As elbo_linear_param_grads (x_packed NULL) or elbo_linear_param_grads_packed, into dw (hi - lo, in) and db
 * (hi - lo) instead of the gradient arena: the same bits wherever they are written. */
void elbo_linear_param_grads_into(const elbo_linear *l, elbo_gemm_workspace *ws, float *dw, float *db,
                                  const float *dy, elbo_operand x, const elbo_packed_b *x_packed, size_t b, size_t lo,
                                  size_t hi);

/* As elbo_linear_param_grads, adding dW rows [lo, hi) += dy^T x and db [lo, hi) += its column sums into grads. */
void elbo_linear_param_grads_add(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                                 elbo_operand x, size_t b, size_t lo, size_t hi);

/* The width of the layer's packed panels (its GEMM's NR: the bf16 tile's in BF16): feature blocks of the forward
 * split, the tail and the repacking are made of whole panels of this width. */
size_t elbo_linear_panel_width(const elbo_linear *l);

/* [lo, hi) of part p of nparts over the layer's output features, in whole panels (elbo_linear_panel_width); `rotate` shifts which part
 * gets the larger blocks when the panels do not divide evenly (pass the layer's index). */
void elbo_linear_features_of_part(const elbo_linear *l, size_t p, size_t nparts, size_t rotate, size_t *lo,
                                  size_t *hi);

/* 1 when a training step over b rows on nparts threads should run this layer's forward split by output features
 * (each thread its block of features for all rows, from the weights it updated and packed itself) rather than by
 * rows: whichever moves fewer bytes between cores, and only with at least 4 panels per part. */
int elbo_linear_forward_by_features(const elbo_linear *l, size_t b, size_t nparts);
/* elbo_linear_forward_by_features for a layer of `out` features from `in`, packed in panels of panel_width. */
int elbo_forward_by_features(size_t out, size_t in, size_t panel_width, size_t b, size_t nparts);

/* Bytes of the packed copies (forward, and data gradient unless it is a view), for NUMA placement. */
size_t elbo_linear_packed_bytes(const elbo_linear *l, int bwd);
/* Where those bytes are (the forward copy, or the data gradient's when bwd), whatever the precision. */
void *elbo_linear_packed_data(const elbo_linear *l, int bwd);

#endif
