/* Dataset loading: a directory of the four standard IDX files, or "synthetic:N". */
#include "dataset.h"

#include "errmsg.h"
#include "lazy_alloc.h"
#include "idx.h"
#include "synthetic.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SYNTHETIC_PREFIX "synthetic:"

static const char *const fashion_mnist_class_names[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot", NULL,
};

static const char *const mnist_class_names[] = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", NULL,
};

/* The four files of a directory dataset, in load order. */
enum { TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS, NUM_FILES };
static const char *const file_bases[NUM_FILES] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
};

/* Frees a split's arrays and zeroes it. */
void elbo_split_free(elbo_split *s)
{
    elbo_lazy_free(s->pixels);
    elbo_lazy_free(s->labels);
    memset(s, 0, sizeof *s);
}

/* Frees both splits and zeroes the dataset. */
void elbo_dataset_free(elbo_dataset *ds)
{
    elbo_split_free(&ds->train);
    elbo_split_free(&ds->test);
    memset(ds, 0, sizeof *ds);
}

/* Picks dir/base (preferred) or dir/base.gz into path; -1 with a message when neither exists. */
static int find_file(const char *dir, const char *base, char *path, size_t pathlen, char *err, size_t errlen)
{
    struct stat st;
    int n = snprintf(path, pathlen, "%s/%s", dir, base);
    if (n < 0 || (size_t)n + 3 >= pathlen) {
        elbo_errf(err, errlen, "%s/%s: path too long", dir, base);
        return -1;
    }
    if (stat(path, &st) == 0)
        return 0;
    if (errno != ENOENT) {
        elbo_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    strcat(path, ".gz");
    if (stat(path, &st) == 0)
        return 0;
    elbo_errf(err, errlen, "%s/%s[.gz]: %s", dir, base, strerror(errno));
    return -1;
}

/* Loads one split from its image and label files; counts must agree. */
static int load_split(elbo_split *s, const char *images_path, const char *labels_path, char *err, size_t errlen)
{
    elbo_idx_images im;
    uint8_t *labels = NULL;
    size_t count = 0;
    if (elbo_idx_read_images(images_path, &im, err, errlen) != 0)
        return -1;
    if (elbo_idx_read_labels(labels_path, &labels, &count, err, errlen) != 0) {
        elbo_idx_images_free(&im);
        return -1;
    }
    if (count != im.count) {
        elbo_errf(err, errlen, "count mismatch: %s has %zu images, %s has %zu labels", images_path, im.count,
                  labels_path, count);
        elbo_idx_images_free(&im);
        elbo_idx_labels_free(labels);
        return -1;
    }
    *s = (elbo_split){.n = im.count, .rows = im.rows, .cols = im.cols, .dim = im.rows * im.cols,
                      .pixels = im.pixels, .labels = labels};
    return 0;
}

/* Arguments and result of loading one split on a worker thread. */
typedef struct {
    elbo_split *split;
    const char *images_path, *labels_path;
    int rc;
    char err[1024];
} split_job;

/* Thread body: loads one split. */
static void *split_job_run(void *arg)
{
    split_job *job = arg;
    job->rc = load_split(job->split, job->images_path, job->labels_path, job->err, sizeof job->err);
    return NULL;
}

/* Loads both splits, the test split on a second thread (gzip inflation is single-threaded per file);
 * on failure reports the train split's error first. */
static int load_splits(elbo_dataset *ds, char paths[NUM_FILES][PATH_MAX], char *err, size_t errlen)
{
    split_job job = {.split = &ds->test, .images_path = paths[TEST_IMAGES], .labels_path = paths[TEST_LABELS]};
    pthread_t worker;
    int threaded = pthread_create(&worker, NULL, split_job_run, &job) == 0;
    int rc = load_split(&ds->train, paths[TRAIN_IMAGES], paths[TRAIN_LABELS], err, errlen);
    if (threaded)
        pthread_join(worker, NULL);
    else
        split_job_run(&job);
    if (rc == 0 && job.rc != 0) {
        elbo_errf(err, errlen, "%s", job.err);
        rc = -1;
    }
    return rc;
}

/* Last path component of dir, ignoring trailing slashes, into name. */
static void base_name(const char *dir, char *name, size_t namelen)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    size_t len = end - start;
    if (len >= namelen)
        len = namelen - 1;
    memcpy(name, dir + start, len);
    name[len] = '\0';
}

