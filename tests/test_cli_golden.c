/* The VAE's training bits pinned: 40 steps of `elbo train` on Fashion-MNIST, then a hash of every tensor of the
 * checkpoint (parameters and optimizer state: names, shapes and bytes, in name order; the metadata is left out, so
 * it may gain keys) must equal the reference below, for every ISA table this CPU runs and 1, 2 and 3 threads.
 *
 * Where the references come from: commit c93f71b (the engine before the layer blocks), these exact commands, on an
 * AMD Zen 5 (AVX-512) machine; ELBO_GOLDEN_PRINT=1 prints the hashes a build gives instead of checking them. The
 * AVX2 and AVX-512 tables give the same bits by construction (one KC, one depth order per output element, the same
 * fused kernels' lane order), so they share one reference; the scalar table (no FMA) has its own. A change of any
 * kernel's summation order, of the data order, the noise, the initialization or the optimizer's arithmetic changes
 * these hashes: a refactor that claims "bit for bit" must leave them alone, and a deliberate change of the numerics
 * must say so and replace them (with the commit that made the new ones). */
#include "test_cli_run.h"

#include <string.h>

#include "safetensors.h"

#define GOLDEN_STEPS "40"

typedef struct {
    const char *name;
    const char *args[12];    /* after `elbo train`, NULL-terminated */
    int max_threads;         /* 1..max_threads threads, stepping by thread_step */
    int thread_step;
    uint64_t want_scalar;    /* the hash under ELBO_ISA=scalar */
    uint64_t want_x86_simd;  /* under ELBO_ISA=avx2 and avx512 */
} golden_case;

static const golden_case CASES[] = {
    {"mse-adam-784-400-20", {"--recon", "mse", NULL}, 3, 1, 0xad15184a5ac07472ULL, 0x4e9734c85fff33f7ULL},
    {"bce-adam-784-400-20", {"--recon", "bce", NULL}, 3, 1, 0x9d89d35f189c4320ULL, 0x5851b7677b9035b6ULL},
    {"bce-adam-784-512-256-32", {"--recon", "bce", "--hidden", "512,256", "--latent", "32", NULL}, 3, 2, 0xa7d4e4ceca6bd307ULL, 0x6a9bd081e06d9030ULL},
    {"mse-sgd-784-400-20", {"--optimizer", "sgd", "--lr", "0.0001", NULL}, 3, 2, 0xa3f79219015e75a9ULL, 0x4e36a07f8986465eULL},
};

static const char *const ISAS[] = {"scalar", "avx2", "avx512"};

static char scratch[MAX_PATH];

/* Creates the scratch directory and finds the binary. */
static int setup(void **state)
{
    scratch_open(scratch);
    return find_elbo(state);
}

/* Removes the scratch directory. */
static int teardown(void **state)
{
    (void)state;
    remove_tree(scratch);
    return 0;
}

/* FNV-1a, 64 bits, of n bytes continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* Orders tensors by name. */
static int by_name(const void *a, const void *b)
{
    return strcmp((*(const elbo_st_tensor *const *)a)->name, (*(const elbo_st_tensor *const *)b)->name);
}

/* Hash of every tensor of the checkpoint at path (name, shape, bytes; in name order); prints each tensor's own
 * hash when verbose, to find which one moved. */
static uint64_t checkpoint_hash(const char *path, int verbose)
{
    elbo_st_file f;
    char err[512];
    if (elbo_st_read(path, &f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    const elbo_st_tensor **t = malloc(f.n_tensors * sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < f.n_tensors; i++)
        t[i] = &f.tensors[i];
    qsort(t, f.n_tensors, sizeof *t, by_name);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < f.n_tensors; i++) {
        uint64_t shape[ELBO_ST_MAX_DIMS + 1] = {t[i]->ndim};
        for (size_t d = 0; d < t[i]->ndim; d++)
            shape[d + 1] = t[i]->shape[d];
        h = fnv1a(h, t[i]->name, strlen(t[i]->name) + 1);
        h = fnv1a(h, shape, sizeof shape);
        h = fnv1a(h, t[i]->data, t[i]->count * sizeof(float));
        if (verbose)
            printf("      %-40s %016llx\n", t[i]->name,
                   (unsigned long long)fnv1a(0xcbf29ce484222325ULL, t[i]->data, t[i]->count * sizeof(float)));
    }
    free(t);
    elbo_st_free(&f);
    return h;
}

/* Trains case c for GOLDEN_STEPS steps under ELBO_ISA=isa on `threads` threads; returns the checkpoint's hash. */
static uint64_t train_hash(const golden_case *c, const char *isa, int threads, int verbose)
{
    char path[2 * MAX_PATH], nt[16];
    snprintf(path, sizeof path, "%s/%s-%s-%d.safetensors", scratch, c->name, isa, threads);
    snprintf(nt, sizeof nt, "%d", threads);
    const char *args[MAX_ARGS + 1] = {"train", "--steps", GOLDEN_STEPS, "--epochs", "1", "--threads", nt, "--save", path};
    size_t n = 9;
    for (size_t i = 0; c->args[i]; i++)
        args[n++] = c->args[i];
    args[n] = NULL;
    setenv("ELBO_ISA", isa, 1);
    run_result r;
    run_argv(&r, args);
    unsetenv("ELBO_ISA");
    if (r.status != 0)
        test_failf("%s, ELBO_ISA=%s, %d threads: exit %d: %s\n", c->name, isa, threads, r.status, r.err);
    run_free(&r);
    uint64_t h = checkpoint_hash(path, verbose);
    unlink(path);
    return h;
}

/* 1 when this CPU runs the kernel table called isa. */
static int isa_available(const char *isa)
{
    for (size_t i = 0; elbo_kernels_available(i); i++)
        if (!strcmp(elbo_kernels_available(i)->isa, isa))
            return 1;
    return 0;
}

/* Every case on every ISA this CPU runs and every thread count equals its reference hash. */
static void test_training_bits_pinned(void **state)
{
    (void)state;
    int print = getenv("ELBO_GOLDEN_PRINT") != NULL, checked = 0;
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const golden_case *c = &CASES[ci];
        for (size_t ii = 0; ii < sizeof ISAS / sizeof ISAS[0]; ii++) {
            if (!isa_available(ISAS[ii]))
                continue;
            uint64_t want = ii == 0 ? c->want_scalar : c->want_x86_simd;
            for (int t = 1; t <= c->max_threads; t += c->thread_step) {
                uint64_t got = train_hash(c, ISAS[ii], t, 0);
                printf("  %-26s %-6s %d thread%s: %016llx\n", c->name, ISAS[ii], t, t == 1 ? " " : "s",
                       (unsigned long long)got);
                if (!print && got != want) {
                    train_hash(c, ISAS[ii], t, 1);
                    test_failf("%s, ELBO_ISA=%s, %d threads: tensors hash to %016llx, the reference is %016llx\n",
                               c->name, ISAS[ii], t, (unsigned long long)got, (unsigned long long)want);
                }
                checked++;
            }
        }
    }
    if (checked == 0)
        skip();
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_bits_pinned),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, setup, teardown);
}
