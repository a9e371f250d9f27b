/* The diffusion model through the elbo command: `train --model diffusion --json` reports per epoch train_loss,
 * test_loss and samples_per_s; 1 and 2 threads write byte-identical checkpoints (the moving average "ema.*"
 * included), and a run stopped by --steps and resumed ends with the same bytes; `sample` writes a PNG grid (DDPM
 * and DDIM), an IDX file, and the --trajectory strip, the same bytes on 1 and 2 threads; `eval` reports the bound in
 * bits/dim, the same on 1 and 2 threads, and --eval-steps above T is refused; `info` describes the model; eval --classifier scores its DDIM samples; bad flags (--schedule, --ema,
 * --hidden, --sampler on a VAE, diffusion flags with another model) are refused: exit 2, one stderr line.
 *
 * Runs build/elbo from the repository root on synthetic data (synthetic:300: 300 train and 50 test images of 28 x 28
 * pixels), with --hidden 64 so that each run takes well under a second. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>

#include "checkpoint.h"
#include "safetensors.h"

#define DATA "synthetic:300"

/* Fails unless the run exited 0 with nothing on stderr but, for train, the one line describing the run. */
static void expect_ok(const run_result *r, const char *what)
{
    int description = count_lines(r->err) == 1 && !strncmp(r->err, "elbo train: ", 12);
    if (r->status != 0 || (r->err[0] && !description))
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* Trains the small model for `epochs` epochs (steps 0: no limit) on threads threads into path (resume: from it). */
static void train(const char *path, const char *epochs, const char *steps, const char *threads, int resume)
{
    run_result r;
    if (resume)
        run(&r, "train", "--data", DATA, "--epochs", epochs, "--resume", path, "--threads", threads, "--save", path,
            NULL);
    else
        run(&r, "train", "--model", "diffusion", "--hidden", "64", "--data", DATA, "--epochs", epochs, "--steps",
            steps, "--batch", "64", "--threads", threads, "--save", path, NULL);
    expect_ok(&r, "train --model diffusion");
    run_free(&r);
}

/* Two epochs of --json: one object per epoch naming the model, finite train and test losses in (0, 2), samples/s;
 * the checkpoint holds the moving average of every parameter. */
static void test_train_json(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], err[256];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "diffusion", "--hidden", "64", "--schedule", "cosine", "--ema", "0.99", "--data", DATA,
        "--epochs", "2", "--batch", "64", "--json", "--save", in_dir(ckpt, dir, "d.safetensors"), NULL);
    expect_ok(&r, "train --json");
    size_t n = 0;
    for (const char *line = r.out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line != '{')
            continue;
        cJSON *j = cJSON_Parse(line);
        if (!j)
            test_failf("not JSON: %s\n", line);
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsString(model) || strcmp(model->valuestring, "diffusion"))
            test_failf("epoch %zu: \"model\" is not \"diffusion\"\n", n + 1);
        double tr = num(j, "train_loss"), te = num(j, "test_loss");
        if (!(tr > 0 && tr < 2 && te > 0 && te < 2 && num(j, "samples_per_s") > 0))
            test_failf("epoch %zu: train_loss %g test_loss %g\n", n + 1, tr, te);
        printf("  epoch %zu: train loss %.4f test loss %.4f\n", n + 1, tr, te);
        cJSON_Delete(j);
        n++;
    }
    if (n != 2)
        test_failf("%zu JSON lines, expected 2:\n%s\n", n, r.out);
    run_free(&r);
    elbo_st_file f;
    assert_int_equal(elbo_st_read(ckpt, &f, err, sizeof err), 0);
    if (!elbo_st_find(&f, "ema.blocks.2.w2.weight") || !elbo_st_find(&f, "ema.time.0.bias") ||
        strcmp(elbo_st_meta_get(&f, "schedule"), "cosine") || strcmp(elbo_st_meta_get(&f, "ema_decay"), "0.98999999999999999"))
        test_failf("the checkpoint lacks the moving average or the schedule or decay\n");
    elbo_st_free(&f);
    remove_tree(dir);
}

/* 1 and 2 threads write the same bytes after 2 epochs; a run stopped by --steps 7 on 2 threads and resumed on 1
 * ends with them too. */
static void test_threads_and_resume_bitwise(void **state)
{
    (void)state;
    char dir[MAX_PATH], one[2 * MAX_PATH], two[2 * MAX_PATH], part[2 * MAX_PATH];
    scratch_open(dir);
    train(in_dir(one, dir, "one.safetensors"), "2", "0", "1", 0);
    train(in_dir(two, dir, "two.safetensors"), "2", "0", "2", 0);
    expect_same_file(one, two, "1 vs 2 threads");
    train(in_dir(part, dir, "part.safetensors"), "2", "7", "2", 0);
    train(part, "2", "0", "1", 1);
    expect_same_file(one, part, "stopped by --steps 7 and resumed");
    remove_tree(dir);
}

/* sample: DDPM and DDIM PNGs, an IDX file and a trajectory, each the same bytes on 1 and 2 threads; eval: the bound
 * in bits/dim, finite, the same on 1 and 2 threads. */
