/* The commands over a trained checkpoint, run as separate processes on a model trained inside the test on
 * synthetic data with class 9 (the checkerboard) held out as the planted anomaly: every PNG decodes (libpng)
 * with the size its layout implies; interpolation endpoints equal the reconstructions; the anomaly AUROC of
 * the held-out class; the importance-weighted bound against the ELBO and in K; sample's IDX output against its
 * PNG grid; every bad input gives one line, status 2 and no file; --help lists every option with its default.
 * About 5 s. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>
#include <png.h>
#include <signal.h>
#include <sys/resource.h>

#include "idx.h"

#define SIDE 28
#define PAD 2   /* border pixels of the image grids */
#define NORMAL_CLASSES "0,1,2,3,4,5,6,7,8"
#define SYN "synthetic:3000"
/* Its test split: ceil(3000 / 6) = 500 images (dataset.c), labels i mod 10 shuffled, so 50 of class 9. */
#define SYN_TEST_IMAGES ((3000 + 5) / 6)
#define SYN_CLASS_IMAGES (SYN_TEST_IMAGES / 10)

/* The scratch directory with the checkpoints trained once for all tests. */
static char dir[MAX_PATH], model[MAX_PATH], model_z2[MAX_PATH], model_all[MAX_PATH];

/* An 8-bit grayscale image read back with libpng. */
typedef struct {
    size_t width, height;
    uint8_t *pix;
} gray_image;

/* Reads path as 8-bit grayscale (any PNG is converted); fails the test if libpng cannot decode it. */
static void read_png(const char *path, gray_image *g)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        test_failf("%s: libpng: %s\n", path, img.message);
    img.format = PNG_FORMAT_GRAY;
    g->width = img.width;
    g->height = img.height;
    g->pix = malloc(PNG_IMAGE_SIZE(img));
    assert_non_null(g->pix);
    if (!png_image_finish_read(&img, NULL, g->pix, 0, NULL))
        test_failf("%s: libpng: %s\n", path, img.message);
}

/* Grid extent along one axis: n tiles of SIDE pixels with PAD borders. */
static size_t grid_extent(size_t n)
{
    return n * SIDE + (n + 1) * PAD;
}

/* Fails unless the PNG at path decodes with the given size. */
static void expect_png_size(const char *path, size_t width, size_t height)
{
    gray_image g;
    read_png(path, &g);
    print_message("    %s: %zux%zu\n", path, g.width, g.height);
    if (g.width != width || g.height != height)
        test_failf("%s is %zux%zu, expected %zux%zu\n", path, g.width, g.height, width, height);
    free(g.pix);
}

/* Fails unless the tile (r, c) of grid a equals tile (r2, c2) of grid b, pixel for pixel. */
static void expect_same_tile(const gray_image *a, size_t r, size_t c, const gray_image *b, size_t r2, size_t c2)
{
    for (size_t y = 0; y < SIDE; y++) {
        const uint8_t *pa = a->pix + (PAD + r * (SIDE + PAD) + y) * a->width + PAD + c * (SIDE + PAD);
        const uint8_t *pb = b->pix + (PAD + r2 * (SIDE + PAD) + y) * b->width + PAD + c2 * (SIDE + PAD);
        if (memcmp(pa, pb, SIDE) != 0)
            test_failf("tile (%zu, %zu) differs from tile (%zu, %zu) in row %zu\n", r, c, r2, c2, y);
    }
}

/* Runs elbo (NULL-terminated arguments), expects status 0 and returns the run. */
static void run_ok(run_result *r, ...)
{
    const char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n < MAX_ARGS);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    run_argv(r, args);
    if (r->status != 0)
        test_failf("elbo %s: status %d: %s\n", args[0], r->status, r->err);
}

/* The last line of out starting with '{', parsed. */
static cJSON *json_of(const char *out)
{
    const char *line = NULL;
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '{')
            line = p;
    assert_non_null(line);
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    return j;
}

