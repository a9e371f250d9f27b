/* The GAN through the elbo command: `train --model gan --json` reports per epoch d_loss, g_loss, d_real, d_fake and
 * samples_per_s (no test metrics of the VAE); 1 and 2 threads write byte-identical checkpoints, and --resume
 * continues a GAN bitwise; `sample` (PNG and IDX, without --data: the checkpoint holds the image shape), `info` and
 * `eval --classifier --load` read GAN checkpoints; the VAE's commands refuse a GAN checkpoint, sample refuses a
 * classifier's, and GAN options with another model, --target with the GAN, are refused: exit 2, one stderr line,
 * nothing written. Divergence in either network stops the run at that step: exit 3, one line naming the step and
 * the phase, no checkpoint written over the last good one.
 *
 * Runs build/elbo (next to this test's directory) from the repository root, on synthetic data (synthetic:N has N
 * train and (N + 5) / 6 test images of 28 x 28 pixels in 10 shape classes). */
#include "test_cli_run.h"

#include <cjson/cJSON.h>

#include "checkpoint.h"
#include "gan.h"
#include "kernels.h"
#include "optim.h"

#define DATA "synthetic:600"

/* Fails unless the run exited 0 with nothing on stderr but, for train --json, the one line describing the run. */
static void expect_ok(const run_result *r, const char *what)
{
    int description = count_lines(r->err) == 1 && !strncmp(r->err, "elbo train: ", 12);
    if (r->status != 0 || (r->err[0] && !description))
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* Two epochs: one JSON object per epoch naming the GAN, with finite positive D and G losses, D(x) and D(G(z)) in
 * (0, 1), samples_per_s > 0, and no test metrics of the VAE. */
static void test_train_json(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--batch", "64", "--json", "--save",
        in_dir(ckpt, dir, "gan.safetensors"), NULL);
    expect_ok(&r, "train --model gan --json");
    size_t n = 0;
    for (const char *line = r.out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line != '{')
            continue;
        cJSON *j = cJSON_Parse(line);
        if (!j)
            test_failf("not JSON: %s\n", line);
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsString(model) || strcmp(model->valuestring, "gan"))
            test_failf("epoch %zu: \"model\" is not \"gan\"\n", n + 1);
        double dl = num(j, "d_loss"), gl = num(j, "g_loss"), dr = num(j, "d_real"), df = num(j, "d_fake");
        if (!(dl > 0 && isfinite(dl) && gl > 0 && isfinite(gl) && dr > 0 && dr < 1 && df > 0 && df < 1 &&
              num(j, "samples_per_s") > 0))
            test_failf("epoch %zu: d_loss %g g_loss %g d_real %g d_fake %g\n", n + 1, dl, gl, dr, df);
        if (cJSON_GetObjectItemCaseSensitive(j, "test_neg_elbo"))
            test_failf("a GAN's JSON reports test_neg_elbo\n");
        printf("  epoch %zu: D loss %.4f G loss %.4f D(x) %.3f D(G(z)) %.3f\n", n + 1, dl, gl, dr, df);
        cJSON_Delete(j);
        n++;
    }
    if (n != 2)
        test_failf("%zu JSON lines, expected one per epoch (2):\n%s\n", n, r.out);
    run_free(&r);
    remove_tree(dir);
}

/* 1 and 2 threads write byte-identical checkpoints after 2 epochs; a run stopped mid-epoch 2 by --steps and resumed
 * on another thread count ends with the same bytes. */
