/* End-to-end training through the `elbo` command: one epoch on Fashion-MNIST against PyTorch trained
 * inside the test, the importance-weighted bound against PyTorch's, reproducibility for a seed, the last
 * partial batch, --steps, and learning on synthetic data. */
#include "test_scratch.h"

#include <cjson/cJSON.h>

#include "safetensors.h"
#include <string.h>
#include <unistd.h>

/* The command under test, from the repository root (the Makefile passes its build directory's). */
#ifndef ELBO_BIN
#define ELBO_BIN "build/elbo"
#endif
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SEEDS "1,2,3"
#define N_SEEDS 3
/* Our mean test -ELBO after one epoch must be within this fraction of PyTorch's mean. */
#define EPOCH_TOL 0.03

/* Runs cmd, returns its stdout (caller frees); fails the test if it exits non-zero. */
static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int status = pclose(p);
    if (status != 0)
        test_failf("command failed (status %d): %s\n", status, cmd);
    return buf;
}

/* The last JSON line of a --json run, parsed. */
static cJSON *last_json_line(char *out)
{
    char *line = NULL;
    for (char *s = strtok(out, "\n"); s; s = strtok(NULL, "\n"))
        if (s[0] == '{')
            line = s;
    assert_non_null(line);
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    return j;
}

/* A number field of a JSON object (fails if absent). */
static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        test_failf("JSON lacks number '%s'\n", key);
    return v->valuedouble;
}

/* Reads a whole file (caller frees) into *len. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len ? *len : 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* One epoch, batch 128, Adam 1e-3, MSE, 784-400-20: elbo's mean test -ELBO over three seeds vs PyTorch's. */
static void test_one_epoch_matches_pytorch(void **state)
{
    (void)state;
    char cmd[512];
    double ours = 0;
    const char *seeds[N_SEEDS] = {"1", "2", "3"};
    for (int i = 0; i < N_SEEDS; i++) {
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data " FMNIST_DIR " --epochs 1 --batch 128 --lr 1e-3 --json --seed %s",
                 seeds[i]);
        char *out = run_capture(cmd);
        cJSON *j = last_json_line(out);
        double v = num(j, "test_neg_elbo");
        printf("  elbo seed %s: test -ELBO %.4f (recon %.4f, KL %.4f), %.0f samples/s\n", seeds[i], v,
               num(j, "test_recon"), num(j, "test_kl"), num(j, "samples_per_s"));
        ours += v / N_SEEDS;
        cJSON_Delete(j);
        free(out);
    }
    char *out = run_capture("/usr/bin/python3 tests/parity/vae_torch.py train --data " FMNIST_DIR
                            " --epochs 1 --batch 128 --lr 1e-3 --seeds " SEEDS);
    cJSON *j = last_json_line(out);
    double torch_mean = num(j, "mean_test_neg_elbo");
    cJSON_Delete(j);
    free(out);
    double rel = fabs(ours - torch_mean) / torch_mean;
    printf("  mean test -ELBO: elbo %.4f, PyTorch %.4f (%+.2f%%)\n", ours, torch_mean, 100.0 * (ours - torch_mean) / torch_mean);
    if (!(rel <= EPOCH_TOL))
        test_failf("elbo's mean test -ELBO %.4f is %.2f%% from PyTorch's %.4f (tolerance %.0f%%)\n", ours, 100 * rel,
                   torch_mean, 100 * EPOCH_TOL);
}

/* Importance weighting against PyTorch: a model trained for 300 steps on Fashion-MNIST, the test set's mean
 * ELBO and IW bounds (K = 1, 10) from elbo eval --iw and from tests/parity/vae_torch.py iw, which computes
 * every density with torch.distributions in double precision and its own noise, agree within Monte Carlo
 * error (0.25 nats; the two differ by about 0.02 on a trained model). Catches: a likelihood normalized on one
 * side only, log p(z) - log q(z|x) with a wrong term, a missing log K. */
