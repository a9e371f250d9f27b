/* The classifier through the elbo command: `train --model classifier` reports per-epoch JSON with the test
 * accuracy and cross-entropy and learns the synthetic classes; 1, 2 and 3 threads write byte-identical
 * checkpoints; --resume continues a classifier bitwise; `eval` reports the last epoch's test metrics and `info`
 * names the model; the VAE-only commands, `eval --iw`, VAE options and an unknown --model are refused with exit
 * status 2 and one stderr line.
 *
 * Runs build/elbo (next to this test's directory) from the repository root, on synthetic data: synthetic:N has
 * N train and (N + 5) / 6 test images of 784 pixels in 10 shape classes. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>

#define DATA "synthetic:3000"
/* The test accuracy after 2 epochs of the default 784-256-256-10 model on DATA must reach this: chance is 0.1,
 * and seeds 1-5 measured 0.980, 0.996, 0.990, 0.996, 0.996 (0.93-0.96 after the first epoch). */
#define LEARNED_ACCURACY 0.9

/* Fails unless the run exited 0 with nothing on stderr but, for train --json (which keeps stdout JSON), the one
 * line describing the run. */
static void expect_ok(const run_result *r, const char *what)
{
    int description = count_lines(r->err) == 1 && !strncmp(r->err, "elbo train: ", 12) && strstr(r->err, "classifier");
    if (r->status != 0 || (r->err[0] && !description))
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* The JSON objects of a --json run's stdout, one per line starting with '{' (at most max); returns how many. */
static size_t json_lines(const char *out, cJSON **lines, size_t max)
{
    size_t n = 0;
    for (const char *s = out; *s;) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        if (*s == '{') {
            assert_true(n < max);
            char *line = strndup(s, len);
            lines[n] = cJSON_Parse(line);
            if (!lines[n])
                test_failf("not JSON: %s\n", line);
            free(line);
            n++;
        }
        s += len + (eol != NULL);
    }
    return n;
}

/* Frees n parsed lines. */
static void json_free(cJSON **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(lines[i]);
}

/* Two epochs on the synthetic classes: one JSON object per epoch naming the classifier, with a test accuracy in
 * [0, 1] (a fraction: correct / test images) and a finite positive test cross-entropy, no VAE fields; the
 * accuracy reaches LEARNED_ACCURACY by epoch 2 and the cross-entropy falls. Then `eval --json` of the saved
 * checkpoint reports exactly the last epoch's test accuracy and cross-entropy, on 1 and 3 threads, and the
 * plain `eval` says "test accuracy". */
static void test_train_json_and_eval(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH];
    scratch_open(dir);
    in_dir(ckpt, dir, "clf.safetensors");
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "2", "--json", "--save", ckpt, NULL);
    expect_ok(&r, "train --model classifier");
    cJSON *ep[4];
    size_t n = json_lines(r.out, ep, 4);
    if (n != 2)
        test_failf("%zu JSON lines, expected one per epoch (2):\n%s\n", n, r.out);
    double acc[2], ce[2];
    for (size_t e = 0; e < 2; e++) {
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(ep[e], "model");
        if (!cJSON_IsString(model) || strcmp(model->valuestring, "classifier"))
            test_failf("epoch %zu: \"model\" is not \"classifier\"\n", e + 1);
        assert_int_equal((long)num(ep[e], "epoch"), (long)e + 1);
        acc[e] = num(ep[e], "test_accuracy");
        ce[e] = num(ep[e], "test_cross_entropy");
        /* 500 test images: the accuracy is a multiple of 1/500 */
        if (!(acc[e] >= 0 && acc[e] <= 1) || fabs(acc[e] * 500 - round(acc[e] * 500)) > 1e-9)
            test_failf("epoch %zu: test_accuracy %.17g is not a fraction of the 500 test images\n", e + 1, acc[e]);
        if (!(ce[e] > 0 && isfinite(ce[e])))
            test_failf("epoch %zu: test_cross_entropy %g\n", e + 1, ce[e]);
        if (cJSON_GetObjectItemCaseSensitive(ep[e], "test_neg_elbo"))
            test_failf("epoch %zu: a classifier's JSON reports test_neg_elbo\n", e + 1);
    }
    printf("  test accuracy %.3f -> %.3f, cross-entropy %.4f -> %.4f\n", acc[0], acc[1], ce[0], ce[1]);
    if (!(acc[1] >= LEARNED_ACCURACY) || !(ce[1] < ce[0]))
        test_failf("after 2 epochs: test accuracy %.3f (expected >= %g), cross-entropy %.4f -> %.4f\n", acc[1],
                   LEARNED_ACCURACY, ce[0], ce[1]);
    run_free(&r);

    const char *threads[] = {"1", "3"};
    for (size_t t = 0; t < 2; t++) {
        run(&r, "eval", "--load", ckpt, "--data", DATA, "--json", "--threads", threads[t], NULL);
        expect_ok(&r, "eval --json");
        cJSON *ev[2];
        assert_int_equal(json_lines(r.out, ev, 2), 1);
        if (num(ev[0], "test_accuracy") != acc[1] || num(ev[0], "test_cross_entropy") != ce[1])
            test_failf("eval on %s threads: test accuracy %.17g, cross-entropy %.17g; training's last epoch %.17g, "
                       "%.17g\n", threads[t], num(ev[0], "test_accuracy"), num(ev[0], "test_cross_entropy"), acc[1],
                       ce[1]);
        json_free(ev, 1);
        run_free(&r);
    }
    run(&r, "eval", "--load", ckpt, "--data", DATA, NULL);
    expect_ok(&r, "eval");
    if (!strstr(r.out, "test accuracy") || strstr(r.out, "ELBO"))
        test_failf("eval of a classifier printed: %s\n", r.out);
    run_free(&r);
    json_free(ep, n);
    remove_tree(dir);
}

