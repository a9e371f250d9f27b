/* `elbo eval --classifier`: scoring generated images. A small classifier and VAE are trained on synthetic data;
 * their scores must be consistent (the same samples scored from --load and from the IDX file `elbo sample` wrote
 * give the same bits; the first N training images scored as --images give exactly the floor), well formed (counts
 * summing to the images, entropy within [0, log2 C], the classifier's hash), and every misuse is one line, exit 2. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "dataset.h"
#include "idx.h"

#define DATA "synthetic:600"
#define COUNT "200"

static char dir[MAX_PATH], clf[2 * MAX_PATH], vae[2 * MAX_PATH];

/* Fails unless the run exited 0 with nothing on stderr. */
static void expect_ok(const run_result *r, const char *what)
{
    if (r->status != 0 || r->err[0])
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* Trains the classifier and the VAE the tests score with. */
static int setup(void **state)
{
    if (find_elbo(state))
        return -1;
    scratch_open(dir);
    snprintf(clf, sizeof clf, "%s/clf.safetensors", dir);
    snprintf(vae, sizeof vae, "%s/vae.safetensors", dir);
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "2", "--batch", "32", "--hidden", "64,32",
        "--save", clf, NULL);
    int ok = r.status == 0;
    run_free(&r);
    run(&r, "train", "--data", DATA, "--epochs", "1", "--batch", "32", "--hidden", "64", "--latent", "4", "--save", vae,
        NULL);
    ok = ok && r.status == 0;
    run_free(&r);
    return ok ? 0 : -1;
}

/* Removes the scratch directory. */
static int teardown(void **state)
{
    (void)state;
    remove_tree(dir);
    return 0;
}

/* The JSON object of a successful scoring run with the given arguments (caller deletes). */
static cJSON *score(const char *const *args)
{
    run_result r;
    run_argv(&r, args);
    expect_ok(&r, args[1]);
    cJSON *j = cJSON_Parse(r.out);
    if (!j)
        test_failf("not JSON: %s\n", r.out);
    run_free(&r);
    return j;
}

/* Samples scored from the checkpoint and from the IDX file `elbo sample` writes are the same images: the same FD and
 * coverage bits. The fields are well formed. Catches: eval drawing other samples than sample writes, counts that do
 * not add up, an entropy out of range, a missing hash. */
static void test_load_and_images_agree(void **state)
{
    (void)state;
    char idx[2 * MAX_PATH];
    snprintf(idx, sizeof idx, "%s/s.idx", dir);
    run_result r;
    run(&r, "sample", "--load", vae, "--data", DATA, "--format", "idx", "--count", COUNT, "-o", idx, NULL);
    expect_ok(&r, "sample");
    run_free(&r);
    const char *from_load[] = {"eval", "--load", vae, "--classifier", clf, "--data", DATA, "--count", COUNT, "--json",
                               NULL};
    const char *from_idx[] = {"eval", "--images", idx, "--classifier", clf, "--data", DATA, "--json", NULL};
    cJSON *a = score(from_load), *b = score(from_idx);
    print_message("    fd %.4f (floor %.4f), coverage %.3f bits\n", num(a, "fd"), num(a, "fd_floor"),
                  num(a, "coverage_entropy_bits"));
    if (num(a, "fd") != num(b, "fd") || num(a, "coverage_entropy_bits") != num(b, "coverage_entropy_bits"))
        test_failf("--load gives fd %.17g, --images %.17g\n", num(a, "fd"), num(b, "fd"));
    assert_true(num(a, "fd") >= 0 && num(a, "fd_floor") >= 0);
    assert_int_equal((long)num(a, "images"), 200);
    assert_int_equal((long)num(a, "floor_train_images"), 200);
    assert_int_equal((long)num(a, "features"), 32);
    double e = num(a, "coverage_entropy_bits"), emax = num(a, "coverage_max_bits");
    assert_true(e >= 0 && e <= emax + 1e-12 && fabs(emax - log2(10.0)) < 1e-12);
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(a, "class_counts");
    assert_int_equal(cJSON_GetArraySize(counts), 10);
    long sum = 0, min = 1 << 30;
    for (int c = 0; c < 10; c++) {
        long v = (long)cJSON_GetArrayItem(counts, c)->valuedouble;
        sum += v;
        min = v < min ? v : min;
    }
    assert_int_equal(sum, 200);
    assert_true(fabs(num(a, "smallest_class_share") - (double)min / 200.0) < 1e-12);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(a, "classifier_hash");
    assert_true(cJSON_IsString(h) && strlen(h->valuestring) == 16);
    /* drawn samples report their sampling time and rate; images read from a file do not */
    double secs = num(a, "sample_seconds");
    assert_true(secs > 0 && fabs(num(a, "sample_images_per_s") * secs - 200.0) < 1e-6);
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "sample_seconds"));
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* The first 200 training images, scored as --images, are the floor's own set: their FD is the floor, bit for bit, and
 * it is below the VAE samples' FD. Catches: a floor computed from other images or another count, features that
 * depend on the batch they are computed in. */
static void test_training_images_score_the_floor(void **state)
{
    (void)state;
    char idx[2 * MAX_PATH], err[256];
    snprintf(idx, sizeof idx, "%s/train.idx", dir);
    elbo_dataset ds;
    if (elbo_dataset_load(&ds, DATA, err, sizeof err))
        test_failf("%s\n", err);
    assert_int_equal(elbo_idx_write_images(idx, ds.train.pixels, 200, ds.train.rows, ds.train.cols, err, sizeof err),
                     0);
    elbo_dataset_free(&ds);
    const char *args[] = {"eval", "--images", idx, "--classifier", clf, "--data", DATA, "--json", NULL};
    const char *samples[] = {"eval", "--load", vae, "--classifier", clf, "--data", DATA, "--count", COUNT, "--json",
                             NULL};
    cJSON *a = score(args), *b = score(samples);
    if (num(a, "fd") != num(a, "fd_floor"))
        test_failf("the floor's own images score %.17g, the floor is %.17g\n", num(a, "fd"), num(a, "fd_floor"));
    if (!(num(a, "fd") < num(b, "fd")))
        test_failf("training images score %.4f, no better than the samples' %.4f\n", num(a, "fd"), num(b, "fd"));
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* Misuse: one line on stderr, exit 2. */
static void test_bad_scoring_usage(void **state)
{
    (void)state;
    char bad[2 * MAX_PATH];
    snprintf(bad, sizeof bad, "%s/nothing.idx", dir);
    expect_usage_error("--images", "--classifier", "eval", "--images", bad, NULL);
    expect_usage_error("--classifier", "exactly one", "eval", "--classifier", clf, NULL);
    expect_usage_error("--classifier", "exactly one", "eval", "--classifier", clf, "--load", vae, "--images", bad,
                       NULL);
    expect_usage_error("--iw", NULL, "eval", "--classifier", clf, "--load", vae, "--iw", "5", NULL);
    expect_usage_error("--classifier", "is not a classifier checkpoint", "eval", "--classifier", vae, "--load", vae,
                       "--data", DATA, NULL);
    expect_usage_error(bad, NULL, "eval", "--classifier", clf, "--images", bad, "--data", DATA, NULL);
    expect_usage_error("--count", NULL, "eval", "--classifier", clf, "--load", vae, "--count", "1", NULL);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_images_agree),
        cmocka_unit_test(test_training_images_score_the_floor),
        cmocka_unit_test(test_bad_scoring_usage),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, setup, teardown);
}
