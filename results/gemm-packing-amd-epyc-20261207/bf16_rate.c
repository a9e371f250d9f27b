/* bf16_rate M N K TA TB A_F32 B_WEIGHT [ROUNDS]: the bf16 GEMM of the library this is linked against (B in bf16,
 * packed once when B_WEIGHT; A fp32, rounded while packed, when A_F32, else bf16), alternating with the bf16 peak
 * probe in one process: the best rate, its % of the best probe, and the median of per-round % of the probe. */
#include "bf16.h"
#include "bf16_peak.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: bf16_rate M N K TA TB A_F32 B_WEIGHT [ROUNDS]\n");
        return 2;
    }
    size_t M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    int ta = atoi(argv[4]), tb = atoi(argv[5]), af = atoi(argv[6]), bw = atoi(argv[7]);
    int R = argc > 8 ? atoi(argv[8]) : 21;
    R = R < 1 ? 1 : R > 400 ? 400 : R;
    const elbo_kernels *k = elbo_kernels_with_precision(elbo_kernels_select(), ELBO_PRECISION_BF16);
    elbo_gemm_bf16_workspace ws;
    elbo_gemm_bf16_workspace_init(&ws, k);
    float *a = aligned_alloc(64, M * K * 4), *c = aligned_alloc(64, M * N * 4);
    elbo_bf16 *ah = aligned_alloc(64, M * K * 2 + 64), *bh = aligned_alloc(64, K * N * 2 + 64);
    for (size_t i = 0; i < M * K; i++) {
        a[i] = (i % 13) * 0.01f;
        ah[i] = elbo_bf16_from_f32(a[i]);
    }
    for (size_t i = 0; i < K * N; i++)
        bh[i] = elbo_bf16_from_f32((i % 7) * 0.01f);
    size_t lda = ta ? M : K, ldb = tb ? K : N;
    elbo_operand A = af ? elbo_operand_f32(a, lda, ta) : elbo_operand_bf16(ah, lda, ta);
    elbo_operand B = elbo_operand_bf16(bh, ldb, tb);
    elbo_packed_b_bf16 pb;
    if (bw) {
        elbo_packed_b_bf16_alloc(&pb, k, K, N);
        elbo_pack_b_bf16(&pb, B);
    }
    double fl = 2.0 * M * N * K;
    int inner = (int)(0.03 / (fl / 200e9)) + 1;
    double e[400], r[400], bp = 0, be = 0;
    for (int i = 0; i < R; i++) {
        double t0 = bench_seconds(), f = 0;
        while (bench_seconds() - t0 < 0.01)
            f += bf16_peak_avx512_run(1 << 14);
        double p = f / (bench_seconds() - t0) * 1e-9;
        t0 = bench_seconds();
        for (int j = 0; j < inner; j++) {
            if (bw)
                elbo_gemm_bf16_packed(k, &ws, M, N, K, 1.0f, A, &pb, 0.0f, c, N, NULL);
            else
                elbo_gemm_bf16(k, &ws, M, N, K, 1.0f, A, B, 0.0f, c, N, NULL);
        }
        e[i] = fl * inner / (bench_seconds() - t0) * 1e-9;
        r[i] = e[i] / p;
        bp = p > bp ? p : bp, be = e[i] > be ? e[i] : be;
    }
    qsort(r, R, 8, bench_cmp_double);
    qsort(e, R, 8, bench_cmp_double);
    printf("%zux%zux%zu: best %.1f (%.1f%% of best peak %.1f) median %.1f, median ratio to peak %.1f%%\n", M, N, K,
           be, 100 * be / bp, bp, e[R / 2], 100 * r[R / 2]);
    return 0;
}
