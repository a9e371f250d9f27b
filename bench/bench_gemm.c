/* The VAE's GEMM shapes against the peers (OpenBLAS, oneDNN), single-threaded, and at batch 128 and 2048^3 also on
 * two threads (rows .../t:2; elbo's threads split C's rows or a forward's output features and share one packed B,
 * or claim blocks of a weight gradient's rows, as the trainer does). elbo's operands are made on a shape's first
 * call and kept for its later calls (repetitions, other variants), so a row's setup costs nothing after the first;
 * the peers run in their own child processes (bench_peer.h), which do the same. */
#include "bench_gemm.h"

#include <assert.h>
#include <omp.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_bf16.h"
#include "bench_clock.h"
#include "bench_peer.h"
#include "gemm_shapes.h"
#include "gemm.h"
#include "linear.h"
#include "tail.h"
#include "train.h"

enum { ELBO_ROW, ELBO_PACKB_ROW, OPENBLAS_ROW, ONEDNN_ROW, ONEDNN_BF16_ROW, N_VARIANTS };
static const char *VARIANT_NAMES[N_VARIANTS] = {"elbo", "elbo_packB", "openblas", "onednn", "onednn_bf16"};
/* Each variant's rows: gemm/VARIANT/..., but the bf16 peer's beside elbo's bf16 rows (bench_bf16.c). */
static const char *ROW_PREFIXES[N_VARIANTS] = {"gemm/elbo", "gemm/elbo_packB", "gemm/openblas", "gemm/onednn",
                                               "gemm_bf16/onednn"};
#define FIRST_PEER OPENBLAS_ROW
#define N_PEERS (N_VARIANTS - FIRST_PEER)
/* Threads of the multi-threaded rows, and the batch they are run at (besides the unbatched 2048^3). */
#define MT_THREADS 2
#define MT_BATCH 128
/* Wall time a peer's child is asked to spend on one request of a timed loop (a round trip costs ~50-100 us). */
#define PEER_TRIP_SECONDS 0.02


/* One shape at one batch: its sizes and, once made, its operands. */
typedef struct {
    const bench_env *env;
    const gemm_shape *s;
    size_t m, n, k, lda, ldb;
    size_t batch; /* 0: not a batched shape */
    int ready;
    elbo_gemm_workspace ws, ws_mt[MT_THREADS]; /* ws_mt: one per thread of the multi-threaded rows */
    elbo_packed_b packed;
    float *a, *b, *c;
} gemm_case;

/* A row: a case and how it is computed. */
typedef struct {
    gemm_case *g;
    int variant;
    int threads;     /* 1, or MT_THREADS for the .../t:2 rows */
    char name[64];   /* the row's name as registered, without arguments' suffix */
    char error[256]; /* a peer row's failed start or check: reported, not timed */
} gemm_row;

static gemm_case g_cases[N_SHAPES * N_BATCHES];
static gemm_row g_rows[N_SHAPES * N_BATCHES * N_VARIANTS * 2];
static size_t g_n_cases, g_n_rows;
static bench_peer *g_peers[N_PEERS]; /* started by bench_gemm_peers_start */

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
    for (int t = 0; t < MT_THREADS; t++)
        if (elbo_gemm_workspace_init(&g->ws_mt[t], g->env->kern) != 0)
            return -1;
    elbo_pack_b(&g->packed, elbo_operand_f32(g->b, g->ldb, g->s->tb));
    const char *pack_a = getenv("ELBO_BENCH_PACK_A"); /* 1: always pack A, 0: never (default: the heuristic) */
    if (pack_a && *pack_a)
        g->ws.pack_a = pack_a[0] == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
    g->ready = 1;
    return 0;
}

/* First row of thread t's share of C's m rows among nt threads: whole blocks of mr rows (1: an even split; NR:
 * whole panels), the remainder to the last threads. */
static size_t share_start(size_t m, size_t mr, int t, int nt)
{
    size_t tiles = (m + mr - 1) / mr, first = tiles * (size_t)t / (size_t)nt * mr;
    return first < m ? first : m;
}

/* Whether a weight gradient's dW is narrow enough for elbo_gemm's narrow routes (C's rows on the vector lanes: the
 * lanes tile, or C^T; gemm.c). */
