/* Checkpoint save/load: model config and training state <-> safetensors metadata, arena <-> tensors. */
#include "checkpoint.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "safetensors.h"

#define META_FIELDS 17
#define OPT_PREFIX "optimizer."

/* Names of the optimizer state tensors of a kind: the PyTorch state keys. */
static const char *const ADAM_STATE[] = {"exp_avg", "exp_avg_sq"};
static const char *const SGD_STATE[] = {"momentum_buffer"};

/* The optimizer's state arenas and their PyTorch names; returns how many (0 without opt). */
static size_t optimizer_arenas(const elbo_optimizer *opt, const float *arena[2], const char *const **names)
{
    if (!opt)
        return 0;
    arena[0] = opt->m;
    arena[1] = opt->v;
    *names = opt->cfg.kind == ELBO_OPT_ADAM ? ADAM_STATE : SGD_STATE;
    return opt->cfg.kind == ELBO_OPT_ADAM ? 2 : 1;
}

/* Index of the first element of data[0..n) that is NaN or infinite (or negative when nonneg is set), or n.
 * Tensor data may be unaligned in the file, so elements are read with memcpy. */
static size_t first_bad_value(const float *data, size_t n, int nonneg)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, data + i, sizeof v);
        if (!isfinite(v) || (nonneg && v < 0))
            return i;
    }
    return n;
}

int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen)
{
    return elbo_checkpoint_save_training(path, m, st, NULL, err, errlen);
}

int elbo_checkpoint_save_training(const char *path, const elbo_vae *m, const elbo_train_state *st,
                                  const elbo_optimizer *opt, char *err, size_t errlen)
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
    snprintf(v[14], sizeof v[14], "%ld", st->epoch_step);
    snprintf(v[15], sizeof v[15], "%.17g", st->momentum);
    const char *kv[2 * (META_FIELDS + 1)] = {
        "format", ELBO_CHECKPOINT_FORMAT, "encoder_hidden", v[0], "decoder_hidden", v[1], "input_dim", v[2],
        "latent", v[3], "recon", v[4], "sigma0", v[5], "beta", v[6], "seed", v[7], "step", v[8], "epoch", v[9],
        "optimizer", v[10], "lr", v[11], "batch", v[12], "dataset", v[13], "epoch_step", v[14],
        "momentum", v[15], "classes", st->classes[0] ? st->classes : "all",
    };
    const float *state[2];
    const char *const *state_names = NULL;
    size_t n_state = optimizer_arenas(opt, state, &state_names);
    char names[2][ELBO_MAX_TENSORS][ELBO_TENSOR_NAME_MAX + 32];
    elbo_st_out_tensor t[3 * ELBO_MAX_TENSORS];
    size_t n = 0;
    for (size_t a = 0; a <= n_state; a++)
        for (size_t i = 0; i < l->n_tensors; i++, n++) {
            const elbo_tensor_view *tv = &l->tensor[i];
            t[n].name = tv->name;
            t[n].data = m->params + tv->offset;
            if (a > 0) {
                snprintf(names[a - 1][i], sizeof names[a - 1][i], OPT_PREFIX "%s.%s", state_names[a - 1], tv->name);
                t[n].name = names[a - 1][i];
                t[n].data = state[a - 1] + tv->offset;
            }
            t[n].ndim = tv->cols ? 2 : 1;
            t[n].shape[0] = tv->rows;
            t[n].shape[1] = tv->cols;
        }
    /* a checkpoint holding NaN or infinity would be refused by the loader: it is not written either */
    for (size_t i = 0; i < n; i++) {
        size_t count = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1);
        size_t bad = first_bad_value(t[i].data, count, 0);
        if (bad < count) {
            snprintf(err, errlen, "%s: not written: tensor '%s' element %zu is %g", path, t[i].name, bad,
                     (double)t[i].data[bad]);
            return -1;
        }
    }
    return elbo_st_write(path, t, n, kv, META_FIELDS + 1, err, errlen);
}

/* The format versions this build reads, by their __metadata__.format tag; it writes the last. Every file
 * written before elbo-vae-2 says elbo-vae-1, whatever its keys (META_SINCE says what those files lack). */
static const struct {
    const char *tag;
    int version;
} FORMATS[] = {{"elbo-vae-1", 1}, {ELBO_CHECKPOINT_FORMAT, 2}};

