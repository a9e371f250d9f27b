/* Blocked single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, row-major,
 * with fused epilogues (bias, activation, activation-derivative mask) and prepackable B operands.
 * Single-threaded and re-entrant: every call takes its own workspace. */
#ifndef ELBO_GEMM_H
#define ELBO_GEMM_H

#include <stddef.h>
#include <stdint.h>

struct elbo_kernels;

typedef enum { ELBO_NOTRANS = 0, ELBO_TRANS = 1 } elbo_trans;
typedef enum { ELBO_DTYPE_F32 = 0, ELBO_DTYPE_U8 = 1, ELBO_DTYPE_BF16 = 2 } elbo_dtype; /* BF16: gemm_bf16.h only */

/* A row-major matrix operand. op() is applied per `trans`; U8 data is read as value / 255; BF16 data (uint16_t) only
 * by the bf16 GEMM (gemm_bf16.h). */
typedef struct {
    const void *data;
    size_t ld;          /* leading dimension (row stride) of the stored matrix, in elements */
    elbo_trans trans;   /* ELBO_TRANS: the stored matrix is op()'s transpose */
    elbo_dtype dtype;
} elbo_operand;

/* An activation fused into a GEMM's epilogue, as PyTorch defines it: ReLU max(v, 0); LeakyReLU v > 0 ? v : slope v;
 * tanh; sigmoid 1 / (1 + exp(-v)); SiLU v sigmoid(v). NaN propagates through each. */
typedef enum {
    ELBO_ACT_NONE = 0,
    ELBO_ACT_RELU,
    ELBO_ACT_LEAKY_RELU,
    ELBO_ACT_TANH,
    ELBO_ACT_SIGMOID,
    ELBO_ACT_SILU,
} elbo_activation;

/* nn.LeakyReLU's default negative slope. */
#define ELBO_LEAKY_RELU_SLOPE 0.01f

/* Epilogue applied to each C element on the last K block, while its tile is in registers, in this order:
 *   v = alpha * acc + beta * C, + bias[j];
 *   preact[i, j] = v                                   (when preact: the pre-activation, e.g. for SiLU's backward);
 *   v = act(v);
 *   v = v * act'(x) for grad, from what the forward of x saved (saved[i, j]):
 *     RELU        saved (y) > 0 ? v : 0              (a NaN saved zeroes v, as the ReLU mask always did)
 *     LEAKY_RELU  saved (y) > 0 ? v : v * slope       (PyTorch: x > 0, and y > 0 iff x > 0)
 *     TANH        v * (1 - y * y)                     (saved y = tanh(x))
 *     SIGMOID     v * (1 - y) * y                     (saved y = sigmoid(x))
 *     SILU        v * s * (1 + u * (1 - s)), s = sigmoid(u)   (saved u = the pre-activation)
 * The data gradient of a layer is its GEMM with grad = the activation that produced its input. */
typedef struct {
    const float *bias;          /* NULL or (N) */
    elbo_activation act;        /* after the bias */
    float slope;                /* LeakyReLU's negative slope (act or grad LEAKY_RELU) */
    float *preact;              /* NULL or (M, N), row stride ld_preact: receives v after the bias, before act */
    size_t ld_preact;
    elbo_activation grad;       /* NONE, or the activation whose derivative multiplies C (needs saved) */
    const float *saved;         /* (M, N), row stride ld_saved: the forward's output y, or its u for SILU */
    size_t ld_saved;
    /* The bf16 GEMM only (elbo_gemm refuses them), for activations kept in bf16 where they feed only GEMMs and a
     * sign-only derivative, with alpha 1 and beta 0: out_bf16 (NULL, or (M, N), row stride ld_out_bf16) receives
     * the finished C, each element rounded to bf16 (bf16.h's rules), and C itself is not written (c may be NULL;
     * act NONE, RELU or LEAKY_RELU, no grad or preact, K one block: elbo_gemm_bf16_one_block); saved_bf16 (with grad
     * RELU or LEAKY_RELU, instead of saved; row stride ld_saved) is saved stored in bf16, read as its exact fp32
     * values. */
    uint16_t *out_bf16;
    size_t ld_out_bf16;
    const uint16_t *saved_bf16;
    /* Shorthands kept for existing callers: relu != 0 means act = RELU (when act is NONE); relu_mask means
     * grad = RELU with saved = relu_mask, ld_saved = ld_mask (when grad is NONE). */
    int relu;
    const float *relu_mask;
    size_t ld_mask;
} elbo_epilogue;

/* When A is packed: AUTO packs unless C is narrow and the ISA can read f32 A in place. */
typedef enum { ELBO_PACK_A_AUTO = 0, ELBO_PACK_A_ALWAYS, ELBO_PACK_A_NEVER } elbo_pack_a_policy;

/* When elbo_gemm packs a row-major f32 B: AUTO reads it in place where the kernels can and its row stride
 * suits the L1 cache, else packs it per call. */
