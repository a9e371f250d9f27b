/* The kernel table: which microkernel and fused kernels run on this CPU.
 * Only this table knows ISAs; callers receive one and never branch on the ISA themselves. */
#ifndef ELBO_KERNELS_H
#define ELBO_KERNELS_H

#include <stdint.h>

#include "bf16.h"
#include "coupling.h"
#include "elementwise.h"
#include "gemm_pack.h"
#include "ukernel.h"
#include "ukernel_bf16.h"

/* The precision of the GEMMs of the linear layers built on a table (as oneDNN's fpmath mode): FP32, or BF16 (operands
 * rounded to bf16, fp32 accumulation: gemm_bf16.h; everything else stays fp32). */
typedef enum { ELBO_PRECISION_FP32 = 0, ELBO_PRECISION_BF16 = 1 } elbo_precision;

typedef struct elbo_kernels {
    const char *isa;                    /* "scalar", "avx2", "avx512", "neon" */
    elbo_precision precision;           /* FP32 in every table elbo_kernels_select gives; BF16 in its twin
                                         * (elbo_kernels_with_precision) */
    const char *gemm_ukernel_name;      /* e.g. "f32_gemm_ukernel_6x16__avx2_fma" */
    elbo_gemm_blocking blocking;
    elbo_gemm_ukernel_fn gemm_ukernel;
    elbo_gemm_ukernel_strided_a_fn gemm_ukernel_strided_a; /* optional (NULL: A is always packed) */
    elbo_gemm_ukernel_strided_a_fn gemm_ukernel_narrow;    /* optional: edge tiles with nr <= narrow_nr */
    elbo_gemm_ukernel_wide_fn gemm_ukernel_wide;           /* optional: tiles over two full NR panels */
    elbo_gemm_ukernel_wide_strip_fn gemm_ukernel_wide_strip; /* optional, with gemm_ukernel_wide: all of a strip's
                                                              * row tiles in one call */
    elbo_gemm_lanes_fn gemm_lanes;                          /* optional: a narrow C under a transposed A with
                                                             * C's rows on the lanes (gemm.c, compute_on_lanes) */
    size_t gemm_lanes_min_n, gemm_lanes_max_n; /* the widths it serves */
    size_t narrow_nr;
    size_t narrow_mr;                   /* rows the narrow kernel takes when A is read in place (packed: mr) */
    elbo_pack_a_fn pack_a;              /* packs A blocks into mr-row panels (bitwise as elbo_pack_a_block) */
    elbo_pack_b_fn pack_b;              /* packs B panels into nr-column panels (bitwise as elbo_pack_b_panel) */
    elbo_pack_b_fn pack_b_stream;       /* optional: pack_b's panels written with non-temporal stores, for packed
                                         * weights no cache would keep until their next use */
    elbo_transpose_fn transpose;        /* copies a matrix transposed (a C computed as C^T back into C, gemm.c) */
    elbo_reparam_forward_fn reparam_forward;
    elbo_reparam_backward_fn reparam_backward;
    elbo_sigmoid_mse_fn sigmoid_mse;
    elbo_sigmoid_bce_fn sigmoid_bce;
    elbo_bce_logits_const_fn bce_logits_const;
    elbo_mse_fn mse;
    elbo_softmax_ce_fn softmax_ce;
    elbo_column_sum_fn column_sum;
    elbo_unit_from_u8_fn unit_from_u8;
    elbo_adam_fn adam;
    elbo_sgd_fn sgd;
    /* bf16 (bf16.h, gemm_bf16.h): the conversion every table has; the bf16 GEMM's microkernel where this CPU runs
     * one (NULL, and bf16_missing naming the CPU feature it lacks, where not). Its blocking is the table's with
     * the bf16 tile (MC and NC rounded down to it) and the FMA tables' K depths (gemm_depth.h). */
    elbo_f32_to_bf16_fn f32_to_bf16;
    elbo_gemm_bf16_ukernel_fn gemm_bf16_ukernel;
    elbo_gemm_bf16_ukernel_strided_a_fn gemm_bf16_ukernel_strided_a; /* optional: A's pairs read in place */
    const char *gemm_bf16_ukernel_name;
    const char *bf16_missing;
    size_t bf16_mr, bf16_nr;
    int bf16_tile_io;                   /* 1: the bf16 microkernel stores a tile epilogue's out16 and reads its saved16
                                         * itself (else the framework finishes through a tile buffer) */
    elbo_gemm_bf16_lanes_fn gemm_bf16_lanes;  /* optional: a narrow C under a transposed fp32 A with C's rows on the
                                                * lanes (gemm_bf16.c, bf16_compute_on_lanes) */
    size_t bf16_lanes_min_n, bf16_lanes_max_n; /* the widths it serves */
    elbo_pack_bf16_fn pack_bf16;        /* packs pair panels (bitwise as elbo_pack_bf16_panel) */
    elbo_coupling_forward_fn coupling_forward;   /* a normalizing flow's affine coupling (coupling.h) */
    elbo_coupling_inverse_fn coupling_inverse;
    elbo_coupling_backward_fn coupling_backward;
    elbo_coupling_forward_saving_fn coupling_forward_saving; /* optional, with coupling_backward_saved: a training */
    elbo_coupling_backward_saved_fn coupling_backward_saved; /* step's pair without recomputing tanh and exp, the
                                                              * bits of the table's own forward and backward (NULL
                                                              * where the ISA has none: the scalar table, and every
                                                              * table built on it that does not set both) */
} elbo_kernels;