static void test_threads_and_resume_bitwise(void **state)
{
    (void)state;
    char dir[MAX_PATH], one[2 * MAX_PATH], two[2 * MAX_PATH], part[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--batch", "64", "--threads", "1", "--save",
        in_dir(one, dir, "one.safetensors"), NULL);
    expect_ok(&r, "train 1 thread");
    run_free(&r);
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--batch", "64", "--threads", "2", "--save",
        in_dir(two, dir, "two.safetensors"), NULL);
    expect_ok(&r, "train 2 threads");
    run_free(&r);
    expect_same_file(one, two, "1 vs 2 threads");
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--steps", "13", "--batch", "64", "--threads",
        "2", "--save", in_dir(part, dir, "part.safetensors"), NULL);
    expect_ok(&r, "train, interrupted");
    run_free(&r);
    run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", part, "--threads", "1", "--save", part, NULL);
    expect_ok(&r, "train --resume");
    if (!strstr(r.out, "GAN G 64-256-512-784") || !strstr(r.out, "D(G(z))"))
        test_failf("the resumed run is not a GAN's: %s\n", r.out);
    run_free(&r);
    expect_same_file(one, part, "stopped by --steps 13 and resumed");
    remove_tree(dir);
}

/* sample writes a PNG grid and an IDX file of a GAN checkpoint without --data (the IDX of 28 x 28 images);
 * info names the GAN; eval --classifier --load scores its samples. */
static void test_sample_info_eval(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], clf[2 * MAX_PATH], png[2 * MAX_PATH], idx[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "1", "--save", in_dir(ckpt, dir, "g.safetensors"),
        NULL);
    expect_ok(&r, "train");
    run_free(&r);
    run(&r, "sample", "--load", ckpt, "--output", in_dir(png, dir, "g.png"), "--data", "/nonexistent", NULL);
    if (r.status != 0 || r.err[0] || !strstr(r.out, "8 x 8 samples"))
        test_failf("sample png: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    run(&r, "sample", "--load", ckpt, "--count", "100", "--format", "idx", "--output", in_dir(idx, dir, "g.idx"),
        NULL);
    if (r.status != 0 || r.err[0] || !strstr(r.out, "100 samples from N(0, I), 28x28 pixels"))
        test_failf("sample idx: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    size_t len;
    free(slurp(idx, &len));
    assert_int_equal(len, 16 + 100 * 784);
    run(&r, "info", "--load", ckpt, NULL);
    if (r.status != 0 ||
        !strstr(r.out, "GAN G 64-256-512-784, D 784-512-256-1 (spectral norm) (1083921 parameters)") ||
        !strstr(r.out, "images 28x28, latent 64"))
        test_failf("info --load: status %d:\n%s\n", r.status, r.out);
    run_free(&r);
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "1", "--hidden", "64", "--save",
        in_dir(clf, dir, "clf.safetensors"), NULL);
    expect_ok(&r, "train classifier");
    run_free(&r);
    run(&r, "eval", "--classifier", clf, "--load", ckpt, "--count", "200", "--data", DATA, "--json", NULL);
    if (r.status != 0 || !strstr(r.out, "\"fd\":") || !strstr(r.out, "\"images\":200"))
        test_failf("eval --classifier --load gan: status %d, stdout \"%s\", stderr \"%s\"\n", r.status, r.out, r.err);
    run_free(&r);
    remove_tree(dir);
}

