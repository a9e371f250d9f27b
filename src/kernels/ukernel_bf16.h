/* The contract between the bf16 GEMM framework (gemm_bf16.c) and its per-ISA microkernels and packers. */
#ifndef ELBO_UKERNEL_BF16_H
#define ELBO_UKERNEL_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "bf16.h"
#include "ukernel.h"

/* C tile (mr x nr valid of MR x NR, row stride ldc) = alpha * a_panel * b_panel + beta * C, then epi, with fp32
 * accumulation of bf16 pair products. Panels hold pair words (32 bits: the even depth's bf16 in the low half,
 * the odd one's in the high half): a is kp x MR (a[q*MR + i] = A(i, 2q) | A(i, 2q+1) << 16), b is kp x NR
 * (b[q*NR + j] = B(2q, j) | B(2q+1, j) << 16); padding rows, columns and an odd depth's last half are zero.
 * beta == 0 must not read C. epi is NULL on every K block but the last. */
typedef void (*elbo_gemm_bf16_ukernel_fn)(size_t kp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                                          size_t mr, size_t nr, float alpha, float beta,
                                          const elbo_tile_epilogue *epi);

/* As elbo_gemm_bf16_ukernel_fn with A's pair words read where a_rs and a_cs place them: A(i, 2q) | A(i, 2q+1) << 16
 * at a[i*a_rs + q*a_cs] (a packed panel: a_rs 1, a_cs MR; a bf16 A stored M x K with an even row stride ld, read in
 * place: a_rs ld / 2, a_cs 1). */
typedef void (*elbo_gemm_bf16_ukernel_strided_a_fn)(size_t kp, const uint32_t *a, size_t a_rs, size_t a_cs,
                                                    const uint32_t *b, float *c, size_t ldc, size_t mr, size_t nr,
                                                    float alpha, float beta, const elbo_tile_epilogue *epi);

/* Tiles with C's rows on the vector lanes, for a narrow C under a transposed fp32 A: C (m x n, row stride ldc; n in
 * [bf16_lanes_min_n, bf16_lanes_max_n] of the table) = alpha * the pair products over depth [0, kc) + beta * C, A's
 * depth step p at a + p * a_rs (C's rows contiguous there, fp32, rounded to bf16 as packing rounds it), B's pair
 * words at b[q * n + j] (a pair panel of w = n). Every element gets the bits the other bf16 tiles give it. beta == 0
 * does not read C. */
typedef void (*elbo_gemm_bf16_lanes_fn)(size_t kc, const float *a, size_t a_rs, const uint32_t *b, float *c,
                                        size_t ldc, size_t m, size_t n, float alpha, float beta);

/* Packs one pair panel of w rows: dst[q*w + i] = X(outer0 + i, depth0 + 2q) | X(outer0 + i, depth0 + 2q + 1) << 16
 * for i < rows and 2q < depth, the elements as bf16 (F32 rounded as bf16.h says, U8 as value / 255 rounded, BF16
 * as stored), zero for rows <= i < w and past depth. X(o, d) is op(A)(o, d) for A panels (depth_contiguous when
 * A is not transposed) and op(B)(d, o) for B panels (depth_contiguous when B is transposed). */
typedef void (*elbo_pack_bf16_fn)(uint32_t *dst, elbo_operand x, int depth_contiguous, size_t outer0,
                                  size_t depth0, size_t rows, size_t depth, size_t w);

/* The generic packer (every table's fallback; a table's own must give its bits). */
void elbo_pack_bf16_panel(uint32_t *dst, elbo_operand x, int depth_contiguous, size_t outer0, size_t depth0,
                          size_t rows, size_t depth, size_t w);

#endif