static int narrow_weight_grad(const gemm_case *g)
{
    return g->n <= g->env->kern->blocking.transposed_c_max_n;
}

/* First row of part p's share of a weight gradient's rows among MT_THREADS parts: an even split, but whole NR panels
 * for a narrow dW (its rows then run on the vector lanes, 16 at a time: whole panels keep every tile full). */
static size_t weight_grad_part(const gemm_case *g, int p)
{
    return share_start(g->m, narrow_weight_grad(g) ? g->env->kern->blocking.nr : 1, p, MT_THREADS);
}

/* Thread t's share of a weight gradient dW = op(A) op(B) (A transposed), next[p] the first unclaimed row of part p
 * (the trainer's tail cursor, a cache line each): each part (weight_grad_part) is cut into blocks of
 * ELBO_TAIL_BLOCK_PANELS x NR rows, one elbo_gemm each (B read in place or packed by the call), claimed as the
 * trainer's tail claims its blocks (train.c, run_tail): a thread runs its own part's blocks in order, then any block
 * of the other parts not claimed yet, so that a thread slowed by another process on its core is helped rather than
 * waited for. A narrow dW is one block per part: cut, its transposed product ran 0.7x as fast on two threads
 * (400 x 20 x 128: calls of 64 rows, the last 16 not transposed). Any split gives every element the same bits. */
static void weight_grad_blocks(gemm_case *g, int t, elbo_tail_cursor next[MT_THREADS])
{
    const elbo_kernels *kern = g->env->kern;
    const size_t step = narrow_weight_grad(g) ? g->m : ELBO_TAIL_BLOCK_PANELS * kern->blocking.nr;
    for (int q = 0; q < MT_THREADS; q++) {
        int p = (t + q) % MT_THREADS;
        size_t end = weight_grad_part(g, p + 1), lo;
        while ((lo = atomic_fetch_add_explicit(&next[p].next, step, memory_order_relaxed)) < end) {
            size_t hi = end - lo < step ? end : lo + step;
            elbo_gemm(kern, &g->ws_mt[t], hi - lo, g->n, g->k, 1.0f, elbo_operand_f32(g->a + lo, g->lda, ELBO_TRANS),
                      elbo_operand_f32(g->b, g->ldb, g->s->tb), 0.0f, g->c + lo * g->n, g->n, NULL);
        }
    }
}

/* One C = op(A) op(B) on MT_THREADS threads. A weight gradient (A transposed, B not a weight): in blocks claimed as
 * the trainer's tail claims them (weight_grad_blocks). A layer's forward that the trainer splits by output features
 * (elbo_forward_by_features): each thread its whole panels of C's columns over every row. Else each thread takes an
 * even share of C's rows, as the trainer splits a batch (elbo_team_rows), and a B that is not a weight (packed once
 * per step) is packed by both threads, each its part of the panels, first. The register tiles of any split give
 * every element the same bits. */
static void gemm_once_threads(const gemm_row *row)
{
    gemm_case *g = row->g;
    const gemm_shape *s = g->s;
    const int weight_grad = s->ta == ELBO_TRANS && !s->b_is_weight;
    elbo_tail_cursor next[MT_THREADS];
    for (int p = 0; weight_grad && p < MT_THREADS; p++)
        atomic_init(&next[p].next, weight_grad_part(g, p));
#pragma omp parallel num_threads(MT_THREADS)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t nr = g->env->kern->blocking.nr;
        if (weight_grad) {
            weight_grad_blocks(g, t, next); /* every part's blocks are claimed, however many threads run */
        } else if (s->forward && elbo_forward_by_features(g->n, g->k, nr, g->m, (size_t)nt)) {
            size_t j0 = share_start(g->n, nr, t, nt), j1 = share_start(g->n, nr, t + 1, nt);
            if (j1 > j0)
                elbo_gemm_packed_cols(g->env->kern, &g->ws_mt[t], g->m, j0, j1, g->k, 1.0f,
                                      elbo_operand_f32(g->a, g->lda, s->ta), &g->packed, 0.0f, g->c, g->n, NULL);
        } else {
            size_t m0 = share_start(g->m, 1, t, nt), m1 = share_start(g->m, 1, t + 1, nt);
            const float *a0 = s->ta ? g->a + m0 : g->a + m0 * g->lda; /* op(A)'s row m0 */
            if (!s->b_is_weight) {
                elbo_pack_b_part(&g->packed, elbo_operand_f32(g->b, g->ldb, s->tb), (size_t)t, (size_t)nt);
#pragma omp barrier
            }
            if (m1 > m0)
                elbo_gemm_packed(g->env->kern, &g->ws_mt[t], m1 - m0, g->n, g->k, 1.0f,
                                 elbo_operand_f32(a0, g->lda, s->ta), &g->packed, 0.0f, g->c + m0 * g->n, g->n, NULL);
        }
    }
}