/* Whether dir is the default data directory (same file, however spelled). */
static int is_default_dir(const char *dir)
{
    struct stat a, b;
    return stat(dir, &a) == 0 && stat(ELBO_DEFAULT_DATA_DIR, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Sets the dataset's name and class names from the directory it came from. */
static void identify(elbo_dataset *ds, const char *dir)
{
    base_name(dir, ds->name, sizeof ds->name);
    if (is_default_dir(dir) || strcmp(ds->name, "fashion-mnist") == 0) {
        strcpy(ds->name, "fashion-mnist");
        ds->class_names = fashion_mnist_class_names;
    } else if (strcmp(ds->name, "mnist") == 0) {
        ds->class_names = mnist_class_names;
    }
}

/* Loads a directory of the four standard IDX files. */
static int load_dir(elbo_dataset *ds, const char *dir, char *err, size_t errlen)
{
    char paths[NUM_FILES][PATH_MAX];
    struct stat st;
    if (stat(dir, &st) != 0) {
        elbo_errf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        elbo_errf(err, errlen, "%s: not a directory (expected a directory of IDX files, or synthetic:N)", dir);
        return -1;
    }
    for (int f = 0; f < NUM_FILES; f++)
        if (find_file(dir, file_bases[f], paths[f], sizeof paths[f], err, errlen) != 0)
            return -1;
    if (load_splits(ds, paths, err, errlen) != 0)
        return -1;
    if (ds->train.rows != ds->test.rows || ds->train.cols != ds->test.cols) {
        elbo_errf(err, errlen, "image size differs between splits: %s is %zux%zu, %s is %zux%zu",
                  paths[TRAIN_IMAGES], ds->train.rows, ds->train.cols, paths[TEST_IMAGES], ds->test.rows,
                  ds->test.cols);
        return -1;
    }
    identify(ds, dir);
    return 0;
}

/* Loads "synthetic:N" given the text after the prefix. */
static int load_synthetic(elbo_dataset *ds, const char *arg, char *err, size_t errlen)
{
    size_t n = 0;
    const char *p = arg;
    for (; *p >= '0' && *p <= '9' && n <= ELBO_SYNTHETIC_MAX_N; p++)
        n = n * 10 + (size_t)(*p - '0');
    if (p == arg || *p != '\0' || n < 1 || n > ELBO_SYNTHETIC_MAX_N) {
        elbo_errf(err, errlen, "%s%s: expected %sN with N from 1 to %zu", SYNTHETIC_PREFIX, arg, SYNTHETIC_PREFIX,
                  ELBO_SYNTHETIC_MAX_N);
        return -1;
    }
    if (elbo_synthetic_split(&ds->train, n, ELBO_SYNTHETIC_TRAIN_SEED) != 0 ||
        elbo_synthetic_split(&ds->test, (n + 5) / 6, ELBO_SYNTHETIC_TEST_SEED) != 0) {
        elbo_errf(err, errlen, "%s%s: out of memory", SYNTHETIC_PREFIX, arg);
        return -1;
    }
    strcpy(ds->name, "synthetic");
    ds->class_names = elbo_synthetic_class_names;
    return 0;
}

/* 1 + the largest label of a split (0 when empty). */
static size_t classes_in(const elbo_split *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if ((size_t)s->labels[i] + 1 > k)
            k = (size_t)s->labels[i] + 1;
    return k;
}

/* Loads a dataset from spec (see dataset.h). */
int elbo_dataset_load(elbo_dataset *ds, const char *spec, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    if (!spec || !*spec)
        spec = ELBO_DEFAULT_DATA_DIR;
    const size_t plen = strlen(SYNTHETIC_PREFIX);
    int rc = strncmp(spec, SYNTHETIC_PREFIX, plen) == 0 ? load_synthetic(ds, spec + plen, err, errlen)
                                                         : load_dir(ds, spec, err, errlen);
    if (rc != 0) {
        elbo_dataset_free(ds);
        return -1;
    }
    size_t a = classes_in(&ds->train), b = classes_in(&ds->test);
    ds->num_classes = a > b ? a : b;
    if (ds->class_names) {
        size_t known = 0;
        while (ds->class_names[known])
            known++;
        if (ds->num_classes > known)
            ds->class_names = NULL;  /* labels beyond the known names: the names do not apply */
    }
    return 0;
}
