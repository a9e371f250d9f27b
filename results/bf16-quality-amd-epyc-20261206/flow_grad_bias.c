/* The bf16 flow's gradient error against fp32's at one checkpoint, per tensor: for each precision policy (which of
 * each coupling's layers run fp32: f = first, h = hidden, o = output and scale; the rest bf16), the gradients of
 * 8 fixed training batches (128 images, fixed dequantization noise) in fp32 and under the policy, and per tensor
 *   rel      = ||g_policy - g_fp32|| / ||g_fp32|| over the 8 batches,
 *   batch    = the same norm between consecutive batches' fp32 gradients (the minibatch noise, for scale),
 *   system.  = ||mean over batches of the error|| * sqrt(8) / ||error||: 1 when the error is the same every batch
 *              (a bias that Adam follows), about 1/sqrt(8) = 0.35 when it is independent from batch to batch.
 * Build from the top level after make:
 *   cc -O2 -fopenmp -Isrc/kernels -Isrc/blocks -Isrc/data -Isrc/model -Isrc/runtime \
 *      results/bf16-quality-amd-epyc-20261206/flow_grad_bias.c build/libelbo.a -lsleef -lz -lcjson -lhwloc -lm \
 *      -o /tmp/flow_grad_bias
 * Run: /tmp/flow_grad_bias CHECKPOINT POLICY... (a POLICY of "" is every layer in bf16). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "flow.h"
#include "kernels.h"

enum { BATCHES = 8, ROWS = 128 };

/* Re-initializes every net layer of m in fp32 or bf16 as policy says (activation, data gradient and streaming as
 * elbo_flow_init sets them) and repacks its weights. */
static int apply_policy(elbo_flow *m, const char *policy)
{
    const elbo_kernels *fp32 = elbo_kernels_with_precision(m->kern, ELBO_PRECISION_FP32);
    size_t per = m->cfg.n_hidden + 2;
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        size_t j = i % per;
        int is_scale = j == per - 1, hidden = j < m->cfg.n_hidden;
        char group = j == 0 ? 'f' : hidden ? 'h' : 'o';
        const elbo_linear_layout *ly = &m->layout.layer[i];
        elbo_linear_free(&m->layer[i]);
        if (elbo_linear_init(&m->layer[i], strchr(policy, group) ? fp32 : m->kern, ly->in, ly->out, ly->w_off,
                             ly->b_off, hidden ? ELBO_ACT_RELU : ELBO_ACT_NONE, m->params, !is_scale && i != 0))
            return -1;
        m->layer[i].stream_packs = !is_scale;
    }
    elbo_flow_pack_weights(m);
    return 0;
}

/* The gradients (BATCHES, layout.total) of the fixed batches of ds under a policy (NULL: the fp32 model). */
static float *batch_grads(const char *path, const char *policy, const elbo_dataset *ds, const float *noise,
                          elbo_flow *m)
{
    char err[256];
    const elbo_kernels *k = elbo_kernels_select();
    if (policy)
        k = elbo_kernels_with_precision(k, ELBO_PRECISION_BF16);
    elbo_flow_activations a;
    if (elbo_flow_load(path, m, k, NULL, err, sizeof err) || (policy && apply_policy(m, policy)) ||
        elbo_flow_activations_init(&a, m, ROWS)) {
        fprintf(stderr, "flow_grad_bias: %s: %s\n", path, err);
        exit(1);
    }
    size_t total = m->layout.total, d = m->cfg.input_dim;
    float *g = malloc(BATCHES * total * sizeof *g);
    for (size_t j = 0; j < BATCHES; j++) {
        elbo_flow_grads(m, &a, ds->train.pixels + (j * 997 % 400) * ROWS * d, noise + j * ROWS * d, ROWS);
        memcpy(g + j * total, m->grads, total * sizeof *g);
    }
    elbo_flow_activations_free(&a);
    return g;
}

/* Prints rel, batch and system. (above) of tensor v between the fp32 gradients ref and the policy's g. */
static void report(const elbo_tensor_view *v, const float *ref, const float *g, size_t total)
{
    size_t n = v->rows * (v->cols ? v->cols : 1);
    double err = 0, norm = 0, batch = 0, mean_err = 0;
    for (size_t i = 0; i < n; i++) {
        double e_sum = 0;
        for (size_t j = 0; j < BATCHES; j++) {
            double x = ref[j * total + v->offset + i], e = g[j * total + v->offset + i] - x;
            err += e * e;
            norm += x * x;
            e_sum += e;
            if (j + 1 < BATCHES) {
                double y = ref[(j + 1) * total + v->offset + i];
                batch += (x - y) * (x - y);
            }
        }
        mean_err += (e_sum / BATCHES) * (e_sum / BATCHES);
    }
    printf("  %-26s rel %.2e  batch %.2e  system. %.2f\n", v->name, sqrt(err / norm),
           sqrt(batch / norm * BATCHES / (BATCHES - 1)), sqrt(mean_err * BATCHES / err));
}

int main(int argc, char **argv)
{
    char err[256];
    elbo_dataset ds;
    if (argc < 3 || elbo_dataset_load(&ds, NULL, err, sizeof err)) {
        fprintf(stderr, "usage: flow_grad_bias CHECKPOINT POLICY... (Fashion-MNIST installed)\n");
        return 2;
    }
    size_t d = ds.train.dim;
    float *noise = malloc(BATCHES * ROWS * d * sizeof *noise);
    srand(7);
    for (size_t i = 0; i < BATCHES * ROWS * d; i++)
        noise[i] = (float)(rand() / (RAND_MAX + 1.0));
    elbo_flow m32;
    float *ref = batch_grads(argv[1], NULL, &ds, noise, &m32);
    for (int p = 2; p < argc; p++) {
        elbo_flow m;
        float *g = batch_grads(argv[1], argv[p], &ds, noise, &m);
        printf("fp32 layers '%s' (f first, h hidden, o output and scale; the rest bf16):\n", argv[p]);
        for (size_t t = 0; t < m.layout.n_tensors; t++) {
            const char *name = m.layout.tensor[t].name;
            if ((strstr(name, "couplings.0.") || strstr(name, "couplings.7.")) && !strstr(name, ".bias"))
                report(&m.layout.tensor[t], ref, g, m32.layout.total);
        }
        free(g);
        elbo_flow_free(&m);
    }
    free(ref);
    free(noise);
    elbo_flow_free(&m32);
    elbo_dataset_free(&ds);
    return 0;
}
