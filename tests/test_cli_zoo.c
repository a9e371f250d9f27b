/* `elbo zoo` end to end on synthetic data: a tiny zoo (every family, 3 steps each, in each precision this CPU runs,
 * 64 samples scored by a classifier trained here for one epoch) writes its JSON with every family's figures (finite,
 * in range), a Markdown row per family and precision, and the sample grids as 8 x 8 PNGs; with /usr/bin/python3 and
 * matplotlib, the picture too. Bad input (a missing classifier, data a child cannot read) is one stderr line, exit
 * 2, and nothing in --out-dir.
 *
 * Runs build/elbo (next to this test's directory) from the repository root. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <png.h>

#define DATA "synthetic:600"
#define SIDE 28 /* synthetic images are 28 x 28 */
#define PAD 2   /* image_grid.h's border */
#define GRID 8  /* the zoo's grid side */
#define SCORED "64"

static char dir[MAX_PATH], classifier[2 * MAX_PATH];

/* Trains the tiny reference classifier (one epoch of synthetic:600). */
static int setup(void **state)
{
    if (find_elbo(state))
        return -1;
    run_alarm_seconds = 1200; /* a hang guard: the tiny zoo (32 children) takes 16 s on 2 idle cores, over 300 s on
                               * a loaded machine */
    scratch_open(dir);
    in_dir(classifier, dir, "clf.safetensors");
    run_result r;
    run(&r, "train", "--model", "classifier", "--data", DATA, "--epochs", "1", "--threads", "1", "--save", classifier,
        NULL);
    int ok = r.status == 0;
    if (!ok)
        fprintf(stderr, "training the classifier: status %d: %s\n", r.status, r.err);
    run_free(&r);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(dir);
    return 0;
}

/* 1 when /usr/bin/python3 imports matplotlib (the picture's script can run). */
static int have_matplotlib(void)
{
    return system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") == 0;
}

/* The path of the one entry of out ending in suffix into path (fails unless exactly one). */
static void find_entry(const char *out, const char *suffix, char *path)
{
    DIR *d = opendir(out);
    assert_non_null(d);
    struct dirent *e;
    int found = 0;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "zoo-", 4) == 0 && n > sl && strcmp(e->d_name + n - sl, suffix) == 0 &&
            (sl || !strchr(e->d_name, '.'))) {
            found++;
            snprintf(path, 2 * MAX_PATH, "%s/%s", out, e->d_name);
        }
    }
    closedir(d);
    if (found != 1)
        test_failf("%s: %d entries zoo-*%s, expected 1\n", out, found, suffix);
}

/* Fails unless the PNG at path decodes with the size of an 8 x 8 grid of synthetic images. */
static void expect_grid_png(const char *path)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        test_failf("%s: not a PNG: %s\n", path, img.message);
    size_t want = GRID * SIDE + (GRID + 1) * PAD;
    if (img.width != want || img.height != want)
        test_failf("%s is %ux%u, expected %zux%zu\n", path, img.width, img.height, want, want);
    png_image_free(&img);
}

/* Fails unless x is finite and in [lo, hi]; what names it. */
static void expect_in(const char *what, double x, double lo, double hi)
{
    if (!(isfinite(x) && x >= lo && x <= hi))
        test_failf("%s = %g, expected a finite value in [%g, %g]\n", what, x, lo, hi);
}

/* The object `key` of j (fails the test if absent). */
static const cJSON *obj(const cJSON *j, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsObject(v))
        test_failf("%s: JSON lacks object \"%s\"\n", what, key);
    return v;
}

/* The string `key` of j (fails the test if absent). */
static const char *str(const cJSON *j, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v))
        test_failf("%s: JSON lacks string \"%s\"\n", what, key);
    return v->valuestring;
}