/* Fails unless |a - b| <= tol. */
#define expect_near(a, b, tol)                                                                                   \
    do {                                                                                                          \
        double a_ = (a), b_ = (b);                                                                                \
        if (!(fabs(a_ - b_) <= (tol)))                                                                            \
            test_failf("%s = %.9g, expected %s = %.9g within %g\n", #a, a_, #b, b_, (double)(tol));              \
    } while (0)

/* Trains the test models: Z = 20 on the normal classes (15 epochs of 2700 images in batches of 32, ~2 s),
 * Z = 2 and an all-classes model for an epoch or two. */
static int setup(void **state)
{
    if (find_elbo(state))
        return -1;
    scratch_open(dir);
    join(model, dir, "syn.safetensors");
    join(model_z2, dir, "syn_z2.safetensors");
    join(model_all, dir, "syn_all.safetensors");
    run_result r;
    run_ok(&r, "train", "--data", SYN, "--classes", NORMAL_CLASSES, "--epochs", "15", "--batch", "32", "--threads",
           "1", "--save", model, NULL);
    run_free(&r);
    run_ok(&r, "train", "--data", "synthetic:600", "--latent", "2", "--epochs", "2", "--threads", "1", "--save",
           model_z2, NULL);
    run_free(&r);
    run_ok(&r, "train", "--data", "synthetic:600", "--epochs", "1", "--threads", "1", "--save", model_all, NULL);
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

/* Every PNG decodes with the size of its layout. Catches: rows or columns swapped, a wrong border, images
 * libpng cannot read, and plots (matplotlib) not written. */
static void test_png_sizes(void **state)
{
    (void)state;
    char out[MAX_PATH], prefix[MAX_PATH], path[MAX_PATH];
    run_result r;
    run_ok(&r, "sample", "--load", model, "--data", SYN, "-n", "5", "--seed", "3", "-o", join(out, dir, "s.png"), NULL);
    expect_png_size(out, grid_extent(5), grid_extent(5));
    run_free(&r);
    run_ok(&r, "reconstruct", "--load", model, "--data", SYN, "-n", "6", "-o", join(out, dir, "r.png"), NULL);
    expect_png_size(out, grid_extent(6), grid_extent(2));
    run_free(&r);
    run_ok(&r, "interpolate", "--load", model, "--data", SYN, "--from", "4", "--to", "9", "--steps", "7", "-o",
           join(out, dir, "i.png"), NULL);
    expect_png_size(out, grid_extent(7), grid_extent(1));
    run_free(&r);
    run_ok(&r, "latent-map", "--load", model_z2, "--data", "synthetic:600", "--grid", "6", "--manifold", "-o",
           join(prefix, dir, "z2"), NULL);
    expect_png_size(join(path, dir, "z2-manifold.png"), grid_extent(6), grid_extent(6));
    expect_png_size(join(path, dir, "z2-scatter.png"), 800, 650);
    run_free(&r);
    run_ok(&r, "latent-map", "--load", model, "--data", SYN, "-o", join(prefix, dir, "z20"), NULL);
    expect_png_size(join(path, dir, "z20-scatter.png"), 800, 650);
    assert_int_equal(access(join(path, dir, "z20-manifold.png"), F_OK), -1);
    run_free(&r);
    run_ok(&r, "anomaly", "--load", model, "--data", SYN, "-o", join(prefix, dir, "an"), NULL);
    expect_png_size(join(path, dir, "an-hist.png"), 1100, 420);
    run_free(&r);
}

/* The ends of a linear and of a spherical path are the reconstructions of the two images, bit for bit,
 * and a sample grid depends on its seed only. Catches: endpoints off by the interpolation weights, a
 * decoder that depends on the batch it runs in, unseeded sampling. */
static void test_interpolation_endpoints(void **state)
{
    (void)state;
    char rec[MAX_PATH], lin[MAX_PATH], sph[MAX_PATH], s1[MAX_PATH], s2[MAX_PATH];
    run_result r;
    run_ok(&r, "reconstruct", "--load", model, "--data", SYN, "--first", "3", "-n", "5", "-o",
           join(rec, dir, "rec.png"), NULL);
    run_free(&r);
    run_ok(&r, "interpolate", "--load", model, "--data", SYN, "--from", "3", "--to", "7", "--steps", "6", "-o",
           join(lin, dir, "lin.png"), NULL);
    run_free(&r);
    run_ok(&r, "interpolate", "--load", model, "--data", SYN, "--from", "3", "--to", "7", "--steps", "6", "--slerp",
           "-o", join(sph, dir, "sph.png"), NULL);
    run_free(&r);
    gray_image g_rec, g_lin, g_sph;
    read_png(rec, &g_rec);
    read_png(lin, &g_lin);
    read_png(sph, &g_sph);
    expect_same_tile(&g_lin, 0, 0, &g_rec, 1, 0);   /* test image 3 */
    expect_same_tile(&g_lin, 0, 5, &g_rec, 1, 4);   /* test image 7 */
    expect_same_tile(&g_sph, 0, 0, &g_rec, 1, 0);
    expect_same_tile(&g_sph, 0, 5, &g_rec, 1, 4);
    /* the inner points differ between the two paths and from the ends */
    assert_true(memcmp(g_lin.pix, g_sph.pix, g_lin.width * g_lin.height) != 0);
    free(g_rec.pix);
    free(g_lin.pix);
    free(g_sph.pix);
    run_ok(&r, "sample", "--load", model, "--data", SYN, "-n", "3", "--seed", "5", "-o", join(s1, dir, "a.png"), NULL);
    run_free(&r);
    run_ok(&r, "sample", "--load", model, "--data", SYN, "-n", "3", "--seed", "5", "-o", join(s2, dir, "b.png"), NULL);
    run_free(&r);
    gray_image a, b;
    read_png(s1, &a);
    read_png(s2, &b);
    assert_memory_equal(a.pix, b.pix, a.width * a.height);
    free(a.pix);
    free(b.pix);
}

/* The checkerboard class, never seen in training, is separated from the nine normal classes with AUROC >=
 * 0.95 by reconstruction error (0.992 here) and >= 0.9 by -ELBO (0.952, whose KL term adds noise); the CSV has one row per test image with the right normal flags and the same scores
 * the AUROC came from. Catches: scores inverted (AUROC near 0), labels of the wrong images, a threshold
 * above its false-positive budget. */
static void test_anomaly_auroc(void **state)
{
    (void)state;
    char prefix[MAX_PATH], csv[MAX_PATH];
    run_result r;
    run_ok(&r, "anomaly", "--load", model, "--data", SYN, "--fpr", "0.05", "--json", "-o", join(prefix, dir, "auroc"),
           NULL);
    cJSON *j = json_of(r.out);
    double a_rec = num(j, "auroc_recon_error"), a_elbo = num(j, "auroc_neg_elbo");
    print_message("    AUROC recon error %.4f, -ELBO %.4f; TPR at 5 %% FPR %.3f, %.3f\n", a_rec, a_elbo,
                  num(j, "tpr_recon_error"), num(j, "tpr_neg_elbo"));
    assert_true(a_rec >= 0.95);
    assert_true(a_elbo >= 0.90);
    assert_true(num(j, "fpr_recon_error") <= 0.05 && num(j, "fpr_neg_elbo") <= 0.05);
    assert_int_equal((int)num(j, "anomalous_images"), SYN_CLASS_IMAGES);
    assert_int_equal((int)num(j, "normal_images"), SYN_TEST_IMAGES - SYN_CLASS_IMAGES);
    cJSON_Delete(j);
    run_free(&r);
    FILE *f = fopen(join(csv, dir, "auroc-scores.csv"), "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "index,label,is_normal,recon_error,neg_elbo\n");
    size_t rows = 0, anomalous = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned idx, label;
        int normal;
        double rec, ne;
        assert_int_equal(sscanf(line, "%u,%u,%d,%lf,%lf", &idx, &label, &normal, &rec, &ne), 5);
        assert_int_equal(idx, rows);
        assert_int_equal(normal, label != 9);
        assert_true(rec > 0 && ne > 0);
        anomalous += !normal;
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, SYN_TEST_IMAGES);
    assert_int_equal(anomalous, SYN_CLASS_IMAGES);
}

/* The importance-weighted bound on the synthetic test split: with K = 1 it estimates the ELBO (the same
 * first sample, a one-sample KL), with K = 5 and 50 it is above the ELBO and grows with K; the ELBO beside
 * it is eval's -ELBO with the likelihood's normalizing term. Catches: a missing log K, the normalizing term
 * on one side only, log q(z|x) with the wrong sign, a bound that ignores K. */
static void test_iw_bounds(void **state)
{
    (void)state;
    static const char *const ks[] = {"1", "5", "50"};
    double iw[3], elbo[3];
    for (int i = 0; i < 3; i++) {
        run_result r;
        run_ok(&r, "eval", "--load", model, "--data", SYN, "--iw", ks[i], "--threads", "1", "--json", NULL);
        cJSON *j = json_of(r.out);
        iw[i] = num(j, "test_log_px_iw");
        elbo[i] = num(j, "test_elbo");
        assert_int_equal((int)num(j, "iw_k"), atoi(ks[i]));
        /* beta = 1: ELBO = -(recon + KL) - log_norm, the log_norm of sigma0^2 = 1/2 over 784 pixels */
        expect_near(num(j, "log_norm"), 392.0 * log(M_PI), 1e-9);
        expect_near(elbo[i], -num(j, "test_neg_elbo") - num(j, "log_norm"), 1e-3);
        print_message("    K = %s: IW %.4f, ELBO %.4f\n", ks[i], iw[i], elbo[i]);
        cJSON_Delete(j);
        run_free(&r);
    }
    expect_near(elbo[0], elbo[1], 1e-9);
    expect_near(elbo[0], elbo[2], 1e-9);
    assert_true(fabs(iw[0] - elbo[0]) < 0.5);
    assert_true(iw[1] > elbo[0]);
    assert_true(iw[2] > iw[1]);
}

/* elbo sample --format idx: an IDX image file (magic 0x00000803, count, 28, 28 big-endian) whose first 16
 * images are the tiles of the 4 x 4 PNG grid of the same seed, pixel for pixel (both round(255 p) of the same
 * decoder means), the same file for the same seed and a different one for another; 1300 images (three decoding
 * batches, the last one partial) start with the 16. A write that fails midway (a 1 MB file size limit, EFBIG)
 * exits 1 with one line naming the file and leaves an existing file unchanged and no temporary file.
 * Catches: rows of the wrong images, pixels truncated instead of rounded, batches that restart the sample
 * index, a short file renamed into place. */
static void test_sample_idx(void **state)
{
    (void)state;
    char out_dir[MAX_PATH], png[MAX_PATH], idx[MAX_PATH], idx2[MAX_PATH], big[MAX_PATH], err[256];
    scratch_mkdtemp(out_dir, "elbo-idx");
    run_result r;
    run_ok(&r, "sample", "--load", model, "--data", SYN, "-n", "4", "--seed", "7", "-o", join(png, out_dir, "g.png"),
           NULL);
    run_free(&r);
    run_ok(&r, "sample", "--load", model, "--data", SYN, "--format", "idx", "--count", "16", "--seed", "7", "-o",
           join(idx, out_dir, "s.idx"), NULL);
    assert_non_null(strstr(r.out, "16 samples"));
    run_free(&r);
    uint8_t head[16];
    static const uint8_t want_head[16] = {0, 0, 8, 3, 0, 0, 0, 16, 0, 0, 0, SIDE, 0, 0, 0, SIDE};
    FILE *f = fopen(idx, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, 16, f), 16);
    fclose(f);
    assert_memory_equal(head, want_head, 16);
    elbo_idx_images im, im2;
    if (elbo_idx_read_images(idx, &im, err, sizeof err) != 0)
        test_failf("%s\n", err);
    assert_int_equal(im.count, 16);
    gray_image g;
    read_png(png, &g);
    for (size_t i = 0; i < 16; i++)
        for (size_t y = 0; y < SIDE; y++) {
            const uint8_t *tile = g.pix + (PAD + (i / 4) * (SIDE + PAD) + y) * g.width + PAD + (i % 4) * (SIDE + PAD);
            if (memcmp(tile, im.pixels + (i * SIDE + y) * SIDE, SIDE) != 0)
                test_failf("IDX image %zu differs from grid tile %zu in row %zu\n", i, i, y);
        }
    free(g.pix);
    /* three batches of decoding: the first 16 are the same images */
    run_ok(&r, "sample", "--load", model, "--data", SYN, "--format", "idx", "-n", "1300", "--seed", "7", "-o",
           join(big, out_dir, "big.idx"), NULL);
    run_free(&r);
    if (elbo_idx_read_images(big, &im2, err, sizeof err) != 0)
        test_failf("%s\n", err);
    assert_int_equal(im2.count, 1300);
    assert_memory_equal(im2.pixels, im.pixels, 16 * SIDE * SIDE);
    size_t distinct = 0;
    for (size_t i = 1; i < im2.count; i++)
        distinct += memcmp(im2.pixels + i * SIDE * SIDE, im2.pixels, SIDE * SIDE) != 0;
    assert_true(distinct == im2.count - 1);
    elbo_idx_images_free(&im2);
    /* another seed, other images */
    run_ok(&r, "sample", "--load", model, "--data", SYN, "--format", "idx", "-n", "16", "--seed", "8", "-o",
           join(idx2, out_dir, "s8.idx"), NULL);
    run_free(&r);
    if (elbo_idx_read_images(idx2, &im2, err, sizeof err) != 0)
        test_failf("%s\n", err);
    assert_true(memcmp(im2.pixels, im.pixels, 16 * SIDE * SIDE) != 0);
    elbo_idx_images_free(&im2);

    /* a write that fails midway: big.idx (1300 images, 1 MB) is rewritten under a 512 KB file size limit */
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 512 << 10;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    run(&r, "sample", "--load", model, "--data", SYN, "--format", "idx", "-n", "1300", "--seed", "9", "-o", big, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    expect_error(&r, 1, big, "File too large");
    run_free(&r);
    if (elbo_idx_read_images(big, &im2, err, sizeof err) != 0)
        test_failf("%s\n", err);
    assert_int_equal(im2.count, 1300);
    assert_memory_equal(im2.pixels, im.pixels, 16 * SIDE * SIDE); /* still seed 7's images */
    elbo_idx_images_free(&im2);
    elbo_idx_images_free(&im);
    expect_entries(out_dir, 4);
    remove_tree(out_dir);
}

/* Every bad input of the new commands: one line naming the option or file, status 2, and nothing written.
 * Catches: unknown classes accepted (or training on nothing), K <= 0 accepted, a missing checkpoint
 * reported late or after writing, the manifold grid drawn for Z != 2, a 2-D map of Z = 1, test indices past
 * the end. */
static void test_bad_inputs(void **state)
{
    (void)state;
    char out_dir[MAX_PATH], png[MAX_PATH], prefix[MAX_PATH], missing[MAX_PATH], ck[MAX_PATH], trunc[MAX_PATH];
    scratch_mkdtemp(out_dir, "elbo-bad");
    join(png, out_dir, "x.png");
    join(prefix, out_dir, "p");
    join(ck, out_dir, "m.safetensors");
    join(missing, dir, "missing.safetensors");
    /* a checkpoint cut short */
    join(trunc, dir, "trunc.safetensors");
    FILE *src = fopen(model, "rb"), *dst = fopen(trunc, "wb");
    assert_non_null(src);
    assert_non_null(dst);
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, src);
    fwrite(buf, 1, got, dst);
    fclose(src);
    fclose(dst);

    expect_usage_error("--classes", "class 12", "train", "--data", "synthetic:60", "--classes", "3,12", "--save", ck,
                       NULL);
    expect_usage_error("--classes", "'x'", "train", "--data", "synthetic:60", "--classes", "1,x", "--save", ck, NULL);
    expect_usage_error("--classes", "twice", "train", "--data", "synthetic:60", "--classes", "1,1", "--save", ck, NULL);
    expect_usage_error("--classes", "''", "train", "--data", "synthetic:60", "--classes", "1,", "--save", ck, NULL);
    expect_usage_error("--iw", "'0'", "eval", "--load", model, "--data", SYN, "--iw", "0", NULL);
    expect_usage_error("--iw", "'-3'", "eval", "--load", model, "--data", SYN, "--iw", "-3", NULL);
    expect_usage_error(missing, "No such file", "eval", "--load", missing, "--data", SYN, "--iw", "5", NULL);
    expect_usage_error(missing, "No such file", "sample", "--load", missing, "--data", SYN, "-o", png, NULL);
    expect_usage_error(trunc, NULL, "reconstruct", "--load", trunc, "--data", SYN, "-o", png, NULL);
    expect_usage_error("--load", "required", "interpolate", "--data", SYN, "-o", png, NULL);
    expect_usage_error("--output", "required", "sample", "--load", model, "--data", SYN, NULL);
    expect_usage_error("--count", "'0'", "sample", "--load", model, "--data", SYN, "-n", "0", "-o", png, NULL);
    expect_usage_error("--count", "'0'", "sample", "--load", model, "--data", SYN, "--format", "idx", "-n", "0", "-o",
                       png, NULL);
    expect_usage_error("--count", "'65'", "sample", "--load", model, "--data", SYN, "-n", "65", "-o", png, NULL);
    expect_usage_error("--count", "'1000001'", "sample", "--load", model, "--data", SYN, "--format", "idx", "-n",
                       "1000001", "-o", png, NULL);
    expect_usage_error("--count", "'x'", "sample", "--load", model, "--data", SYN, "--format", "idx", "-n", "x", "-o",
                       png, NULL);
    expect_usage_error("--format", "'jpg'", "sample", "--load", model, "--data", SYN, "--format", "jpg", "-o", png,
                       NULL);
    expect_usage_error("--format", "'IDX'", "sample", "--load", model, "--data", SYN, "--format", "IDX", "-o", png,
                       NULL);
    expect_usage_error("--manifold", "Z = 2", "latent-map", "--load", model, "--data", SYN, "--manifold", "-o",
                       prefix, NULL);
    char z1[MAX_PATH];
    run_result r;
    run_ok(&r, "train", "--data", "synthetic:60", "--latent", "1", "--epochs", "1", "--threads", "1", "--save",
           join(z1, dir, "z1.safetensors"), NULL);
    run_free(&r);
    expect_usage_error(z1, "Z = 1", "latent-map", "--load", z1, "--data", "synthetic:60", "-o", prefix, NULL);
    expect_usage_error("--from", "500", "interpolate", "--load", model, "--data", SYN, "--from", "500", "-o", png,
                       NULL);
    expect_usage_error("--steps", "'1'", "interpolate", "--load", model, "--data", SYN, "--steps", "1", "-o", png,
                       NULL);
    expect_usage_error("--count", "500", "reconstruct", "--load", model, "--data", SYN, "--first", "495", "-n", "6",
                       "-o", png, NULL);
    expect_usage_error("--normal", "class 42", "anomaly", "--load", model, "--data", SYN, "--normal", "0,42", "-o",
                       prefix, NULL);
    expect_usage_error("--normal", "every class", "anomaly", "--load", model, "--data", SYN, "--normal",
                       "0,1,2,3,4,5,6,7,8,9", "-o", prefix, NULL);
    expect_usage_error("--normal", "all classes", "anomaly", "--load", model_all, "--data", "synthetic:600", "-o",
                       prefix, NULL);
    expect_usage_error("--fpr", "'0'", "anomaly", "--load", model, "--data", SYN, "--fpr", "0", "-o", prefix, NULL);
    expect_usage_error("--fpr", "'nan'", "anomaly", "--load", model, "--data", SYN, "--fpr", "nan", "-o", prefix,
                       NULL);
    expect_usage_error("fashion-mnist-x", NULL, "sample", "--load", model, "--data",
                       "/usr/share/datasets/fashion-mnist-x", "-o", png, NULL);
    expect_usage_error("-q", "unknown option", "sample", "-q", "1", NULL);
    expect_entries(out_dir, 0);
    remove_tree(out_dir);
}

/* A plot script that fails: latent-map and anomaly exit 1 and leave none of their files (the CSV written
 * before the plot is removed). Catches: half of a command's outputs left behind. */
static void test_plot_failure_leaves_nothing(void **state)
{
    (void)state;
    char out_dir[MAX_PATH], script[MAX_PATH], prefix[MAX_PATH];
    scratch_mkdtemp(out_dir, "elbo-plotfail");
    FILE *f = fopen(join(script, dir, "failing_plot.py"), "w");
    assert_non_null(f);
    fputs("import sys\nprint('plot: cannot draw', file=sys.stderr)\nsys.exit(3)\n", f);
    fclose(f);
    setenv("ELBO_PLOT_SCRIPT", script, 1);
    run_result r;
    run(&r, "latent-map", "--load", model_z2, "--data", "synthetic:600", "-o", join(prefix, out_dir, "m"), NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "failed"));
    run_free(&r);
    run(&r, "anomaly", "--load", model, "--data", SYN, "-o", join(prefix, out_dir, "a"), NULL);
    assert_int_equal(r.status, 1);
    run_free(&r);
    unsetenv("ELBO_PLOT_SCRIPT");
    expect_entries(out_dir, 0);
    remove_tree(out_dir);
}

