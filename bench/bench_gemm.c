/* The VAE's GEMM shapes against OpenBLAS, single-threaded. Operands are made on a shape's first call and kept
 * for its later calls (repetitions, other variants), so a row's setup costs nothing after the first. */
#include "bench_gemm.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"

enum { ELBO_ROW, ELBO_PACKB_ROW, OPENBLAS_ROW, N_VARIANTS };
static const char *VARIANT_NAMES[N_VARIANTS] = {"elbo", "elbo_packB", "openblas"};

typedef struct {
    const char *name;
    size_t m, n, k; /* 0 stands for the batch */
    elbo_trans ta, tb;
    int b_is_weight; /* the trainer packs B once per optimizer step */
} gemm_shape;

static const gemm_shape SHAPES[] = {
    {"enc1.fwd", 0, 400, 784, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.fwd", 0, 784, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"enc_heads.fwd", 0, 40, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.dgrad", 0, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, 1},
    {"enc1.wgrad", 400, 784, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec2.wgrad", 784, 400, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec1.wgrad", 400, 20, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"square2048", 2048, 2048, 2048, ELBO_NOTRANS, ELBO_NOTRANS, 0},
};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])
static const size_t BATCHES[] = {32, 128, 256, 1024};
#define N_BATCHES (sizeof BATCHES / sizeof BATCHES[0])

/* One shape at one batch: its sizes and, once made, its operands. */
typedef struct {
    const bench_env *env;
    const gemm_shape *s;
    size_t m, n, k, lda, ldb;
    int ready;
    elbo_gemm_workspace ws;
    elbo_packed_b packed;
    float *a, *b, *c;
} gemm_case;

/* A row: a case and how it is computed. */
typedef struct {
    gemm_case *g;
    int variant;
} gemm_row;

static gemm_case g_cases[N_SHAPES * N_BATCHES];
static gemm_row g_rows[N_SHAPES * N_BATCHES * N_VARIANTS];
static size_t g_n_cases;

/* Makes the operands of a case and packs its B; 0 or -1 when out of memory. */
static int case_ready(gemm_case *g)
{
    if (g->ready)
        return 0;
    g->a = bench_random_floats(g->m * g->k, 1);
    g->b = bench_random_floats(g->k * g->n, 2);
    g->c = bench_random_floats(g->m * g->n, 3);
    if (!g->a || !g->b || !g->c || elbo_gemm_workspace_init(&g->ws, g->env->kern) != 0 ||
        elbo_packed_b_alloc(&g->packed, g->env->kern, g->k, g->n) != 0)
        return -1;
    elbo_pack_b(&g->packed, elbo_operand_f32(g->b, g->ldb, g->s->tb));
    const char *pack_a = getenv("ELBO_BENCH_PACK_A"); /* 1: always pack A, 0: never (default: the heuristic) */
    if (pack_a && *pack_a)
        g->ws.pack_a = pack_a[0] == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
    g->ready = 1;
    return 0;
}

/* One C = op(A) op(B) of the row's variant. */
static void gemm_once(const gemm_row *row)
{
    gemm_case *g = row->g;
    const gemm_shape *s = g->s;
    elbo_operand a = elbo_operand_f32(g->a, g->lda, s->ta);
    switch (row->variant) {
    case ELBO_ROW:
        if (s->b_is_weight) {
            elbo_gemm_packed(g->env->kern, &g->ws, g->m, g->n, g->k, 1.0f, a, &g->packed, 0.0f, g->c, g->n, NULL);
            break;
        }
        /* fall through */
    case ELBO_PACKB_ROW:
        elbo_gemm(g->env->kern, &g->ws, g->m, g->n, g->k, 1.0f, a, elbo_operand_f32(g->b, g->ldb, s->tb), 0.0f,
                  g->c, g->n, NULL);
        break;
    default:
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (int)g->m,
                    (int)g->n, (int)g->k, 1.0f, g->a, (int)g->lda, g->b, (int)g->ldb, 0.0f, g->c, (int)g->n);
    }
}

/* The row: one GEMM per iteration. */
static void run_gemm(gbench_state *st, void *user)
{
    const gemm_row *row = user;
    gemm_case *g = row->g;
    if (case_ready(g) != 0) {
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    gemm_once(row); /* warm the caches and OpenBLAS's buffers */
    while (gbench_keep_running(st))
        gemm_once(row);
    char label[64];
    snprintf(label, sizeof label, "%zux%zux%zu %c%c", g->m, g->n, g->k, g->s->ta ? 'T' : 'N', g->s->tb ? 'T' : 'N');
    gbench_set_label(st, label);
    bench_set_flops(st, g->env, 2.0 * (double)g->m * (double)g->n * (double)g->k, 1);
}

/* Registers the rows of one case. */
static void register_case(gemm_case *g, size_t batch, size_t *n_rows)
{
    char name[64];
    for (int v = 0; v < N_VARIANTS; v++) {
        if (v == ELBO_PACKB_ROW && !g->s->b_is_weight)
            continue;
        gemm_row *row = &g_rows[(*n_rows)++];
        *row = (gemm_row){g, v};
        snprintf(name, sizeof name, "gemm/%s/%s", VARIANT_NAMES[v], g->s->name);
        gbench_def d = {.name = name, .run = run_gemm, .user = row, .unit = GBENCH_US};
        if (batch) {
            d.n_args = 1;
            d.args[0] = (int64_t)batch;
            d.arg_names[0] = "b";
        }
        gbench_register(&d);
    }
}

void bench_gemm_register(const bench_env *env)
{
    openblas_set_num_threads(1);
    size_t n_rows = 0;
    for (size_t i = 0; i < N_SHAPES; i++) {
        const gemm_shape *s = &SHAPES[i];
        int batched = !s->m || !s->n || !s->k;
        for (size_t j = 0; j < (batched ? N_BATCHES : 1); j++) {
            size_t batch = batched ? BATCHES[j] : 0;
            gemm_case *g = &g_cases[g_n_cases++];
            *g = (gemm_case){.env = env, .s = s};
            g->m = s->m ? s->m : batch, g->n = s->n ? s->n : batch, g->k = s->k ? s->k : batch;
            g->lda = s->ta ? g->m : g->k;
            g->ldb = s->tb ? g->k : g->n;
            register_case(g, batch, &n_rows);
        }
    }
}

void bench_gemm_free(void)
{
    for (size_t i = 0; i < g_n_cases; i++) {
        gemm_case *g = &g_cases[i];
        elbo_packed_b_free(&g->packed);
        elbo_gemm_workspace_free(&g->ws);
        free(g->a), free(g->b), free(g->c);
        g->ready = 0;
    }
    g_n_cases = 0;
}
