/* The IDX writer: images and labels round-trip through the reader (idx.c) bit for bit, with the header bytes
 * the format prescribes; a writer given too few or too many images, impossible dimensions or an unwritable
 * place fails with one line naming the file, leaves nothing new beside it and an existing file unchanged. */
#include "test_scratch.h"

#include "idx.h"

/* The whole file at path (at most cap bytes) into buf; returns its length. */
static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Fails unless err is one line that names path and contains what. */
static void expect_error_line(const char *err, const char *path, const char *what)
{
    print_message("    %s\n", err);
    if (!strstr(err, path) || !strstr(err, what) || strchr(err, '\n'))
        test_failf("error \"%s\" does not name %s and \"%s\" on one line\n", err, path, what);
}

/* Number of entries of dir (besides . and ..). */
static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* 7 images of 5 x 3 written in pieces (3 + 0 + 4) read back equal, and the header is magic 0x00000803 then
 * 7, 5, 3 big-endian; labels likewise with 0x00000801. Catches: little-endian dimensions, rows and cols
 * swapped, a piece written twice or dropped, a header the reader refuses. */
static void test_round_trip(void **state)
{
    (void)state;
    char dir[MAX_PATH], path[MAX_PATH], lpath[MAX_PATH], err[256] = "";
    scratch_mkdtemp(dir, "elbo-idxw");
    join(path, dir, "im.idx");
    join(lpath, dir, "lab.idx");
    enum { COUNT = 7, ROWS = 5, COLS = 3, IMG = ROWS * COLS };
    uint8_t pix[COUNT * IMG], labels[300];
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)(i * 37 + 11);
    for (size_t i = 0; i < sizeof labels; i++)
        labels[i] = (uint8_t)(i * 7);

    elbo_idx_writer w;
    assert_int_equal(elbo_idx_writer_open(&w, path, COUNT, ROWS, COLS, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix, 3, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix + 3 * IMG, 0, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix + 3 * IMG, 4, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_commit(&w, err, sizeof err), 0);

    uint8_t raw[512];
    static const uint8_t header[16] = {0, 0, 8, 3, 0, 0, 0, COUNT, 0, 0, 0, ROWS, 0, 0, 0, COLS};
    assert_int_equal(slurp(path, raw, sizeof raw), 16 + sizeof pix);
    assert_memory_equal(raw, header, 16);
    elbo_idx_images im;
    if (elbo_idx_read_images(path, &im, err, sizeof err) != 0)
        test_failf("read back: %s\n", err);
    assert_int_equal(im.count, COUNT);
    assert_int_equal(im.rows, ROWS);
    assert_int_equal(im.cols, COLS);
    assert_memory_equal(im.pixels, pix, sizeof pix);
    elbo_idx_images_free(&im);

    /* the one-call writer gives the same bytes */
    char path2[MAX_PATH];
    uint8_t raw2[512];
    assert_int_equal(elbo_idx_write_images(join(path2, dir, "im2.idx"), pix, COUNT, ROWS, COLS, err, sizeof err), 0);
    assert_int_equal(slurp(path2, raw2, sizeof raw2), 16 + sizeof pix);
    assert_memory_equal(raw, raw2, 16 + sizeof pix);

    assert_int_equal(elbo_idx_write_labels(lpath, labels, sizeof labels, err, sizeof err), 0);
    static const uint8_t lheader[8] = {0, 0, 8, 1, 0, 0, 300 >> 8, 300 & 0xff};
    assert_int_equal(slurp(lpath, raw, sizeof raw), 8 + sizeof labels);
    assert_memory_equal(raw, lheader, 8);
    uint8_t *back = NULL;
    size_t n = 0;
    if (elbo_idx_read_labels(lpath, &back, &n, err, sizeof err) != 0)
        test_failf("read back: %s\n", err);
    assert_int_equal(n, sizeof labels);
    assert_memory_equal(back, labels, sizeof labels);
    elbo_idx_labels_free(back);
    /* the files are readable by others (0644), like every other output */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(entries(dir), 3);
    remove_tree(dir);
}

/* Every failure: one line naming the file, nothing new in the directory, an existing file unchanged.
 * Catches: a short file renamed into place (commit without the count check), a temporary file left behind,
 * dimensions of 0 or >= 2^32 written into a header the reader refuses, a missing directory reported late. */
static void test_failures_leave_nothing(void **state)
{
    (void)state;
    char dir[MAX_PATH], path[MAX_PATH], missing[MAX_PATH], err[256];
    scratch_mkdtemp(dir, "elbo-idxw");
    join(path, dir, "keep.idx");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("old contents", f);
    fclose(f);
    uint8_t pix[4 * 6] = {0};
    elbo_idx_writer w;

    /* too few images: committed short */
    assert_int_equal(elbo_idx_writer_open(&w, path, 4, 2, 3, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix, 3, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_commit(&w, err, sizeof err), -1);
    expect_error_line(err, path, "3 of the header's 4 images");
    /* too many */
    assert_int_equal(elbo_idx_writer_open(&w, path, 4, 2, 3, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix, 3, err, sizeof err), 0);
    assert_int_equal(elbo_idx_writer_put(&w, pix, 2, err, sizeof err), -1);
    expect_error_line(err, path, "more than the header's count of 4");
    elbo_idx_writer_abort(&w);
    elbo_idx_writer_abort(&w); /* twice is harmless */
    /* impossible dimensions */
    assert_int_equal(elbo_idx_write_images(path, pix, 0, 2, 3, err, sizeof err), -1);
    expect_error_line(err, path, "count: 0");
    assert_int_equal(elbo_idx_write_images(path, pix, 1, (size_t)1 << 32, 1, err, sizeof err), -1);
    expect_error_line(err, path, "rows: 4294967296");
    assert_int_equal(elbo_idx_write_images(path, pix, 70000, 28, 28 * 100, err, sizeof err), -1);
    expect_error_line(err, path, "limit");
    assert_int_equal(elbo_idx_write_labels(path, pix, 0, err, sizeof err), -1);
    expect_error_line(err, path, "count: 0");

    uint8_t raw[64];
    assert_int_equal(slurp(path, raw, sizeof raw), strlen("old contents"));
    assert_memory_equal(raw, "old contents", strlen("old contents"));
    assert_int_equal(entries(dir), 1);

    /* a directory that does not exist */
    join(missing, dir, "no/such.idx");
    assert_int_equal(elbo_idx_write_images(missing, pix, 4, 2, 3, err, sizeof err), -1);
    expect_error_line(err, missing, "No such file");
    assert_int_equal(elbo_idx_write_labels(missing, pix, 4, err, sizeof err), -1);
    expect_error_line(err, missing, "temporary file");
    assert_int_equal(entries(dir), 1);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_failures_leave_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