/* --help of the new commands lists every option with its default. */
static void test_help_new_commands(void **state)
{
    (void)state;
    const help_option sample[] = {
        {"load", "none"}, {"data", "/usr/share/datasets/fashion-mnist"}, {"count", "8"}, {"format", "png"},
        {"seed", "1"}, {"temperature", "1"}, {"output", "none"}, {"sampler", "ddpm"}, {"sample-steps", "50"},
        {"trajectory", NULL}, {"threads", "one per physical core, or OMP_NUM_THREADS"},
        {"precision", "the checkpoint's"},
    };
    check_help("sample", sample, sizeof sample / sizeof sample[0]);
    const help_option reconstruct[] = {
        {"load", "none"}, {"data", "/usr/share/datasets/fashion-mnist"}, {"count", "8"}, {"first", "0"},
        {"output", "none"},
    };
    check_help("reconstruct", reconstruct, sizeof reconstruct / sizeof reconstruct[0]);
    const help_option interpolate[] = {
        {"load", "none"}, {"data", "/usr/share/datasets/fashion-mnist"}, {"from", "0"}, {"to", "1"},
        {"steps", "10"}, {"slerp", NULL}, {"output", "none"},
    };
    check_help("interpolate", interpolate, sizeof interpolate / sizeof interpolate[0]);
    const help_option latent_map[] = {
        {"load", "none"}, {"data", "/usr/share/datasets/fashion-mnist"}, {"count", "0"}, {"grid", "20"},
        {"manifold", NULL}, {"output", "none"},
    };
    check_help("latent-map", latent_map, sizeof latent_map / sizeof latent_map[0]);
    const help_option anomaly[] = {
        {"load", "none"}, {"flow", "none"}, {"data", "/usr/share/datasets/fashion-mnist"},
        {"normal", "the checkpoint's training classes"}, {"fpr", "0.05"}, {"seed", "1"}, {"samples", "1"},
        {"output", "none"}, {"json", NULL},
    };
    check_help("anomaly", anomaly, sizeof anomaly / sizeof anomaly[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_sizes),
        cmocka_unit_test(test_interpolation_endpoints),
        cmocka_unit_test(test_anomaly_auroc),
        cmocka_unit_test(test_iw_bounds),
        cmocka_unit_test(test_sample_idx),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_plot_failure_leaves_nothing),
        cmocka_unit_test(test_help_new_commands),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
