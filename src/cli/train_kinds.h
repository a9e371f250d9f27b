/* The model kinds `elbo train` trains, one file each (train_vae.c, train_classifier.c, train_gan.c) on one table:
 * how a kind builds its model from the flags, loads it from a checkpoint, sets up the optimizer and reports an
 * epoch. train_cmd.c knows no kind by name. */
#ifndef ELBO_TRAIN_KINDS_H
#define ELBO_TRAIN_KINDS_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "checkpoint.h"
#include "dataset.h"
#include "kernels.h"
#include "optim.h"
#include "train.h"

/* The flags of `elbo train`, after parsing (kinds read the ones they use). */
typedef struct {
    const char *model, *data, *hidden, *decoder_hidden, *recon, *optimizer, *save, *resume, *classes;
    const char *d_hidden, *schedule;
    const char *mask;               /* flow: checkerboard or half */
    const char *precision;          /* fp32 or bf16 (NULL: fp32, or the checkpoint's with --resume) */
    size_t couplings;               /* flow */
    size_t epochs, batch, latent, threads;
    long steps, eval_every, save_every;
    double lr, momentum, sigma0, beta, target, adam_beta1, adam_beta2, real_label, d_lr_scale, ema;
    size_t spectral_norm, d_steps;
    uint64_t seed;
    int json;
} train_args;

typedef struct train_kind train_kind;

/* The model being trained: its kind, the kind's own struct (allocated by the kind) and the trainer's view of it. */
typedef struct {
    const train_kind *kind;
    void *impl;
    elbo_model model;
} train_model;

/* One epoch's figures, as a kind reports them. */
typedef struct {
    size_t epoch;
    long steps;                     /* optimizer steps taken so far */
    const elbo_loss_means *train;   /* the epoch's training means */
    const elbo_loss_means *test;    /* the test set's means (zeros for a kind that does not evaluate) */
    double samples_per_s, train_s, eval_s;
    size_t input_dim;               /* pixels per image (what a flow's bits per dimension divide by) */
} train_epoch;

struct train_kind {
    const char *name;               /* --model NAME, and the checkpoint's __metadata__.model */
    const char *title;              /* in messages: "VAE", "GAN" */
    const char *const *flags;       /* the model flags this kind uses (NULL-terminated): a model flag given for a kind
                                     * that does not list it is refused */
    int evaluates;                  /* each epoch also evaluates the test set (elbo_evaluate) */
    const char *target_metric;      /* what --target compares (the test means' loss), e.g. "test -ELBO"; NULL: --target
                                     * is refused */
    const char *target_keys[2];     /* the JSON keys of the target and of the metric reached */
    /* Sets the kind's own defaults of the flags not given (cli_find(opts, n, name)->seen). */
    void (*set_defaults)(train_args *a, const cli_option *opts, size_t n_opts);
    /* A fresh model from the flags and the data, initialized from a->seed and packed; prints the error and returns
     * the exit status (0 when done). */
    int (*create)(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm);
    /* The model of a checkpoint of this kind, and its training state; 0 or -1 with a message in err. */
    int (*load)(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st, char *err,
                size_t errlen);
    /* The metadata field of a resumed model that does not fit the data, or NULL (may be NULL). */
    const char *(*mismatch)(const train_model *tm, const elbo_dataset *ds);
    /* Sets the flags that the resumed model fixes beyond the trainer's (may be NULL). */
    void (*resumed)(const train_model *tm, train_args *a);
    void (*free)(train_model *tm);
    /* The model's config in words. */
    void (*describe)(const train_model *tm, char *buf, size_t len);
    /* Adjusts the optimizer's config for this model (may be NULL). */
    void (*tune_optimizer)(const train_model *tm, const train_args *a, elbo_optimizer_config *oc);
    /* Prints one epoch: a JSON line with a->json, else a human line. */
    void (*report_epoch)(const train_args *a, const train_epoch *e);
};

/* The kind called name, or NULL. */
const train_kind *train_kind_find(const char *name);

/* The kinds' names as "vae, classifier or gan" (sep: ", " ... " or "). */
const char *train_kind_names(char *buf, size_t len, const char *last_sep);

/* Refuses a model flag given (opts[i].seen) that kind does not use: prints one line naming the flag and a kind that
 * uses it, returns -1. */
int train_kind_check_flags(const train_kind *kind, const cli_option *opts, size_t n_opts);

/* 1 when name is a model flag (some kind lists it): fixed by the checkpoint under --resume. */
int train_kind_is_model_flag(const char *name);

/* Prints a kind's error line "elbo train: <err>" and returns -1 (for create/load helpers). */
int train_kind_fail(const char *err);

extern const train_kind train_kind_vae, train_kind_classifier, train_kind_gan, train_kind_flow,
    train_kind_diffusion;

#endif
