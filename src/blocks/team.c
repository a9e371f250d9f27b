/* Per-thread workspaces and row partitions of a training run. */
#include "team.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* 1 when the user pinned OpenMP threads through the environment (hwloc binding would fight it). */
static int omp_env_pins(void)
{
    const char *b = getenv("OMP_PROC_BIND"), *p = getenv("OMP_PLACES");
    return (b && *b && strcmp(b, "false") != 0) || (p && *p);
}

int elbo_team_init(elbo_team *t, size_t n, const elbo_kernels *k, const elbo_topology *topo)
{
    char note[256];
    int failed = 0;
    memset(t, 0, sizeof *t);
    t->ws = calloc(n, sizeof *t->ws);
    t->place = topo ? calloc(n, sizeof *t->place) : NULL;
    if (!t->ws || (topo && !t->place)) {
        elbo_team_free(t);
        return -1;
    }
    t->n = n;
    t->topo = topo;
    int bind = topo && elbo_topology_is_this_machine(topo) && !omp_env_pins() &&
               elbo_topology_plan(topo, n, t->place, note, sizeof note) >= 0;
#pragma omp parallel num_threads((int)n) default(none) shared(t, k, bind, failed)
    {
        size_t i = (size_t)omp_get_thread_num();
        if (bind)
            elbo_topology_bind_thread_or_warn(t->topo, &t->place[i]);
        if (elbo_gemm_workspace_init(&t->ws[i], k) != 0) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed) {
        elbo_team_free(t);
        return -1;
    }
    return 0;
}

void elbo_team_place_rows(const elbo_team *t, void *buf, size_t max_rows, size_t row_bytes)
{
    if (!buf)
        return;
#pragma omp parallel num_threads((int)t->n) default(none) shared(t, buf, max_rows, row_bytes)
    {
        size_t i = (size_t)omp_get_thread_num(), r0, r1;
        elbo_team_rows(max_rows, i, t->n, &r0, &r1);
        char *p = (char *)buf + r0 * row_bytes;
        if (t->topo && t->place && t->n > 1)
            elbo_topology_bind_area(t->topo, p, (r1 - r0) * row_bytes, t->place[i].numa_node);
        memset(p, 0, (r1 - r0) * row_bytes);
    }
}

void elbo_team_place_arena(const elbo_team *t, const elbo_act_arena *a)
{
    for (size_t i = 0; i < a->n_views; i++)
        elbo_team_place_rows(t, elbo_act_arena_view(a, (int)i), a->max_rows, a->view[i].row_bytes);
}

void elbo_team_free(elbo_team *t)
{
    for (size_t i = 0; t->ws && i < t->n; i++)
        elbo_gemm_workspace_free(&t->ws[i]);
    free(t->ws);
    free(t->place);
    memset(t, 0, sizeof *t);
}

void elbo_team_rows(size_t n, size_t part, size_t nparts, size_t *lo, size_t *hi)
{
    *lo = n * part / nparts;
    *hi = n * (part + 1) / nparts;
}
