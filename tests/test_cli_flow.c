/* The flow through the elbo command: `train --model flow --json` reports per epoch train_bits_per_dim,
 * test_bits_per_dim and samples_per_s; 1 and 2 threads write byte-identical checkpoints and --resume continues a
 * flow bitwise; `eval --load` reports the test bits/dim the last epoch reported (and --samples K a bound no looser),
 * `sample` writes a PNG grid and an IDX file (--temperature), `info` names the flow; bad input is refused with exit
 * 2 and one stderr line: --couplings 0, an unknown --mask, flow options with another model, a GAN checkpoint where a
 * flow's --samples or --temperature is asked for, --temperature on a GAN. Divergence (a checkpoint whose scales
 * overflow exp) stops --resume at its first step: exit 3, one line, the --save target not written.
 *
 * Runs build/elbo from the repository root on synthetic data (synthetic:N: N train and (N + 5) / 6 test images of
 * 28 x 28 pixels), with a small flow (2 couplings of 32-32) to keep it quick. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>

#include "checkpoint.h"
#include "flow.h"
#include "kernels.h"
#include "optim.h"

#define DATA "synthetic:300"

/* Fails unless the run exited 0 with nothing on stderr but, for train, the one line describing the run. */
static void expect_ok(const run_result *r, const char *what)
{
    int description = count_lines(r->err) == 1 && !strncmp(r->err, "elbo train: ", 12);
    if (r->status != 0 || (r->err[0] && !description))
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* Trains the small flow on threads for 2 epochs (stopping after `steps` when not NULL) into path. */
static void train_small(const char *path, const char *threads, const char *steps)
{
    run_result r;
    const char *args[] = {"train", "--model", "flow", "--data", DATA, "--epochs", "2", "--batch", "64", "--hidden",
                          "32,32", "--couplings", "2", "--threads", threads, "--save", path,
                          steps ? "--steps" : NULL, steps, NULL};
    run_argv(&r, args);
    expect_ok(&r, "train --model flow");
    run_free(&r);
}

/* Two epochs with --json: one object per epoch naming the flow, with train and test bits/dim in (0, 16) and
 * samples_per_s > 0; eval --load gives the last epoch's test bits/dim, and --samples 4 a bound no looser. */
static void test_train_json_and_eval(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "flow", "--data", DATA, "--epochs", "2", "--batch", "64", "--hidden", "32,32",
        "--couplings", "2", "--json", "--save", in_dir(ckpt, dir, "f.safetensors"), NULL);
    expect_ok(&r, "train --model flow --json");
    size_t n = 0;
    double last_test = 0;
    for (const char *line = r.out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line != '{')
            continue;
        cJSON *j = cJSON_Parse(line);
        if (!j)
            test_failf("not JSON: %s\n", line);
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsString(model) || strcmp(model->valuestring, "flow"))
            test_failf("epoch %zu: \"model\" is not \"flow\"\n", n + 1);
        double trb = num(j, "train_bits_per_dim"), teb = num(j, "test_bits_per_dim");
        if (!(trb > 0 && trb < 16 && teb > 0 && teb < 16 && num(j, "samples_per_s") > 0))
            test_failf("epoch %zu: train %g test %g bits/dim\n", n + 1, trb, teb);
        printf("  epoch %zu: train %.4f test %.4f bits/dim\n", n + 1, trb, teb);
        last_test = teb;
        cJSON_Delete(j);
        n++;
    }
    if (n != 2)
        test_failf("%zu JSON lines, expected one per epoch (2):\n%s\n", n, r.out);
    run_free(&r);
    run(&r, "eval", "--load", ckpt, "--data", DATA, "--json", NULL);
    cJSON *j = cJSON_Parse(r.out);
    if (r.status != 0 || !j)
        test_failf("eval --load flow: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    double one = num(j, "test_bits_per_dim");
    cJSON_Delete(j);
    run_free(&r);
    if (fabs(one - last_test) > 1e-9 * last_test)
        test_failf("eval's test bits/dim %.10g differ from the last epoch's %.10g\n", one, last_test);
    run(&r, "eval", "--load", ckpt, "--data", DATA, "--samples", "4", "--json", NULL);
    j = cJSON_Parse(r.out);
    if (r.status != 0 || !j)
        test_failf("eval --samples 4: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    double four = num(j, "test_bits_per_dim");
    cJSON_Delete(j);
    run_free(&r);
    printf("  eval: %.4f bits/dim (one draw), %.4f (log-mean-exp of 4)\n", one, four);
    if (!(four <= one + 1e-3))
        test_failf("--samples 4 gives %.6f bits/dim, looser than one draw's %.6f\n", four, one);
    remove_tree(dir);
}

/* 1 and 2 threads write byte-identical checkpoints after 2 epochs; a run stopped mid-epoch 2 by --steps and resumed
 * on another thread count ends with the same bytes. */
static void test_threads_and_resume_bitwise(void **state)
{
    (void)state;
    char dir[MAX_PATH], one[2 * MAX_PATH], two[2 * MAX_PATH], part[2 * MAX_PATH];
    scratch_open(dir);
    train_small(in_dir(one, dir, "one.safetensors"), "1", NULL);
    train_small(in_dir(two, dir, "two.safetensors"), "2", NULL);
    expect_same_file(one, two, "1 vs 2 threads");
    train_small(in_dir(part, dir, "part.safetensors"), "2", "7");
    run_result r;
    run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", part, "--threads", "1", "--save", part, NULL);
    expect_ok(&r, "train --resume");
    if (!strstr(r.out, "bits/dim"))
        test_failf("the resumed run is not a flow's: %s\n", r.out);
    run_free(&r);
    expect_same_file(one, part, "stopped by --steps 7 and resumed");
    remove_tree(dir);
}

/* sample writes a PNG grid and an IDX file of 28 x 28 images (--temperature 0.7 changes them), info names the flow,
 * eval --classifier --load scores its samples (FD and coverage). */
static void test_sample_and_info(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], png[2 * MAX_PATH], idx[2 * MAX_PATH], cold[2 * MAX_PATH];
    char clf[2 * MAX_PATH];
    scratch_open(dir);
    train_small(in_dir(ckpt, dir, "f.safetensors"), "2", NULL);
    run_result r;
    run(&r, "sample", "--load", ckpt, "--output", in_dir(png, dir, "f.png"), NULL);
    if (r.status != 0 || r.err[0] || !strstr(r.out, "8 x 8 samples"))
        test_failf("sample png: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    run(&r, "sample", "--load", ckpt, "--count", "50", "--format", "idx", "--output", in_dir(idx, dir, "f.idx"), NULL);
    if (r.status != 0 || r.err[0] || !strstr(r.out, "50 samples from N(0, I), 28x28 pixels"))
        test_failf("sample idx: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    run(&r, "sample", "--load", ckpt, "--count", "50", "--format", "idx", "--temperature", "0.7", "--output",
        in_dir(cold, dir, "cold.idx"), NULL);
    if (r.status != 0)
        test_failf("sample --temperature 0.7: status %d, stderr \"%s\"\n", r.status, r.err);
    run_free(&r);
    size_t la, lb;
    unsigned char *a = slurp(idx, &la), *b = slurp(cold, &lb);
    assert_int_equal(la, 16 + 50 * 784);
    assert_int_equal(lb, la);
    if (!memcmp(a, b, la))
        test_failf("--temperature 0.7 left the samples unchanged\n");
    free(a);
    free(b);
    run(&r, "info", "--load", ckpt, NULL);
    if (r.status != 0 || !strstr(r.out, "flow 2 couplings (checkerboard) of 784-32-32-1568") ||
        !strstr(r.out, "images 28x28, 2 couplings, mask checkerboard"))
        test_failf("info --load: status %d:\n%s\n", r.status, r.out);
    run_free(&r);
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "1", "--hidden", "16", "--save",
        in_dir(clf, dir, "clf.safetensors"), NULL);
    expect_ok(&r, "train classifier");
    run_free(&r);
    run(&r, "eval", "--classifier", clf, "--load", ckpt, "--count", "100", "--data", DATA, "--json", NULL);
    if (r.status != 0 || !strstr(r.out, "\"fd\":") || !strstr(r.out, "\"images\":100"))
        test_failf("eval --classifier --load flow: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    remove_tree(dir);
}

/* Bad input: exit 2, one stderr line, nothing written. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char dir[MAX_PATH], gan[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "1", "--hidden", "16", "--d-hidden", "16",
        "--save", in_dir(gan, dir, "gan.safetensors"), NULL);
    expect_ok(&r, "train gan");
    run_free(&r);
    run(&r, "eval", "--load", gan, "--samples", "4", "--data", DATA, NULL);
    expect_error(&r, 2, "--samples", "is not a flow");
    run_free(&r);
    run(&r, "sample", "--load", gan, "--temperature", "0.5", "--output", in_dir(out, dir, "out.png"), NULL);
    expect_error(&r, 2, "--temperature", "only a flow's samples");
    run_free(&r);
    expect_entries(dir, 1);
    expect_usage_error("--couplings: 0 is not in 1..10", NULL, "train", "--model", "flow", "--couplings", "0",
                       "--data", DATA, NULL);
    expect_usage_error("--mask", "'stripes' is not checkerboard or half", "train", "--model", "flow", "--mask",
                       "stripes", "--data", DATA, NULL);
    expect_usage_error("--couplings", "flow option", "train", "--model", "vae", "--couplings", "4", "--data", DATA,
                       NULL);
    remove_tree(dir);
}

/* Writes the flow checkpoint src to dst with its optimizer state and every couplings.0.scale at 1e30: s = 1e30
 * tanh(raw) overflows exp to inf (or underflows it to 0), and z, then the loss, becomes infinite or NaN. */
static void write_overflowing(const char *src, const char *dst)
{
    char err[512];
    elbo_flow m;
    elbo_train_state st;
    elbo_optimizer opt;
    if (elbo_flow_load(src, &m, elbo_kernels_select(), &st, err, sizeof err))
        test_failf("%s\n", err);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, st.lr);
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    if (elbo_checkpoint_load_optimizer(src, &m.layout, &opt, err, sizeof err))
        test_failf("%s\n", err);
    const elbo_tensor_view *s = elbo_param_layout_find(&m.layout, "couplings.0.scale");
    assert_non_null(s);
    for (size_t i = 0; i < elbo_tensor_view_size(s); i++)
        m.params[s->offset + i] = 1e30f;
    elbo_model mm = elbo_flow_model(&m);
    if (elbo_checkpoint_write(dst, &mm, &st, &opt, err, sizeof err))
        test_failf("%s\n", err);
    elbo_optimizer_free(&opt);
    elbo_flow_free(&m);
}

/* A flow whose scales overflow: --resume stops at its first step with exit 3 and one line naming the step and a
 * lower --lr; the --save target is not written. */
static void test_divergence(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], bad[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    train_small(in_dir(ckpt, dir, "f.safetensors"), "2", "3");
    write_overflowing(ckpt, in_dir(bad, dir, "bad.safetensors"));
    run_result r;
    run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", bad, "--save", in_dir(out, dir, "out.safetensors"),
        NULL);
    print_message("    [%d] %s", r.status, r.err);
    const char *last = r.err;
    for (const char *p = strchr(r.err, '\n'); p && p[1]; p = strchr(p + 1, '\n'))
        last = p + 1;
    if (r.status != 3 || !strstr(last, "step 4:") || !strstr(last, "lower --lr"))
        test_failf("divergence: status %d, stderr \"%s\"\n", r.status, r.err);
    run_free(&r);
    expect_entries(dir, 2);
    remove_tree(dir);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_json_and_eval),
        cmocka_unit_test(test_threads_and_resume_bitwise),
        cmocka_unit_test(test_sample_and_info),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_divergence),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
