/* The table of sampler kinds, and opening a checkpoint through the kind its metadata names. */
#include "cli_sampler.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli_common.h"

static const cli_sampler_kind *const kinds[] = {&cli_sampler_vae, &cli_sampler_gan, &cli_sampler_flow,
                                                &cli_sampler_diffusion};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

/* "a vae checkpoint or a gan checkpoint": the kinds that sample, in words. */
static const char *kind_list(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_KINDS && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%sa %s checkpoint", i == 0 ? "" : i + 1 == N_KINDS ? " or " : ", ",
                         kinds[i]->kind);
        used += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

int cli_sampler_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data)
{
    return cli_sampler_open_in(s, command, load, data, with_data, NULL);
}

int cli_sampler_open_in(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                        const char *precision)
{
    char err[512], kind[32], list[256];
    memset(s, 0, sizeof *s);
    if (!load) {
        fprintf(stderr, "elbo %s: --load: required (a checkpoint written by elbo train --save)\n", command);
        return 2;
    }
    const elbo_kernels *k = cli_kernels_for(command, precision, load);
    if (!k)
        return 2;
    if (elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(kind, kinds[i]->kind) == 0)
            s->kind = kinds[i];
    if (!s->kind) {
        fprintf(stderr, "elbo %s: %s: __metadata__.model: '%.32s' is not %s (%s takes any of them)\n", command, load,
                kind, kind_list(list, sizeof list), command);
        return 2;
    }
    int status = s->kind->open(s, command, load, data, with_data, k);
    if (status)
        cli_sampler_close(s);
    return status;
}

void cli_sampler_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    s->kind->draw(s, first, n, seed, probs, pixels);
}

void cli_sampler_close(cli_sampler *s)
{
    if (s->kind)
        s->kind->close(s);
    memset(s, 0, sizeof *s);
}

int cli_sampler_check_method(const cli_sampler *s, const char *command)
{
    int diffusion = s->kind == &cli_sampler_diffusion;
    if (!s->method || (diffusion && (!strcmp(s->method, "ddpm") || !strcmp(s->method, "ddim"))))
        return 0;
    if (diffusion)
        fprintf(stderr, "elbo %s: --sampler: '%s' is not ddpm or ddim\n", command, s->method);
    else
        fprintf(stderr, "elbo %s: --sampler: a diffusion option (a %s samples one way)\n", command, s->kind->kind);
    return -1;
}
