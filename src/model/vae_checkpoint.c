/* The VAE's checkpoints: its config in the metadata, through the model-agnostic checkpoint format. */
#include "vae_checkpoint.h"

#include <stdio.h>
#include <string.h>


/* Rebuilds the model config from the metadata; returns 0 or -1 with a message naming the field. */
static int config_from_meta(const elbo_meta_reader *r, elbo_vae_config *c, char *err, size_t errlen)
{
    char why[160];
    unsigned long long u;
    const char *s;
    memset(c, 0, sizeof *c);
    if (elbo_meta_ull(r, "input_dim", &u, err, errlen))
        return -1;
    c->input_dim = (size_t)u;
    if (elbo_meta_ull(r, "latent", &u, err, errlen))
        return -1;
    c->latent = (size_t)u;
    if (!(s = elbo_meta_string(r, "encoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->enc_hidden, &c->n_enc, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.encoder_hidden: %s", r->path, why);
        return -1;
    }
    if (!(s = elbo_meta_string(r, "decoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->dec_hidden, &c->n_dec, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.decoder_hidden: %s", r->path, why);
        return -1;
    }
    if (!(s = elbo_meta_string(r, "recon", err, errlen)))
        return -1;
    if (elbo_recon_parse(s, &c->recon)) {
        snprintf(err, errlen, "%s: __metadata__.recon: '%.32s' is not mse or bce", r->path, s);
        return -1;
    }
    if (elbo_meta_double(r, "sigma0", &c->sigma0, err, errlen) || elbo_meta_double(r, "beta", &c->beta, err, errlen))
        return -1;
    if (elbo_vae_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen)
{
    return elbo_checkpoint_save_training(path, m, st, NULL, err, errlen);
}

int elbo_checkpoint_save_training(const char *path, const elbo_vae *m, const elbo_train_state *st,
                                  const elbo_optimizer *opt, char *err, size_t errlen)
{
    elbo_model mm = elbo_vae_model((elbo_vae *)m); /* the writer only reads through it */
    return elbo_checkpoint_write(path, &mm, st, opt, err, errlen);
}

/* elbo_checkpoint_reader's callbacks for the VAE. */
static int vae_read_config(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen)
{
    return config_from_meta(r, cfg, err, errlen);
}

/* elbo_checkpoint_reader.layout: the VAE's parameter layout of a config. */
static void vae_layout(elbo_param_layout *l, const void *cfg)
{
    elbo_vae_layout_build(l, cfg);
}

/* elbo_checkpoint_reader.init: a VAE allocated for a config. */
static int vae_init(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    return elbo_vae_init(model, cfg, kern, err, errlen);
}

/* elbo_checkpoint_reader.as_model: the VAE's trainer view. */
static elbo_model vae_as_model(void *model)
{
    return elbo_vae_model(model);
}

/* elbo_checkpoint_reader.pack: packs the VAE's weights. */
static void vae_pack(void *model)
{
    elbo_vae_pack_weights(model);
}

int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen)
{
    static const elbo_checkpoint_reader reader = {"vae", vae_read_config, vae_layout, vae_init, vae_as_model,
                                                  vae_pack};
    elbo_vae_config cfg;
    memset(m, 0, sizeof *m);
    return elbo_checkpoint_load_model(path, &reader, &cfg, m, kern, st, err, errlen);
}
