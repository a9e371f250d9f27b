/* The bf16 GEMM's tile for a narrow C under a transposed fp32 A (a weight gradient dY^T X of a layer with few
 * inputs, N = 20 in the VAE): C's rows on the vector lanes, as gemm_lanes_avx512.c for fp32. Each pair step loads 16
 * consecutive elements of two of A's stored rows (16 rows of C, depths 2q and 2q + 1), rounds them to bf16 and
 * interleaves them into 16 pair words (VCVTNE2PS2BF16, VPERMW: the words the pair packing would write), then runs
 * one VDPBF16PS per column of C with B's pair word broadcast: every lane useful (the 16 + 8-column tiles run 20 of
 * 24 at N = 20) and no packing of A, which at N = 20 took most of the packed route's time. Each element is the chain
 * of pair steps the other tiles compute (B's pair the instruction's first source, A's the second), from zero, with
 * their alpha and beta: the same bits. */
#include "bf16_pairs_avx512.h"
#include "kernels.h"
#include "lanes_finish_avx512.h"

#include <immintrin.h>

#define MIN_N (ELBO_LANES + 1)
#define MAX_N 24

/* acc[j] (j < n) += one pair step: A's stored rows at r and r + a_rs (none when !has_hi: a zero high half), lanes
 * `row_mask` (all 16 when full: plain loads, no mask register in the loop), with B's pair words bq[j]. */
static inline __attribute__((always_inline)) void bf16_lanes_step(const int n, const float *r, size_t a_rs,
                                                                  const uint32_t *bq, __mmask16 row_mask,
                                                                  const int full, const int has_hi, __m512 *acc)
{
    const __m512 lo = full ? _mm512_loadu_ps(r) : _mm512_maskz_loadu_ps(row_mask, r);
    const __m512 hi = !has_hi ? _mm512_setzero_ps()
                      : full  ? _mm512_loadu_ps(r + a_rs)
                              : _mm512_maskz_loadu_ps(row_mask, r + a_rs);
    const __m512i pairs = elbo_bf16_pair_words(lo, hi);
#pragma GCC unroll 32
    for (int j = 0; j < n; j++)
        acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_set1_epi32((int)bq[j]), (__m512bh)pairs);
}

/* acc[j] (j < n) += the pair steps of depth [0, kc) of A's stored rows with B's pair words b[q * n + j]; an odd kc's
 * last pair has a zero high half, as packing gives it. */
static inline __attribute__((always_inline)) void bf16_lanes_steps(const int n, size_t kc, const float *a, size_t a_rs,
                                                                   const uint32_t *b, __mmask16 row_mask,
                                                                   const int full, __m512 *acc)
{
    size_t q = 0;
    for (; 2 * q + 1 < kc; q++)
        bf16_lanes_step(n, a + 2 * q * a_rs, a_rs, b + q * (size_t)n, row_mask, full, 1, acc);
    if (kc % 2)
        bf16_lanes_step(n, a + 2 * q * a_rs, a_rs, b + q * (size_t)n, row_mask, full, 0, acc);
}

/* C (rows x n, rows <= 16, row stride ldc) = alpha * the pair products over depth [0, kc) of A's stored rows (step p
 * at a + p * a_rs, the tile's rows contiguous there) and B's pair words (b[q * n + j]) + beta * C; n (17..24) is a
 * constant in each instance. */
static inline __attribute__((always_inline)) void bf16_lanes_body(const int n, size_t kc, const float *a, size_t a_rs,
                                                                  const uint32_t *b, float *c, size_t ldc, size_t rows,
                                                                  float alpha, float beta)
{
    __m512 acc[MAX_N + 3];
#pragma GCC unroll 32
    for (int j = 0; j < MAX_N + 3; j++)
        acc[j] = _mm512_setzero_ps();
    if (rows == ELBO_LANES)
        bf16_lanes_steps(n, kc, a, a_rs, b, 0xffff, 1, acc);
    else
        bf16_lanes_steps(n, kc, a, a_rs, b, (__mmask16)((1u << rows) - 1), 0, acc);
    elbo_lanes_store(n, acc, c, ldc, rows, alpha, beta);
}

/* Rows [0, m) of C in tiles of 16 (the last one masked), one call for all of them. */
#define BF16_LANES_N(N)                                                                                             \
    static void bf16_lanes_##N(size_t kc, const float *a, size_t a_rs, const uint32_t *b, float *c, size_t ldc,     \
                               size_t m, float alpha, float beta)                                                   \
    {                                                                                                               \
        for (size_t i0 = 0; i0 < m; i0 += ELBO_LANES)                                                               \
            bf16_lanes_body(N, kc, a + i0, a_rs, b, c + i0 * ldc, ldc, m - i0 < ELBO_LANES ? m - i0 : ELBO_LANES,   \
                            alpha, beta);                                                                           \
    }
BF16_LANES_N(17) BF16_LANES_N(18) BF16_LANES_N(19) BF16_LANES_N(20)
BF16_LANES_N(21) BF16_LANES_N(22) BF16_LANES_N(23) BF16_LANES_N(24)

typedef void (*bf16_lanes_fn)(size_t, const float *, size_t, const uint32_t *, float *, size_t, size_t, float, float);
static const bf16_lanes_fn bf16_lanes_by_n[MAX_N - MIN_N + 1] = {bf16_lanes_17, bf16_lanes_18, bf16_lanes_19,
                                                                 bf16_lanes_20, bf16_lanes_21, bf16_lanes_22,
                                                                 bf16_lanes_23, bf16_lanes_24};

/* elbo_gemm_bf16_lanes_fn of the AVX512_BF16 table. */
static void bf16_gemm_lanes_16xn__avx512bf16(size_t kc, const float *a, size_t a_rs, const uint32_t *b, float *c,
                                             size_t ldc, size_t m, size_t n, float alpha, float beta)
{
    bf16_lanes_by_n[n - MIN_N](kc, a, a_rs, b, c, ldc, m, alpha, beta);
}

void elbo_gemm_bf16_lanes_register_avx512bf16(elbo_kernels *k)
{
    k->gemm_bf16_lanes = bf16_gemm_lanes_16xn__avx512bf16;
    k->bf16_lanes_min_n = MIN_N;
    k->bf16_lanes_max_n = MAX_N;
}
