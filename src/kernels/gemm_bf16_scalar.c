/* The scalar bf16 GEMM: a 4 x 16 tile of VDPBF16PS lanes emulated one by one (elbo_bf16_dot2_emulate), finished as
 * the AVX-512 table finishes its tiles (alpha * acc, + C when beta is 1, else an FMA with beta * C; then the
 * scalar table's epilogue): it gives the AVX-512 bf16 path's bits on the products, alpha, beta, the bias, ReLU
 * and its mask (the transcendental activations are each table's own, as in fp32). The reference of the bf16
 * paths, and the bf16 GEMM of CPUs without a bf16 instruction when chosen explicitly (ELBO_ISA=scalar). */
#include "kernels.h"

#include <assert.h>
#include <math.h>

#define MR 4
#define NR 16

/* elbo_gemm_bf16_ukernel_fn: C (mr x nr of 4 x 16) from kp pair steps. The instruction's first source is the B
 * pair, its second the A pair (as the AVX-512 kernel issues it; only NaN payloads could tell). */
static void bf16_gemm_ukernel_4x16__scalar(size_t kp, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                                           size_t mr, size_t nr, float alpha, float beta,
                                           const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    uint32_t acc[MR][NR] = {{0}};
    for (size_t q = 0; q < kp; q++)
        for (size_t i = 0; i < mr; i++)
            for (size_t j = 0; j < nr; j++)
                acc[i][j] = elbo_bf16_dot2_emulate(acc[i][j], b[q * NR + j], a[q * MR + i]);
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            float *cij = c + i * ldc + j, v = elbo_f32_from_bits(acc[i][j]);
            if (alpha != 1.0f)
                v = alpha * v;
            if (beta == 1.0f)
                v = v + *cij;
            else if (beta != 0.0f)
                v = fmaf(beta, *cij, v);
            *cij = elbo_scalar_epilogue(v, i, j, epi);
        }
}

void elbo_bf16_register_scalar(elbo_kernels *k)
{
    k->f32_to_bf16 = elbo_f32_to_bf16_scalar;
    k->gemm_bf16_ukernel = bf16_gemm_ukernel_4x16__scalar;
    k->gemm_bf16_ukernel_name = "bf16_gemm_ukernel_4x16__scalar";
    k->bf16_missing = NULL;
    k->bf16_mr = MR;
    k->bf16_nr = NR;
    k->pack_bf16 = elbo_pack_bf16_panel;
}