/* `elbo info --load` of a classifier names it with its widths, parameter count and training state. */
static void test_info_names_classifier(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH];
    scratch_open(dir);
    in_dir(ckpt, dir, "clf.safetensors");
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", "synthetic:300", "--hidden", "64", "--epochs", "1",
        "--save", ckpt, NULL);
    expect_ok(&r, "train");
    run_free(&r);
    run(&r, "info", "--load", ckpt, NULL);
    if (r.status != 0 || r.err[0])
        test_failf("info --load: status %d, stderr \"%s\"\n", r.status, r.err);
    /* 784 * 64 + 64 + 64 * 10 + 10 parameters; 300 rows at batch 128: 3 steps */
    const char *want[] = {"model:        784-64-10 classifier (50890 parameters)", "hidden 64, classes 10",
                          "training:     3 steps, 1 epochs"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.out, want[i]))
            test_failf("info --load lacks \"%s\":\n%s\n", want[i], r.out);
    if (strstr(r.out, "latent"))
        test_failf("info --load of a classifier mentions a latent:\n%s\n", r.out);
    run_free(&r);
    remove_tree(dir);
}

/* 1, 2 and 3 threads write byte-identical checkpoints after 2 epochs (rows split across threads, the wide
 * layers' forward split by features, fixed-order sums), for the default model over 1000 images at batch 128
 * (7 full batches and one of 104) and for 100-37 hidden widths at batch 37 (27 batches and one of 1). */
static void test_thread_count_bitwise(void **state)
{
    (void)state;
    const char *models[][2] = {{"128", "256,256"}, {"37", "100,37"}};
    for (size_t v = 0; v < 2; v++) {
        char dir[MAX_PATH], path[3][2 * MAX_PATH], name[32], what[96];
        scratch_open(dir);
        for (int t = 0; t < 3; t++) {
            char threads[4];
            snprintf(name, sizeof name, "threads%d.safetensors", t + 1);
            in_dir(path[t], dir, name);
            snprintf(threads, sizeof threads, "%d", t + 1);
            run_result r;
            run(&r, "train", "--model", "classifier", "--data", "synthetic:1000", "--epochs", "2", "--batch",
                models[v][0], "--hidden", models[v][1], "--threads", threads, "--save", path[t], NULL);
            expect_ok(&r, "train");
            run_free(&r);
        }
        for (int t = 1; t < 3; t++) {
            snprintf(what, sizeof what, "hidden %s batch %s, %d threads vs 1", models[v][1], models[v][0], t + 1);
            expect_same_file(path[0], path[t], what);
        }
        remove_tree(dir);
    }
}

