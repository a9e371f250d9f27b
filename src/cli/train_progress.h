/* `elbo train`'s live progress line and its stop signals (SIGINT/SIGTERM end training after the current step). */
#ifndef ELBO_TRAIN_PROGRESS_H
#define ELBO_TRAIN_PROGRESS_H

#include <stddef.h>

#include "train.h"

/* One line per epoch on a terminal, rewritten in place. */
typedef struct {
    int tty;                 /* stderr is a terminal */
    size_t epoch, epochs;
    size_t first_done;       /* samples of this epoch already done when it started (resumed runs) */
    double start, last_draw;
} train_progress;

/* Starts the progress of epoch `epoch` whose first first_done samples were trained before. */
void train_progress_begin(train_progress *p, size_t epoch, size_t first_done);

/* elbo_step_callback: asks to stop after this step when a stop signal arrived; redraws the line at most
 * five times a second. ctx is a train_progress. */
int train_progress_step(void *ctx, const elbo_trainer *tr, size_t done, size_t total, const elbo_loss_means *run);

/* Erases the progress line (before a result line is printed). */
void train_progress_clear(const train_progress *p);

/* Installs the SIGINT and SIGTERM handlers. */
void train_catch_stop_signals(void);

/* The stop signal received (SIGINT or SIGTERM), or 0. */
int train_stop_signal(void);

#endif
