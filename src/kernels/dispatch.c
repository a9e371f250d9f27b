/* The one place that maps ISAs to kernels: a registry of ISAs, best last, each table tuned by the chip config
 * (chips.h) of the CPU or the one ELBO_CHIP names. */
#include "kernels.h"

#include "chips.h"
#include "cpu_features.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*runs_here)(const elbo_cpu_features *f);
    void (*register_gemm)(elbo_kernels *k);
    void (*register_elementwise)(elbo_kernels *k);
    void (*register_bf16)(elbo_kernels *k);
} isa_entry;

/* The scalar reference runs everywhere. */
static int scalar_runs(const elbo_cpu_features *f)
{
    (void)f;
    return 1;
}

#if defined(__x86_64__)
/* AVX2 path needs AVX2, FMA3 and OS-saved YMM state. */
static int avx2_runs(const elbo_cpu_features *f)
{
    return f->avx2 && f->fma;
}

/* AVX-512 path needs AVX-512F with OS-saved ZMM and opmask state, on top of the AVX2 path. */
static int avx512_runs(const elbo_cpu_features *f)
{
    return avx2_runs(f) && f->avx512f;
}
#endif

#if defined(__aarch64__)
/* NEON path needs Advanced SIMD (architectural on arm64). */
static int neon_runs(const elbo_cpu_features *f)
{
    return f->neon;
}
#endif

static const isa_entry isa_registry[] = {
    {"scalar", scalar_runs, elbo_gemm_register_scalar, elbo_elementwise_register_scalar, elbo_bf16_register_scalar},
#if defined(__x86_64__)
    {"avx2", avx2_runs, elbo_gemm_register_avx2, elbo_elementwise_register_avx2, elbo_bf16_register_avx2},
    {"avx512", avx512_runs, elbo_gemm_register_avx512, elbo_elementwise_register_avx512, elbo_bf16_register_avx512},
#endif
#if defined(__aarch64__)
    {"neon", neon_runs, elbo_gemm_register_neon, elbo_elementwise_register_neon, elbo_bf16_register_neon},
#endif
};
#define ISA_COUNT (sizeof isa_registry / sizeof isa_registry[0])

static elbo_kernels tables[ISA_COUNT];
static elbo_kernels tables_bf16[ISA_COUNT]; /* tables[i] with precision BF16 */
static const elbo_chip_config *tables_chip;
static int table_ok[ISA_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* Builds every table: scalar entries first, then the ISA overrides what it implements, then the chip config
 * (ELBO_CHIP's, or the recognized one when ELBO_CHIP is unset or refused) sets its cache blocking and flags. */
static void build_tables(void)
{
    const elbo_cpu_features *f = elbo_cpu_features_get();
    const elbo_chip_config *chip = elbo_chip_selected();
    if (!chip)
        chip = elbo_chip_recognize(f);
    tables_chip = chip;
    for (size_t i = 0; i < ISA_COUNT; i++) {
        elbo_kernels *k = &tables[i];
        memset(k, 0, sizeof *k);
        elbo_gemm_register_scalar(k);
        elbo_elementwise_register_scalar(k);
        elbo_bf16_register_scalar(k);
        if (i > 0) {
            isa_registry[i].register_gemm(k);
            isa_registry[i].register_elementwise(k);
            isa_registry[i].register_bf16(k);
        }
        k->isa = isa_registry[i].name;
        char err[512];
        if (chip && elbo_chip_apply(chip, k, err, sizeof err) != 0) { /* a bad row in chips.c: a build bug */
            fprintf(stderr, "elbo: chip config %s: %s\n", chip->name, err);
            abort();
        }
        assert(k->blocking.mc >= k->blocking.mr && k->blocking.nc >= k->blocking.nr);
        table_ok[i] = isa_registry[i].runs_here(f);
        tables_bf16[i] = *k;
        tables_bf16[i].precision = ELBO_PRECISION_BF16;
    }
}

const elbo_kernels *elbo_kernels_with_precision(const elbo_kernels *k, elbo_precision p)
{
    pthread_once(&tables_once, build_tables);
    if (k->precision == p)
        return k;
    for (size_t i = 0; i < ISA_COUNT; i++)
        if (k == &tables[i] || k == &tables_bf16[i])
            return p == ELBO_PRECISION_FP32 ? &tables[i] : tables[i].gemm_bf16_ukernel ? &tables_bf16[i] : NULL;
    return NULL;
}

const elbo_chip_config *elbo_kernels_chip(void)
{
    pthread_once(&tables_once, build_tables);
    return tables_chip;
}

const elbo_kernels *elbo_kernels_by_name(const char *isa)
{
    pthread_once(&tables_once, build_tables);
    for (size_t i = 0; i < ISA_COUNT; i++)
        if (strcmp(isa_registry[i].name, isa) == 0)
            return table_ok[i] ? &tables[i] : NULL;
    return NULL;
}

const elbo_kernels *elbo_kernels_available(size_t i)
{
    pthread_once(&tables_once, build_tables);
    size_t seen = 0;
    for (size_t j = 0; j < ISA_COUNT; j++) {
        if (!table_ok[j])
            continue;
        if (seen++ == i)
            return &tables[j];
    }
    return NULL;
}

const elbo_kernels *elbo_kernels_select(void)
{
    pthread_once(&tables_once, build_tables);
    if (!elbo_chip_selected()) /* ELBO_CHIP was refused (its line is on stderr) */
        return NULL;
    const char *want = getenv("ELBO_ISA");
    if (want && *want) {
        const elbo_kernels *k = elbo_kernels_by_name(want);
        if (!k)
            fprintf(stderr, "elbo: ELBO_ISA=%s: not built in or not supported by this CPU\n", want);
        return k;
    }
    const elbo_kernels *best = NULL;
    for (size_t i = 0; elbo_kernels_available(i); i++)
        best = elbo_kernels_available(i);
    return best;
}
