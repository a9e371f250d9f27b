/* `elbo eval` of a diffusion checkpoint: its variational bound in bits/dim. */
#ifndef ELBO_EVAL_DIFFUSION_H
#define ELBO_EVAL_DIFFUSION_H

#include <stddef.h>
#include <stdint.h>

/* The bound of the first `count` test images of data (NULL: the default) in bits/dim from eval_steps stratified steps
 * (0: 100), noise from seed, on threads threads (threads_seen 0: the default count), and the test simple loss; prints
 * them (json: one JSON object) or one error line; returns the exit status. */
int cli_eval_diffusion(const char *load, const char *data, size_t threads, int threads_seen, size_t eval_steps,
                       size_t count, uint64_t seed, int json, const char *precision);

#endif