typedef enum { ELBO_PACK_B_AUTO = 0, ELBO_PACK_B_ALWAYS, ELBO_PACK_B_NEVER } elbo_pack_b_policy;

/* Per-thread scratch for packed panels of A (MC x KC) and B (KC x NC). */
typedef struct {
    elbo_pack_a_policy pack_a; /* AUTO after init; tests and benches may force either path */
    elbo_pack_b_policy pack_b; /* AUTO after init; likewise */
    float *packed_a;
    float *packed_b;
    size_t packed_a_floats;
    size_t packed_b_floats;
    struct elbo_gemm_bf16_workspace *bf16; /* the bf16 GEMM's scratch when the table's precision is BF16 (the linear
                                            * layers' GEMMs then run in bf16), else NULL */
} elbo_gemm_workspace;

/* A B operand (K x N after op) packed once into the microkernel's panel layout for reuse, or a view of a
 * row-major f32 B that the microkernels read in place (elbo_packed_b_view). */
typedef struct {
    const struct elbo_kernels *kernels; /* layout belongs to this kernel table's MR/NR/KC */
    size_t k, n;
    float *data;                        /* elbo_packed_b_floats(k, n) floats, 64-byte aligned; or the view's B */
    size_t view_ld;                     /* 0: packed (owns data); else a view: B's row stride in floats */
} elbo_packed_b;

/* Operand constructors: float or uint8 matrix with leading dimension ld. */
elbo_operand elbo_operand_f32(const float *data, size_t ld, elbo_trans trans);
elbo_operand elbo_operand_u8(const uint8_t *data, size_t ld, elbo_trans trans);

/* Allocates the workspace a kernel table's blocking needs (and the bf16 GEMM's when its precision is BF16); returns 0
 * or -1 on out-of-memory. */
int elbo_gemm_workspace_init(elbo_gemm_workspace *ws, const struct elbo_kernels *kern);
/* Releases a workspace (safe on a zeroed struct). */
void elbo_gemm_workspace_free(elbo_gemm_workspace *ws);

/* C (M x N, row stride ldc) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, then epi (may be NULL).
 * beta == 0 never reads C. Any M, N, K >= 0. A narrow C under a transposed A with no epilogue (a weight gradient
 * of a layer with few inputs) may be computed as C^T in ws's scratch and copied back: the same bits. */
void elbo_gemm(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
               float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
               const elbo_epilogue *epi);

/* Number of floats a packed B of op(B) shape (K x N) needs under kern's blocking. */
size_t elbo_packed_b_floats(const struct elbo_kernels *kern, size_t k, size_t n);
/* Allocates storage for a packed (K x N) B; returns 0 or -1 on out-of-memory. */
int elbo_packed_b_alloc(elbo_packed_b *pb, const struct elbo_kernels *kern, size_t k, size_t n);
/* Makes pb a view of row-major f32 B (K x N, row stride ld, not transposed) read in place by the GEMM, with no
 * copy: packing it is a no-op and it always shows B's current values, beside a packed or an in-place A.
 * Returns 0, or -1 when this kernel table cannot read B in place for that shape (N not a multiple of NR, or no
 * in-place kernel): pack B then. */
int elbo_packed_b_view(elbo_packed_b *pb, const struct elbo_kernels *kern, size_t k, size_t n, const float *b,
                       size_t ld);
/* Frees storage from elbo_packed_b_alloc (a view owns none). */
void elbo_packed_b_free(elbo_packed_b *pb);
/* Packs op(B) (K x N) into pb (allocated for the same K, N, kernels); call again when B changes. The packing
 * functions do nothing on a view. */
void elbo_pack_b(elbo_packed_b *pb, elbo_operand b);
/* Part `part` of `nparts` of elbo_pack_b (a block of whole NR-column panels), so threads can share the packing. */
void elbo_pack_b_part(elbo_packed_b *pb, elbo_operand b, size_t part, size_t nparts);
/* Packs the region depth [k0, k1) x columns [j0, j1) of op(B) into pb, as elbo_pack_b would (j0 a multiple of
 * NR, j1 one too or N): disjoint regions can be packed by different threads in any order. */
void elbo_pack_b_region(elbo_packed_b *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1);
/* As elbo_pack_b_region, writing the panels with the table's non-temporal stores where it has them (pack_b_stream):
 * the same panels, without reading their old lines into the caches nor evicting what the caches hold for them. */
void elbo_pack_b_region_stream(elbo_packed_b *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1);
/* As elbo_gemm, with a B operand packed by elbo_pack_b (its kernels must be kern). */
void elbo_gemm_packed(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                      float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c, size_t ldc,
                      const elbo_epilogue *epi);
/* As elbo_gemm_packed for columns [j0, j1) of C only (j0 a multiple of NR; c, ldc and epi still address the whole
 * M x N C): every element gets the bits elbo_gemm_packed gives it, so threads can split C by column blocks. */
void elbo_gemm_packed_cols(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j0,
                           size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b *b, float beta,
                           float *c, size_t ldc, const elbo_epilogue *epi);

#endif
