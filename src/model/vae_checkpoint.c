/* The VAE's checkpoints: its config in the metadata, through the model-agnostic checkpoint format. */
#include "vae_checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "errmsg.h"

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

int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen)
{
    elbo_checkpoint_file cf;
    elbo_vae_config cfg;
    memset(m, 0, sizeof *m);
    if (elbo_checkpoint_open(&cf, path, "vae", st, err, errlen))
        return -1;
    int rc = config_from_meta(&cf.r, &cfg, err, errlen);
    if (rc == 0) {
        /* the tensors are checked against the config's layout first: a header claiming a huge model is
         * refused by its missing tensors before anything of that size is allocated */
        elbo_param_layout l;
        elbo_vae_layout_build(&l, &cfg);
        rc = elbo_checkpoint_check_tensors(&cf, &l, err, errlen);
    }
    if (rc == 0 && elbo_vae_init(m, &cfg, kern, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
        rc = -1;
    }
    if (rc == 0) {
        elbo_checkpoint_copy_params(&cf, &m->layout, m->params);
        elbo_vae_pack_weights(m);
    }
    elbo_checkpoint_close(&cf);
    if (rc)
        elbo_err_one_line(err, errlen);
    return rc;
}
