/* The threads of a training run: how many, and each one's private GEMM workspace (allocated once). */
#ifndef ELBO_TEAM_H
#define ELBO_TEAM_H

#include <stddef.h>

#include "gemm.h"
#include "kernels.h"

typedef struct {
    size_t n;                    /* threads */
    elbo_gemm_workspace *ws;     /* (n) one per thread */
} elbo_team;

/* Prepares n >= 1 threads' workspaces for kernels k; returns 0 or -1 on out-of-memory. */
int elbo_team_init(elbo_team *t, size_t n, const elbo_kernels *k);
/* Frees the workspaces (safe on a zeroed struct). */
void elbo_team_free(elbo_team *t);
/* [lo, hi) of thread `part` of nparts over n rows (contiguous, sizes differ by at most one). */
void elbo_team_rows(size_t n, size_t part, size_t nparts, size_t *lo, size_t *hi);

#endif
