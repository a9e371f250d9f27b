/* bf16 vs fp32 training of the default VAE (784-400-20, batch 128, Adam) in one process on thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID), A and B interleaved step by step: the whole trainer step, and the GEMM phase alone (the
 * step's linear-layer GEMMs at its shapes: 4 forwards, 3 data gradients, 4 weight gradients), each in both precisions.
 * Build and run from the repository root (after make):
 *   cc -O2 -fopenmp -Isrc/kernels -Isrc/blocks -Isrc/model -Isrc/data -Isrc/runtime \
 *      results/bf16-step-ab-amd-epyc-20261206/step_ab.c build/libelbo.a -lsleef -lz -lcjson -lhwloc -lm -pthread -o /tmp/step_ab && /tmp/step_ab */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "linear.h"
#include "rng.h"
#include "train.h"
#include "vae.h"

#define STEPS 400
#define B 128

/* Thread CPU seconds. */
static double tcpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    elbo_vae vae;
    elbo_trainer tr;
    elbo_model mm;
    size_t pos;
} run;

/* A VAE (seed 1) and its one-thread trainer on kernels k. */
static void run_init(run *r, const elbo_kernels *k, size_t n_train)
{
    char err[256];
    elbo_vae_config cfg = elbo_vae_config_default(784);
    if (elbo_vae_init(&r->vae, &cfg, k, err, sizeof err))
        exit(1);
    elbo_params_init(r->vae.params, &r->vae.layout, 1);
    elbo_vae_pack_weights(&r->vae);
    r->mm = elbo_vae_model(&r->vae);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&r->tr, &r->mm, &oc, B, 1, n_train, 1, NULL, err, sizeof err))
        exit(1);
    elbo_rng_permutation(r->tr.perm, n_train, 1, 0);
    r->pos = 0;
}

/* One step; its thread CPU seconds. */
static double run_step(run *r, const elbo_images_view *v)
{
    if (r->pos + B > v->n)
        r->pos = 0;
    double t0 = tcpu();
    elbo_trainer_step(&r->tr, v, r->tr.perm + r->pos, B);
    r->pos += B;
    return tcpu() - t0;
}

/* The step's GEMMs on r's layers and buffers of the right shapes; thread CPU seconds. */
static double gemm_phase(run *r, elbo_gemm_workspace *ws, float *x, float *y, float *dy, float *dx)
{
    elbo_linear *L = r->vae.layer;
    double t0 = tcpu();
    for (size_t i = 0; i < 4; i++)
        elbo_linear_forward(&L[i], ws, y, elbo_operand_f32(x, L[i].in, ELBO_NOTRANS), B, r->vae.params);
    for (size_t i = 1; i < 4; i++)
        elbo_linear_data_grad(&L[i], ws, dx, dy, x, ELBO_ACT_RELU, B);
    for (size_t i = 0; i < 4; i++)
        elbo_linear_param_grads(&L[i], ws, r->vae.grads, dy, elbo_operand_f32(x, L[i].in, ELBO_NOTRANS), B, 0,
                                L[i].out);
    return tcpu() - t0;
}

int main(void)
{
    const elbo_kernels *k32 = elbo_kernels_select(), *k16 = elbo_kernels_with_precision(k32, ELBO_PRECISION_BF16);
    if (!k16) {
        fprintf(stderr, "no bf16 GEMM: %s\n", elbo_gemm_bf16_missing(k32));
        return 2;
    }
    elbo_dataset ds;
    char err[256];
    if (elbo_dataset_load(&ds, NULL, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    elbo_images_view v = {ds.train.pixels, ds.train.n, ds.train.dim, ds.train.labels};
    run a, b;
    run_init(&a, k32, v.n);
    run_init(&b, k16, v.n);
    elbo_gemm_workspace wa, wb;
    elbo_gemm_workspace_init(&wa, k32);
    elbo_gemm_workspace_init(&wb, k16);
    float *x = calloc(B * 800, 4), *y = calloc(B * 800, 4), *dy = calloc(B * 800, 4), *dx = calloc(B * 800, 4);
    for (size_t i = 0; i < B * 800; i++) {
        x[i] = (float)((i * 7919) % 1000) / 1000.0f;
        dy[i] = (float)((i * 104729) % 2001) / 1000.0f - 1.0f;
    }
    for (int w = 0; w < 20; w++) { /* warm-up */
        run_step(&a, &v);
        run_step(&b, &v);
    }
    double sa = 0, sb = 0, ga = 0, gb = 0;
    for (int s = 0; s < STEPS; s++) {
        if (s & 1) {
            sb += run_step(&b, &v);
            sa += run_step(&a, &v);
            gb += gemm_phase(&b, &wb, x, y, dy, dx);
            ga += gemm_phase(&a, &wa, x, y, dy, dx);
        } else {
            sa += run_step(&a, &v);
            sb += run_step(&b, &v);
            ga += gemm_phase(&a, &wa, x, y, dy, dx);
            gb += gemm_phase(&b, &wb, x, y, dy, dx);
        }
    }
    printf("VAE 784-400-20 batch %d, 1 thread, %s kernels, %d steps each, interleaved, thread CPU time:\n", B,
           k32->isa, STEPS);
    printf("  step:       fp32 %.3f ms  bf16 %.3f ms  speedup %.2fx  (%.0f vs %.0f samples per CPU second)\n",
           1e3 * sa / STEPS, 1e3 * sb / STEPS, sa / sb, B * STEPS / sa, B * STEPS / sb);
    printf("  GEMM phase: fp32 %.3f ms  bf16 %.3f ms  speedup %.2fx\n", 1e3 * ga / STEPS, 1e3 * gb / STEPS, ga / gb);
    printf("  rest of the step (step - GEMM phase): fp32 %.3f ms  bf16 %.3f ms\n", 1e3 * (sa - ga) / STEPS,
           1e3 * (sb - gb) / STEPS);
    return 0;
}
