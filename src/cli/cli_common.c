/* Shared subcommand helpers. */
#include "cli_common.h"

#include "checkpoint.h"
#include "gemm_bf16.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

elbo_topology *cli_open_topology(const char *command)
{
    char err[256];
    elbo_topology *t = elbo_topology_open(NULL, err, sizeof err);
    if (!t)
        fprintf(stderr, "elbo %s: warning: %s; threads run unbound\n", command, err);
    return t;
}

size_t cli_default_threads(const elbo_topology *topo)
{
    if (topo)
        return elbo_topology_default_threads(topo);
    int n = omp_get_max_threads();
    return n > 0 ? (size_t)n : 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_load_dataset(const char *command, const char *spec, elbo_dataset *ds)
{
    char err[512];
    if (elbo_dataset_load(ds, spec, err, sizeof err) != 0) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return -1;
    }
    if (ds->train.n == 0 || ds->test.n == 0) {
        fprintf(stderr, "elbo %s: %s: the %s split is empty\n", command, spec ? spec : ELBO_DEFAULT_DATA_DIR,
                ds->train.n == 0 ? "training" : "test");
        elbo_dataset_free(ds);
        return -1;
    }
    return 0;
}

const elbo_kernels *cli_kernels(const char *command)
{
    const elbo_kernels *k = elbo_kernels_select();
    if (!k)
        fprintf(stderr, "elbo %s: no usable kernel path (see ELBO_ISA above)\n", command);
    return k;
}

int cli_parse_precision(const char *command, const char *s, elbo_precision *p)
{
    if (strcmp(s, "fp32") == 0 || strcmp(s, "bf16") == 0) {
        *p = s[0] == 'b' ? ELBO_PRECISION_BF16 : ELBO_PRECISION_FP32;
        return 0;
    }
    fprintf(stderr, "elbo %s: --precision: '%s' is not fp32 or bf16\n", command, s);
    return -1;
}

elbo_precision cli_checkpoint_precision(const char *path)
{
    elbo_checkpoint_file cf;
    elbo_train_state st;
    char err[512];
    if (!path || elbo_checkpoint_open(&cf, path, NULL, &st, err, sizeof err) != 0)
        return ELBO_PRECISION_FP32;
    elbo_checkpoint_close(&cf);
    return st.precision;
}

const elbo_kernels *cli_kernels_in(const char *command, const elbo_kernels *k, elbo_precision p)
{
    const elbo_kernels *twin = elbo_kernels_with_precision(k, p);
    if (!twin)
        fprintf(stderr, "elbo %s: --precision bf16: this CPU lacks %s for the %s kernels' bf16 GEMM (ELBO_ISA=scalar "
                        "runs its scalar emulation; --precision fp32 the fp32 GEMM)\n", command,
                elbo_gemm_bf16_missing(k), k->isa);
    return twin;
}

const elbo_kernels *cli_kernels_for(const char *command, const char *flag, const char *path)
{
    elbo_precision p = cli_checkpoint_precision(path);
    if (flag && cli_parse_precision(command, flag, &p))
        return NULL;
    const elbo_kernels *k = cli_kernels(command);
    return k ? cli_kernels_in(command, k, p) : NULL;
}

elbo_images_view cli_view(const elbo_split *s)
{
    elbo_images_view v = {s->pixels, s->n, s->dim, s->labels};
    return v;
}

void cli_print_json_numbers(const char *const *keys, const double *values, size_t n, const char *str_key,
                            const char *str_value)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    for (size_t i = 0; i < n; i++)
        cJSON_AddNumberToObject(o, keys[i], values[i]);
    if (str_key)
        cJSON_AddStringToObject(o, str_key, str_value);
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        puts(s);
        fflush(stdout);
        free(s);
    }
    cJSON_Delete(o);
}
