/* Portable scalar reference microkernel: a 4 x 8 register tile, plain C; the epilogue's exp and tanh from libm. */
#include "kernels.h"

#include <assert.h>
#include <math.h>

#define MR 4
#define NR 8

/* sigmoid(v) = 1 / (1 + exp(-v)) from e = exp(-|v|), without overflow: 1 / (1 + e) for v >= 0, e / (1 + e) else. */
static float sigmoid(float v)
{
    float e = expf(-fabsf(v));
    return (v >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* act(v) (gemm.h's definitions; NaN propagates). */
static float activate(float v, elbo_activation act, float slope)
{
    switch (act) {
    case ELBO_ACT_RELU:
        return v < 0.0f ? 0.0f : v; /* NaN propagates, as in PyTorch */
    case ELBO_ACT_LEAKY_RELU:
        return v > 0.0f ? v : v * slope;
    case ELBO_ACT_TANH:
        return tanhf(v);
    case ELBO_ACT_SIGMOID:
        return sigmoid(v);
    case ELBO_ACT_SILU:
        return v * sigmoid(v);
    default:
        return v;
    }
}

/* g times the derivative of `grad` at the x whose forward saved `saved` (gemm.h's definitions). */
static float times_derivative(float g, float saved, elbo_activation grad, float slope)
{
    switch (grad) {
    case ELBO_ACT_RELU:
        return saved > 0.0f ? g : 0.0f;
    case ELBO_ACT_LEAKY_RELU:
        return saved > 0.0f ? g : g * slope;
    case ELBO_ACT_TANH:
        return g * (1.0f - saved * saved);
    case ELBO_ACT_SIGMOID:
        return g * (1.0f - saved) * saved;
    case ELBO_ACT_SILU: {
        float s = sigmoid(saved);
        return g * s * (1.0f + saved * (1.0f - s));
    }
    default:
        return g;
    }
}

/* C element (i, j) of a tile from its accumulator: alpha, beta * C, then the epilogue (the one place the scalar
 * table finishes an element). */
static float finish(float acc, const float *c, size_t ldc, size_t i, size_t j, float alpha, float beta,
                    const elbo_tile_epilogue *epi)
{
    float v = alpha * acc;
    if (beta != 0.0f)
        v += beta * c[i * ldc + j];
    return elbo_scalar_epilogue(v, i, j, epi);
}

float elbo_scalar_epilogue(float v, size_t i, size_t j, const elbo_tile_epilogue *epi)
{
    if (!epi)
        return v;
    if (epi->bias)
        v += epi->bias[j];
    if (epi->preact)
        epi->preact[i * epi->ld_preact + j] = v;
    v = activate(v, epi->act, epi->slope);
    if (epi->grad)
        v = times_derivative(v, epi->saved[i * epi->ld_saved + j], epi->grad, epi->slope);
    return v;
}

/* Applies alpha/beta and the epilogue to the MR x NR accumulator and stores its mr x nr part into C. */
static void store_tile(float acc[MR][NR], float *c, size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                       const elbo_tile_epilogue *epi)
{
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++)
            c[i * ldc + j] = finish(acc[i][j], c, ldc, i, j, alpha, beta, epi);
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
