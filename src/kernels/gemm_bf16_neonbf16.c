/* arm64 FEAT_BF16: the bf16 GEMM microkernel, an 8 x 12 tile in 24 float32x4 accumulators. Each depth pair step
 * loads the A pairs of 8 rows (two q registers) and the B pairs of 12 columns (three) and issues 24 BFDOT by
 * element: row i's pair is lane i % 4 of an A register, so no broadcasts are needed (the fp32 NEON tile's scheme
 * with pairs for floats). BFDOT rounds differently from x86's VDPBF16PS (without FEAT_EBF16 the two products are
 * added and rounded, then added to the accumulator and rounded, both to odd, denormals flushed): its results are
 * held to a bound, not to the emulation's bits (tests/test_kernel_gemm_bf16.c). */
#include "kernels.h"

#include <arm_neon.h>
#include <assert.h>

#define MR 8
#define NR 12

/* Row I's three accumulators += the B pairs times lane L of A register AREG. */
#define ROW(I, AREG, L)                                                                                        \
    c##I##0 = vbfdotq_laneq_f32(c##I##0, b0, AREG, L);                                                         \
    c##I##1 = vbfdotq_laneq_f32(c##I##1, b1, AREG, L);                                                         \
    c##I##2 = vbfdotq_laneq_f32(c##I##2, b2, AREG, L)

/* elbo_gemm_bf16_ukernel_fn: C (mr x nr of 8 x 12) from kp pair steps; finished by the fp32 NEON tile's code. */
static void bf16_gemm_ukernel_8x12__neonbf16(size_t kp, const uint32_t *a, const uint32_t *b, float *c,
                                             size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                                             const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
#pragma GCC unroll 4
    for (size_t q = 0; q < kp; q++) {
        const bfloat16x8_t a0 = vreinterpretq_bf16_u32(vld1q_u32(a)), a1 = vreinterpretq_bf16_u32(vld1q_u32(a + 4));
        const bfloat16x8_t b0 = vreinterpretq_bf16_u32(vld1q_u32(b)), b1 = vreinterpretq_bf16_u32(vld1q_u32(b + 4));
        const bfloat16x8_t b2 = vreinterpretq_bf16_u32(vld1q_u32(b + 8));
        ROW(0, a0, 0);
        ROW(1, a0, 1);
        ROW(2, a0, 2);
        ROW(3, a0, 3);
        ROW(4, a1, 0);
        ROW(5, a1, 1);
        ROW(6, a1, 2);
        ROW(7, a1, 3);
        a += MR;
        b += NR;
    }
    float tile[MR][NR];
#define TO_TILE(I) (vst1q_f32(tile[I], c##I##0), vst1q_f32(tile[I] + 4, c##I##1), vst1q_f32(tile[I] + 8, c##I##2))
    TO_TILE(0), TO_TILE(1), TO_TILE(2), TO_TILE(3), TO_TILE(4), TO_TILE(5), TO_TILE(6), TO_TILE(7);
#undef TO_TILE
    elbo_neon_finish_tile(c, ldc, (const float(*)[NR])tile, mr, nr, alpha, beta, epi);
}

void elbo_bf16_neon_gemm_install(elbo_kernels *k)
{
    k->gemm_bf16_ukernel = bf16_gemm_ukernel_8x12__neonbf16;
    k->gemm_bf16_ukernel_name = "bf16_gemm_ukernel_8x12__neonbf16";
    k->bf16_missing = NULL;
    k->bf16_mr = MR;
    k->bf16_nr = NR;
    k->pack_bf16 = elbo_pack_bf16_panel;
}
