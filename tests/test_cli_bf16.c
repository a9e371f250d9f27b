/* `elbo train --precision bf16`: bitwise the same checkpoint for 1, 2 and 3 threads (every model kind: ReLU,
 * LeakyReLU, sigmoid and SiLU epilogues, the GAN's W / sigma repacking) and across --resume (the VAE and the
 * classifier), a bf16 step that really differs from the fp32 one, the precision recorded in the checkpoint
 * and kept by --resume (a different --precision refused), hidden activations kept in bf16 giving the bytes of
 * keeping them in fp32, and the one-line refusal (exit 2) on a kernel table
 * without the bf16 instructions, unless ELBO_ISA=scalar chooses the emulation. The fp32 path's bits are pinned by
 * test_cli_golden.c. */
#include "test_cli_run.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_bf16.h"
#include "kernels.h"
#include "safetensors.h"

static char scratch[MAX_PATH];

/* The model kinds checked, with flags that keep a run to a second (synthetic data, small widths). */
static const struct {
    const char *model;
    const char *flags[6];
} KINDS[] = {
    {"vae", {"--hidden", "64", NULL}},
    {"classifier", {"--hidden", "96,40", NULL}},
    {"gan", {"--hidden", "48", "--d-hidden", "80", NULL}},
    {"flow", {"--couplings", "2", "--hidden", "64", NULL}},
    {"diffusion", {"--hidden", "64", NULL}},
};

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

/* Runs `elbo train` of kind k on synthetic:700 at batch 64 with the extra arguments (NULL-terminated, at most 12)
 * and expects exit 0. */
static void train(size_t k, ...)
{
    const char *args[MAX_ARGS + 1] = {"train", "--model", KINDS[k].model, "--data", "synthetic:700", "--batch", "64",
                                      "--epochs", "2"};
    size_t n = 9;
    for (size_t i = 0; KINDS[k].flags[i]; i++)
        args[n++] = KINDS[k].flags[i];
    va_list ap;
    va_start(ap, k);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n < MAX_ARGS);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    run_result r;
    run_argv(&r, args);
    if (r.status != 0)
        test_failf("elbo train --model %s exited %d: %s\n", KINDS[k].model, r.status, r.err);
    run_free(&r);
}

