/* VAE configuration: layer widths, reconstruction likelihood, KL weight. */
#ifndef ELBO_CONFIG_H
#define ELBO_CONFIG_H

#include <stddef.h>

#define ELBO_MAX_HIDDEN 8

typedef enum { ELBO_RECON_MSE = 0, ELBO_RECON_BCE = 1 } elbo_recon;

typedef struct {
    size_t input_dim;                    /* pixels per image (from the data) */
    size_t n_enc;                        /* encoder hidden layers */
    size_t enc_hidden[ELBO_MAX_HIDDEN];  /* their widths, input side first */
    size_t latent;                       /* Z */
    size_t n_dec;                        /* decoder hidden layers */
    size_t dec_hidden[ELBO_MAX_HIDDEN];  /* their widths, latent side first */
    elbo_recon recon;
    double sigma0;                       /* MSE: recon = sum (x - x')^2 / (2 sigma0^2) */
    double beta;                         /* loss = recon + beta * KL */
} elbo_vae_config;

/* The default model for input_dim pixels: 400 hidden, Z = 20, mirrored decoder, MSE with sigma0^2 = 0.5, beta 1. */
elbo_vae_config elbo_vae_config_default(size_t input_dim);

/* Parses a comma-separated width list ("400" or "512,256") into widths[] and *n.
 * Returns 0, or -1 with a message in err naming the offending item. */
int elbo_parse_widths(const char *s, size_t widths[ELBO_MAX_HIDDEN], size_t *n, char *err, size_t errlen);

/* Formats widths as "512,256" into out. */
void elbo_format_widths(char *out, size_t outlen, const size_t *widths, size_t n);

/* Checks every field; returns 0, or -1 with a message in err naming the field. */
int elbo_vae_config_validate(const elbo_vae_config *c, char *err, size_t errlen);

/* Name of a reconstruction likelihood ("mse", "bce"). */
const char *elbo_recon_name(elbo_recon r);

/* Parses "mse" or "bce"; returns 0 or -1. */
int elbo_recon_parse(const char *s, elbo_recon *r);

/* Human-readable architecture, e.g. "784-400-20-400-784 mse". */
void elbo_vae_config_describe(const elbo_vae_config *c, char *out, size_t outlen);

#endif