/* One C = op(A) op(B) of the row's variant. */
static void gemm_once(const gemm_row *row)
{
    if (row->threads > 1) {
        gemm_once_threads(row);
        return;
    }
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
        assert(0 && "peer rows run in their child (run_peer)");
    }
}

/* The row's label: "MxNxK op", e.g. "128x400x784 NT". */
static void set_label(gbench_state *st, const gemm_case *g)
{
    char label[64];
    snprintf(label, sizeof label, "%zux%zux%zu %c%c", g->m, g->n, g->k, g->s->ta ? 'T' : 'N', g->s->tb ? 'T' : 'N');
    gbench_set_label(st, label);
}

/* Peer v's child, started anew when there is none or the last one died (a crash on one shape must not take the
 * peer's other rows with it); NULL with why in err when it cannot start. */
static bench_peer *live_peer(int v, char *err, size_t errlen)
{
    bench_peer **p = &g_peers[v - FIRST_PEER];
    if (*p && !bench_peer_alive(*p)) {
        bench_peer_stop(*p);
        *p = NULL;
    }
    if (!*p)
        *p = bench_peer_start(VARIANT_NAMES[v], err, errlen);
    return *p;
}

/* The peer's view of a row: its shape on the row's threads. */
static bench_peer_gemm peer_gemm(const gemm_row *row)
{
    const gemm_case *g = row->g;
    return (bench_peer_gemm){g->m, g->n, g->k, g->s->ta, g->s->tb, row->threads};
}

/* A peer's row: batches of GEMMs run in the peer's child, a round trip of about PEER_TRIP_SECONDS each. The
 * row's time is the parent's wall clock (round trips included); its GFLOP/s and pct_peak are over the child's own
 * wall time of its GEMM loops, as a same-process bench would time them; child_time_share is the one over the
 * other, child_cpu_share the child's CPU time over its wall time (below 1: descheduled by other load). */
static void run_peer(gbench_state *st, const gemm_row *row)
{
    const gemm_case *g = row->g;
    char err[256];
    double child = 0, child_cpu = 0, seconds, cpu_seconds;
    if (row->error[0]) {
        gbench_skip_with_error(st, row->error);
        return;
    }
    bench_peer *p = live_peer(row->variant, err, sizeof err);
    if (!p) {
        gbench_skip_with_error(st, err);
        return;
    }
    bench_peer_gemm pg = peer_gemm(row);
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    int64_t batch = (int64_t)(PEER_TRIP_SECONDS * 100e9 / flops) + 1; /* at ~100 GFLOP/s */
    if (bench_peer_time(p, &pg, 1, &seconds, &cpu_seconds, err, sizeof err) != 0) { /* warm the caches and the peer's buffers */
        gbench_skip_with_error(st, err);
        return;
    }
    double t0 = bench_seconds();
    int64_t gemms = 0;
    while (gbench_keep_running_batch(st, batch)) {
        if (bench_peer_time(p, &pg, batch, &seconds, &cpu_seconds, err, sizeof err) != 0) {
            gbench_skip_with_error(st, err);
            return;
        }
        child += seconds, child_cpu += cpu_seconds;
        gemms += batch;
    }
    gbench_set_counter(st, "child_time_share", child / (bench_seconds() - t0), GBENCH_COUNTER_DEFAULT);
    gbench_set_counter(st, "child_cpu_share", child > 0 ? child_cpu / child : 0, GBENCH_COUNTER_DEFAULT);
    set_label(st, g);
    bench_env env = *g->env;
    if (row->variant == ONEDNN_BF16_ROW) /* a bf16 row: against the bf16 peak, as elbo's bf16 rows */
        env.peak_gflops = bench_bf16_peak_gflops(), env.path_peak_gflops = 0;
    bench_set_flops_over(st, &env, flops * (double)gemms, child, (size_t)row->threads);
}