/* A metadata key that files of some format version all have, and what an older file means without it. */
typedef struct {
    const char *key;
    int since;         /* the first version whose files all have the key */
    const char *old;   /* the value an older file lacking the key is read with */
    const char *note;  /* resuming needs the file's own value: why an older file lacking it cannot resume;
                        * NULL when the stand-in is exact */
} meta_since;

/* elbo-vae-1 files of 811125d..ad74efc^ have no epoch_step or momentum (and no optimizer state): only
 * --resume reads those, and it refuses such files, so the stand-ins (an epoch boundary and the --momentum
 * default) never steer training. Files of 811125d..524adbb^ have no classes: class filtering did not exist,
 * they were trained on all classes. */
static const meta_since META_SINCE[] = {
    {"epoch_step", 2, "0", "from before checkpoints held the training position and optimizer state"},
    {"momentum", 2, "0.9", "from before checkpoints held the training position and optimizer state"},
    {"classes", 2, "all", NULL},
};

/* The file being read and its format version (an index into FORMATS). */
typedef struct {
    const elbo_st_file *f;
    const char *path;
    size_t format;
} meta_reader;

/* Finds the file's format version; returns 0 or -1 with a message naming the versions this build reads. */
static int meta_open(meta_reader *r, const elbo_st_file *f, const char *path, char *err, size_t errlen)
{
    r->f = f;
    r->path = path;
    const char *s = elbo_st_meta_get(f, "format");
    if (!s) {
        snprintf(err, errlen, "%s: __metadata__.format: missing", path);
        return -1;
    }
    for (r->format = 0; r->format < sizeof FORMATS / sizeof FORMATS[0]; r->format++)
        if (strcmp(s, FORMATS[r->format].tag) == 0)
            return 0;
    char known[128] = "";
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", FORMATS[i].tag);
    snprintf(err, errlen, "%s: __metadata__.format: '%.32s' is not a format this build reads (%s)", path, s, known);
    return -1;
}

/* The row of META_SINCE for key that applies to r's file (its version is older than the key), or NULL. */
static const meta_since *meta_since_for(const meta_reader *r, const char *key)
{
    for (size_t i = 0; i < sizeof META_SINCE / sizeof META_SINCE[0]; i++)
        if (strcmp(META_SINCE[i].key, key) == 0 && FORMATS[r->format].version < META_SINCE[i].since)
            return &META_SINCE[i];
    return NULL;
}

/* The metadata string of key (an older version's stand-in when its file lacks the key), or NULL with a
 * message naming the key and the file's format. */
static const char *need_meta(const meta_reader *r, const char *key, char *err, size_t errlen)
{
    const char *s = elbo_st_meta_get(r->f, key);
    const meta_since *old = s ? NULL : meta_since_for(r, key);
    if (old)
        return old->old;
    if (!s)
        snprintf(err, errlen, "%s: __metadata__.%s: missing (format %s)", r->path, key, FORMATS[r->format].tag);
    return s;
}

/* Parses metadata key as an unsigned integer; returns 0 or -1 with a message. */
static int meta_ull(const meta_reader *r, const char *key, unsigned long long *out, char *err, size_t errlen)
{
    const char *s = need_meta(r, key, err, errlen);
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    /* strtoull skips leading spaces and accepts a sign ("-1" wraps to 2^64 - 1): require a digit first */
    if (errno || end == s || *end || s[0] < '0' || s[0] > '9') {
        snprintf(err, errlen, "%s: __metadata__.%s: '%.32s' is not a non-negative integer", r->path, key, s);
        return -1;
    }
    return 0;
}

/* Parses metadata key as an integer in [0, LONG_MAX]; returns 0 or -1 with a message. */
static int meta_long(const meta_reader *r, const char *key, long *out, char *err, size_t errlen)
{
    unsigned long long u;
    if (meta_ull(r, key, &u, err, errlen))
        return -1;
    if (u > LONG_MAX) {
        snprintf(err, errlen, "%s: __metadata__.%s: %llu is out of range", r->path, key, u);
        return -1;
    }
    *out = (long)u;
    return 0;
}

/* Parses metadata key as a finite double; returns 0 or -1 with a message. */
static int meta_double(const meta_reader *r, const char *key, double *out, char *err, size_t errlen)
{
    const char *s = need_meta(r, key, err, errlen);
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(*out)) {
        snprintf(err, errlen, "%s: __metadata__.%s: '%.32s' is not a number", r->path, key, s);
        return -1;
    }
    return 0;
}