/* The VAE's commands refuse a GAN checkpoint, and sample a classifier's, with status 2 and one line naming the
 * kinds, writing nothing; GAN options with --model vae, VAE options with --model gan and --target with the GAN are
 * refused in one line before any training. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], clf[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    run_result r;
    run(&r, "train", "--model", "gan", "--data", "synthetic:300", "--epochs", "1", "--hidden", "16", "--d-hidden",
        "16", "--save", in_dir(ckpt, dir, "gan.safetensors"), NULL);
    expect_ok(&r, "train gan");
    run_free(&r);
    run(&r, "train", "--model", "classifier", "--data", "synthetic:300", "--epochs", "1", "--hidden", "16", "--save",
        in_dir(clf, dir, "clf.safetensors"), NULL);
    expect_ok(&r, "train classifier");
    run_free(&r);
    static const char *const vae_cmds[] = {"reconstruct", "interpolate", "latent-map", "anomaly"};
    for (size_t i = 0; i < sizeof vae_cmds / sizeof vae_cmds[0]; i++) {
        run(&r, vae_cmds[i], "--load", ckpt, "--data", "synthetic:300", "--output", in_dir(out, dir, "out.png"),
            NULL);
        expect_error(&r, 2, "'gan' is not a vae checkpoint", vae_cmds[i]);
        run_free(&r);
    }
    run(&r, "eval", "--load", ckpt, "--data", "synthetic:300", NULL);
    expect_error(&r, 2, "'gan' is not a vae checkpoint", "eval");
    run_free(&r);
    run(&r, "sample", "--load", clf, "--output", in_dir(out, dir, "out.png"), "--data", "synthetic:300", NULL);
    expect_error(&r, 2, "'classifier' is not a vae checkpoint or a gan checkpoint", "sample");
    run_free(&r);
    expect_entries(dir, 2); /* nothing written beside the checkpoints */
    expect_usage_error("--adam-beta1", "GAN option", "train", "--model", "vae", "--adam-beta1", "0.5", "--data",
                       "synthetic:300", NULL);
    expect_usage_error("--recon", "VAE option", "train", "--model", "gan", "--recon", "bce", "--data",
                       "synthetic:300", NULL);
    expect_usage_error("--target", "gan", "train", "--model", "gan", "--target", "5", "--data", "synthetic:300",
                       NULL);
    expect_usage_error("--adam-beta1", "--resume", "train", "--resume", ckpt, "--adam-beta1", "0.6", "--data",
                       "synthetic:300", NULL);
    remove_tree(dir);
}

/* Sets every element of tensor name of m to v, or to +v and -v alternately when alternate. */
static void set_tensor(elbo_gan *m, const char *name, float v, int alternate)
{
    const elbo_tensor_view *t = elbo_param_layout_find(&m->layout, name);
    if (!t)
        test_failf("no tensor %s\n", name);
    for (size_t i = 0; i < elbo_tensor_view_size(t); i++)
        m->params[t->offset + i] = alternate && (i & 1) ? -v : v;
}

/* Writes the GAN checkpoint src, its parameters edited by edit, to dst with its optimizer state. */
static void write_edited(const char *src, const char *dst, void (*edit)(elbo_gan *m))
{
    char err[512];
    elbo_gan m;
    elbo_train_state st;
    elbo_optimizer opt;
    if (elbo_gan_load(src, &m, elbo_kernels_select(), &st, err, sizeof err))
        test_failf("%s\n", err);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, st.lr);
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    if (elbo_checkpoint_load_optimizer(src, &m.layout, &opt, err, sizeof err))
        test_failf("%s\n", err);
    edit(&m);
    elbo_model mm = elbo_gan_model(&m);
    if (elbo_checkpoint_write(dst, &mm, &st, &opt, err, sizeof err))
        test_failf("%s\n", err);
    elbo_optimizer_free(&opt);
    elbo_gan_free(&m);
}

/* G's first layer at 3e38 overflows its hidden units to +-inf (a row's z summing beyond +-1.2), and its output
 * layer at +-1e20 alternately sums inf - inf: G(z) is NaN. */
static void edit_g_overflow(elbo_gan *m)
{
    set_tensor(m, "generator.0.weight", 3e38f, 0);
    set_tensor(m, "generator.2.weight", 1e20f, 1);
}

/* D's first layer at 3e38 overflows its hidden units to inf (any image of more than ~1.2 in pixel sum), its
 * second at +-1e20 alternately sums inf - inf: D's logits are NaN on real and generated images alike. */
static void edit_d_overflow(elbo_gan *m)
{
    set_tensor(m, "discriminator.0.weight", 3e38f, 0);
    set_tensor(m, "discriminator.2.weight", 1e20f, 1);
}

