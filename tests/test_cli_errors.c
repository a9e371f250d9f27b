/* The elbo command's error handling, run as a separate process: bad options and files exit with status 2
 * and exactly one line on stderr naming the option or the file; --help of every subcommand exits 0 and
 * lists every option with its default; a failed --save leaves nothing behind.
 *
 * The binary is build/elbo next to this test's directory (build/tests/..), so `make test` must build it
 * first (it does: the test rule runs `all`). Training runs use synthetic:60 and one epoch (~50 ms). */
#include "test_cli_run.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- tests ---- */

/* Malformed options of elbo train. Catches: unknown flags ignored, a repeated flag silently overriding,
 * a flag at the end taking no value, range checks missing (batch 0, negative lr, latent 0, epochs 0), nan
 * accepted as a number, width lists parsed with atoi, unknown likelihoods or optimizers defaulting, and
 * any of these reported on several lines or with another status. */
static void test_train_bad_options(void **state)
{
    (void)state;
    expect_usage_error("--bogus", "unknown", "train", "--bogus", NULL);
    expect_usage_error("--bogus", NULL, "train", "--bogus=1", NULL);
    expect_usage_error("--batch", "more than once", "train", "--batch", "4", "--batch", "8", NULL);
    expect_usage_error("--batch", "more than once", "train", "--batch=4", "--batch", "4", NULL);
    expect_usage_error("--hidden", "--resume", "train", "--resume", "x.safetensors", "--hidden", "64", NULL);
    expect_usage_error("--lr", "--resume", "train", "--lr", "0.1", "--resume", "x.safetensors", NULL);
    expect_usage_error("missing.safetensors", NULL, "train", "--data", "synthetic:60", "--resume", "missing.safetensors", NULL);
    expect_usage_error("--batch", "missing value", "train", "--batch", NULL);
    expect_usage_error("--save", "missing value", "train", "--epochs", "1", "--save", NULL);
    expect_usage_error("--batch", "'0'", "train", "--batch", "0", NULL);
    expect_usage_error("--batch", "'12abc'", "train", "--batch", "12abc", NULL);
    expect_usage_error("--batch", "'-5'", "train", "--batch", "-5", NULL);
    expect_usage_error("--lr", "'-1'", "train", "--lr", "-1", NULL);
    expect_usage_error("--lr", "'nan'", "train", "--lr", "nan", NULL);
    expect_usage_error("--lr", "'inf'", "train", "--lr=inf", NULL);
    expect_usage_error("--lr", NULL, "train", "--lr=", NULL);
    expect_usage_error("--latent", "'0'", "train", "--latent", "0", NULL);
    expect_usage_error("--latent", "'4097'", "train", "--latent", "4097", NULL);
    expect_usage_error("--epochs", "'0'", "train", "--epochs", "0", NULL);
    expect_usage_error("--seed", "'-1'", "train", "--seed", "-1", NULL);
    expect_usage_error("--momentum", "'2'", "train", "--momentum", "2", NULL);
    expect_usage_error("--sigma0", "'0'", "train", "--sigma0", "0", NULL);
    expect_usage_error("--beta", "'-1'", "train", "--beta", "-1", NULL);
    expect_usage_error("--steps", "'-1'", "train", "--steps", "-1", NULL);
    expect_usage_error("--json", "takes no value", "train", "--json=yes", NULL);
    expect_usage_error("--optimizer", "'foo'", "train", "--optimizer", "foo", NULL);
    expect_usage_error("--data", "empty", "train", "--data=", NULL);
    expect_usage_error("'extra'", NULL, "train", "extra", NULL);
    expect_usage_error("'-x'", NULL, "train", "-x", NULL);
    /* checked once the data are known */
    expect_usage_error("--hidden", "400,x", "train", "--data", "synthetic:60", "--hidden", "400,x", NULL);
    expect_usage_error("--hidden", NULL, "train", "--data", "synthetic:60", "--hidden", "0", NULL);
    expect_usage_error("--hidden", NULL, "train", "--data", "synthetic:60", "--hidden", "1,2,3,4,5,6,7,8,9", NULL);
    expect_usage_error("--decoder-hidden", "x", "train", "--data", "synthetic:60", "--decoder-hidden", "x", NULL);
    expect_usage_error("--recon", "'foo'", "train", "--data", "synthetic:60", "--recon", "foo", NULL);
}

