/* The elbo command on checkpoints of earlier format versions (tests/fixtures/, written by the commits named in
 * tests/fixtures/README.md): info, eval and sample read every one; --resume continues the files that hold
 * the training position and writes the current format, and refuses the earliest in one line; an unknown
 * format tag is refused in one line naming the versions this build reads.
 *
 * Runs build/elbo (next to this test's directory) from the repository root, on synthetic:256 (the data the
 * fixtures were trained on: 256 train and (256 + 5) / 6 = 43 test images, 784 pixels). */
#include "test_cli_run.h"

#include "safetensors.h"

#define DATA "synthetic:256"

/* A fixture and what elbo info must print about it (its metadata as written, the stand-ins elsewhere). */
typedef struct {
    const char *path;
    const char *training; /* info's training line after "training:" */
    int resumes;          /* 0: --resume is refused naming epoch_step */
} old_file;

static const old_file FILES[] = {
    {"tests/fixtures/checkpoint-ad34a58.safetensors",
     "4 steps, 1 epochs, adam lr 0.001, batch 64, seed 7, data synthetic, precision fp32\n", 0},
    {"tests/fixtures/checkpoint-ad74efc.safetensors",
     "3 steps, 0 epochs, sgd lr 0.01, batch 64, seed 7, data synthetic, precision fp32\n", 1},
    {"tests/fixtures/checkpoint-524adbb.safetensors",
     "3 steps, 1 epochs, adam lr 0.001, batch 32, seed 7, data synthetic, classes 0,1,4, precision fp32\n", 1},
};
#define N_FILES (sizeof FILES / sizeof FILES[0])

/* Fails unless the run exited 0 with nothing on stderr. */
static void expect_ok(const run_result *r, const char *what)
{
    if (r->status != 0 || r->err[0])
        test_failf("%s: status %d, stderr \"%s\"\n", what, r->status, r->err);
}

/* __metadata__.key of the checkpoint at path, copied to out (failing the test when absent). */
static void meta_of(const char *path, const char *key, char *out, size_t len)
{
    elbo_st_file f;
    char err[512];
    if (elbo_st_read(path, &f, err, sizeof err))
        test_failf("%s\n", err);
    const char *v = elbo_st_meta_get(&f, key);
    if (!v)
        test_failf("%s: no __metadata__.%s\n", path, key);
    snprintf(out, len, "%s", v);
    elbo_st_free(&f);
}

/* Copies the checkpoint src to dst with its format tag "elbo-vae-1" replaced by tag (same length, so the
 * header length and the tensors' offsets stay valid). */
