/* Samples of a flow checkpoint: the exact inverse of its couplings at z ~ N(0, T^2 I) (T the sampler's temperature, 1
 * when unset), then the inverse logit; its image shape from the checkpoint. */
#include <stdio.h>
#include <stdlib.h>

#include "cli_sampler.h"
#include "flow.h"

/* The flow and its activations for CLI_MODEL_BATCH rows. */
typedef struct {
    elbo_flow flow;
    elbo_flow_activations act;
} flow_sampler;

/* Opens a flow checkpoint with activations for CLI_MODEL_BATCH rows; returns the command's status. */
static int flow_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                     const elbo_kernels *k)
{
    (void)data;
    (void)with_data;
    char err[512];
    flow_sampler *f = calloc(1, sizeof *f);
    if (!f) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->impl = f;
    if (elbo_flow_load(load, &f->flow, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    if (elbo_flow_activations_init(&f->act, &f->flow, CLI_MODEL_BATCH)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->dim = f->flow.cfg.input_dim;
    s->rows = f->flow.cfg.image_rows;
    s->cols = f->flow.cfg.image_cols;
    return 0;
}

/* Samples first .. first + n - 1: x in [0, 1] as probs, floor(256 x) as the pixels. */
static void flow_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    flow_sampler *f = s->impl;
    elbo_flow_sample(&f->flow, &f->act, first, n, seed, s->temperature > 0 ? s->temperature : 1.0, probs, pixels);
}

/* Frees the flow and its activations. */
static void flow_close(cli_sampler *s)
{
    flow_sampler *f = s->impl;
    if (f) {
        elbo_flow_activations_free(&f->act);
        elbo_flow_free(&f->flow);
        free(f);
    }
    s->impl = NULL;
}

const cli_sampler_kind cli_sampler_flow = {"flow", flow_open, flow_draw, flow_close};