/* Files and subcommands. Catches: a missing dataset, checkpoint or subcommand reported without its name,
 * eval running without a checkpoint, a non-checkpoint file accepted by info --load, a failure that exits
 * with status 0 or 1. */
static void test_bad_files_and_commands(void **state)
{
    (void)state;
    char dir[MAX_PATH], path[MAX_PATH];
    scratch_open(dir);
    expect_usage_error("/nonexistent", NULL, "train", "--data", "/nonexistent", NULL);
    expect_usage_error("synthetic:", NULL, "train", "--data", "synthetic:0", NULL);
    expect_usage_error("eval", "--load", "eval", NULL);
    expect_usage_error("eval", "--load", "eval", "--data", "synthetic:60", NULL);
    join(path, dir, "missing.safetensors");
    expect_usage_error(path, "No such file", "eval", "--load", path, NULL);
    expect_usage_error(path, "No such file", "info", "--load", path, NULL);
    /* a text file and a directory are not checkpoints */
    join(path, dir, "notes.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a checkpoint\n", f);
    fclose(f);
    expect_usage_error(path, "header", "info", "--load", path, NULL);
    expect_usage_error(path, "header", "eval", "--load", path, "--data", "synthetic:60", NULL);
    expect_usage_error(dir, NULL, "info", "--load", dir, NULL);
    expect_usage_error("--bogus", NULL, "info", "--bogus", NULL);
    expect_usage_error("--bogus", NULL, "eval", "--bogus", NULL);
    expect_usage_error("frobnicate", "unknown command", "frobnicate", NULL);
    expect_usage_error("--train", NULL, "--train", NULL);
    remove_tree(dir);
}

/* --help of the command and of every subcommand. */
static void test_help(void **state)
{
    (void)state;
    run_result r;
    run(&r, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_non_null(strstr(r.out, "  train "));
    assert_non_null(strstr(r.out, "  eval "));
    assert_non_null(strstr(r.out, "  info "));
    run_free(&r);
    /* without a command: the usage, on stderr, status 2 */
    const char *none[] = {NULL};
    run_argv(&r, none);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "usage: elbo"));
    run_free(&r);

    const help_option train[] = {
        {"data", "/usr/share/datasets/fashion-mnist"},
        {"epochs", "10"},
        {"steps", "0"},
        {"batch", "128"},
        {"lr", "0.001"},
        {"optimizer", "adam"},
        {"momentum", "0.9"},
        {"hidden", "400"},
        {"decoder-hidden", "the encoder's, mirrored"},
        {"latent", "20"},
        {"recon", "mse"},
        {"sigma0", "0.7071"},
        {"beta", "1"},
        {"seed", "1"},
        {"classes", "all"},
        {"threads", "one per physical core, or OMP_NUM_THREADS"},
        {"target", "0"},
        {"eval-every", "100"},
        {"resume", "none"},
        {"save", "none"},
        {"json", NULL},
    };
    check_help("train", train, sizeof train / sizeof train[0]);
    const help_option eval[] = {
        {"load", "none"},
        {"data", "/usr/share/datasets/fashion-mnist"},
        {"seed", "1"},
        {"threads", "one per physical core, or OMP_NUM_THREADS"},
        {"iw", "off"},
        {"json", NULL},
    };
    check_help("eval", eval, sizeof eval / sizeof eval[0]);
    const help_option info[] = {
        {"load", "none"},
        {"topology", NULL},
        {"threads", "OMP_NUM_THREADS, else one per core"},
        {"synthetic", "none"},
    };
    check_help("info", info, sizeof info / sizeof info[0]);
}