static void test_iw_matches_pytorch(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], cmd[8 * MAX_PATH];
    scratch_mkdtemp(dir, "elbo-iw");
    snprintf(ckpt, sizeof ckpt, "%s/m.safetensors", dir);
    snprintf(cmd, sizeof cmd, ELBO_BIN " train --data " FMNIST_DIR " --steps 300 --threads 1 --save %s --json", ckpt);
    free(run_capture(cmd));
    const char *ks[2] = {"1", "10"};
    double ours[2], ours_elbo = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, ELBO_BIN " eval --load %s --data " FMNIST_DIR " --iw %s --json", ckpt, ks[i]);
        char *out = run_capture(cmd);
        cJSON *j = last_json_line(out);
        ours[i] = num(j, "test_log_px_iw");
        ours_elbo = num(j, "test_elbo");
        cJSON_Delete(j);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/vae_torch.py iw %s --data " FMNIST_DIR " --k 1,10", ckpt);
    char *out = run_capture(cmd);
    cJSON *j = last_json_line(out);
    double t_elbo = num(j, "test_elbo"), t_iw[2] = {num(j, "iw_1"), num(j, "iw_10")};
    cJSON_Delete(j);
    free(out);
    printf("  ELBO: elbo %.4f, PyTorch %.4f; IW-1: %.4f, %.4f; IW-10: %.4f, %.4f\n", ours_elbo, t_elbo, ours[0],
           t_iw[0], ours[1], t_iw[1]);
    assert_true(fabs(ours_elbo - t_elbo) < 0.25);
    assert_true(fabs(ours[0] - t_iw[0]) < 0.25);
    assert_true(fabs(ours[1] - t_iw[1]) < 0.25);
    assert_true(ours[1] > ours_elbo + 0.1 && t_iw[1] > t_elbo + 0.1);
    remove_tree(dir);
}

/* The same seed gives byte-identical checkpoints; another seed does not. */
static void test_seed_reproducible(void **state)
{
    (void)state;
    char dir[MAX_PATH], cmd[8 * MAX_PATH], path[3][2 * MAX_PATH];
    scratch_mkdtemp(dir, "elbo-train");
    const char *seed[3] = {"5", "5", "6"};
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/run%d.safetensors", dir, i);
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:400 --epochs 2 --batch 64 --seed %s --save %s --json",
                 seed[i], path[i]);
        free(run_capture(cmd));
    }
    size_t l0, l1, l2;
    unsigned char *a = read_file(path[0], &l0), *b = read_file(path[1], &l1), *c = read_file(path[2], &l2);
    assert_int_equal(l0, l1);
    assert_memory_equal(a, b, l0);
    assert_true(l0 != l2 || memcmp(a, c, l0) != 0);
    free(a);
    free(b);
    free(c);
    remove_tree(dir);
}

/* A few training steps with 1, 2 and 3 threads give byte-identical checkpoints (rows split across threads,
 * weight gradients and the large layers' forward split by output features, fixed-order sums), for MSE and for
 * BCE with two hidden layers, across an epoch's partial last batch (700 = 18 x 37 + 34). */
static void test_thread_count_bitwise(void **state)
{
    (void)state;
    const char *models[] = {"--recon mse --batch 100", "--recon bce --hidden 96,40 --latent 3 --batch 37"};
    for (size_t v = 0; v < 2; v++) {
        char dir[MAX_PATH], cmd[8 * MAX_PATH], path[3][2 * MAX_PATH];
        scratch_mkdtemp(dir, "elbo-threads");
        unsigned char *bytes[3];
        size_t len[3];
        for (int t = 0; t < 3; t++) {
            snprintf(path[t], sizeof path[t], "%s/threads%d.safetensors", dir, t + 1);
            snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:700 --epochs 2 --steps 20 %s --threads %d "
                     "--save %s --json", models[v], t + 1, path[t]);
            free(run_capture(cmd));
            bytes[t] = read_file(path[t], &len[t]);
        }
        for (int t = 1; t < 3; t++) {
            assert_int_equal(len[t], len[0]);
            if (memcmp(bytes[t], bytes[0], len[0]) != 0)
                test_failf("%s: the checkpoint after 20 steps with %d threads differs from 1 thread's\n", models[v], t + 1);
        }
        for (int t = 0; t < 3; t++)
            free(bytes[t]);
        remove_tree(dir);
    }
}

/* A run stopped by --steps (mid-epoch) or at an epoch boundary and continued with --resume ends with the
 * same checkpoint bytes as an uninterrupted run: parameters, optimizer moments, step, data order and noise
 * all carry over, also when the resumed run uses another thread count; for Adam and for SGD. */
static void test_resume_bitwise(void **state)
{
    (void)state;
    const char *runs[][2] = {
        {"--optimizer adam --batch 64", "--steps 7"},
        {"--optimizer adam --batch 64", "--steps 11"}, /* 11 steps = one epoch of 700 at batch 64 */
        {"--optimizer sgd --lr 0.01 --momentum 0.8 --batch 50", "--steps 5"},
    };
    for (size_t v = 0; v < 3; v++) {
        char dir[MAX_PATH], cmd[8 * MAX_PATH], whole[2 * MAX_PATH], part[2 * MAX_PATH];
        scratch_mkdtemp(dir, "elbo-resume");
        snprintf(whole, sizeof whole, "%s/whole.safetensors", dir);
        snprintf(part, sizeof part, "%s/part.safetensors", dir);
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:700 --epochs 3 %s --threads 1 --save %s --json",
                 runs[v][0], whole);
        free(run_capture(cmd));
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:700 --epochs 3 %s %s --threads 2 --save %s --json",
                 runs[v][0], runs[v][1], part);
        free(run_capture(cmd));
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:700 --epochs 3 --resume %s --threads 3 --save %s --json",
                 part, part);
        free(run_capture(cmd));
        size_t l0, l1;
        unsigned char *a = read_file(whole, &l0), *b = read_file(part, &l1);
        if (l0 != l1 || memcmp(a, b, l0) != 0)
            test_failf("%s, interrupted after %s and resumed: the final checkpoint differs from one run's\n",
                       runs[v][0], runs[v][1]);
        free(a);
        free(b);
        remove_tree(dir);
    }
}

