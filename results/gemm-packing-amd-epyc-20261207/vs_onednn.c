/* vs_onednn M N K TA TB [ROUNDS]: elbo_gemm (fp32, the library this is linked against) and oneDNN's dnnl_sgemm on the
 * same operands, alternating in one process: per round a short FMA-peak probe, ~20 ms of each GEMM; prints the best
 * rates (and their % of the best probe) and the median of the per-round elbo/oneDNN ratios. PACK_A=0/1 forces elbo's
 * A in place / packed; LDC_PAD=n pads C's row stride. Run with OMP_NUM_THREADS=1. */
#include "fma_peak.h"
#include "kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: vs_onednn M N K TA TB [ROUNDS]\n");
        return 2;
    }
    size_t M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    int ta = atoi(argv[4]), tb = atoi(argv[5]), R = argc > 6 ? atoi(argv[6]) : 31;
    R = R < 1 ? 1 : R > 400 ? 400 : R;
    const elbo_kernels *k = elbo_kernels_select();
    elbo_gemm_workspace ws;
    elbo_gemm_workspace_init(&ws, k);
    if (getenv("PACK_A"))
        ws.pack_a = getenv("PACK_A")[0] == '0' ? ELBO_PACK_A_NEVER : ELBO_PACK_A_ALWAYS;
    size_t ldc = N + (getenv("LDC_PAD") ? atoi(getenv("LDC_PAD")) : 0);
    float *a = aligned_alloc(64, M * K * 4), *b = aligned_alloc(64, K * N * 4), *c = aligned_alloc(64, M * ldc * 4);
    for (size_t i = 0; i < M * K; i++)
        a[i] = (i % 13) * 0.01f;
    for (size_t i = 0; i < K * N; i++)
        b[i] = (i % 7) * 0.01f;
    size_t lda = ta ? M : K, ldb = tb ? K : N;
    elbo_operand A = elbo_operand_f32(a, lda, ta), B = elbo_operand_f32(b, ldb, tb);
    double fl = 2.0 * M * N * K;
    int inner = (int)(0.02 / (fl / 100e9)) + 1;
    double e[400], d[400], r[400], be = 0, bd = 0, bp = 0;
    for (int i = 0; i < R; i++) {
        double t0 = bench_seconds(), f = fma_peak_avx512_run(1000000), p = f / (bench_seconds() - t0) * 1e-9;
        t0 = bench_seconds();
        for (int j = 0; j < inner; j++)
            elbo_gemm(k, &ws, M, N, K, 1.0f, A, B, 0.0f, c, ldc, NULL);
        e[i] = fl * inner / (bench_seconds() - t0) * 1e-9;
        t0 = bench_seconds();
        for (int j = 0; j < inner; j++)
            dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
        d[i] = fl * inner / (bench_seconds() - t0) * 1e-9;
        r[i] = e[i] / d[i];
        be = e[i] > be ? e[i] : be, bd = d[i] > bd ? d[i] : bd, bp = p > bp ? p : bp;
    }
    qsort(r, R, 8, bench_cmp_double);
    qsort(e, R, 8, bench_cmp_double);
    qsort(d, R, 8, bench_cmp_double);
    printf("%zux%zux%zu %c%c: best elbo %.1f (%.1f%%) onednn %.1f (%.1f%%) peak %.1f | median elbo %.1f onednn %.1f "
           "ratio %.3f\n",
           M, N, K, ta ? 'T' : 'N', tb ? 'T' : 'N', be, 100 * be / bp, bd, 100 * bd / bp, bp, e[R / 2], d[R / 2],
           r[R / 2]);
    return 0;
}
