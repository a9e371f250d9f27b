/* `elbo eval --classifier`: scores generated images with the reference classifier. */
#ifndef ELBO_EVAL_SCORE_H
#define ELBO_EVAL_SCORE_H

#include <stddef.h>
#include <stdint.h>

/* What to score and how. */
typedef struct {
    const char *classifier;  /* the reference classifier's checkpoint */
    const char *images;      /* an IDX file of images to score, or NULL */
    const char *load;        /* else a VAE or GAN checkpoint whose `count` samples (seed) are scored */
    const char *data;        /* the dataset whose test split is the reference */
    size_t count;
    uint64_t seed;
    size_t threads;
    int threads_seen;
    int json;
    const char *method;      /* a diffusion model's sampler (NULL: DDIM) */
    size_t method_steps;     /* its steps (0: 50) */
    const char *precision;   /* the sampled model's (NULL: its checkpoint's); the classifier runs in its own */
} eval_score_args;

/* FD to the test images in the classifier's last hidden layer (with the floor of as many training images), and
 * class coverage of the predicted classes. Prints the result or one error line; returns the exit status. */
int cli_eval_score(const eval_score_args *a);

#endif
