/* The AVX-512 tile for a narrow C under a transposed A (a weight gradient dY^T X of a layer with few inputs): C's
 * rows on the vector lanes. Each depth step loads 16 consecutive elements of A's stored row (16 rows of C) and
 * broadcasts each of B's n (17..24) elements of that step into its own accumulator, so every lane does useful work
 * (the tiles over C's own width run 20 of 24 lanes at n = 20; C^T's 12-row tiles split its 20 rows in two and the
 * transpose back costs 15 % at K = 32); the accumulators, columns of the tile, are transposed in registers into C's
 * rows. Each element is the FMA chain the other tiles compute (a b = b a exactly), started from zero and finished
 * with the same alpha and beta: the same bits. */
#include "kernels.h"
#include "lanes_finish_avx512.h"

#include <immintrin.h>

#define LANES ELBO_LANES
/* The widths served: past one zmm of columns, up to 24 accumulators (the 16 x 16 transpose's temporaries then fit
 * beside them). Narrower C measured better through C^T (m = 400, K = 32: n = 8 0.95x, n = 12 0.87x with this tile
 * storing in 4-column groups). */
#define MIN_N (LANES + 1)
#define MAX_N 24

/* acc[j] (j < n) += sum over depth p < kc of A's step p (its lanes `row_mask`, all 16 when full: a plain load, no
 * mask register in the loop) times B's element (p, j). */
static inline __attribute__((always_inline)) void lanes_steps(const int n, size_t kc, const float *a, size_t a_rs,
                                                              const float *b, size_t b_rs, size_t b_cs,
                                                              __mmask16 row_mask, const int full, __m512 *acc)
{
    for (size_t p = 0; p < kc; p++) {
        const __m512 va = full ? _mm512_loadu_ps(a + p * a_rs) : _mm512_maskz_loadu_ps(row_mask, a + p * a_rs);
        const float *bp = b + p * b_rs;
#pragma GCC unroll 32
        for (int j = 0; j < n; j++)
            acc[j] = _mm512_fmadd_ps(va, _mm512_set1_ps(bp[j * b_cs]), acc[j]);
    }
}

/* C (rows x n, rows <= 16, row stride ldc) = alpha * sum over depth p < kc of A[p][i] B[p][j] + beta * C, with
 * A's depth step p at a + p * a_rs (the tile's rows contiguous there) and B's element (p, j) at b[p * b_rs + j * b_cs];
 * n (17..24) is a constant in each instance. */
static inline __attribute__((always_inline)) void lanes_body(const int n, size_t kc, const float *a, size_t a_rs,
                                                             const float *b, size_t b_rs, size_t b_cs, float *c,
                                                             size_t ldc, size_t rows, float alpha, float beta)
{
    __m512 acc[MAX_N + 3];
#pragma GCC unroll 32
    for (int j = 0; j < MAX_N + 3; j++)
        acc[j] = _mm512_setzero_ps();
    if (rows == LANES)
        lanes_steps(n, kc, a, a_rs, b, b_rs, b_cs, 0xffff, 1, acc);
    else
        lanes_steps(n, kc, a, a_rs, b, b_rs, b_cs, (__mmask16)((1u << rows) - 1), 0, acc);
    elbo_lanes_store(n, acc, c, ldc, rows, alpha, beta);
}

/* Rows [0, m) of C in tiles of 16 (the last one masked), one call for all of them. */
#define LANES_N(N)                                                                                                  \
    static void lanes_##N(size_t kc, const float *a, size_t a_rs, const float *b, size_t b_rs, size_t b_cs,         \
                          float *c, size_t ldc, size_t m, float alpha, float beta)                                  \
    {                                                                                                               \
        for (size_t i0 = 0; i0 < m; i0 += LANES) {                                                                  \
            const size_t rows = m - i0 < LANES ? m - i0 : LANES;                                                    \
            if (b_cs == 1) /* B stored K x N: a step's elements adjacent */                                         \
                lanes_body(N, kc, a + i0, a_rs, b, b_rs, 1, c + i0 * ldc, ldc, rows, alpha, beta);                  \
            else                                                                                                    \
                lanes_body(N, kc, a + i0, a_rs, b, b_rs, b_cs, c + i0 * ldc, ldc, rows, alpha, beta);               \
        }                                                                                                           \
    }
LANES_N(17) LANES_N(18) LANES_N(19) LANES_N(20) LANES_N(21) LANES_N(22) LANES_N(23) LANES_N(24)

typedef void (*lanes_fn)(size_t, const float *, size_t, const float *, size_t, size_t, float *, size_t, size_t,
                         float, float);
static const lanes_fn lanes_by_n[MAX_N - MIN_N + 1] = {lanes_17, lanes_18, lanes_19, lanes_20,
                                                       lanes_21, lanes_22, lanes_23, lanes_24};

/* elbo_gemm_lanes_fn of the AVX-512 table. */
static void f32_gemm_lanes_16xn__avx512f(size_t kc, const float *a, size_t a_rs, const float *b, size_t b_rs,
                                         size_t b_cs, float *c, size_t ldc, size_t m, size_t n, float alpha,
                                         float beta)
{
    lanes_by_n[n - MIN_N](kc, a, a_rs, b, b_rs, b_cs, c, ldc, m, alpha, beta);
}

void elbo_gemm_lanes_register_avx512(elbo_kernels *k)
{
    k->gemm_lanes = f32_gemm_lanes_16xn__avx512f;
    k->gemm_lanes_min_n = MIN_N;
    k->gemm_lanes_max_n = MAX_N;
}
