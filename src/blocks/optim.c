/* Adam and SGD steps over the parameter arena. */
#include "optim.h"

#include <stdlib.h>
#include <string.h>

elbo_optimizer_config elbo_optimizer_config_default(elbo_optimizer_kind kind, double lr)
{
    elbo_optimizer_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.adam.lr = lr;
    c.adam.beta1 = 0.9;
    c.adam.beta2 = 0.999;
    c.adam.eps = 1e-8;
    c.sgd.lr = lr;
    c.sgd.momentum = 0.9;
    return c;
}

const char *elbo_optimizer_name(elbo_optimizer_kind k)
{
    return k == ELBO_OPT_SGD ? "sgd" : "adam";
}

int elbo_optimizer_init(elbo_optimizer *o, const elbo_optimizer_config *cfg, const elbo_param_layout *l)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->m = elbo_arena_alloc(l);
    if (cfg->kind == ELBO_OPT_ADAM)
        o->v = elbo_arena_alloc(l);
    if (!o->m || (cfg->kind == ELBO_OPT_ADAM && !o->v)) {
        elbo_optimizer_free(o);
        return -1;
    }
    return 0;
}

void elbo_optimizer_free(elbo_optimizer *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void elbo_optimizer_begin_step(elbo_optimizer *o)
{
    o->step++;
}

/* The block_lr entry holding arena offset off, or NULL. */
static const elbo_block_lr *block_at(const elbo_optimizer_config *c, size_t off)
{
    for (size_t i = 0; i < c->n_block_lr; i++)
        if (off >= c->block_lr[i].begin && off < c->block_lr[i].end)
            return &c->block_lr[i];
    return NULL;
}

void elbo_optimizer_update_block(const elbo_optimizer *o, const elbo_kernels *kern, float *params, const float *g,
                                 size_t off, size_t rows, size_t cols, size_t ld)
{
    if (rows == 0 || cols == 0)
        return;
    const elbo_block_lr *blk = block_at(&o->cfg, off);
    long step = blk && blk->every > 1 ? o->step / blk->every : o->step; /* the block's own updates */
    if (o->cfg.kind == ELBO_OPT_ADAM) {
        elbo_adam_hparams h = o->cfg.adam;
        h.step = step;
        h.lr = blk ? blk->lr : h.lr;
        kern->adam(params + off, o->m + off, o->v + off, g, rows, cols, ld, &h);
    } else {
        elbo_sgd_hparams h = o->cfg.sgd;
        h.lr = blk ? blk->lr : h.lr;
        kern->sgd(params + off, o->m + off, g, rows, cols, ld, &h, step == 1);
    }
}
