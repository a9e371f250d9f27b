/* The AVX-512 tile for a narrow C under a transposed A (a weight gradient dY^T X of a layer with few inputs): C's
 * rows on the vector lanes. Each depth step loads 16 consecutive elements of A's stored row (16 rows of C) and
 * broadcasts each of B's n (17..24) elements of that step into its own accumulator, so every lane does useful work
 * (the tiles over C's own width run 20 of 24 lanes at n = 20; C^T's 12-row tiles split its 20 rows in two and the
 * transpose back costs 15 % at K = 32); the accumulators, columns of the tile, are transposed in registers into C's
 * rows. Each element is the FMA chain the other tiles compute (a b = b a exactly), started from zero and finished
 * with the same alpha and beta: the same bits. */
#include "kernels.h"
#include "finish_avx512.h"
#include "transpose_avx512.h"

#include <immintrin.h>

#define LANES 16
/* The widths served: past one zmm of columns, up to 24 accumulators (the 16 x 16 transpose's temporaries then fit
 * beside them). Narrower C measured better through C^T (m = 400, K = 32: n = 8 0.95x, n = 12 0.87x with this tile
 * storing in 4-column groups). */
#define MIN_N (LANES + 1)
#define MAX_N 24

/* Interleaves four columns r[0..3] of the tile (lanes = rows) so that 128-bit lane l of u[q] holds row 4 l + q of
 * them: the first two steps of transpose_16x16. */
static inline __attribute__((always_inline)) void interleave_4(const __m512 r[4], __m512 u[4])
{
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r[0], r[1]));
    const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r[0], r[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r[2], r[3]));
    const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r[2], r[3]));
    u[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
}

/* Finishes and stores columns [j0, j0 + w) (w <= 4) of the tile's `rows` rows from the four columns acc[0..3]
 * (zero past w): each row's w elements sit in one 128-bit lane, stored with a mask at an address shifted back
 * by the lane's offset. */
static inline __attribute__((always_inline)) void store_column_group(float *c, size_t ldc, size_t rows, size_t j0,
                                                                     int w, const __m512 acc[4], float alpha,
                                                                     float beta)
{
    __m512 u[4];
    interleave_4(acc, u);
    const unsigned cols = (1u << w) - 1;
#pragma GCC unroll 16
    for (size_t i = 0; i < rows; i++) {
        const size_t l = i / 4, q = i % 4;
        const __mmask16 m = (__mmask16)(cols << (4 * l));
        float *cr = c + i * ldc + j0 - 4 * l;
        _mm512_mask_storeu_ps(cr, m, elbo_avx512_alpha_beta(u[q], cr, m, alpha, beta));
    }
}

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
    /* Columns past the first 16 first (in groups of 4), so that their accumulators are free before the 16 x 16
     * transpose needs registers; then the first 16 columns, row i of C in r[i]. */
#pragma GCC unroll 8
    for (int j0 = LANES; j0 < n; j0 += 4)
        store_column_group(c, ldc, rows, (size_t)j0, n - j0 < 4 ? n - j0 : 4, acc + j0, alpha, beta);
    __m512 r[LANES];
#pragma GCC unroll 16
    for (int j = 0; j < LANES; j++)
        r[j] = acc[j];
    transpose_16x16(r);
    for (size_t i = 0; i < rows; i++) {
        float *cr = c + i * ldc;
        _mm512_storeu_ps(cr, elbo_avx512_alpha_beta(r[i], cr, 0xffff, alpha, beta));
    }
}

#define LANES_N(N)                                                                                                  \
    static void lanes_##N(size_t kc, const float *a, size_t a_rs, const float *b, size_t b_rs, size_t b_cs,         \
                          float *c, size_t ldc, size_t rows, float alpha, float beta)                               \
    {                                                                                                               \
        if (b_cs == 1) /* B stored K x N: a step's elements adjacent */                                             \
            lanes_body(N, kc, a, a_rs, b, b_rs, 1, c, ldc, rows, alpha, beta);                                      \
        else                                                                                                        \
            lanes_body(N, kc, a, a_rs, b, b_rs, b_cs, c, ldc, rows, alpha, beta);                                   \
    }
LANES_N(17) LANES_N(18) LANES_N(19) LANES_N(20) LANES_N(21) LANES_N(22) LANES_N(23) LANES_N(24)

typedef void (*lanes_fn)(size_t, const float *, size_t, const float *, size_t, size_t, float *, size_t, size_t,
                         float, float);
static const lanes_fn lanes_by_n[MAX_N - MIN_N + 1] = {lanes_17, lanes_18, lanes_19, lanes_20,
                                                       lanes_21, lanes_22, lanes_23, lanes_24};

/* elbo_gemm_lanes_fn of the AVX-512 table. */
static void f32_gemm_lanes_16xn__avx512f(size_t kc, const float *a, size_t a_rs, const float *b, size_t b_rs,
                                         size_t b_cs, float *c, size_t ldc, size_t rows, size_t n, float alpha,
                                         float beta)
{
    lanes_by_n[n - MIN_N](kc, a, a_rs, b, b_rs, b_cs, c, ldc, rows, alpha, beta);
}

void elbo_gemm_lanes_register_avx512(elbo_kernels *k)
{
    k->gemm_lanes = f32_gemm_lanes_16xn__avx512f;
    k->gemm_lanes_rows = LANES;
    k->gemm_lanes_min_n = MIN_N;
    k->gemm_lanes_max_n = MAX_N;
}