/* Checks that r's file holds what resuming needs itself (META_SINCE rows with a note); returns 0 or -1 with
 * a message naming the first key it lacks, the file's format and what does read it. */
static int meta_resumable(const meta_reader *r, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof META_SINCE / sizeof META_SINCE[0]; i++) {
        const meta_since *k = &META_SINCE[i];
        if (k->note && !elbo_st_meta_get(r->f, k->key) && meta_since_for(r, k->key)) {
            snprintf(err, errlen,
                     "%s: __metadata__.%s: missing (format %s, %s; eval, sample and info read the model, "
                     "--resume cannot continue its training)",
                     r->path, k->key, FORMATS[r->format].tag, k->note);
            return -1;
        }
    }
    return 0;
}

/* Rebuilds the model config from the metadata; returns 0 or -1 with a message naming the field. */
static int config_from_meta(const meta_reader *r, elbo_vae_config *c, char *err, size_t errlen)
{
    char why[160];
    unsigned long long u;
    const char *s;
    memset(c, 0, sizeof *c);
    if (meta_ull(r, "input_dim", &u, err, errlen))
        return -1;
    c->input_dim = (size_t)u;
    if (meta_ull(r, "latent", &u, err, errlen))
        return -1;
    c->latent = (size_t)u;
    if (!(s = need_meta(r, "encoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->enc_hidden, &c->n_enc, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.encoder_hidden: %s", r->path, why);
        return -1;
    }
    if (!(s = need_meta(r, "decoder_hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->dec_hidden, &c->n_dec, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.decoder_hidden: %s", r->path, why);
        return -1;
    }
    if (!(s = need_meta(r, "recon", err, errlen)))
        return -1;
    if (elbo_recon_parse(s, &c->recon)) {
        snprintf(err, errlen, "%s: __metadata__.recon: '%.32s' is not mse or bce", r->path, s);
        return -1;
    }
    if (meta_double(r, "sigma0", &c->sigma0, err, errlen) || meta_double(r, "beta", &c->beta, err, errlen))
        return -1;
    if (elbo_vae_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

/* Reads the training state from the metadata; returns 0 or -1 with a message naming the field. */
static int state_from_meta(const meta_reader *r, elbo_train_state *st, char *err, size_t errlen)
{
    unsigned long long u;
    const char *s;
    memset(st, 0, sizeof *st);
    if (meta_ull(r, "seed", &u, err, errlen))
        return -1;
    st->seed = u;
    if (meta_long(r, "step", &st->step, err, errlen))
        return -1;
    if (meta_long(r, "epoch", &st->epoch, err, errlen))
        return -1;
    if (meta_ull(r, "batch", &u, err, errlen))
        return -1;
    st->batch = (size_t)u;
    if (meta_double(r, "lr", &st->lr, err, errlen))
        return -1;
    if (!(s = need_meta(r, "optimizer", err, errlen)))
        return -1;
    snprintf(st->optimizer, sizeof st->optimizer, "%s", s);
    if (!(s = need_meta(r, "dataset", err, errlen)))
        return -1;
    snprintf(st->dataset, sizeof st->dataset, "%s", s);
    if (meta_long(r, "epoch_step", &st->epoch_step, err, errlen))
        return -1;
    if (meta_double(r, "momentum", &st->momentum, err, errlen))
        return -1;
    if (!(s = need_meta(r, "classes", err, errlen)))
        return -1;
    if (strcmp(s, "all") != 0) {
        if (!*s || strspn(s, "0123456789,") != strlen(s) || strlen(s) >= sizeof st->classes) {
            snprintf(err, errlen, "%s: __metadata__.classes: '%.32s' is not 'all' or a list like 0,1,4", r->path, s);
            return -1;
        }
        snprintf(st->classes, sizeof st->classes, "%s", s);
    }
    return 0;
}

/* The parameter view an optimizer state tensor "optimizer.<state>.<param>" belongs to, or NULL when name is
 * not one (an unknown state key or parameter). */
static const elbo_tensor_view *optimizer_state_view(const elbo_param_layout *l, const char *name)
{
    static const char *const *const kinds[] = {ADAM_STATE, ADAM_STATE + 1, SGD_STATE};
    if (strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX)) != 0)
        return NULL;
    const char *key = name + strlen(OPT_PREFIX), *dot = strchr(key, '.');
    if (!dot)
        return NULL;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (strlen(*kinds[k]) == (size_t)(dot - key) && strncmp(key, *kinds[k], (size_t)(dot - key)) == 0)
            return elbo_param_layout_find(l, dot + 1);
    return NULL;
}

/* Checks tensor t's values: all finite (and >= 0 when nonneg); returns 0 or -1 with a message naming it. */
static int check_values(const elbo_st_tensor *t, int nonneg, const char *path, char *err, size_t errlen)
{
    size_t i = first_bad_value(t->data, t->count, nonneg);
    if (i == t->count)
        return 0;
    float v;
    memcpy(&v, t->data + i, sizeof v);
    snprintf(err, errlen, "%s: tensor '%s': element %zu is %g (%s)", path, t->name, i, (double)v,
             nonneg ? "must be finite and >= 0" : "must be finite");
    return -1;
}

/* Checks the file's tensors against layout l before anything is allocated for it: every parameter present
 * with its shape and finite values, nothing but parameters and optimizer.* state of their sizes. */
static int check_tensors(const elbo_st_file *f, const char *path, const elbo_param_layout *l, char *err,
                         size_t errlen)
{
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
        if (check_values(t, 0, path, err, errlen))
            return -1;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        if (elbo_param_layout_find(l, name))
            continue;
        const elbo_tensor_view *tv = optimizer_state_view(l, name);
        if (tv && f->tensors[i].count == elbo_tensor_view_size(tv))
            continue;
        snprintf(err, errlen, "%s: tensor '%s': not part of this model", path, name);
        return -1;
    }
    return 0;
}

/* Copies every parameter tensor (checked by check_tensors) into m->params. */
static void copy_tensors(const elbo_st_file *f, elbo_vae *m)
{
    const elbo_param_layout *l = &m->layout;
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *tv = &l->tensor[i];
        const elbo_st_tensor *t = elbo_st_find(f, tv->name);
        memcpy(m->params + tv->offset, t->data, t->count * sizeof(float));
    }
}

