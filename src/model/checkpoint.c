/* Checkpoint save/load: model config and training state <-> safetensors metadata, arena <-> tensors. */
#include "checkpoint.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#define META_FIELDS 14

int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen)
{
    const elbo_vae_config *c = &m->cfg;
    const elbo_param_layout *l = &m->layout;
    char v[META_FIELDS][96];
    elbo_format_widths(v[0], sizeof v[0], c->enc_hidden, c->n_enc);
    elbo_format_widths(v[1], sizeof v[1], c->dec_hidden, c->n_dec);
    snprintf(v[2], sizeof v[2], "%zu", c->input_dim);
    snprintf(v[3], sizeof v[3], "%zu", c->latent);
    snprintf(v[4], sizeof v[4], "%s", elbo_recon_name(c->recon));
    snprintf(v[5], sizeof v[5], "%.17g", c->sigma0);
    snprintf(v[6], sizeof v[6], "%.17g", c->beta);
    snprintf(v[7], sizeof v[7], "%llu", (unsigned long long)st->seed);
    snprintf(v[8], sizeof v[8], "%ld", st->step);
    snprintf(v[9], sizeof v[9], "%ld", st->epoch);
    snprintf(v[10], sizeof v[10], "%s", st->optimizer);
    snprintf(v[11], sizeof v[11], "%.17g", st->lr);
    snprintf(v[12], sizeof v[12], "%zu", st->batch);
    snprintf(v[13], sizeof v[13], "%s", st->dataset);
    const char *kv[2 * (META_FIELDS + 1)] = {
        "format", ELBO_CHECKPOINT_FORMAT, "encoder_hidden", v[0], "decoder_hidden", v[1], "input_dim", v[2],
        "latent", v[3], "recon", v[4], "sigma0", v[5], "beta", v[6], "seed", v[7], "step", v[8], "epoch", v[9],
        "optimizer", v[10], "lr", v[11], "batch", v[12], "dataset", v[13],
    };
    elbo_st_out_tensor t[ELBO_MAX_TENSORS];
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *tv = &l->tensor[i];
        t[i].name = tv->name;
        t[i].ndim = tv->cols ? 2 : 1;
        t[i].shape[0] = tv->rows;
        t[i].shape[1] = tv->cols;
        t[i].data = m->params + tv->offset;
    }
    return elbo_st_write(path, t, l->n_tensors, kv, META_FIELDS + 1, err, errlen);
}

/* The metadata string of key, or NULL with a message naming it. */
static const char *need_meta(const elbo_st_file *f, const char *path, const char *key, char *err, size_t errlen)
{
    const char *s = elbo_st_meta_get(f, key);
    if (!s)
        snprintf(err, errlen, "%s: __metadata__.%s: missing", path, key);
    return s;
}

/* Parses metadata key as an unsigned integer; returns 0 or -1 with a message. */
static int meta_ull(const elbo_st_file *f, const char *path, const char *key, unsigned long long *out, char *err,
                    size_t errlen)
{
    const char *s = need_meta(f, path, key, err, errlen);
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    /* strtoull skips leading spaces and accepts a sign ("-1" wraps to 2^64 - 1): require a digit first */
    if (errno || end == s || *end || s[0] < '0' || s[0] > '9') {
        snprintf(err, errlen, "%s: __metadata__.%s: '%.32s' is not a non-negative integer", path, key, s);
        return -1;
    }
    return 0;
}

/* Parses metadata key as a finite double; returns 0 or -1 with a message. */
static int meta_double(const elbo_st_file *f, const char *path, const char *key, double *out, char *err,
                       size_t errlen)
{
    const char *s = need_meta(f, path, key, err, errlen);
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(*out)) {
        snprintf(err, errlen, "%s: __metadata__.%s: '%.32s' is not a number", path, key, s);
        return -1;
    }
    return 0;
}