/* D's last layer at 1e38 over a zero middle layer: the D step's loss and its layers' output gradients stay finite
 * (the logit is the bias; the middle layer's output gradient ~1e36), but the middle layer's weight gradient, a
 * sum of ~1e36 x ~400 over the rows, overflows, Adam makes those weights NaN, and the G step's forward through
 * the updated D is NaN. */
static void edit_d_update_overflow(elbo_gan *m)
{
    set_tensor(m, "discriminator.0.weight", 1.0f, 0);
    set_tensor(m, "discriminator.2.weight", 0.0f, 0);
    set_tensor(m, "discriminator.2.bias", 0.0f, 0);
    set_tensor(m, "discriminator.4.weight", 1e38f, 0);
}

/* Divergence, of the plain recipe (--spectral-norm 0: a spectrally normalized D keeps D(G(z)) finite at --lr 1e6):
 * --lr 1e6 blows G's parameters up in Adam at step 1, and step 2's D step stops the run (D(G(z)) is NaN); a
 * checkpoint whose G, or D, overflows to NaN stops --resume at its first step's D step; one whose D update overflows
 * stops it at the G step. Each: exit 3, one stderr line naming the step, the phase and a lower --lr, and
 * the --save target untouched (not written). Catches: a phase's non-finite loss not stopping the run or reported
 * with status 0, 1 or 2, the message naming the wrong step or phase, a NaN checkpoint written. */
static void test_divergence(void **state)
{
    (void)state;
    char dir[MAX_PATH], good[2 * MAX_PATH], bad[2 * MAX_PATH], out[2 * MAX_PATH];
    scratch_open(dir);
    in_dir(out, dir, "out.safetensors");
    run_result r;
    run(&r, "train", "--model", "gan", "--data", "synthetic:600", "--batch", "32", "--lr", "1e6", "--threads", "1",
        "--epochs", "3", "--spectral-norm", "0", "--save", out, NULL);
    expect_error(&r, 3, "step 2: the discriminator step's loss became NaN", "d_fake nan); try a lower --lr");
    run_free(&r);
    expect_entries(dir, 0);
    run(&r, "train", "--model", "gan", "--data", "synthetic:300", "--epochs", "1", "--batch", "32", "--hidden", "16",
        "--d-hidden", "16,16", "--spectral-norm", "0", "--save", in_dir(good, dir, "good.safetensors"), NULL);
    expect_ok(&r, "train gan");
    run_free(&r);
    static const struct {
        void (*edit)(elbo_gan *m);
        const char *a, *b;
    } cases[] = {
        {edit_g_overflow, "step 11: the discriminator step's loss became NaN", "d_fake nan"},
        {edit_d_overflow, "step 11: the discriminator step's loss became NaN", "d_real nan"},
        {edit_d_update_overflow, "step 11: the generator step's loss became NaN", "try a lower --lr"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_edited(good, in_dir(bad, dir, "bad.safetensors"), cases[i].edit);
        run(&r, "train", "--data", "synthetic:300", "--epochs", "2", "--resume", bad, "--save", out, NULL);
        expect_error(&r, 3, cases[i].a, cases[i].b);
        run_free(&r);
        expect_entries(dir, 2); /* good and bad: out was not written */
    }
    remove_tree(dir);
}

/* 1 when files a and b hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* Trains a small GAN on DATA for 2 epochs with the NULL-terminated extra flags into dir/name; returns its path in
 * buf. */
static const char *train_small(char *buf, const char *dir, const char *name, const char *f1, const char *f2,
                               const char *f3, const char *f4)
{
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--batch", "64", "--hidden", "32",
        "--d-hidden", "32,16", "--save", in_dir(buf, dir, name), f1, f2, f3, f4, NULL);
    expect_ok(&r, name);
    run_free(&r);
    return buf;
}

/* --real-label and --d-lr-scale: each changes the trained checkpoint (an option ignored would not), both are kept
 * in the checkpoint so that a run stopped by --steps and resumed is byte-identical to the uninterrupted one (a
 * resume that forgot either would drift), and a real label of 0.5 is refused in one line (exit 2). */