static void test_sample_and_eval(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], a[2 * MAX_PATH], b[2 * MAX_PATH];
    scratch_open(dir);
    train(in_dir(ckpt, dir, "d.safetensors"), "1", "0", "2", 0);
    static const char *const modes[][7] = {
        {"--sampler", "ddpm", "-n", "2", NULL},
        {"--sampler", "ddim", "--sample-steps", "9", NULL},
        {"--sampler", "ddim", "-n", "5", "--format", "idx", NULL},
        {"--trajectory", "--sampler", "ddim", "--sample-steps", "12", "-n", NULL},
    };
    for (size_t m = 0; m < 4; m++) {
        const char *thr[] = {"1", "2"};
        char *out[] = {a, b};
        for (size_t t = 0; t < 2; t++) {
            run_result r;
            char name[32];
            snprintf(name, sizeof name, "s%zu-%s", m, thr[t]);
            const char *args[MAX_ARGS + 1] = {"sample", "--load", ckpt, "--threads", thr[t], "-o",
                                              in_dir(out[t], dir, name)};
            size_t n = 7;
            for (size_t q = 0; modes[m][q]; q++)
                args[n++] = modes[m][q];
            if (m == 3)
                args[n++] = "3";
            args[n] = NULL;
            run_argv(&r, args);
            if (r.status != 0 || r.err[0])
                test_failf("sample mode %zu: status %d, stderr %s\n", m, r.status, r.err);
            run_free(&r);
        }
        expect_same_file(a, b, "sample on 1 vs 2 threads");
    }
    double bpd[2];
    for (size_t t = 0; t < 2; t++) {
        run_result r;
        run(&r, "eval", "--load", ckpt, "--data", DATA, "--eval-steps", "7", "--threads", t ? "2" : "1", "--json",
            NULL);
        cJSON *j = cJSON_Parse(r.out);
        if (r.status != 0 || !j)
            test_failf("eval: status %d, stdout %s, stderr %s\n", r.status, r.out, r.err);
        bpd[t] = num(j, "test_bpd");
        if (!(bpd[t] > 0 && bpd[t] < 100) || num(j, "images") != 50)
            test_failf("eval: test_bpd %g over %g images\n", bpd[t], num(j, "images"));
        cJSON_Delete(j);
        run_free(&r);
    }
    if (memcmp(&bpd[0], &bpd[1], sizeof bpd[0]))
        test_failf("eval: %.17g bits/dim on 1 thread, %.17g on 2\n", bpd[0], bpd[1]);
    printf("  bound %.4f bits/dim (K = 7) on 1 and 2 threads\n", bpd[0]);
    char clf[2 * MAX_PATH];
    run_result rc;
    run(&rc, "train", "--model", "classifier", "--data", DATA, "--epochs", "1", "--hidden", "64", "--save",
        in_dir(clf, dir, "clf.safetensors"), NULL);
    expect_ok(&rc, "train classifier");
    run_free(&rc);
    run(&rc, "eval", "--classifier", clf, "--load", ckpt, "--count", "20", "--sample-steps", "5", "--data", DATA,
        "--json", NULL);
    if (rc.status != 0 || !strstr(rc.out, "\"fd\":") || !strstr(rc.out, "\"images\":20"))
        test_failf("eval --classifier --load diffusion: status %d, stdout %s, stderr %s\n", rc.status, rc.out, rc.err);
    run_free(&rc);
    run_result ri;
    run(&ri, "info", "--load", ckpt, NULL);
    if (ri.status != 0 || !strstr(ri.out, "diffusion 784-64x3-784, T 1000 linear") || !strstr(ri.out, "EMA decay"))
        test_failf("info: status %d, stdout %s\n", ri.status, ri.out);
    run_free(&ri);
    expect_usage_error("--eval-steps", "1000 steps", "eval", "--load", ckpt, "--data", DATA, "--eval-steps", "1001",
                       NULL);
    expect_usage_error("--sampler", "'foo' is not ddpm or ddim", "sample", "--load", ckpt, "--sampler", "foo", "-o",
                       in_dir(a, dir, "x.png"), NULL);
    remove_tree(dir);
}

/* Bad flags: exit 2, one line naming the flag, nothing trained. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char dir[MAX_PATH], vae[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    expect_usage_error("--schedule", "'quadratic' is not linear or cosine", "train", "--model", "diffusion",
                       "--schedule", "quadratic", "--data", DATA, NULL);
    expect_usage_error("--ema", NULL, "train", "--model", "diffusion", "--ema", "1", "--data", DATA, NULL);
    expect_usage_error("--hidden", "not one width", "train", "--model", "diffusion", "--hidden", "64,64", "--data",
                       DATA, NULL);
    expect_usage_error("--schedule", "diffusion option", "train", "--model", "vae", "--schedule", "cosine", "--data",
                       DATA, NULL);
    run_result r;
    run(&r, "train", "--data", DATA, "--epochs", "1", "--save", in_dir(vae, dir, "v.safetensors"), NULL);
    run_free(&r);
    expect_usage_error("--sampler", "a diffusion option", "sample", "--load", vae, "--data", DATA, "--sampler", "ddim",
                       "-o", in_dir(out, dir, "v.png"), NULL);
    expect_usage_error("--trajectory", "diffusion", "sample", "--load", vae, "--data", DATA, "--trajectory", "-o",
                       in_dir(out, dir, "v.png"), NULL);
    remove_tree(dir);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_json),
        cmocka_unit_test(test_threads_and_resume_bitwise),
        cmocka_unit_test(test_sample_and_eval),
        cmocka_unit_test(test_bad_inputs),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
