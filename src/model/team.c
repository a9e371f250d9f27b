/* Per-thread workspaces and row partitions of a training run. */
#include "team.h"

#include <stdlib.h>
#include <string.h>

int elbo_team_init(elbo_team *t, size_t n, const elbo_kernels *k)
{
    memset(t, 0, sizeof *t);
    t->ws = calloc(n, sizeof *t->ws);
    if (!t->ws)
        return -1;
    t->n = n;
    for (size_t i = 0; i < n; i++)
        if (elbo_gemm_workspace_init(&t->ws[i], k) != 0) {
            elbo_team_free(t);
            return -1;
        }
    return 0;
}

void elbo_team_free(elbo_team *t)
{
    for (size_t i = 0; t->ws && i < t->n; i++)
        elbo_gemm_workspace_free(&t->ws[i]);
    free(t->ws);
    memset(t, 0, sizeof *t);
}

void elbo_team_rows(size_t n, size_t part, size_t nparts, size_t *lo, size_t *hi)
{
    *lo = n * part / nparts;
    *hi = n * (part + 1) / nparts;
}
