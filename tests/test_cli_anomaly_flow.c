/* `elbo anomaly` with a flow: a flow trained on classes 0-8 of the synthetic data (class 9, the checkerboard, held
 * out) scores every test image by its exact -log p in bits/dim. Checked: the JSON fields (AUROC, threshold within
 * its false-positive budget, image counts, the mean bits/dim of normal and anomalous images), the CSV (one row per
 * test image, normal flags, one flow_bits_per_dim column) whose mean equals `elbo eval`'s test bits/dim with the same
 * seed (the same exact -log p, the same dequantization noise) and whose scores give the reported AUROC; a VAE with
 * --flow beside it reports all three scores, and per held-out class AUROCs when two classes are held out. Bad input
 * is refused with exit 2 and one stderr line, writing nothing: a GAN or a diffusion checkpoint as --load, a GAN as
 * --flow, a flow as both, --samples without a flow, a flow and a VAE trained on different classes.
 *
 * Runs build/elbo from the repository root on synthetic data (synthetic:600: 100 test images, 10 per class) with a
 * small flow (2 couplings of 32-32) and a small VAE. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>

#define DATA "synthetic:600"
#define TEST_IMAGES 100
#define NORMAL "0,1,2,3,4,5,6,7,8"

static char dir[MAX_PATH], flow[2 * MAX_PATH], vae[2 * MAX_PATH];

/* Fails unless the run exited 0 with nothing on stderr but, for train, the one line describing the run. */
static void expect_ok(const run_result *r, const char *what)
{
    int description = count_lines(r->err) == 1 && !strncmp(r->err, "elbo train: ", 12);
    if (r->status != 0 || (r->err[0] && !description))
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* Trains the flow and the VAE on the normal classes into a scratch directory (once for every test). */
static int setup(void **state)
{
    if (find_elbo(state))
        return -1;
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "flow", "--data", DATA, "--classes", NORMAL, "--epochs", "3", "--hidden", "32,32",
        "--couplings", "2", "--threads", "1", "--save", in_dir(flow, dir, "flow.safetensors"), NULL);
    expect_ok(&r, "train --model flow");
    run_free(&r);
    run(&r, "train", "--model", "vae", "--data", DATA, "--classes", NORMAL, "--epochs", "3", "--hidden", "64",
        "--latent", "4", "--threads", "1", "--save", in_dir(vae, dir, "vae.safetensors"), NULL);
    expect_ok(&r, "train --model vae");
    run_free(&r);
    return 0;
}

/* Removes the scratch directory. */
static int teardown(void **state)
{
    (void)state;
    remove_tree(dir);
    return 0;
}

/* The run's stdout as a JSON object (fails unless it exited 0 with one). */
static cJSON *json_run(run_result *r, const char *what)
{
    cJSON *j = cJSON_Parse(r->out);
    if (r->status != 0 || !j)
        test_failf("%s: status %d, stdout \"%s\", stderr \"%s\"\n", what, r->status, r->out, r->err);
    return j;
}

/* Reads the scores CSV at path: fails unless its header is want_header and it has one row per test image with the
 * normal flag label != 9; the last column into score (TEST_IMAGES) and the flags into normal. */
static void read_scores(const char *path, const char *want_header, size_t columns, double *score, int *normal)
{
    FILE *f = fopen(path, "r");
    char line[512];
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    if (strcmp(line, want_header) != 0)
        test_failf("%s: header \"%s\", expected \"%s\"\n", path, line, want_header);
    size_t rows = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned idx, label;
        char *p = line;
        assert_true(rows < TEST_IMAGES);
        assert_int_equal(sscanf(p, "%u,%u,%d", &idx, &label, &normal[rows]), 3);
        assert_int_equal(idx, rows);
        assert_int_equal(normal[rows], label != 9);
        for (size_t c = 0; c < 3 + columns - 1; c++)
            p = strchr(p, ',') + 1;
        score[rows] = strtod(p, NULL);
        assert_true(score[rows] > 0 && score[rows] < 16);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, TEST_IMAGES);
}

