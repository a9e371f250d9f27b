/* What `elbo zoo` reads from a trained checkpoint itself: the model's parameter count and its training FLOPs per
 * sample (the model's own elbo_<model>_train_flops_per_sample). */
#ifndef ELBO_ZOO_MODEL_H
#define ELBO_ZOO_MODEL_H

#include <stddef.h>

/* A checkpoint's facts. */
typedef struct {
    char kind[32];            /* __metadata__.model: "vae", "gan", "flow", "diffusion" */
    size_t parameters;        /* trained parameters (a diffusion model's moving average not counted again) */
    double train_flops;       /* FLOPs of one training sample */
    char describe[256];       /* the model's config in words */
} zoo_model_facts;

/* Loads the checkpoint at path (in its own precision) and fills *out; 0, or -1 with one line in err. */
int zoo_model_read(const char *path, zoo_model_facts *out, char *err, size_t errlen);

#endif
