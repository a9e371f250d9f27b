/* The threads of a training run: how many, and each one's private GEMM workspace (allocated once). */
#ifndef ELBO_TEAM_H
#define ELBO_TEAM_H

#include <stddef.h>

#include "act_arena.h"
#include "gemm.h"
#include "kernels.h"
#include "topology.h"

typedef struct {
    size_t n;                    /* threads */
    elbo_gemm_workspace *ws;     /* (n) one per thread, allocated and first touched by its thread */
    elbo_thread_place *place;    /* (n) where each thread runs (NULL without a topology) */
    const elbo_topology *topo;   /* NULL: threads are not bound */
} elbo_team;

/* Prepares n >= 1 threads: with a topology, plans their places and binds each OpenMP thread to its core
 * (unless OMP_PROC_BIND or OMP_PLACES already pins them; binding failures warn once and continue); each
 * thread then allocates its own GEMM workspace. Returns 0 or -1 on out-of-memory. */
int elbo_team_init(elbo_team *t, size_t n, const elbo_kernels *k, const elbo_topology *topo);

/* Places rows [0, max_rows) of a row-major buffer of row_bytes per row: each thread's row block goes to its
 * thread's NUMA node (bound where supported) and is first-touched (zeroed) by that thread. */
void elbo_team_place_rows(const elbo_team *t, void *buf, size_t max_rows, size_t row_bytes);
/* elbo_team_place_rows for every view of an allocated activation arena, over its max_rows rows. */
void elbo_team_place_arena(const elbo_team *t, const elbo_act_arena *a);
/* Frees the workspaces (safe on a zeroed struct). */
void elbo_team_free(elbo_team *t);
/* [lo, hi) of thread `part` of nparts over n rows (contiguous, sizes differ by at most one). */
void elbo_team_rows(size_t n, size_t part, size_t nparts, size_t *lo, size_t *hi);

#endif