static void copy_retagged(const char *src, const char *dst, const char *tag)
{
    static char buf[1 << 17];
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    size_t len = fread(buf, 1, sizeof buf, f);
    assert_true(len > 0 && len < sizeof buf && feof(f));
    fclose(f);
    char *t = memmem(buf, len, "\"format\":\"elbo-vae-1\"", 21);
    assert_non_null(t);
    assert_int_equal(strlen(tag), 10);
    memcpy(t + 10, tag, 10);
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* elbo info --load, elbo eval and elbo sample on every fixture. Catches: an early file refused by any of
 * them (a stand-in dropped), info showing another step, epoch, optimizer or class list than the file holds. */
static void test_read_old_files(void **state)
{
    (void)state;
    char dir[MAX_PATH], png[MAX_PATH];
    scratch_open(dir);
    join(png, dir, "grid.png");
    for (size_t i = 0; i < N_FILES; i++) {
        const old_file *o = &FILES[i];
        run_result r;
        print_message("    %s\n", o->path);
        run(&r, "info", "--load", o->path, NULL);
        expect_ok(&r, "info --load");
        assert_non_null(strstr(r.out, "model:        784-4-2-4-784 mse (7092 parameters)\n"));
        const char *t = strstr(r.out, "training:     ");
        assert_non_null(t);
        if (strncmp(t + 14, o->training, strlen(o->training)) != 0)
            test_failf("info: \"%.120s\", expected \"training:     %s\"\n", t, o->training);
        run_free(&r);
        run(&r, "eval", "--load", o->path, "--data", DATA, NULL);
        expect_ok(&r, "eval");
        double loss = 0;
        const char *e = strstr(r.out, "test -ELBO ");
        assert_non_null(e);
        assert_int_equal(sscanf(e, "test -ELBO %lf", &loss), 1);
        assert_true(isfinite(loss) && loss > 0);
        assert_non_null(strstr(r.out, "over 43 images of synthetic"));
        run_free(&r);
        run(&r, "sample", "--load", o->path, "--data", DATA, "-n", "2", "-o", png, NULL);
        expect_ok(&r, "sample");
        run_free(&r);
        struct stat sb;
        assert_int_equal(stat(png, &sb), 0);
        assert_true(sb.st_size > 0);
        assert_int_equal(unlink(png), 0);
    }
    remove_tree(dir);
}

/* --resume on every fixture: the two holding the training position and optimizer state continue to the end
 * of their epoch and save as elbo-3 with their own momentum and class list; the earliest is refused
 * with exit 2, one line naming the file, epoch_step and elbo-vae-1, and nothing saved. Catches: the writer
 * still tagging elbo-vae-1, the early file resumed from a stand-in position and a fresh optimizer. */
static void test_resume_old_files(void **state)
{
    (void)state;
    char dir[MAX_PATH], out[MAX_PATH], v[64];
    scratch_open(dir);
    join(out, dir, "out.safetensors");
    for (size_t i = 0; i < N_FILES; i++) {
        const old_file *o = &FILES[i];
        run_result r;
        /* 524adbb's file is at the end of epoch 1 (78 images of classes 0,1,4 in batches of 32: 3 steps) */
        run(&r, "train", "--data", DATA, "--epochs", i == 2 ? "2" : "1", "--resume", o->path, "--save", out, NULL);
        if (!o->resumes) {
            expect_error(&r, 2, o->path, "__metadata__.epoch_step: missing (format elbo-vae-1");
            run_free(&r);
            expect_entries(dir, 0);
            continue;
        }
        print_message("    %s: %s", o->path, r.out);
        expect_ok(&r, "train --resume");
        /* the header names the classes trained on only when there is a list (not "of classes  /") */
        if ((i == 2) != (strstr(r.out, " of classes 0,1,4 /") != NULL) || strstr(r.out, "of classes  "))
            test_failf("train --resume header: %s\n", r.out);
        run_free(&r);
        meta_of(out, "format", v, sizeof v);
        assert_string_equal(v, "elbo-3");
        meta_of(out, "epoch", v, sizeof v);
        assert_string_equal(v, i == 2 ? "2" : "1");
        meta_of(out, "step", v, sizeof v);
        assert_string_equal(v, i == 2 ? "6" : "4"); /* 256 / 64 = 4 steps per epoch; 3 per epoch for 524adbb */
        meta_of(out, "momentum", v, sizeof v);
        assert_string_equal(v, i == 1 ? "0.5" : "0.90000000000000002");
        meta_of(out, "classes", v, sizeof v);
        assert_string_equal(v, i == 2 ? "0,1,4" : "all");
        assert_int_equal(unlink(out), 0);
    }
    remove_tree(dir);
}

/* A fixture with its tag changed to elbo-vae-9 (same length: the tensors keep their offsets): info, eval and
 * --resume refuse it with exit 2 and one line naming the file, the field and the versions this build reads.
 * Catches: an unknown version read as if it were a known one. */
static void test_unknown_format(void **state)
{
    (void)state;
    char dir[MAX_PATH], bad[MAX_PATH], out[MAX_PATH];
    scratch_open(dir);
    join(bad, dir, "v9.safetensors");
    join(out, dir, "out.safetensors");
    copy_retagged(FILES[1].path, bad, "elbo-vae-9");
    const char *want = "__metadata__.format: 'elbo-vae-9' is not a format this build reads (elbo-vae-1, elbo-vae-2, elbo-3)";
    expect_usage_error(bad, want, "info", "--load", bad, NULL);
    expect_usage_error(bad, want, "eval", "--load", bad, "--data", DATA, NULL);
    expect_usage_error(bad, want, "train", "--data", DATA, "--epochs", "1", "--resume", bad, "--save", out, NULL);
    expect_entries(dir, 1);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_old_files),
        cmocka_unit_test(test_resume_old_files),
        cmocka_unit_test(test_unknown_format),
    };
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