/* Rebuilds the model config from the metadata; returns 0 or -1 with a message naming the field. */
static int config_from_meta(const elbo_st_file *f, const char *path, elbo_vae_config *c, char *err, size_t errlen)
{
    char why[160];
    unsigned long long u;
    const char *s;
    memset(c, 0, sizeof *c);
    if (!(s = need_meta(f, path, "format", err, errlen)))
        return -1;
    if (strcmp(s, ELBO_CHECKPOINT_FORMAT) != 0) {
        snprintf(err, errlen, "%s: __metadata__.format: '%.32s' is not %s", path, s, ELBO_CHECKPOINT_FORMAT);
        return -1;
    }
    if (meta_ull(f, path, "input_dim", &u, err, errlen))
        return -1;
    c->input_dim = (size_t)u;
    if (meta_ull(f, path, "latent", &u, err, errlen))
        return -1;
    c->latent = (size_t)u;
    if (!(s = need_meta(f, path, "encoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->enc_hidden, &c->n_enc, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.encoder_hidden: %s", path, why);
        return -1;
    }
    if (!(s = need_meta(f, path, "decoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->dec_hidden, &c->n_dec, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.decoder_hidden: %s", path, why);
        return -1;
    }
    if (!(s = need_meta(f, path, "recon", err, errlen)))
        return -1;
    if (elbo_recon_parse(s, &c->recon)) {
        snprintf(err, errlen, "%s: __metadata__.recon: '%.32s' is not mse or bce", path, s);
        return -1;
    }
    if (meta_double(f, path, "sigma0", &c->sigma0, err, errlen) || meta_double(f, path, "beta", &c->beta, err, errlen))
        return -1;
    if (elbo_vae_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", path, why);
        return -1;
    }
    return 0;
}

/* Reads the training state from the metadata; returns 0 or -1 with a message naming the field. */
static int state_from_meta(const elbo_st_file *f, const char *path, elbo_train_state *st, char *err, size_t errlen)
{
    unsigned long long u;
    const char *s;
    memset(st, 0, sizeof *st);
    if (meta_ull(f, path, "seed", &u, err, errlen))
        return -1;
    st->seed = u;
    if (meta_ull(f, path, "step", &u, err, errlen))
        return -1;
    if (u > LONG_MAX) {
        snprintf(err, errlen, "%s: __metadata__.step: %llu is out of range", path, u);
        return -1;
    }
    st->step = (long)u;
    if (meta_ull(f, path, "epoch", &u, err, errlen))
        return -1;
    if (u > LONG_MAX) {
        snprintf(err, errlen, "%s: __metadata__.epoch: %llu is out of range", path, u);
        return -1;
    }
    st->epoch = (long)u;
    if (meta_ull(f, path, "batch", &u, err, errlen))
        return -1;
    st->batch = (size_t)u;
    if (meta_double(f, path, "lr", &st->lr, err, errlen))
        return -1;
    if (!(s = need_meta(f, path, "optimizer", err, errlen)))
        return -1;
    snprintf(st->optimizer, sizeof st->optimizer, "%s", s);
    if (!(s = need_meta(f, path, "dataset", err, errlen)))
        return -1;
    snprintf(st->dataset, sizeof st->dataset, "%s", s);
    return 0;
}

/* Copies every expected tensor into m->params after checking its shape; refuses extra tensors. */
static int copy_tensors(const elbo_st_file *f, const char *path, elbo_vae *m, char *err, size_t errlen)
{
    const elbo_param_layout *l = &m->layout;
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *tv = &l->tensor[i];
        const elbo_st_tensor *t = elbo_st_find(f, tv->name);
        size_t want_ndim = tv->cols ? 2 : 1;
        if (!t) {
            snprintf(err, errlen, "%s: tensor '%s': missing", path, tv->name);
            return -1;
        }
        if (t->ndim != want_ndim || t->shape[0] != tv->rows || (tv->cols && t->shape[1] != tv->cols)) {
            snprintf(err, errlen, "%s: tensor '%s': shape does not match the config (expected [%zu%s%.0zu])", path,
                     tv->name, tv->rows, tv->cols ? ", " : "", tv->cols);
            return -1;
        }
        memcpy(m->params + tv->offset, t->data, t->count * sizeof(float));
    }
    if (f->n_tensors != l->n_tensors) {
        for (size_t i = 0; i < f->n_tensors; i++)
            if (!elbo_param_layout_find(l, f->tensors[i].name)) {
                snprintf(err, errlen, "%s: tensor '%s': not part of this model", path, f->tensors[i].name);
                return -1;
            }
    }
    return 0;
}

int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen)
{
    elbo_st_file f;
    elbo_vae_config cfg;
    elbo_train_state local;
    memset(m, 0, sizeof *m);
    if (elbo_st_read(path, &f, err, errlen))
        return -1;
    int rc = config_from_meta(&f, path, &cfg, err, errlen);
    if (rc == 0)
        rc = state_from_meta(&f, path, st ? st : &local, err, errlen);
    if (rc == 0)
        rc = elbo_vae_init(m, &cfg, kern, err, errlen);
    if (rc == 0) {
        rc = copy_tensors(&f, path, m, err, errlen);
        if (rc)
            elbo_vae_free(m);
        else
            elbo_vae_pack_weights(m);
    }
    elbo_st_free(&f);
    return rc;
}
