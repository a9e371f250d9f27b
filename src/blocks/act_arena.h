/* The activation arena: every per-row buffer of a model's step (activations, their gradients, losses, noise) in
 * one allocation with named views, freed once and placed on the NUMA nodes in one loop (elbo_team_place_arena):
 * each thread's rows of every view on its thread's node.
 *
 * Declare the views (elbo_act_arena_add, row size in bytes), allocate for up to max_rows rows, then read each view's
 * base with elbo_act_arena_view. Views start on page boundaries, so a thread's rows of one view never share a page
 * with another view's. */
#ifndef ELBO_ACT_ARENA_H
#define ELBO_ACT_ARENA_H

#include <stddef.h>

#define ELBO_ACT_ARENA_MAX_VIEWS 128 /* a flow of 8 couplings declares 72 */
#define ELBO_ACT_VIEW_NAME_MAX 32

typedef struct {
    char name[ELBO_ACT_VIEW_NAME_MAX];
    size_t row_bytes;
    size_t offset;          /* bytes from the arena's base (after elbo_act_arena_alloc) */
} elbo_act_view;

typedef struct {
    size_t n_views;
    elbo_act_view view[ELBO_ACT_ARENA_MAX_VIEWS];
    size_t max_rows;
    size_t bytes;
    unsigned char *base;    /* NULL until allocated */
} elbo_act_arena;

/* An empty arena. */
void elbo_act_arena_init(elbo_act_arena *a);
/* Declares a view of row_bytes per row; returns its index, or -1 when the arena is full or allocated. A view of 0
 * bytes per row is allowed (its base is then NULL). */
int elbo_act_arena_add(elbo_act_arena *a, const char *name, size_t row_bytes);
/* Allocates every declared view for max_rows rows (zeroed); returns 0 or -1 on out-of-memory. */
int elbo_act_arena_alloc(elbo_act_arena *a, size_t max_rows);
/* Base of view i (row r at base + r * row_bytes), or NULL for a view of 0 bytes per row. */
void *elbo_act_arena_view(const elbo_act_arena *a, int i);
/* The index of the view called name, or -1. */
int elbo_act_arena_find(const elbo_act_arena *a, const char *name);
/* Frees the allocation (safe on an empty or zeroed arena); the declared views stay. */
void elbo_act_arena_free(elbo_act_arena *a);

#endif
