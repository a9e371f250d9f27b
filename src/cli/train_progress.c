/* Progress line and stop signals of `elbo train`. */
#include "train_progress.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"

/* The signal that asked training to stop after the current step, or 0. */
static volatile sig_atomic_t stop_signal;

/* Records a stop request; the training loop finishes its step, saves and exits. */
static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

void train_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int train_stop_signal(void)
{
    return stop_signal;
}

void train_progress_begin(train_progress *p, size_t epoch, size_t first_done)
{
    p->tty = isatty(STDERR_FILENO);
    p->epoch = epoch;
    p->first_done = first_done;
    p->start = cli_now();
    p->last_draw = 0;
}

int train_progress_step(void *ctx, const elbo_trainer *tr, size_t done, size_t total, const elbo_loss_means *run)
{
    train_progress *p = ctx;
    (void)tr;
    if (stop_signal)
        return 1;
    double now = cli_now();
    if (!p->tty || (now - p->last_draw < 0.2 && done < total))
        return 0;
    p->last_draw = now;
    int bar = (int)(30.0 * (double)done / (double)total);
    fprintf(stderr, "\repoch %zu/%zu [%.*s%*s] %3.0f%%  loss %.3f  %.0f samples/s ", p->epoch, p->epochs, bar,
            "==============================", 30 - bar, "", 100.0 * (double)done / (double)total, run->loss,
            (double)(done - p->first_done) / (now - p->start));
    return 0;
}

void train_progress_clear(const train_progress *p)
{
    if (p->tty)
        fprintf(stderr, "\r%*s\r", 100, "");
}
