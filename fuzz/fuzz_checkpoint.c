/* libFuzzer target: the checkpoint load path on raw file bytes: the safetensors reader (header length,
 * JSON header, dtypes, shapes, data offsets, overlaps), the metadata (config and training state), the
 * tensors against the config, and the optimizer state as `elbo train --resume` reads it. Checks, beyond the
 * sanitizers: failures give one line naming the file and leave the model zeroed; a loaded model has a valid
 * config and finite parameters. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae_checkpoint.h"
#include "fuzz_file.h"
#include "kernels.h"

/* Aborts with a message when cond is false (libFuzzer records the input as a crash). */
#define FUZZ_REQUIRE(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz check failed: " __VA_ARGS__); \
    fprintf(stderr, "\n"); abort(); } } while (0)

/* Fails unless err is one non-empty line naming path. */
static void check_error_line(const char *err, const char *path)
{
    FUZZ_REQUIRE(err[0] != '\0', "empty error message");
    FUZZ_REQUIRE(strchr(err, '\n') == NULL, "error message on several lines: %s", err);
    FUZZ_REQUIRE(strstr(err, path) != NULL, "error message does not name the file: %s", err);
}

/* Fails unless every byte of *m is zero (a failed load must leave nothing allocated). */
static void check_zeroed(const elbo_vae *m)
{
    static const elbo_vae zero;
    FUZZ_REQUIRE(memcmp(m, &zero, sizeof zero) == 0, "failed load left the model non-zero");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const elbo_kernels *k;
    if (!k)
        k = elbo_kernels_by_name("scalar");
    const char *path = fuzz_file(data, size);
    char err[512] = "", why[256];
    elbo_vae m;
    elbo_train_state st;
    if (elbo_checkpoint_load(path, &m, k, &st, err, sizeof err) != 0) {
        check_error_line(err, path);
        check_zeroed(&m);
        return 0;
    }
    FUZZ_REQUIRE(elbo_vae_config_validate(&m.cfg, why, sizeof why) == 0, "loaded an invalid config: %s", why);
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *tv = &m.layout.tensor[i];
        for (size_t j = 0; j < elbo_tensor_view_size(tv); j++)
            FUZZ_REQUIRE(isfinite(m.params[tv->offset + j]), "loaded a non-finite %s[%zu]", tv->name, j);
    }
    /* the optimizer state, as --resume reads it */
    elbo_optimizer_kind kind = strcmp(st.optimizer, "sgd") == 0 ? ELBO_OPT_SGD : ELBO_OPT_ADAM;
    elbo_optimizer_config oc = elbo_optimizer_config_default(kind, st.lr);
    elbo_optimizer opt;
    if (elbo_optimizer_init(&opt, &oc, &m.layout) == 0) {
        err[0] = '\0';
        if (elbo_checkpoint_load_optimizer(path, &m.layout, &opt, err, sizeof err) != 0)
            check_error_line(err, path);
        elbo_optimizer_free(&opt);
    }
    elbo_vae_free(&m);
    return 0;
}