/* A training run whose --save cannot be written: it fails with one line naming the path and leaves
 * nothing behind, neither the directory nor a temporary file; the same run with a writable path succeeds,
 * and info and eval read what it wrote. Catches: save errors ignored (status 0), directories created on
 * the way, temporary files left after a failure, and error tests passing for the wrong reason. */
static void test_train_save(void **state)
{
    (void)state;
    char dir[MAX_PATH], missing[MAX_PATH], path[MAX_PATH];
    scratch_open(dir);
    join(missing, dir, "missing");
    join(path, missing, "x.safetensors");
    run_result r;
    run(&r, "train", "--data", "synthetic:60", "--epochs", "1", "--save", path, NULL);
    print_message("    [%d] %s", r.status, r.err);
    if (r.status == 0 || r.status == -1)
        test_failf("train --save into a missing directory: status %d\n", r.status);
    expect_error(&r, r.status, path, NULL);
    run_free(&r);
    assert_int_equal(access(missing, F_OK), -1);
    expect_entries(dir, 0);

    /* a path that is a directory: the rename fails, the temporary file goes */
    assert_int_equal(mkdir(missing, 0700), 0);
    run(&r, "train", "--data", "synthetic:60", "--epochs", "1", "--save", missing, NULL);
    if (r.status == 0 || r.status == -1)
        test_failf("train --save onto a directory: status %d\n", r.status);
    expect_error(&r, r.status, missing, NULL);
    run_free(&r);
    expect_entries(dir, 1);
    expect_entries(missing, 0);

    /* the same run, writable */
    join(path, dir, "ok.safetensors");
    run(&r, "train", "--data", "synthetic:60", "--epochs", "1", "--latent", "2", "--save", path, NULL);
    if (r.status != 0 || r.err[0])
        test_failf("train: status %d, stderr \"%s\"\n", r.status, r.err);
    assert_non_null(strstr(r.out, "epoch 1/1"));
    run_free(&r);
    expect_entries(dir, 2);
    run(&r, "info", "--load", path, NULL);
    if (r.status != 0 || r.err[0])
        test_failf("info --load: status %d, stderr \"%s\"\n", r.status, r.err);
    assert_non_null(strstr(r.out, "784-400-2-400-784 mse"));
    assert_non_null(strstr(r.out, "1 epochs"));
    run_free(&r);
    run(&r, "eval", "--load", path, "--data", "synthetic:60", "--json", NULL);
    if (r.status != 0 || r.err[0])
        test_failf("eval: status %d, stderr \"%s\"\n", r.status, r.err);
    assert_non_null(strstr(r.out, "\"test_neg_elbo\""));
    run_free(&r);
    remove_tree(dir);
}

/* elbo info --topology: the report of a synthetic topology shows its nodes and the thread plan asked for; this
 * machine's report exits 0; a bad synthetic description is one line naming it, before any other output. */
static void test_info_topology(void **state)
{
    (void)state;
    run_result r;
    run(&r, "info", "--topology", "--synthetic", "package:2 numa:2 core:4 pu:1", "--threads", "4", NULL);
    if (r.status != 0 || r.err[0])
        test_failf("info --topology --synthetic: status %d, stderr \"%s\"\n", r.status, r.err);
    assert_non_null(strstr(r.out, "numa nodes:   4\n"));
    assert_non_null(strstr(r.out, "threads:      4 (one per core)\n"));
    assert_non_null(strstr(r.out, "  thread 3 -> core 12, PU 12, node 3, package 1\n"));
    run_free(&r);
    run(&r, "info", "--topology", NULL);
    if (r.status != 0 || r.err[0])
        test_failf("info --topology: status %d, stderr \"%s\"\n", r.status, r.err);
    assert_non_null(strstr(r.out, "binding:      thread cpubind"));
    run_free(&r);
    run(&r, "info", "--topology", "--synthetic", "bogus:2", NULL);
    expect_error(&r, 2, "bogus:2", "synthetic");
    assert_string_equal(r.out, "");
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_bad_options),
        cmocka_unit_test(test_bad_files_and_commands),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_info_topology),
        cmocka_unit_test(test_train_save),
    };
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
