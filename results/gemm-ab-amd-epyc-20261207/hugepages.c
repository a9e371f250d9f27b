/* Transparent huge pages or not, on the GEMM rows still short of the peak: the same elbo_gemm on two sets of
 * buffers, one advised MADV_HUGEPAGE and one MADV_NOHUGEPAGE, alternated 21 times in one process; prints each set's
 * median GFLOP/s and the median of the per-round 2M/4K ratios [quartiles]. HPMODE=ops advises only the operands,
 * HPMODE=ws only the packing workspaces, unset both. Build and run from the repository root after `make`:
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -fopenmp -Isrc/kernels -Isrc -Ibench \
 *       results/gemm-ab-amd-epyc-20261207/hugepages.c build/libelbo.a -lsleef -lhwloc -lgomp -lm -o hugepages
 *   taskset -c 0 ./hugepages; HPMODE=ops taskset -c 0 ./hugepages; HPMODE=ws taskset -c 0 ./hugepages */
#include "kernels.h"
#include "gemm.h"
#include "bench_clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* n floats on 2 MiB boundaries, advised for huge pages or against them, filled with a fixed pattern. */
static float *alloc(size_t n, int huge)
{
    size_t bytes = (n * 4 + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    float *p = aligned_alloc(2u << 20, bytes);
    if (huge) madvise(p, bytes, MADV_HUGEPAGE);
    else madvise(p, bytes, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < n; i++) p[i] = (float)(i % 13) * 0.01f;
    return p;
}

typedef struct { size_t m, n, k; int ta; const char *name; } shape;

/* Each shape's two buffer sets timed alternately; then the kernel's AnonHugePages line. */
int main(void)
{
    const elbo_kernels *kern = elbo_kernels_select();
    shape sh[] = {{2048, 2048, 2048, 0, "square2048"}, {400, 784, 1024, 1, "enc1.wgrad b:1024"}, {784, 400, 1024, 1, "dec2.wgrad b:1024"}, {400, 784, 32, 1, "enc1.wgrad b:32"}};
    for (int s = 0; s < 4; s++) {
        size_t m = sh[s].m, n = sh[s].n, k = sh[s].k;
        float *a[2], *b[2], *c[2];
        elbo_gemm_workspace ws[2];
        for (int h = 0; h < 2; h++) {
            const char *mode = getenv("HPMODE");
            int ops = h && (!mode || strcmp(mode, "ws") != 0), wsh = h && (!mode || strcmp(mode, "ops") != 0);
            a[h] = alloc(m * k, ops); b[h] = alloc(k * n, ops); c[h] = alloc(m * n, ops);
            elbo_gemm_workspace_init(&ws[h], kern);
            free(ws[h].packed_b);
            ws[h].packed_b = alloc(ws[h].packed_b_floats, wsh);
            free(ws[h].packed_a);
            ws[h].packed_a = alloc(ws[h].packed_a_floats, wsh);
        }
        double r[2][21];
        double flops = 2.0 * m * n * k;
        int calls = (int)(3e8 / flops) + 1;
        for (int t = 0; t < 21; t++)
            for (int h = 0; h < 2; h++) {
                elbo_operand oa = elbo_operand_f32(a[h], sh[s].ta ? m : k, sh[s].ta ? ELBO_TRANS : ELBO_NOTRANS);
                double t0 = bench_seconds();
                for (int i = 0; i < calls; i++)
                    elbo_gemm(kern, &ws[h], m, n, k, 1.0f, oa, elbo_operand_f32(b[h], n, ELBO_NOTRANS), 0.0f, c[h], n, NULL);
                r[h][t] = flops * calls / (bench_seconds() - t0) * 1e-9;
            }
        double ratio[21];
        for (int t = 0; t < 21; t++) ratio[t] = r[1][t] / r[0][t];
        qsort(r[0], 21, 8, bench_cmp_double); qsort(r[1], 21, 8, bench_cmp_double); qsort(ratio, 21, 8, bench_cmp_double);
        printf("%-18s 4K %6.1f  2M %6.1f GFLOP/s (medians)  2M/4K %.3f [%.3f, %.3f]\n", sh[s].name, r[0][10], r[1][10], ratio[10], ratio[5], ratio[15]);
    }
    FILE *f = fopen("/proc/meminfo", "r"); char line[256];
    while (fgets(line, sizeof line, f)) if (!strncmp(line, "AnonHugePages", 13)) fputs(line, stdout);
    return 0;
}
