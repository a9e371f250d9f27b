/* One family of `elbo zoo` in one precision: train, its own test metric, FD and class coverage of its samples, a
 * sample grid, each a child `elbo` command with --json, gathered into one JSON object. */
#ifndef ELBO_ZOO_RUNS_H
#define ELBO_ZOO_RUNS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* A family: its --model and its default step counts (full and --quick). */
typedef struct {
    const char *name;        /* --model */
    const char *title;       /* in the table: "VAE" */
    long steps, quick_steps;
} zoo_family;

/* The four families, in the table's order. */
extern const zoo_family zoo_families[];
extern const size_t zoo_n_families;

/* What every run shares. */
typedef struct {
    const char *exe;          /* the elbo binary the children run */
    const char *data;         /* --data (NULL: the default dataset) */
    const char *classifier;   /* the reference classifier */
    const char *work_dir;     /* checkpoints (removed by the caller) */
    const char *grid_dir;     /* the sample grids' directory */
    const char *grid_prefix;  /* how the JSON names that directory (relative to the JSON) */
    char threads[24], seed[24], count[24], bound_images[24], iw_k[24], grid_side[24];
} zoo_setup;

/* Runs family f in precision ("fp32" or "bf16") for `steps` steps into the new object *run (family, precision, steps,
 * model, parameters, train_flops_per_sample, train, metric, score, grid, commands, child_seconds). Prints one progress
 * line per child to stdout. Returns 0, or the failing child's exit status (-1: it could not start) with one line in
 * err naming the family, the child and its status and its last stderr line; *run then holds what was done. */
int zoo_run_family(const zoo_setup *s, const zoo_family *f, const char *precision, long steps, cJSON **run,
                   char *err, size_t errlen);

#endif
