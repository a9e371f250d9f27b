/* The table of model kinds `elbo train` knows, and the checks of the flags that belong to some kinds only. */
#include <stdio.h>
#include <string.h>

#include "train_kinds.h"

static const train_kind *const kinds[] = {&train_kind_vae, &train_kind_classifier, &train_kind_gan,
                                          &train_kind_flow, &train_kind_diffusion};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

const train_kind *train_kind_find(const char *name)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(kinds[i]->name, name) == 0)
            return kinds[i];
    return NULL;
}

const char *train_kind_names(char *buf, size_t len, const char *last_sep)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_KINDS && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == N_KINDS ? last_sep : ", ";
        int n = snprintf(buf + used, len - used, "%s%s", sep, kinds[i]->name);
        used += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

/* 1 when kind lists flag among its model flags. */
static int kind_uses(const train_kind *kind, const char *flag)
{
    for (const char *const *f = kind->flags; f && *f; f++)
        if (strcmp(*f, flag) == 0)
            return 1;
    return 0;
}

/* The first kind in the table that uses flag, or NULL. */
static const train_kind *first_user(const char *flag)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (kind_uses(kinds[i], flag))
            return kinds[i];
    return NULL;
}

int train_kind_is_model_flag(const char *name)
{
    return first_user(name) != NULL;
}

int train_kind_check_flags(const train_kind *kind, const cli_option *opts, size_t n_opts)
{
    for (size_t i = 0; i < n_opts; i++) {
        const train_kind *owner = first_user(opts[i].name);
        if (opts[i].seen && owner && !kind_uses(kind, opts[i].name)) {
            fprintf(stderr, "elbo train: --%s: a %s option (not used by --model %s)\n", opts[i].name, owner->title,
                    kind->name);
            return -1;
        }
    }
    return 0;
}

int train_kind_fail(const char *err)
{
    fprintf(stderr, "elbo train: %s\n", err);
    return -1;
}