/* --target stops at the first evaluation at or below it and reports the time; an unreachable one runs to the
 * end and says so. */
static void test_target_time_to_quality(void **state)
{
    (void)state;
    char *out = run_capture(ELBO_BIN " train --data synthetic:600 --epochs 3 --batch 50 --target 1000 --eval-every 2 --json");
    cJSON *j = last_json_line(out);
    assert_int_equal((long)num(j, "reached"), 1);
    assert_int_equal((long)num(j, "steps"), 2);
    assert_true(num(j, "test_neg_elbo") <= 1000 && num(j, "seconds_to_target") > 0);
    cJSON_Delete(j);
    free(out);
    /* fewer steps than --eval-every: the epoch's own evaluation reaches the target */
    out = run_capture(ELBO_BIN " train --data synthetic:300 --epochs 2 --batch 50 --target 1000000 --json");
    j = last_json_line(out);
    assert_int_equal((long)num(j, "reached"), 1);
    assert_int_equal((long)num(j, "steps"), 6);
    cJSON_Delete(j);
    free(out);
    out = run_capture(ELBO_BIN " train --data synthetic:600 --epochs 1 --batch 50 --target 0.001 --eval-every 5 --json");
    j = last_json_line(out);
    assert_int_equal((long)num(j, "reached"), 0);
    assert_int_equal((long)num(j, "steps"), 12);
    cJSON_Delete(j);
    free(out);
}

/* 300 samples at batch 128: three steps per epoch, the last one of 44 samples, all 300 counted. */
static void test_last_partial_batch_used(void **state)
{
    (void)state;
    char *out = run_capture(ELBO_BIN " train --data synthetic:300 --epochs 2 --batch 128 --json");
    cJSON *j = last_json_line(out);
    assert_int_equal((long)num(j, "steps"), 6);
    assert_int_equal((long)num(j, "samples"), 300);
    cJSON_Delete(j);
    free(out);
}

/* --steps stops mid-epoch and reports the samples actually seen. */
static void test_steps_limit(void **state)
{
    (void)state;
    char *out = run_capture(ELBO_BIN " train --data synthetic:1000 --epochs 5 --batch 100 --steps 13 --json");
    cJSON *j = last_json_line(out);
    assert_int_equal((long)num(j, "steps"), 13);
    assert_int_equal((long)num(j, "epoch"), 2);
    assert_int_equal((long)num(j, "samples"), 300);
    cJSON_Delete(j);
    free(out);
}

/* Training on synthetic shapes lowers the test -ELBO at least 10% below its first-epoch value, for both
 * likelihoods and a two-hidden-layer model with Z = 2. */
static void test_learns_synthetic(void **state)
{
    (void)state;
    const char *variants[] = {"--recon mse", "--recon bce", "--hidden 128,64 --latent 2 --recon mse"};
    for (size_t v = 0; v < 3; v++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, ELBO_BIN " train --data synthetic:2000 --epochs 8 --batch 64 %s --json", variants[v]);
        char *out = run_capture(cmd);
        char *first_line = strdup(out);
        cJSON *first = last_json_line(strtok(first_line, "\n"));
        cJSON *last = last_json_line(out);
        double a = num(first, "test_neg_elbo"), b = num(last, "test_neg_elbo");
        printf("  %s: test -ELBO %.2f after epoch 1, %.2f after epoch 8\n", variants[v], a, b);
        if (!(b < 0.9 * a))
            test_failf("%s: test -ELBO went from %.3f to %.3f; expected at least a 10%% drop\n", variants[v], a, b);
        cJSON_Delete(first);
        cJSON_Delete(last);
        free(first_line);
        free(out);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_partial_batch_used),
        cmocka_unit_test(test_steps_limit),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_thread_count_bitwise),
        cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_target_time_to_quality),
        cmocka_unit_test(test_learns_synthetic),
        cmocka_unit_test(test_one_epoch_matches_pytorch),
        cmocka_unit_test(test_iw_matches_pytorch),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