/* The AUROC of score (anomalous = !normal, higher more anomalous) by counting pairs, ties one half. */
static double auroc_by_pairs(const double *score, const int *normal, size_t n)
{
    double wins = 0, pairs = 0;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; a < n && b < n; b++)
            if (!normal[a] && normal[b]) {
                wins += score[a] > score[b] ? 1 : score[a] == score[b] ? 0.5 : 0;
                pairs++;
            }
    return wins / pairs;
}

/* The flow alone: its JSON fields and CSV, the CSV's mean against eval's test bits/dim and its AUROC against the
 * reported one. Catches: a score that is not the flow's -log p (or other noise), labels of the wrong images, an
 * inverted score, a threshold over its false-positive budget. */
static void test_flow_scores(void **state)
{
    (void)state;
    char prefix[2 * MAX_PATH], csv[2 * MAX_PATH];
    run_result r;
    run(&r, "anomaly", "--load", flow, "--data", DATA, "--json", "-o", in_dir(prefix, dir, "flow"), NULL);
    cJSON *j = json_run(&r, "anomaly --load flow");
    double auroc = num(j, "auroc_flow_bits_per_dim"), mean_n = num(j, "mean_flow_bits_per_dim_normal");
    double mean_a = num(j, "mean_flow_bits_per_dim_anomalous");
    print_message("    flow -log p: AUROC %.4f, TPR %.3f at FPR %.3f; mean bits/dim normal %.4f, anomalous %.4f\n",
                  auroc, num(j, "tpr_flow_bits_per_dim"), num(j, "fpr_flow_bits_per_dim"), mean_n, mean_a);
    assert_true(auroc >= 0.6 && auroc <= 1);
    assert_true(num(j, "fpr_flow_bits_per_dim") <= 0.05);
    assert_int_equal((int)num(j, "normal_images"), TEST_IMAGES * 9 / 10);
    assert_int_equal((int)num(j, "anomalous_images"), TEST_IMAGES / 10);
    assert_int_equal((int)num(j, "dequant_samples"), 1);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "auroc_recon_error"));
    run_free(&r);

    double score[TEST_IMAGES], sum = 0, sum_n = 0, sum_a = 0;
    int normal[TEST_IMAGES];
    read_scores(in_dir(csv, dir, "flow-scores.csv"), "index,label,is_normal,flow_bits_per_dim\n", 1, score, normal);
    for (size_t i = 0; i < TEST_IMAGES; i++) {
        sum += score[i];
        sum_n += normal[i] ? score[i] : 0;
        sum_a += normal[i] ? 0 : score[i];
    }
    double by_pairs = auroc_by_pairs(score, normal, TEST_IMAGES);
    if (fabs(by_pairs - auroc) > 1e-9)
        test_failf("the CSV's scores give AUROC %.9f, the report %.9f\n", by_pairs, auroc);
    if (fabs(sum_n / (TEST_IMAGES * 9 / 10) - mean_n) > 1e-6 || fabs(sum_a / (TEST_IMAGES / 10) - mean_a) > 1e-6)
        test_failf("the CSV's means %.6f / %.6f differ from the report's %.6f / %.6f\n", sum_n / 90, sum_a / 10,
                   mean_n, mean_a);
    run(&r, "eval", "--load", flow, "--data", DATA, "--json", NULL);
    cJSON *e = json_run(&r, "eval --load flow");
    double eval_bpd = num(e, "test_bits_per_dim");
    if (!(fabs(sum / TEST_IMAGES - eval_bpd) <= 1e-6 * eval_bpd))
        test_failf("the CSV's mean -log p %.9f bits/dim is not eval's %.9f\n", sum / TEST_IMAGES, eval_bpd);
    print_message("    mean over the CSV %.6f bits/dim, eval %.6f\n", sum / TEST_IMAGES, eval_bpd);
    cJSON_Delete(e);
    cJSON_Delete(j);
    run_free(&r);
}

/* A VAE with --flow beside it: all three scores in the JSON and the CSV; with two classes held out, an AUROC per
 * held-out class for each score; --samples 2 is reported. */