/* Checks one run of the JSON: its training, efficiency, own metric, scores, grid and commands. */
static void check_run(const cJSON *run, const char *out, const cJSON *peaks)
{
    char what[64], path[4 * MAX_PATH];
    const char *family = str(run, "family", "run"), *prec = str(run, "precision", family);
    snprintf(what, sizeof what, "%s %s", family, prec);
    if (cJSON_GetObjectItemCaseSensitive(run, "error"))
        test_failf("%s: failed: %s\n", what, str(run, "error", what));
    expect_in("steps", num(run, "steps"), 3, 3);
    expect_in("parameters", num(run, "parameters"), 1000, 1e9);
    expect_in("train_flops_per_sample", num(run, "train_flops_per_sample"), 1e4, 1e12);
    const cJSON *t = obj(run, "train", what);
    expect_in("train.samples", num(t, "samples"), 3 * 128, 3 * 128);
    expect_in("train.samples_per_s", num(t, "samples_per_s"), 1e-3, 1e9);
    expect_in("train_gflops", num(run, "train_gflops"), 1e-6, 1e5);
    if (num(peaks, "fma_gflops") > 0) {
        const char *peak = str(run, "peak", what);
        if (strcmp(peak, !strcmp(prec, "bf16") && num(peaks, "bf16_gflops") > 0 ? "bf16" : "fma"))
            test_failf("%s: measured against the %s peak\n", what, peak);
        /* up to 4x: the peak and the training are wall-clock figures of a machine that may be shared, each may
         * catch the other's load; a unit slip (GFLOP against FLOP/s, ms against s) is 1000x */
        expect_in("pct_peak", num(run, "pct_peak"), 1e-6, 400);
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(run, "metric");
    if (!strcmp(family, "gan")) {
        if (!cJSON_IsNull(m))
            test_failf("%s: a metric for the GAN\n", what);
    } else if (!cJSON_IsObject(m)) {
        test_failf("%s: no metric\n", what);
    } else if (!strcmp(family, "vae")) {
        expect_in("vae -ELBO (nats)", num(m, "neg_elbo_nats"), 1, 1e5);
        expect_in("vae IW log p(x) (nats)", num(m, "log_px_iw_nats"), -1e5, -1);
        expect_in("vae iw_k", num(m, "iw_k"), 4, 4);
    } else if (!strcmp(family, "flow")) {
        expect_in("flow bits/dim", num(m, "bits_per_dim"), 0.01, 64);
    } else {
        expect_in("diffusion bound (bits/dim)", num(m, "bound_bits_per_dim"), 0.01, 64);
        expect_in("diffusion bound images", num(m, "images"), 8, 8);
    }
    const cJSON *s = obj(run, "score", what);
    expect_in("score.images", num(s, "images"), 64, 64);
    expect_in("FD", num(s, "fd"), 0, 1e6);
    expect_in("coverage", num(s, "coverage_entropy_bits"), 0, num(s, "coverage_max_bits"));
    expect_in("sampling images/s", num(s, "sample_images_per_s"), 1e-3, 1e9);
    snprintf(path, sizeof path, "%s/%s", out, str(run, "grid", what));
    expect_grid_png(path);
    const cJSON *cmds = obj(run, "commands", what);
    const char *need[] = {"train", "score", "sample", strcmp(family, "gan") ? "eval" : NULL};
    for (size_t i = 0; i < 4; i++)
        if (need[i] && strncmp(str(cmds, need[i], what), "elbo ", 5) != 0)
            test_failf("%s: commands.%s does not start with \"elbo \"\n", what, need[i]);
    print_message("    %s: %.0f samples/s, %.2f %% of the %s peak, FD %.2f, %.0f images/s\n", what,
                  num(t, "samples_per_s"), num(run, "pct_peak"), str(run, "peak", what), num(s, "fd"),
                  num(s, "sample_images_per_s"));
}

/* The tiny zoo: exit 0; the out dir holds the JSON, the .md, the grids' directory (and, with matplotlib, the .png);
 * the JSON has a run per family and precision, each checked by check_run; the .md a row per run. */
static void test_tiny_zoo(void **state)
{
    (void)state;
    char out[2 * MAX_PATH], json[2 * MAX_PATH], md[2 * MAX_PATH], grids[2 * MAX_PATH], png[2 * MAX_PATH];
    in_dir(out, dir, "out");
    int picture = have_matplotlib();
    if (!picture)
        print_message("    /usr/bin/python3 has no matplotlib: the picture is not checked\n");
    run_result r;
    const char *args[] = {"zoo", "--data", DATA, "--classifier", classifier, "--out-dir", out, "--steps", "3",
                          "--count", SCORED, "--bound-images", "8", "--iw", "4", "--threads", "2", "--seed", "1",
                          picture ? NULL : "--figure", "none", NULL};
    run_argv(&r, args);
    if (r.status != 0)
        test_failf("elbo zoo: status %d, stderr \"%s\"\nstdout:\n%s\n", r.status, r.err, r.out);
    run_free(&r);
    expect_entries(out, picture ? 4 : 3);
    find_entry(out, ".json", json);
    find_entry(out, ".md", md);
    find_entry(out, "", grids);
    if (picture) {
        find_entry(out, ".png", png);
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        if (!png_image_begin_read_from_file(&img, png))
            test_failf("%s: not a PNG: %s\n", png, img.message);
        print_message("    %s: %ux%u\n", png, img.width, img.height);
        png_image_free(&img);
    }
    size_t len;
    char *text = (char *)slurp(json, &len);
    text = realloc(text, len + 1);
    text[len] = '\0';
    cJSON *root = cJSON_Parse(text);
    if (!root)
        test_failf("%s is not JSON\n", json);
    const cJSON *peaks = obj(root, "peaks", "zoo"), *set = obj(root, "settings", "zoo");
    str(obj(root, "machine", "zoo"), "isa", "machine");
    str(root, "elbo_revision", "zoo");
    expect_in("settings.seed", num(set, "seed"), 1, 1);
    expect_in("settings.threads", num(set, "threads"), 2, 2);
    const char *precisions = str(set, "precisions", "settings");
    size_t n_prec = strchr(precisions, ',') ? 2 : 1;
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs"), *run;
    if (cJSON_GetArraySize(runs) != (int)(4 * n_prec))
        test_failf("%d runs, expected 4 families x %zu precisions (%s)\n", cJSON_GetArraySize(runs), n_prec,
                   precisions);
    char *mdtext = (char *)slurp(md, &len);
    mdtext = realloc(mdtext, len + 1);
    mdtext[len] = '\0';
    cJSON_ArrayForEach(run, runs)
    {
        check_run(run, out, peaks);
        char row[64];
        snprintf(row, sizeof row, "\n| %s | %s | ", str(run, "title", "run"), str(run, "precision", "run"));
        if (!strstr(mdtext, row))
            test_failf("%s has no row \"%s\"\n", md, row + 1);
    }
    free(mdtext);
    cJSON_Delete(root);
    free(text);
    remove_tree(out);
}

/* A missing classifier: one line naming it and `make classifier`, exit 2, nothing in --out-dir. */
static void test_missing_classifier(void **state)
{
    (void)state;
    char out[2 * MAX_PATH], missing[2 * MAX_PATH];
    in_dir(out, dir, "bad");
    assert_int_equal(mkdir(out, 0755), 0);
    in_dir(missing, dir, "no-such-classifier.safetensors");
    run_result r;
    run(&r, "zoo", "--data", DATA, "--classifier", missing, "--out-dir", out, "--steps", "3", NULL);
    expect_error(&r, 2, "no-such-classifier.safetensors", "make classifier");
    run_free(&r);
    expect_entries(out, 0);
    remove_tree(out);
}

/* Data the children cannot read: the first child's one line (the family, the child, its status), exit 2, nothing
 * in --out-dir. */
static void test_bad_data(void **state)
{
    (void)state;
    char out[2 * MAX_PATH], data[2 * MAX_PATH];
    in_dir(out, dir, "bad");
    assert_int_equal(mkdir(out, 0755), 0);
    in_dir(data, dir, "no-such-data");
    run_result r;
    run(&r, "zoo", "--data", data, "--classifier", classifier, "--out-dir", out, "--steps", "3", "--figure", "none",
        NULL);
    expect_error(&r, 2, "vae fp32: train: exit status 2", "no-such-data");
    run_free(&r);
    expect_entries(out, 0);
    remove_tree(out);
}

/* --help lists every option with its default, the step counts of each family among them. */
static void test_help(void **state)
{
    (void)state;
    static const help_option opts[] = {
        {"data", "/usr/share/datasets/fashion-mnist"},
        {"classifier", "build/classifier.safetensors"},
        {"out-dir", "results"},
        {"threads", "one per physical core"},
        {"seed", "1"},
        {"quick", NULL},
        {"precision", "fp32,bf16 where this CPU runs bf16, else fp32"},
        {"families", "vae,gan,flow,diffusion"},
        {"steps", "vae 20000, gan 7000, flow 1200, diffusion 1600; --quick: 600, 300, 40, 60"},
        {"count", "10000; --quick: 1000"},
        {"bound-images", "1000; --quick: 100"},
        {"iw", "100; --quick: 10"},
        {"figure", "scripts/zoo_figure.py"},
    };
    check_help("zoo", opts, sizeof opts / sizeof opts[0]);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_missing_classifier),
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_tiny_zoo),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, setup, teardown);
}