/* The checkpoint's __metadata__.precision, or "(absent)". */
static const char *meta_precision(const char *path, char *buf, size_t len)
{
    elbo_st_file f;
    char err[256];
    if (elbo_st_read(path, &f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    const char *p = elbo_st_meta_get(&f, "precision");
    snprintf(buf, len, "%s", p ? p : "(absent)");
    elbo_st_free(&f);
    return buf;
}

/* 1 when this CPU's default kernel table runs the bf16 GEMM (else the bf16 runs are skipped, the refusal is tested). */
static int bf16_here(void)
{
    const elbo_kernels *k = elbo_kernels_select();
    return k && !elbo_gemm_bf16_missing(k);
}

/* In bf16, every kind's checkpoint after 2 epochs stopped at step 13 is the same file on 1, 2 and 3 threads; it
 * records precision bf16 (an fp32 file has no key) and differs from the fp32 run's parameters. */
static void test_bf16_threads_bitwise(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
        char p[3][2 * MAX_PATH], f32[2 * MAX_PATH], name[64], meta[32];
        for (int t = 1; t <= 3; t++) {
            char threads[8];
            snprintf(name, sizeof name, "%s-bf16-t%d.st", KINDS[k].model, t);
            snprintf(threads, sizeof threads, "%d", t);
            train(k, "--steps", "13", "--precision", "bf16", "--threads", threads, "--save", in_dir(p[t - 1], scratch, name),
                  NULL);
        }
        expect_same_file(p[0], p[1], "bf16, 1 and 2 threads");
        expect_same_file(p[0], p[2], "bf16, 1 and 3 threads");
        if (strcmp(meta_precision(p[0], meta, sizeof meta), "bf16") != 0)
            test_failf("%s: __metadata__.precision is %s, not bf16\n", p[0], meta);
        snprintf(name, sizeof name, "%s-fp32.st", KINDS[k].model);
        train(k, "--steps", "13", "--threads", "2", "--save", in_dir(f32, scratch, name), NULL);
        if (strcmp(meta_precision(f32, meta, sizeof meta), "(absent)") != 0)
            test_failf("%s: an fp32 checkpoint has __metadata__.precision %s\n", f32, meta);
        size_t na, nb;
        unsigned char *a = slurp(p[0], &na), *b = slurp(f32, &nb);
        if (na == nb && memcmp(a, b, na) == 0)
            test_failf("%s: the bf16 run gave the fp32 run's bytes\n", KINDS[k].model);
        free(a);
        free(b);
        print_message("  %s: bf16 bitwise on 1-3 threads, recorded, distinct from fp32\n", KINDS[k].model);
    }
}

/* The hidden activations a bf16 model keeps in bf16 (elbo_mlp_keeps_bf16: the VAE, classifier, GAN and flow) give
 * the bytes of the same run keeping them in fp32 (ELBO_BF16_ACTIVATIONS=fp32), whose GEMMs round them while packing:
 * the epilogue rounds as the packing does, and the masks read the same signs. */
static void test_bf16_kept_activations_same_bits(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    for (size_t k = 0; k < 4; k++) {
        char kept[2 * MAX_PATH], f32[2 * MAX_PATH], name[64];
        snprintf(name, sizeof name, "%s-kept.st", KINDS[k].model);
        train(k, "--steps", "13", "--precision", "bf16", "--threads", "2", "--save", in_dir(kept, scratch, name), NULL);
        setenv("ELBO_BF16_ACTIVATIONS", "fp32", 1);
        snprintf(name, sizeof name, "%s-fp32-acts.st", KINDS[k].model);
        train(k, "--steps", "13", "--precision", "bf16", "--threads", "2", "--save", in_dir(f32, scratch, name), NULL);
        unsetenv("ELBO_BF16_ACTIVATIONS");
        expect_same_file(kept, f32, "bf16 activations kept in bf16 vs in fp32");
    }
}

/* A bf16 run stopped at step 7 (2 threads) and resumed without --precision (3 threads) ends with the bytes of one
 * uninterrupted run (1 thread): the resumed run is bf16 too. --resume with --precision fp32 is refused. */
static void test_bf16_resume_bitwise(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    for (size_t k = 0; k < 2; k++) {
        char whole[2 * MAX_PATH], part[2 * MAX_PATH], name[64];
        snprintf(name, sizeof name, "%s-whole.st", KINDS[k].model);
        train(k, "--precision", "bf16", "--threads", "1", "--save", in_dir(whole, scratch, name), NULL);
        snprintf(name, sizeof name, "%s-part.st", KINDS[k].model);
        train(k, "--precision", "bf16", "--steps", "7", "--threads", "2", "--save", in_dir(part, scratch, name), NULL);
        run_result r;
        run(&r, "train", "--data", "synthetic:700", "--epochs", "2", "--resume", part, "--precision", "fp32", NULL);
        expect_error(&r, 2, "--precision fp32", "bf16");
        run_free(&r);
        run(&r, "train", "--data", "synthetic:700", "--epochs", "2", "--resume", part, "--threads", "3", "--save", part,
            NULL);
        if (r.status != 0)
            test_failf("resume exited %d: %s\n", r.status, r.err);
        run_free(&r);
        expect_same_file(whole, part, "bf16, interrupted at step 7 and resumed vs one run");
    }
}

/* A table without the bf16 GEMM (AVX2 on x86) refuses --precision bf16 in one line naming the missing feature, exit
 * 2, for train, eval and sample; ELBO_ISA=scalar runs the emulation. */
static void test_bf16_refused_without_instructions(void **state)
{
    (void)state;
    const elbo_kernels *lacking = NULL;
    for (size_t i = 0; elbo_kernels_available(i); i++)
        if (elbo_gemm_bf16_missing(elbo_kernels_available(i)))
            lacking = elbo_kernels_available(i);
    if (!lacking)
        skip();
    char ckpt[2 * MAX_PATH];
    setenv("ELBO_ISA", "scalar", 1); /* the emulation, chosen explicitly */
    train(0, "--steps", "2", "--precision", "bf16", "--save", in_dir(ckpt, scratch, "scalar-bf16.st"), NULL);
    setenv("ELBO_ISA", lacking->isa, 1);
    run_result r;
    run(&r, "train", "--data", "synthetic:700", "--precision", "bf16", NULL);
    expect_error(&r, 2, "--precision bf16", elbo_gemm_bf16_missing(lacking));
    run_free(&r);
    run(&r, "eval", "--data", "synthetic:700", "--load", ckpt, NULL); /* the checkpoint's precision by default */
    expect_error(&r, 2, "--precision bf16", elbo_gemm_bf16_missing(lacking));
    run_free(&r);
    run(&r, "eval", "--data", "synthetic:700", "--load", ckpt, "--precision", "fp32", NULL);
    if (r.status != 0)
        test_failf("eval --precision fp32 under ELBO_ISA=%s exited %d: %s\n", lacking->isa, r.status, r.err);
    run_free(&r);
    char png[2 * MAX_PATH];
    run(&r, "sample", "--data", "synthetic:700", "--load", ckpt, "-o", in_dir(png, scratch, "s.png"), NULL);
    expect_error(&r, 2, "--precision bf16", elbo_gemm_bf16_missing(lacking));
    run_free(&r);
    unsetenv("ELBO_ISA");
    run(&r, "train", "--data", "synthetic:700", "--precision", "fp16", NULL);
    expect_error(&r, 2, "--precision", "'fp16' is not fp32 or bf16");
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_threads_bitwise),
        cmocka_unit_test(test_bf16_resume_bitwise),
        cmocka_unit_test(test_bf16_kept_activations_same_bits),
        cmocka_unit_test(test_bf16_refused_without_instructions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