static void test_recipe_options(void **state)
{
    (void)state;
    char dir[MAX_PATH], plain[2 * MAX_PATH], smooth[2 * MAX_PATH], scaled[2 * MAX_PATH], both[2 * MAX_PATH],
        part[2 * MAX_PATH];
    scratch_open(dir);
    train_small(plain, dir, "plain.safetensors", NULL, NULL, NULL, NULL);
    train_small(smooth, dir, "smooth.safetensors", "--real-label", "0.9", NULL, NULL);
    train_small(scaled, dir, "scaled.safetensors", "--d-lr-scale", "0.5", NULL, NULL);
    train_small(both, dir, "both.safetensors", "--real-label", "0.9", "--d-lr-scale", "0.5");
    if (same_file(plain, smooth) || same_file(plain, scaled) || same_file(smooth, both) || same_file(scaled, both))
        test_failf("--real-label 0.9 or --d-lr-scale 0.5 left the checkpoint unchanged\n");
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--steps", "7", "--batch", "64", "--hidden",
        "32", "--d-hidden", "32,16", "--real-label", "0.9", "--d-lr-scale", "0.5", "--save",
        in_dir(part, dir, "part.safetensors"), NULL);
    expect_ok(&r, "train, interrupted");
    run_free(&r);
    run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", part, "--save", part, NULL);
    expect_ok(&r, "train --resume");
    run_free(&r);
    expect_same_file(both, part, "--real-label 0.9 --d-lr-scale 0.5 stopped by --steps 7 and resumed");
    expect_usage_error("real_label: 0.5 is not in (0.5, 1]", NULL, "train", "--model", "gan", "--real-label", "0.5",
                       "--data", DATA, NULL);
    remove_tree(dir);
}

/* --d-steps and --spectral-norm: --d-steps 2 and --spectral-norm 0 each change the trained checkpoint; --d-steps 2 is
 * kept in the checkpoint with the spectral norm's u and v, so that a run stopped by --steps 7 (after a D step whose
 * G step is still to come) and resumed is byte-identical to the uninterrupted one; --d-steps 0 is refused in one
 * line (exit 2). */
static void test_d_steps_and_spectral_norm(void **state)
{
    (void)state;
    char dir[MAX_PATH], plain[2 * MAX_PATH], two[2 * MAX_PATH], no_sn[2 * MAX_PATH], part[2 * MAX_PATH];
    scratch_open(dir);
    train_small(plain, dir, "plain.safetensors", NULL, NULL, NULL, NULL);
    train_small(two, dir, "two.safetensors", "--d-steps", "2", NULL, NULL);
    train_small(no_sn, dir, "no_sn.safetensors", "--spectral-norm", "0", NULL, NULL);
    if (same_file(plain, two) || same_file(plain, no_sn))
        test_failf("--d-steps 2 or --spectral-norm 0 left the checkpoint unchanged\n");
    run_result r;
    run(&r, "train", "--model", "gan", "--data", DATA, "--epochs", "2", "--steps", "7", "--batch", "64", "--hidden",
        "32", "--d-hidden", "32,16", "--d-steps", "2", "--save", in_dir(part, dir, "part.safetensors"), NULL);
    expect_ok(&r, "train, interrupted");
    run_free(&r);
    run(&r, "train", "--data", DATA, "--epochs", "2", "--resume", part, "--save", part, NULL);
    expect_ok(&r, "train --resume");
    run_free(&r);
    expect_same_file(two, part, "--d-steps 2 stopped by --steps 7 and resumed");
    expect_usage_error("--d-steps", NULL, "train", "--model", "gan", "--d-steps", "0", "--data", DATA, NULL);
    remove_tree(dir);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_json),
        cmocka_unit_test(test_threads_and_resume_bitwise),
        cmocka_unit_test(test_sample_info_eval),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_recipe_options),
        cmocka_unit_test(test_d_steps_and_spectral_norm),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