/* The best table this CPU supports, or the one named by ELBO_ISA if set and supported
 * (NULL and a message on stderr if ELBO_ISA names an unknown or unsupported ISA). */
const elbo_kernels *elbo_kernels_select(void);

/* The twin of table k (one of the tables above or their twins) whose linear layers run in precision p: k itself
 * for its own precision; NULL when p is BF16 and k cannot run the bf16 GEMM (elbo_gemm_bf16_missing names why). The
 * twins share every kernel; only `precision` differs. */
const elbo_kernels *elbo_kernels_with_precision(const elbo_kernels *k, elbo_precision p);

/* The table of a named ISA if it was built in and this CPU runs it, else NULL. */
const elbo_kernels *elbo_kernels_by_name(const char *isa);

/* The i-th ISA table this CPU runs (0 = scalar, best last); NULL past the end. */
const elbo_kernels *elbo_kernels_available(size_t i);

/* Registration: each ISA's GEMM file and elementwise file fill the entries they implement,
 * over a table that the scalar reference filled first. */
void elbo_gemm_register_scalar(elbo_kernels *k);
void elbo_elementwise_register_scalar(elbo_kernels *k);
void elbo_gemm_register_avx2(elbo_kernels *k);
void elbo_elementwise_register_avx2(elbo_kernels *k);
/* AVX2 packing routines (called by elbo_gemm_register_avx2). */
void elbo_gemm_pack_register_avx2(elbo_kernels *k);
/* AVX-512: the AVX2 table with zmm microkernels 16 and 32 columns wide, and zmm sigmoid + loss kernels (the
 * other elementwise kernels are the AVX2 ones). */
void elbo_gemm_register_avx512(elbo_kernels *k);
/* The AVX-512 tile with C's rows on the lanes (called by elbo_gemm_register_avx512). */
void elbo_gemm_lanes_register_avx512(elbo_kernels *k);
void elbo_elementwise_register_avx512(elbo_kernels *k);
/* Groups of 16 inputs on which SLEEF's AVX-512 expf (every x <= 0) or log1pf (every x in [0, 1]) differs from
 * its AVX2 one in any bit: what the AVX-512 sigmoid kernels rely on being 0 (for the tests; call only where
 * elbo_kernels_by_name("avx512") is not NULL). */
size_t elbo_sleef_avx512_mismatches(void);
/* Groups of 16 of the float bit patterns first, first + step, ... up to last on which SLEEF's AVX-512 tanhf
 * differs from its AVX2 one (the GEMM epilogue's tanh; for the tests, as above). */
size_t elbo_sleef_avx512_tanh_mismatches(uint32_t first, uint32_t last, uint32_t step);
void elbo_gemm_register_neon(elbo_kernels *k);
void elbo_elementwise_register_neon(elbo_kernels *k);
/* The bf16 entries of each ISA (bf16 conversion, bf16 GEMM microkernel and packing), called by dispatch.c after
 * the GEMM and elementwise ones. */
void elbo_bf16_register_scalar(elbo_kernels *k);
void elbo_bf16_register_avx2(elbo_kernels *k);
void elbo_bf16_register_avx512(elbo_kernels *k);
/* The AVX512_BF16 tile with C's rows on the lanes (called by elbo_bf16_register_avx512 where the CPU runs the bf16
 * GEMM). */
void elbo_gemm_bf16_lanes_register_avx512bf16(elbo_kernels *k);
void elbo_bf16_register_neon(elbo_kernels *k);
/* The FEAT_BF16 kernel's entries (gemm_bf16_neonbf16.c; elbo_bf16_register_neon calls it where the CPU has it). */
void elbo_bf16_neon_gemm_install(elbo_kernels *k);
/* The scalar table's epilogue of tile element (i, j) after alpha and beta (bias, pre-activation, activation,
 * derivative; epi may be NULL): what the bf16 emulation finishes with. */
float elbo_scalar_epilogue(float v, size_t i, size_t j, const elbo_tile_epilogue *epi);
/* The NEON table's tile finish (gemm_neon.c): the mr x nr valid part of an 8 x 12 tile of accumulators into C,
 * alpha, beta and epi (NULL: none) as the fp32 NEON tiles apply them; for the NEON bf16 kernel. */
void elbo_neon_finish_tile(float *c, size_t ldc, const float tile[8][12], size_t mr, size_t nr, float alpha,
                           float beta, const elbo_tile_epilogue *epi);
/* The fused losses of each ISA (losses_<isa>.c), called by that ISA's elementwise register function. */
void elbo_losses_register_scalar(elbo_kernels *k);
void elbo_losses_register_avx2(elbo_kernels *k);
void elbo_losses_register_avx512(elbo_kernels *k);
void elbo_losses_register_neon(elbo_kernels *k);
/* The affine coupling kernels of each ISA (coupling_<isa>.c): scalar, called by the scalar elementwise register
 * function (so every table starts with them), AVX2 + FMA (also the AVX-512 table's) and NEON. */
void elbo_coupling_register_scalar(elbo_kernels *k);
void elbo_coupling_register_avx2(elbo_kernels *k);
void elbo_coupling_register_neon(elbo_kernels *k);

#endif
