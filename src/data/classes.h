/* Sets of class labels ("0,1,4"): parsing against a dataset's classes, formatting, and keeping only the
 * images of a set in a split (training on "normal" classes). */
#ifndef ELBO_CLASSES_H
#define ELBO_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

typedef struct {
    uint8_t member[256];   /* member[label] = 1 when the label is in the set */
    size_t count;          /* labels in the set */
} elbo_class_set;

/* Parses a comma-separated list of labels, each in [0, num_classes), no repeats, into s.
 * Returns 0, or -1 with a message in err naming the offending item. */
int elbo_class_set_parse(elbo_class_set *s, const char *text, size_t num_classes, char *err, size_t errlen);

/* Formats s as "0,1,4" (ascending) into out. */
void elbo_class_set_format(const elbo_class_set *s, char *out, size_t outlen);

/* Keeps, in place and in order, only the images of sp whose label is in s; returns how many remain. */
size_t elbo_split_keep_classes(elbo_split *sp, const elbo_class_set *s);

#endif
