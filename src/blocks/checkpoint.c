/* Checkpoints of any model: its kind, config and training state <-> safetensors metadata, its arena and the
 * optimizer state <-> tensors. The model kinds read and write their own config keys (vae_checkpoint.c, ...). */
#include "checkpoint.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "safetensors.h"

#define STATE_FIELDS 10
#define CONFIG_FIELDS_MAX 16
#define OPT_PREFIX "optimizer."
/* The prefix of a model's shadow arena's tensors (elbo_model.shadow_prefix): the diffusion model's moving average. */
#define SHADOW_PREFIX "ema."

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

/* The format versions this build reads, by their __metadata__.format tag; it writes the last. Every file
 * written before elbo-vae-2 says elbo-vae-1, whatever its keys (META_SINCE says what those files lack); elbo-3
 * added the model kind. */
static const struct {
    const char *tag;
    int version;
} FORMATS[] = {{"elbo-vae-1", 1}, {"elbo-vae-2", 2}, {ELBO_CHECKPOINT_FORMAT, 3}};

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
 * they were trained on all classes. Files before elbo-3 are all VAEs. */
static const meta_since META_SINCE[] = {
    {"epoch_step", 2, "0", "from before checkpoints held the training position and optimizer state"},
    {"momentum", 2, "0.9", "from before checkpoints held the training position and optimizer state"},
    {"classes", 2, "all", NULL},
    {"model", 3, "vae", NULL},
};

/* Finds the file's format version; returns 0 or -1 with a message naming the versions this build reads. */
static int meta_open(elbo_meta_reader *r, const elbo_st_file *f, const char *path, char *err, size_t errlen)
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
static const meta_since *meta_since_for(const elbo_meta_reader *r, const char *key)
{
    for (size_t i = 0; i < sizeof META_SINCE / sizeof META_SINCE[0]; i++)
        if (strcmp(META_SINCE[i].key, key) == 0 && FORMATS[r->format].version < META_SINCE[i].since)
            return &META_SINCE[i];
    return NULL;
}

/* The metadata string of key (an older version's stand-in when its file lacks the key), or NULL with a
 * message naming the key and the file's format. */