int elbo_checkpoint_load_optimizer(const char *path, const elbo_vae *m, elbo_optimizer *opt, char *err,
                                   size_t errlen)
{
    elbo_st_file f;
    const float *dummy[2];
    const char *const *names = NULL;
    float *arena[2] = {opt->m, opt->v};
    size_t n_state = optimizer_arenas(opt, dummy, &names);
    if (elbo_st_read(path, &f, err, errlen))
        return -1;
    meta_reader r;
    int rc = meta_open(&r, &f, path, err, errlen);
    if (rc == 0)
        rc = meta_resumable(&r, err, errlen);
    for (size_t a = 0; a < n_state && rc == 0; a++)
        for (size_t i = 0; i < m->layout.n_tensors && rc == 0; i++) {
            const elbo_tensor_view *tv = &m->layout.tensor[i];
            char name[ELBO_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, OPT_PREFIX "%s.%s", names[a], tv->name);
            const elbo_st_tensor *t = elbo_st_find(&f, name);
            if (!t || t->count != elbo_tensor_view_size(tv)) {
                snprintf(err, errlen, "%s: tensor '%s': %s", path, name,
                         t ? "shape does not match the parameter" : "missing (no optimizer state to resume from)");
                rc = -1;
            } else if (check_values(t, names == ADAM_STATE && a == 1, path, err, errlen)) {
                rc = -1;
            } else {
                memcpy(arena[a] + tv->offset, t->data, t->count * sizeof(float));
            }
        }
    elbo_st_free(&f);
    if (rc)
        elbo_err_one_line(err, errlen);
    return rc;
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
    meta_reader r;
    int rc = meta_open(&r, &f, path, err, errlen);
    if (rc == 0)
        rc = config_from_meta(&r, &cfg, err, errlen);
    if (rc == 0)
        rc = state_from_meta(&r, st ? st : &local, err, errlen);
    if (rc == 0) {
        /* the tensors are checked against the config's layout first: a header claiming a huge model is
         * refused by its missing tensors before anything of that size is allocated */
        elbo_param_layout l;
        elbo_vae_layout_build(&l, &cfg);
        rc = check_tensors(&f, path, &l, err, errlen);
    }
    if (rc == 0 && elbo_vae_init(m, &cfg, kern, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
        rc = -1;
    }
    if (rc == 0) {
        copy_tensors(&f, m);
        elbo_vae_pack_weights(m);
    }
    elbo_st_free(&f);
    if (rc)
        elbo_err_one_line(err, errlen);
    return rc;
}
