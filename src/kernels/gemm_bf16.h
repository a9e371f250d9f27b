/* bf16 GEMM: C (fp32) = alpha * op(A) * op(B) + beta * C with A and B rounded to bf16 and the products accumulated
 * in fp32, row-major, with the fp32 GEMM's fused epilogues (gemm.h) and a prepackable B.
 *
 * Operands are BF16 (elbo_operand_bf16: used as stored), F32 (rounded to bf16 while packed, bf16.h's rules) or U8
 * (value / 255, rounded): every operand is packed into pair panels, so a caller may keep an fp32 tensor and pay
 * the rounding inside the packing pass it needs anyway (a gradient fresh from an epilogue), or keep a bf16 copy
 * (weights, refreshed by the optimizer's pass) and halve the bytes packed.
 *
 * Each C element is a chain of pair steps acc += x[1] y[1] + x[0] y[0] (VDPBF16PS's order and rounding on x86,
 * each pair two FMAs; the scalar table emulates it bit for bit) over each K block, the blocks added into C as in
 * the fp32 GEMM. K blocks have the fp32 FMA tables' depths (gemm_depth.h: one block up to 800, else near-equal
 * blocks of at most 400), rounded up to even so that pairs never straddle two blocks; an odd K's last pair has
 * a zero second half. The bits depend on K alone, not on M, N, the tiling or a column split. */
#ifndef ELBO_GEMM_BF16_H
#define ELBO_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "bf16.h"
#include "gemm.h"

struct elbo_kernels;

/* Per-thread scratch for packed pair panels of A and B. */
typedef struct elbo_gemm_bf16_workspace {
    uint32_t *packed_a;
    uint32_t *packed_b;
    size_t packed_a_words, packed_b_words;
} elbo_gemm_bf16_workspace;

/* A B operand (K x N after op) packed once into the bf16 microkernel's pair panels, for reuse. */
typedef struct {
    const struct elbo_kernels *kernels;
    size_t k, n;
    uint32_t *data; /* elbo_packed_b_bf16_words(k, n) words, 64-byte aligned */
} elbo_packed_b_bf16;

/* A bf16 matrix operand with leading dimension ld. */
elbo_operand elbo_operand_bf16(const elbo_bf16 *data, size_t ld, elbo_trans trans);

/* NULL when kern runs the bf16 GEMM on this CPU, else the CPU feature it lacks, e.g. "avx512_bf16". */
const char *elbo_gemm_bf16_missing(const struct elbo_kernels *kern);

/* Allocates the workspace kern's bf16 blocking needs (kern must run the bf16 GEMM); 0 or -1 on out-of-memory. */
int elbo_gemm_bf16_workspace_init(elbo_gemm_bf16_workspace *ws, const struct elbo_kernels *kern);
/* Releases a workspace (safe on a zeroed struct). */
void elbo_gemm_bf16_workspace_free(elbo_gemm_bf16_workspace *ws);

/* C (M x N, row stride ldc) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, then epi (may be NULL), in bf16
 * (the header comment). beta == 0 never reads C. Any M, N, K >= 0. */
void elbo_gemm_bf16(const struct elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n, size_t k,
                    float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                    const elbo_epilogue *epi);

/* 1 when a product of depth k is one K block of kern's bf16 GEMM: what an epilogue's out_bf16 needs. */
int elbo_gemm_bf16_one_block(const struct elbo_kernels *kern, size_t k);

/* Number of 32-bit words a packed B of op(B) shape (K x N) needs under kern's bf16 blocking. */
size_t elbo_packed_b_bf16_words(const struct elbo_kernels *kern, size_t k, size_t n);
/* Allocates storage for a packed (K x N) B; 0 or -1 on out-of-memory. */
int elbo_packed_b_bf16_alloc(elbo_packed_b_bf16 *pb, const struct elbo_kernels *kern, size_t k, size_t n);
/* Frees storage from elbo_packed_b_bf16_alloc. */
void elbo_packed_b_bf16_free(elbo_packed_b_bf16 *pb);
/* Packs op(B) (K x N) into pb; call again when B changes. */
void elbo_pack_b_bf16(elbo_packed_b_bf16 *pb, elbo_operand b);
/* Part `part` of `nparts` of elbo_pack_b_bf16 (a block of whole NR-column panels), so threads can share it. */
void elbo_pack_b_bf16_part(elbo_packed_b_bf16 *pb, elbo_operand b, size_t part, size_t nparts);
/* Packs the region depth [k0, k1) x columns [j0, j1) of op(B) into pb, as elbo_pack_b_bf16 would (k0 and k1 even
 * or K, j0 a multiple of the bf16 NR, j1 one too or N): disjoint regions can be packed by different threads in any
 * order (the trainer repacks a weight's rows right after the optimizer updated them). */
void elbo_pack_b_bf16_region(elbo_packed_b_bf16 *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1);
/* As elbo_gemm_bf16 with a B packed by elbo_pack_b_bf16 (its kernels must be kern). */
void elbo_gemm_bf16_packed(const struct elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n,
                           size_t k, float alpha, elbo_operand a, const elbo_packed_b_bf16 *b, float beta, float *c,
                           size_t ldc, const elbo_epilogue *epi);
/* As elbo_gemm_bf16_packed for columns [j0, j1) of C only (j0 a multiple of the bf16 NR; c, ldc and epi still
 * address the whole M x N C): every element gets the bits of the whole call, so threads can split C by columns. */
void elbo_gemm_bf16_packed_cols(const struct elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t j0,
                                size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b_bf16 *b,
                                float beta, float *c, size_t ldc, const elbo_epilogue *epi);

#endif
