/* A train/test dataset of uint8 images with uint8 labels: Fashion-MNIST (or any directory of the four
 * standard IDX files), or a small deterministic synthetic set for tests. */
#ifndef ELBO_DATASET_H
#define ELBO_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;            /* samples */
    size_t rows, cols;   /* image shape */
    size_t dim;          /* rows * cols */
    uint8_t *pixels;     /* n * dim, owned (elbo_lazy_alloc) */
    uint8_t *labels;     /* n, owned (elbo_lazy_alloc) */
} elbo_split;

typedef struct {
    elbo_split train, test;
    char name[64];                  /* "fashion-mnist", "mnist", "synthetic", or the directory's base name */
    const char *const *class_names; /* NULL-terminated list of num_classes names when known, else NULL */
    size_t num_classes;             /* max label + 1 over both splits */
} elbo_dataset;

#define ELBO_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
/* Largest N accepted by "synthetic:N". */
#define ELBO_SYNTHETIC_MAX_N ((size_t)1000000)

/* Loads a dataset. spec:
 *  - NULL or "": ELBO_DEFAULT_DATA_DIR;
 *  - a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 *    t10k-labels-idx1-ubyte, each plain or with ".gz" (plain preferred when both exist); any image size,
 *    the same in both splits. A directory named "fashion-mnist" (or the default one) gets Fashion-MNIST's
 *    ten class names, one named "mnist" the digits "0".."9"; any other gets its base name and no class names;
 *  - "synthetic:N" (1 <= N <= ELBO_SYNTHETIC_MAX_N): N training and ceil(N/6) test images, 28x28,
 *    10 balanced classes of simple shapes with jitter and noise, the same bytes on every platform;
 *    class names "class 0".."class 9" (see synthetic.h).
 * Checks image count == label count per split and equal image shape across splits.
 * Returns 0, or -1 with a one-line message in err and *ds zeroed. */
int elbo_dataset_load(elbo_dataset *ds, const char *spec, char *err, size_t errlen);

/* Frees everything the dataset owns and zeroes it (safe on a zeroed dataset). */
void elbo_dataset_free(elbo_dataset *ds);

/* Frees a split's arrays and zeroes it. */
void elbo_split_free(elbo_split *s);

#endif