const char *elbo_meta_string(const elbo_meta_reader *r, const char *key, char *err, size_t errlen)
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
int elbo_meta_ull(const elbo_meta_reader *r, const char *key, unsigned long long *out, char *err, size_t errlen)
{
    const char *s = elbo_meta_string(r, key, err, errlen);
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
static int meta_long(const elbo_meta_reader *r, const char *key, long *out, char *err, size_t errlen)
{
    unsigned long long u;
    if (elbo_meta_ull(r, key, &u, err, errlen))
        return -1;
    if (u > LONG_MAX) {
        snprintf(err, errlen, "%s: __metadata__.%s: %llu is out of range", r->path, key, u);
        return -1;
    }
    *out = (long)u;
    return 0;
}

/* Parses metadata key as a finite double; returns 0 or -1 with a message. */
int elbo_meta_double(const elbo_meta_reader *r, const char *key, double *out, char *err, size_t errlen)
{
    const char *s = elbo_meta_string(r, key, err, errlen);
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
static int meta_resumable(const elbo_meta_reader *r, char *err, size_t errlen)
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

/* The metadata's precision (absent: fp32, what every file before the key was trained in); 0 or -1 with a message. */
static int meta_precision(const elbo_meta_reader *r, elbo_precision *p, char *err, size_t errlen)
{
    const char *s = elbo_st_meta_get(r->f, "precision");
    *p = ELBO_PRECISION_FP32;
    if (!s || strcmp(s, "fp32") == 0)
        return 0;
    if (strcmp(s, "bf16") == 0) {
        *p = ELBO_PRECISION_BF16;
        return 0;
    }
    snprintf(err, errlen, "%s: __metadata__.precision: '%.32s' is not fp32 or bf16", r->path, s);
    return -1;
}

/* Reads the training state from the metadata; returns 0 or -1 with a message naming the field. */
static int state_from_meta(const elbo_meta_reader *r, elbo_train_state *st, char *err, size_t errlen)
{
    unsigned long long u;
    const char *s;
    memset(st, 0, sizeof *st);
    if (elbo_meta_ull(r, "seed", &u, err, errlen))
        return -1;
    st->seed = u;
    if (meta_long(r, "step", &st->step, err, errlen))
        return -1;
    if (meta_long(r, "epoch", &st->epoch, err, errlen))
        return -1;
    if (elbo_meta_ull(r, "batch", &u, err, errlen))
        return -1;
    st->batch = (size_t)u;
    if (elbo_meta_double(r, "lr", &st->lr, err, errlen))
        return -1;
    if (!(s = elbo_meta_string(r, "optimizer", err, errlen)))
        return -1;
    snprintf(st->optimizer, sizeof st->optimizer, "%s", s);
    if (!(s = elbo_meta_string(r, "dataset", err, errlen)))
        return -1;
    snprintf(st->dataset, sizeof st->dataset, "%s", s);
    if (meta_long(r, "epoch_step", &st->epoch_step, err, errlen))
        return -1;
    if (elbo_meta_double(r, "momentum", &st->momentum, err, errlen))
        return -1;
    if (meta_precision(r, &st->precision, err, errlen))
        return -1;
    if (!(s = elbo_meta_string(r, "classes", err, errlen)))
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
        tv = strncmp(name, SHADOW_PREFIX, strlen(SHADOW_PREFIX)) == 0
                 ? elbo_param_layout_find(l, name + strlen(SHADOW_PREFIX))
                 : NULL;
        if (tv && f->tensors[i].count == elbo_tensor_view_size(tv) &&
            check_values(&f->tensors[i], 0, path, err, errlen) == 0)
            continue;
        if (tv)
            return -1;
        snprintf(err, errlen, "%s: tensor '%s': not part of this model", path, name);
        return -1;
    }
    return 0;
}

int elbo_checkpoint_load_optimizer(const char *path, const elbo_param_layout *l, elbo_optimizer *opt, char *err,
                                   size_t errlen)
{
    elbo_st_file f;
    const float *dummy[2];
    const char *const *names = NULL;
    float *arena[2] = {opt->m, opt->v};
    size_t n_state = optimizer_arenas(opt, dummy, &names);
    if (elbo_st_read(path, &f, err, errlen))
        return -1;
    elbo_meta_reader r;
    int rc = meta_open(&r, &f, path, err, errlen);
    if (rc == 0)
        rc = meta_resumable(&r, err, errlen);
    for (size_t a = 0; a < n_state && rc == 0; a++)
        for (size_t i = 0; i < l->n_tensors && rc == 0; i++) {
            const elbo_tensor_view *tv = &l->tensor[i];
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


int elbo_checkpoint_write(const char *path, const elbo_model *m, const elbo_train_state *st,
                          const elbo_optimizer *opt, char *err, size_t errlen)
{
    const elbo_param_layout *l = m->layout;
    char cv[CONFIG_FIELDS_MAX][96], v[STATE_FIELDS][96];
    const char *ck[CONFIG_FIELDS_MAX];
    size_t n_config = m->ops->write_config(m->impl, ck, cv);
    snprintf(v[0], sizeof v[0], "%llu", (unsigned long long)st->seed);
    snprintf(v[1], sizeof v[1], "%ld", st->step);
    snprintf(v[2], sizeof v[2], "%ld", st->epoch);
    snprintf(v[3], sizeof v[3], "%s", st->optimizer);
    snprintf(v[4], sizeof v[4], "%.17g", st->lr);
    snprintf(v[5], sizeof v[5], "%zu", st->batch);
    snprintf(v[6], sizeof v[6], "%s", st->dataset);
    snprintf(v[7], sizeof v[7], "%ld", st->epoch_step);
    snprintf(v[8], sizeof v[8], "%.17g", st->momentum);
    static const char *const state_keys[STATE_FIELDS] = {"seed",    "step",    "epoch",      "optimizer", "lr",
                                                         "batch",   "dataset", "epoch_step", "momentum",  "classes"};
    const char *state_values[STATE_FIELDS] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
                                              st->classes[0] ? st->classes : "all"};
    const char *kv[2 * (3 + CONFIG_FIELDS_MAX + STATE_FIELDS)];
    size_t n_kv = 0;
    kv[n_kv++] = "format";
    kv[n_kv++] = ELBO_CHECKPOINT_FORMAT;
    kv[n_kv++] = "model";
    kv[n_kv++] = m->ops->kind;
    for (size_t i = 0; i < n_config; i++) {
        kv[n_kv++] = ck[i];
        kv[n_kv++] = cv[i];
    }
    for (size_t i = 0; i < STATE_FIELDS; i++) {
        kv[n_kv++] = state_keys[i];
        kv[n_kv++] = state_values[i];
    }
    if (m->kern->precision == ELBO_PRECISION_BF16) {
        kv[n_kv++] = "precision";
        kv[n_kv++] = "bf16";
    }
    const float *state[2];
    const char *const *state_names = NULL;
    size_t n_state = optimizer_arenas(opt, state, &state_names);
    char names[3][ELBO_MAX_TENSORS][ELBO_TENSOR_NAME_MAX + 32];
    elbo_st_out_tensor t[4 * ELBO_MAX_TENSORS];
    size_t n = 0;
    /* the shadow arena first (its names sort before the optimizer's): "<prefix><tensor>" */
    for (size_t i = 0; m->shadow && i < l->n_tensors; i++, n++) {
        const elbo_tensor_view *tv = &l->tensor[i];
        snprintf(names[2][i], sizeof names[2][i], "%s%s", m->shadow_prefix, tv->name);
        t[n] = (elbo_st_out_tensor){.name = names[2][i], .data = m->shadow + tv->offset, .ndim = tv->cols ? 2 : 1,
                                    .shape = {tv->rows, tv->cols}};
    }
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
    return elbo_st_write(path, t, n, kv, n_kv / 2, err, errlen);
}

int elbo_checkpoint_open(elbo_checkpoint_file *cf, const char *path, const char *kind, elbo_train_state *st,
                         char *err, size_t errlen)
{
    elbo_train_state local;
    memset(cf, 0, sizeof *cf);
    if (elbo_st_read(path, &cf->f, err, errlen))
        return -1;
    int rc = meta_open(&cf->r, &cf->f, path, err, errlen);
    const char *k = rc == 0 ? elbo_meta_string(&cf->r, "model", err, errlen) : NULL;
    if (rc == 0 && !k)
        rc = -1;
    if (rc == 0 && kind && strcmp(k, kind) != 0) {
        snprintf(err, errlen, "%s: __metadata__.model: '%.32s' is not a %s checkpoint (this command takes a %s)",
                 path, k, kind, kind);
        rc = -1;
    }
    if (rc == 0)
        rc = state_from_meta(&cf->r, st ? st : &local, err, errlen);
    if (rc) {
        elbo_st_free(&cf->f);
        elbo_err_one_line(err, errlen);
    }
    return rc;
}

int elbo_checkpoint_model_kind(const char *path, char *kind, size_t kindlen, char *err, size_t errlen)
{
    elbo_checkpoint_file cf;
    if (elbo_checkpoint_open(&cf, path, NULL, NULL, err, errlen))
        return -1;
    snprintf(kind, kindlen, "%s", elbo_meta_string(&cf.r, "model", err, errlen));
    elbo_checkpoint_close(&cf);
    return 0;
}

int elbo_checkpoint_check_tensors(const elbo_checkpoint_file *cf, const elbo_param_layout *l, char *err,
                                  size_t errlen)
{
    int rc = check_tensors(&cf->f, cf->r.path, l, err, errlen);
    if (rc)
        elbo_err_one_line(err, errlen);
    return rc;
}

void elbo_checkpoint_copy_params(const elbo_checkpoint_file *cf, const elbo_param_layout *l, float *params)
{
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *tv = &l->tensor[i];
        const elbo_st_tensor *t = elbo_st_find(&cf->f, tv->name);
        memcpy(params + tv->offset, t->data, t->count * sizeof(float));
    }
}

void elbo_checkpoint_close(elbo_checkpoint_file *cf)
{
    elbo_st_free(&cf->f);
    memset(cf, 0, sizeof *cf);
}

int elbo_checkpoint_load_model(const char *path, const elbo_checkpoint_reader *r, void *cfg, void *model,
                               const elbo_kernels *kern, elbo_train_state *st, char *err, size_t errlen)
{
    elbo_checkpoint_file cf;
    if (elbo_checkpoint_open(&cf, path, r->kind, st, err, errlen))
        return -1;
    int rc = r->read_config(&cf.r, cfg, err, errlen), initialized = 0;
    if (rc == 0) {
        /* the tensors are checked against the config's layout first: a header claiming a huge model is
         * refused by its missing tensors before anything of that size is allocated */
        elbo_param_layout l;
        r->layout(&l, cfg);
        rc = elbo_checkpoint_check_tensors(&cf, &l, err, errlen);
    }
    if (rc == 0 && r->init(model, cfg, kern, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
        rc = -1;
    } else if (rc == 0) {
        initialized = 1;
    }
    if (initialized) {
        elbo_model m = r->as_model(model);
        elbo_checkpoint_copy_params(&cf, m.layout, m.params);
        for (size_t i = 0; m.shadow && i < m.layout->n_tensors && rc == 0; i++) {
            const elbo_tensor_view *tv = &m.layout->tensor[i];
            char name[ELBO_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, "%s%s", m.shadow_prefix, tv->name);
            const elbo_st_tensor *t = elbo_st_find(&cf.f, name);
            if (!t || t->count != elbo_tensor_view_size(tv)) {
                snprintf(err, errlen, "%s: tensor '%s': missing", path, name);
                rc = -1;
            } else {
                memcpy(m.shadow + tv->offset, t->data, t->count * sizeof(float));
            }
        }
        r->pack(model);
    }
    elbo_checkpoint_close(&cf);
    if (rc)
        elbo_err_one_line(err, errlen);
    return rc;
}