static void test_vae_with_flow(void **state)
{
    (void)state;
    char prefix[2 * MAX_PATH], csv[2 * MAX_PATH];
    run_result r;
    run(&r, "anomaly", "--load", vae, "--flow", flow, "--data", DATA, "--samples", "2", "--normal",
        "0,1,2,3,4,5,6,7", "--json", "-o", in_dir(prefix, dir, "both"), NULL);
    cJSON *j = json_run(&r, "anomaly --load vae --flow flow");
    static const char *const keys[] = {"auroc_recon_error", "auroc_neg_elbo", "auroc_flow_bits_per_dim",
                                       "auroc_recon_error_class_8", "auroc_neg_elbo_class_9",
                                       "auroc_flow_bits_per_dim_class_8", "auroc_flow_bits_per_dim_class_9"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        double a = num(j, keys[i]);
        assert_true(a >= 0 && a <= 1);
        print_message("    %s %.4f\n", keys[i], a);
    }
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "auroc_flow_bits_per_dim_class_7"));
    assert_int_equal((int)num(j, "dequant_samples"), 2);
    assert_int_equal((int)num(j, "anomalous_images"), TEST_IMAGES / 5);
    cJSON_Delete(j);
    run_free(&r);
    FILE *f = fopen(in_dir(csv, dir, "both-scores.csv"), "r");
    char line[256];
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "index,label,is_normal,recon_error,neg_elbo,flow_bits_per_dim\n");
    fclose(f);
}

/* Bad input: one stderr line, exit 2, nothing written. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char bad[MAX_PATH], gan[2 * MAX_PATH], diff[2 * MAX_PATH], other[2 * MAX_PATH], prefix[2 * MAX_PATH];
    scratch_open(bad);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "1", "--hidden", "16", "--d-hidden", "16",
        "--classes", NORMAL, "--save", in_dir(gan, bad, "gan.safetensors"), NULL);
    expect_ok(&r, "train gan");
    run_free(&r);
    run(&r, "train", "--model", "diffusion", "--hidden", "32", "--data", DATA, "--epochs", "1", "--steps", "2",
        "--classes", NORMAL, "--save", in_dir(diff, bad, "diffusion.safetensors"), NULL);
    expect_ok(&r, "train diffusion");
    run_free(&r);
    run(&r, "train", "--model", "flow", "--data", DATA, "--classes", "0,1,2,3,4,5,6,7", "--epochs", "1", "--hidden",
        "16,16", "--couplings", "2", "--save", in_dir(other, bad, "other.safetensors"), NULL);
    expect_ok(&r, "train flow on other classes");
    run_free(&r);
    in_dir(prefix, bad, "out");
    expect_usage_error("'gan' is not a vae checkpoint or a flow checkpoint", NULL, "anomaly", "--load", gan, "--data",
                       DATA, "-o", prefix, NULL);
    expect_usage_error("'diffusion' is not a vae checkpoint or a flow checkpoint", NULL, "anomaly", "--load", diff,
                       "--data", DATA, "-o", prefix, NULL);
    expect_usage_error("--flow", "'gan' is not a flow checkpoint", "anomaly", "--load", vae, "--flow", gan, "--data",
                       DATA, "-o", prefix, NULL);
    expect_usage_error("--flow", "is a flow already", "anomaly", "--load", flow, "--flow", flow, "--data", DATA, "-o",
                       prefix, NULL);
    expect_usage_error("--samples", "add --flow", "anomaly", "--load", vae, "--samples", "2", "--data", DATA, "-o",
                       prefix, NULL);
    expect_usage_error("--flow", "give --normal", "anomaly", "--load", vae, "--flow", other, "--data", DATA, "-o",
                       prefix, NULL);
    expect_entries(bad, 3); /* the three checkpoints, nothing written beside them */
    remove_tree(bad);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_scores),
        cmocka_unit_test(test_vae_with_flow),
        cmocka_unit_test(test_bad_inputs),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, setup, teardown);
}
