/* `elbo info`: what this CPU can run, which kernels elbo chose, how it was built. */
#include "cli.h"

#include "cpu_features.h"
#include "kernels.h"

#include <stdio.h>
#include <string.h>

#ifndef ELBO_BUILD_FLAGS
#define ELBO_BUILD_FLAGS "unknown"
#endif

/* Prints `elbo info` usage to f. */
static void print_info_usage(FILE *f)
{
    fprintf(f, "usage: elbo info\n\n"
               "Prints the CPU model and SIMD features detected, the kernel path chosen (override with\n"
               "ELBO_ISA=scalar|avx2|neon), the GEMM microkernel and its blocking, and the build flags.\n");
}

int cli_info(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_info_usage(stdout);
            return 0;
        }
        fprintf(stderr, "elbo info: unknown option '%s' (try 'elbo info --help')\n", argv[i]);
        return 2;
    }
    const elbo_cpu_features *f = elbo_cpu_features_get();
    printf("cpu:          %s (%s)\n", f->model, f->arch);
    printf("features:     avx2=%s fma=%s avx512f=%s neon=%s\n", f->avx2 ? "yes" : "no", f->fma ? "yes" : "no",
           f->avx512f ? "yes" : "no", f->neon ? "yes" : "no");
    printf("isa paths:   ");
    for (size_t i = 0; elbo_kernels_available(i); i++)
        printf(" %s", elbo_kernels_available(i)->isa);
    printf("\n");
    const elbo_kernels *k = elbo_kernels_select();
    if (!k)
        return 2;
    const elbo_gemm_blocking *b = &k->blocking;
    printf("isa chosen:   %s\n", k->isa);
    printf("gemm kernel:  %s (MR=%zu NR=%zu MC=%zu KC=%zu NC=%zu)\n", k->gemm_ukernel_name, b->mr, b->nr, b->mc,
           b->kc, b->nc);
    printf("compiler:     %s\n", __VERSION__);
    printf("build flags:  %s\n", ELBO_BUILD_FLAGS);
    return 0;
}
