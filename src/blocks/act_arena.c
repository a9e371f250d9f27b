/* One allocation for all of a step's per-row buffers, with named views. */
#include "act_arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_ALIGN 4096

void elbo_act_arena_init(elbo_act_arena *a)
{
    memset(a, 0, sizeof *a);
}

int elbo_act_arena_add(elbo_act_arena *a, const char *name, size_t row_bytes)
{
    if (a->base || a->n_views == ELBO_ACT_ARENA_MAX_VIEWS)
        return -1;
    elbo_act_view *v = &a->view[a->n_views];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->row_bytes = row_bytes;
    v->offset = 0;
    return (int)a->n_views++;
}

int elbo_act_arena_alloc(elbo_act_arena *a, size_t max_rows)
{
    size_t off = 0;
    for (size_t i = 0; i < a->n_views; i++) {
        size_t bytes = max_rows * a->view[i].row_bytes;
        a->view[i].offset = off;
        off += (bytes + VIEW_ALIGN - 1) / VIEW_ALIGN * VIEW_ALIGN;
    }
    a->max_rows = max_rows;
    a->bytes = off;
    a->base = aligned_alloc(VIEW_ALIGN, off ? off : VIEW_ALIGN);
    if (!a->base)
        return -1;
    memset(a->base, 0, off);
    return 0;
}

void *elbo_act_arena_view(const elbo_act_arena *a, int i)
{
    if (!a->base || i < 0 || (size_t)i >= a->n_views || a->view[i].row_bytes == 0)
        return NULL;
    return a->base + a->view[i].offset;
}

int elbo_act_arena_find(const elbo_act_arena *a, const char *name)
{
    for (size_t i = 0; i < a->n_views; i++)
        if (!strcmp(a->view[i].name, name))
            return (int)i;
    return -1;
}

void elbo_act_arena_free(elbo_act_arena *a)
{
    free(a->base);
    a->base = NULL;
    a->bytes = 0;
}
