/* VAE configuration: defaults, parsing and validation. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest width or input size accepted, so that every product of two widths fits comfortably. */
#define ELBO_MAX_WIDTH ((size_t)1 << 20)

elbo_vae_config elbo_vae_config_default(size_t input_dim)
{
    elbo_vae_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.n_enc = 1;
    c.enc_hidden[0] = 400;
    c.latent = 20;
    c.n_dec = 1;
    c.dec_hidden[0] = 400;
    c.recon = ELBO_RECON_MSE;
    c.sigma0 = sqrt(0.5);
    c.beta = 1.0;
    return c;
}

int elbo_parse_widths(const char *s, size_t widths[ELBO_MAX_HIDDEN], size_t *n, char *err, size_t errlen)
{
    size_t count = 0;
    const char *p = s;
    if (!s || !*s) {
        snprintf(err, errlen, "empty width list");
        return -1;
    }
    for (;;) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "width list '%s': item %zu is not a positive integer", s, count + 1);
            return -1;
        }
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v == 0 || v > ELBO_MAX_WIDTH || (*end != ',' && *end != '\0')) {
            snprintf(err, errlen, "width list '%s': item %zu must be an integer in 1..%zu", s, count + 1,
                     ELBO_MAX_WIDTH);
            return -1;
        }
        if (count == ELBO_MAX_HIDDEN) {
            snprintf(err, errlen, "width list '%s': at most %d layers", s, ELBO_MAX_HIDDEN);
            return -1;
        }
        widths[count++] = (size_t)v;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *n = count;
    return 0;
}

void elbo_format_widths(char *out, size_t outlen, const size_t *widths, size_t n)
{
    size_t used = 0;
    if (outlen)
        out[0] = '\0';
    for (size_t i = 0; i < n && used < outlen; i++) {
        int w = snprintf(out + used, outlen - used, "%s%zu", i ? "," : "", widths[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int elbo_vae_config_validate(const elbo_vae_config *c, char *err, size_t errlen)
{
    if (c->input_dim == 0 || c->input_dim > ELBO_MAX_WIDTH) {
        snprintf(err, errlen, "input_dim: %zu is out of range 1..%zu", c->input_dim, ELBO_MAX_WIDTH);
        return -1;
    }
    if (c->n_enc == 0 || c->n_enc > ELBO_MAX_HIDDEN || c->n_dec == 0 || c->n_dec > ELBO_MAX_HIDDEN) {
        snprintf(err, errlen, "hidden: between 1 and %d encoder and decoder layers", ELBO_MAX_HIDDEN);
        return -1;
    }
    for (size_t i = 0; i < c->n_enc; i++)
        if (c->enc_hidden[i] == 0 || c->enc_hidden[i] > ELBO_MAX_WIDTH) {
            snprintf(err, errlen, "hidden: encoder width %zu is out of range 1..%zu", c->enc_hidden[i], ELBO_MAX_WIDTH);
            return -1;
        }
    for (size_t i = 0; i < c->n_dec; i++)
        if (c->dec_hidden[i] == 0 || c->dec_hidden[i] > ELBO_MAX_WIDTH) {
            snprintf(err, errlen, "decoder-hidden: width %zu is out of range 1..%zu", c->dec_hidden[i], ELBO_MAX_WIDTH);
            return -1;
        }
    if (c->latent == 0 || c->latent > 4096) {
        snprintf(err, errlen, "latent: %zu is out of range 1..4096", c->latent);
        return -1;
    }
    if (c->recon != ELBO_RECON_MSE && c->recon != ELBO_RECON_BCE) {
        snprintf(err, errlen, "recon: must be mse or bce");
        return -1;
    }
    if (!(c->sigma0 > 0) || !isfinite(c->sigma0)) {
        snprintf(err, errlen, "sigma0: %g must be a positive finite number", c->sigma0);
        return -1;
    }
    if (!(c->beta >= 0) || !isfinite(c->beta)) {
        snprintf(err, errlen, "beta: %g must be a finite number >= 0", c->beta);
        return -1;
    }
    return 0;
}

const char *elbo_recon_name(elbo_recon r)
{
    return r == ELBO_RECON_BCE ? "bce" : "mse";
}

int elbo_recon_parse(const char *s, elbo_recon *r)
{
    if (strcmp(s, "mse") == 0)
        *r = ELBO_RECON_MSE;
    else if (strcmp(s, "bce") == 0)
        *r = ELBO_RECON_BCE;
    else
        return -1;
    return 0;
}

void elbo_vae_config_describe(const elbo_vae_config *c, char *out, size_t outlen)
{
    char enc[128], dec[128];
    elbo_format_widths(enc, sizeof enc, c->enc_hidden, c->n_enc);
    elbo_format_widths(dec, sizeof dec, c->dec_hidden, c->n_dec);
    for (char *p = enc; *p; p++)
        if (*p == ',')
            *p = '-';
    for (char *p = dec; *p; p++)
        if (*p == ',')
            *p = '-';
    snprintf(out, outlen, "%zu-%s-%zu-%s-%zu %s", c->input_dim, enc, c->latent, dec, c->input_dim,
             elbo_recon_name(c->recon));
}