/* A classifier stopped at the end of epoch 1, or mid-epoch 2 by --steps, and continued with --resume (on another
 * thread count) to 2 epochs ends with the checkpoint bytes of an uninterrupted 2-epoch run. */
static void test_resume_bitwise(void **state)
{
    (void)state;
    const char *stops[][2] = {{"1", "0"}, {"2", "30"}}; /* --epochs, --steps (0: no limit); 24 steps per epoch */
    char dir[MAX_PATH], whole[2 * MAX_PATH], part[2 * MAX_PATH];
    scratch_open(dir);
    in_dir(whole, dir, "whole.safetensors");
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "2", "--threads", "1", "--save", whole,
        NULL);
    expect_ok(&r, "train");
    run_free(&r);
    for (size_t v = 0; v < 2; v++) {
        char what[96];
        in_dir(part, dir, "part.safetensors");
        run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", stops[v][0], "--steps", stops[v][1],
            "--threads", "2", "--save", part, NULL);
        expect_ok(&r, "train, interrupted");
        run_free(&r);
        run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", part, "--threads", "3", "--save", part, NULL);
        expect_ok(&r, "train --resume");
        if (!strstr(r.out, "784-256-256-10 classifier") || !strstr(r.out, "test accuracy"))
            test_failf("the resumed run is not a classifier's: %s\n", r.out);
        run_free(&r);
        snprintf(what, sizeof what, "stopped by --epochs %s --steps %s and resumed", stops[v][0], stops[v][1]);
        expect_same_file(whole, part, what);
    }
    remove_tree(dir);
}

/* The VAE's commands refuse a classifier checkpoint with status 2 and one line naming both kinds, writing
 * nothing; eval --iw refuses it naming --iw; a VAE option with --model classifier, an unknown --model, and
 * --model with --resume are refused in one line before any training. */
static void test_vae_only_refused(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    in_dir(ckpt, dir, "clf.safetensors");
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", "synthetic:300", "--epochs", "1", "--save", ckpt, NULL);
    expect_ok(&r, "train");
    run_free(&r);
    static const char *const vae_cmds[] = {"sample", "reconstruct", "interpolate", "latent-map", "anomaly"};
    for (size_t i = 0; i < sizeof vae_cmds / sizeof vae_cmds[0]; i++) {
        in_dir(out, dir, "out.png");
        run(&r, vae_cmds[i], "--load", ckpt, "--data", "synthetic:300", "--output", out, NULL);
        expect_error(&r, 2, "'classifier' is not a vae checkpoint", vae_cmds[i]);
        run_free(&r);
    }
    expect_entries(dir, 1); /* nothing written beside the checkpoint */
    run(&r, "eval", "--load", ckpt, "--data", "synthetic:300", "--iw", "5", NULL);
    expect_error(&r, 2, "--iw", "classifier");
    run_free(&r);

    static const char *const vae_opts[][2] = {
        {"--latent", "5"}, {"--recon", "bce"}, {"--beta", "2"}, {"--sigma0", "0.5"}, {"--decoder-hidden", "20"},
    };
    for (size_t i = 0; i < sizeof vae_opts / sizeof vae_opts[0]; i++)
        expect_usage_error(vae_opts[i][0], "classifier", "train", "--model", "classifier", vae_opts[i][0],
                           vae_opts[i][1], "--data", "synthetic:300", NULL);
    expect_usage_error("--model", "'foo'", "train", "--model", "foo", "--data", "synthetic:300", NULL);
    expect_usage_error("--model", "--resume", "train", "--model", "vae", "--resume", ckpt, "--data", "synthetic:300",
                       NULL);
    remove_tree(dir);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_json_and_eval),
        cmocka_unit_test(test_info_names_classifier),
        cmocka_unit_test(test_thread_count_bitwise),
        cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_vae_only_refused),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
