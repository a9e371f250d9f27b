/* A checkpoint's parameter count and training FLOPs per sample, through the model kinds' table (train_kinds.h). */
#include "zoo_model.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli_common.h"
#include "diffusion.h"
#include "flow.h"
#include "gan.h"
#include "params.h"
#include "train_kinds.h"
#include "vae.h"

/* FLOPs of one training sample of the loaded model tm of kind name (0 for a kind without a count). */
static double train_flops(const char *name, const train_model *tm)
{
    if (strcmp(name, "vae") == 0)
        return elbo_vae_train_flops_per_sample(tm->impl);
    if (strcmp(name, "gan") == 0)
        return elbo_gan_train_flops_per_sample(tm->impl);
    if (strcmp(name, "flow") == 0)
        return elbo_flow_train_flops_per_sample(tm->impl);
    if (strcmp(name, "diffusion") == 0)
        return elbo_diffusion_train_flops_per_sample(tm->impl);
    return 0;
}

int zoo_model_read(const char *path, zoo_model_facts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (elbo_checkpoint_model_kind(path, out->kind, sizeof out->kind, err, errlen))
        return -1;
    const train_kind *kind = train_kind_find(out->kind);
    if (!kind) {
        snprintf(err, errlen, "%s: __metadata__.model: '%s' is not a model the zoo trains", path, out->kind);
        return -1;
    }
    const elbo_kernels *sel = elbo_kernels_select();
    const elbo_kernels *k = sel ? elbo_kernels_with_precision(sel, cli_checkpoint_precision(path)) : NULL;
    if (!k) {
        snprintf(err, errlen, "%s: no kernel table runs its precision here", path);
        return -1;
    }
    train_model tm;
    elbo_train_state st;
    memset(&tm, 0, sizeof tm);
    if (kind->load(path, k, &tm, &st, err, errlen))
        return -1;
    tm.kind = kind;
    out->parameters = elbo_param_layout_count(tm.model.layout);
    out->train_flops = train_flops(out->kind, &tm);
    kind->describe(&tm, out->describe, sizeof out->describe);
    kind->free(&tm);
    return 0;
}
