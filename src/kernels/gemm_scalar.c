/* Portable scalar reference microkernel: a 4 x 8 register tile, plain C. */
#include "kernels.h"

#include <assert.h>

#define MR 4
#define NR 8

/* Applies alpha/beta and the epilogue to the MR x NR accumulator and stores its mr x nr part into C. */
static void store_tile(float acc[MR][NR], float *c, size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                       const elbo_tile_epilogue *epi)
{
    for (size_t i = 0; i < mr; i++) {
        for (size_t j = 0; j < nr; j++) {
            float v = alpha * acc[i][j];
            if (beta != 0.0f)
                v += beta * c[i * ldc + j];
            if (epi) {
                if (epi->bias)
                    v += epi->bias[j];
                if (epi->relu && v < 0.0f) /* NaN propagates, as in PyTorch */
                    v = 0.0f;
                if (epi->mask && !(epi->mask[i * epi->ld_mask + j] > 0.0f))
                    v = 0.0f;
            }
            c[i * ldc + j] = v;
        }
    }
}

/* C (mr x nr of 4 x 8) = alpha * A panel (4 x kc) * B panel (kc x 8) + beta * C, then epi. */
static void f32_gemm_ukernel_4x8__scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                         size_t mr, size_t nr, float alpha, float beta,
                                         const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    float acc[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++)
        for (size_t i = 0; i < MR; i++)
            for (size_t j = 0; j < NR; j++)
                acc[i][j] += a[p * MR + i] * b[p * NR + j];
    store_tile(acc, c, ldc, mr, nr, alpha, beta, epi);
}

/* Reference blocking: modest sizes valid for any cache hierarchy, the same on every chip (the chip configs
 * tune only the FMA tables). KC stays 256, not the FMA tables' shared depth (gemm_depth.h): this kernel has no
 * FMA, so its bits differ from theirs anyway, and they are pinned as they are (test_cli_golden hashes 784-deep
 * GEMMs, which another K blocking would sum in another order). */
#define SCALAR_MC 128  /* multiple of MR */
#define SCALAR_KC 256
#define SCALAR_NC 2048 /* multiple of NR */

void elbo_gemm_register_scalar(elbo_kernels *k)
{
    k->gemm_ukernel = f32_gemm_ukernel_4x8__scalar;
    k->gemm_ukernel_name = "f32_gemm_ukernel_4x8__scalar";
    k->pack_a = elbo_pack_a_block;
    k->pack_b = elbo_pack_b_panel;
    k->blocking = (elbo_gemm_blocking){.mr = MR, .nr = NR, .mc = SCALAR_MC, .kc = SCALAR_KC, .nc = SCALAR_NC,
                                      .prefetch_next_b = 1};
}