/* 1 when a multi-threaded row's C equals the one-thread C bit for bit (they share the summation order). */
static int threads_agree(const gemm_row *row)
{
    gemm_case *g = row->g;
    size_t n = g->m * g->n;
    float *one = malloc(n * sizeof *one);
    if (!one)
        return 0;
    gemm_row single = *row;
    single.threads = 1;
    gemm_once(&single);
    memcpy(one, g->c, n * sizeof *one);
    memset(g->c, 0, n * sizeof *g->c);
    gemm_once(row);
    int same = memcmp(one, g->c, n * sizeof *one) == 0;
    free(one);
    return same;
}

/* The row: one GEMM per iteration. */
static void run_gemm(gbench_state *st, void *user)
{
    const gemm_row *row = user;
    gemm_case *g = row->g;
    if (row->variant >= FIRST_PEER) {
        run_peer(st, row);
        return;
    }
    if (case_ready(g) != 0) {
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    if (row->threads > 1 && !threads_agree(row)) {
        gbench_skip_with_error(st, "the threads' C differs from the one-thread C (not timed)");
        return;
    }
    gemm_once(row); /* warm the caches */
    while (gbench_keep_running(st))
        gemm_once(row);
    set_label(st, g);
    bench_set_flops(st, g->env, 2.0 * (double)g->m * (double)g->n * (double)g->k, (size_t)row->threads);
}

/* Registers the rows of one case on `threads` threads (the t:N argument when above 1). */
static void register_case(gemm_case *g, size_t batch, int threads, size_t *n_rows)
{
    char name[64];
    for (int v = 0; v < N_VARIANTS; v++) {
        if (v == ELBO_PACKB_ROW && (!g->s->b_is_weight || threads > 1))
            continue;
        if (v == ONEDNN_BF16_ROW && (threads > 1 || (batch != 0 && batch != 128 && batch != 1024)))
            continue; /* bench_bf16.c's batches, one thread */
        gemm_row *row = &g_rows[(*n_rows)++];
        *row = (gemm_row){g, v, threads, "", ""};
        snprintf(name, sizeof name, "%s/%s", ROW_PREFIXES[v], g->s->name);
        snprintf(row->name, sizeof row->name, "%s", name);
        gbench_def d = {.name = name, .run = run_gemm, .user = row, .unit = GBENCH_US};
        if (batch) {
            d.args[d.n_args] = (int64_t)batch;
            d.arg_names[d.n_args++] = "b";
        }
        if (threads > 1) {
            d.args[d.n_args] = threads;
            d.arg_names[d.n_args++] = "t";
        }
        gbench_register(&d);
    }
}

void bench_gemm_register(const bench_env *env)
{
    size_t n_rows = 0;
    for (size_t i = 0; i < N_SHAPES; i++) {
        const gemm_shape *s = &SHAPES[i];
        int batched = !s->m || !s->n || !s->k;
        for (size_t j = 0; j < (batched ? N_BATCHES : 1); j++) {
            size_t batch = batched ? BATCHES[j] : 0;
            gemm_case *g = &g_cases[g_n_cases++];
            *g = (gemm_case){.env = env, .s = s, .batch = batch};
            g->m = s->m ? s->m : batch, g->n = s->n ? s->n : batch, g->k = s->k ? s->k : batch;
            g->lda = s->ta ? g->m : g->k;
            g->ldb = s->tb ? g->k : g->n;
            register_case(g, batch, 1, &n_rows);
            if (batch == MT_BATCH || !batched)
                register_case(g, batch, MT_THREADS, &n_rows);
        }
    }
    g_n_rows = n_rows;
}

/* The row's full name as --benchmark_filter sees it. */
static void full_name(const gemm_row *row, char *out, size_t outlen)
{
    char batch[32] = "", threads[32] = "";
    if (row->g->batch)
        snprintf(batch, sizeof batch, "/b:%zu", row->g->batch);
    if (row->threads > 1)
        snprintf(threads, sizeof threads, "/t:%d", row->threads);
    snprintf(out, outlen, "%s%s%s/process_time/real_time", row->name, batch, threads);
}

/* Non-zero when the last --benchmark_filter of argv (Google Benchmark's extended regex, a leading '-' negates;
 * none: every row) selects `name`; unparsable filters select everything (the run reports them). */
static int selected(const char *name, int argc, char **argv)
{
    const char *filter = NULL;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--benchmark_filter=", 19) == 0)
            filter = argv[i] + 19;
    if (!filter || !*filter || strcmp(filter, "all") == 0)
        return 1;
    int negate = filter[0] == '-';
    regex_t re;
    if (regcomp(&re, filter + negate, REG_EXTENDED | REG_NOSUB) != 0)
        return 1;
    int match = regexec(&re, name, 0, NULL, 0) == 0;
    regfree(&re);
    return match != negate;
}

/* Starts peer v's child and checks every selected row of it (a child that dies on one shape is replaced for
 * the others); adds the peer's context. */
static void start_peer(int v, int argc, char **argv)
{
    const char *peer = VARIANT_NAMES[v];
    bench_peer **p = &g_peers[v - FIRST_PEER];
    char key[64], value[768], err[256] = "", full[128], first_failed[400] = "";
    size_t n_selected = 0, n_failed = 0;
    double worst = 0;
    for (size_t r = 0; r < g_n_rows; r++) {
        gemm_row *row = &g_rows[r];
        full_name(row, full, sizeof full);
        if (row->variant != v || !selected(full, argc, argv))
            continue;
        n_selected++;
        if (!live_peer(v, err, sizeof err)) {
            snprintf(row->error, sizeof row->error, "%s", err);
        } else {
            bench_peer_gemm pg = peer_gemm(row);
            double w = 0;
            if (bench_peer_check(*p, &pg, &w, row->error, sizeof row->error) == 0 && w > worst)
                worst = w;
        }
        if (row->error[0] && !n_failed++)
            snprintf(first_failed, sizeof first_failed, "%.*s: %s",
                     (int)(strlen(full) - strlen("/process_time/real_time")), full, row->error);
    }
    if (!n_selected)
        return;
    live_peer(v, err, sizeof err); /* for the rows, should the last check have ended the child */
    snprintf(key, sizeof key, "peer_%s", peer);
    snprintf(value, sizeof value, "not measured: %s", err);
    gbench_add_context(key, *p ? bench_peer_kernel(*p) : value);
    snprintf(key, sizeof key, "peer_%s_check", peer);
    if (n_failed)
        snprintf(value, sizeof value, "FAILED on %zu of %zu shapes (those rows report it, untimed); first %s",
                 n_failed, n_selected, first_failed);
    else
        snprintf(value, sizeof value,
                 "passed on all %zu shapes before timing (worst error %.3g of the bound (k+1) u sum|a b|)",
                 n_selected, worst);
    gbench_add_context(key, value);
    fprintf(stderr, "elbo bench: peer %s (own child process, forcing variables cleared): %s; check: %s\n", peer,
            *p ? bench_peer_kernel(*p) : "not started", value);
}

void bench_gemm_peers_start(int argc, char **argv)
{
    for (int v = FIRST_PEER; v < N_VARIANTS; v++)
        start_peer(v, argc, argv);
}

void bench_gemm_free(void)
{
    for (size_t i = 0; i < g_n_cases; i++) {
        gemm_case *g = &g_cases[i];
        elbo_packed_b_free(&g->packed);
        elbo_gemm_workspace_free(&g->ws);
        for (int t = 0; t < MT_THREADS; t++)
            elbo_gemm_workspace_free(&g->ws_mt[t]);
        free(g->a), free(g->b), free(g->c);
        g->ready = 0;
    }
    g_n_cases = 0;
    for (int i = 0; i < N_PEERS; i++) {
        bench_peer_stop(g_peers[i]);
        g_peers[i] = NULL;
    }
}
