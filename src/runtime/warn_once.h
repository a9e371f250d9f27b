/* Warnings printed at most once per process, whichever thread gets there first. */
#ifndef ELBO_WARN_ONCE_H
#define ELBO_WARN_ONCE_H

#include <stdatomic.h>
#include <stdio.h>

typedef struct {
    atomic_flag fired;
} elbo_warn_flag;

#define ELBO_WARN_FLAG_INIT {ATOMIC_FLAG_INIT}

/* Prints one line (fmt, then a newline) to f the first time it is called with this flag, nothing after;
 * returns 1 when it printed. Safe to call from several threads at once. */
int elbo_warn_once(elbo_warn_flag *flag, FILE *f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
