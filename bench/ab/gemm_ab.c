/* gemm_ab: two builds of the library's GEMM in one process, each single-threaded GEMM row of the bench (the VAE's
 * shapes at every batch, and 2048^3; fp32, then bf16 where the CPU runs it) timed base, tree, base, ... in rounds,
 * and their C compared bit for bit.
 *
 * The two builds are the same library compiled from two trees (make bench-ab: BASE's and the working tree's),
 * linked side by side: scripts/ab_prefix.sh makes each one object whose only global symbols are the entry points
 * below, prefixed base_ and tree_. Both are called through this tree's gemm.h, so the two must agree on its types.
 * Alternating in rounds (about 20 ms of calls each, the order flipped every round) and taking the median of the
 * per-round tree/base ratios cancels the drift of a shared machine: differences of about 1 % stand out where separate
 * runs of make bench differ by 5-10 %.
 *
 * Usage: gemm_ab [--rounds=N] [--filter=REGEX] [--same-bits] [--json=FILE]
 * Prints one line per row; exits 1 with --same-bits when any row's C differs between the builds, 2 on a bad flag. */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "gemm_bf16.h"
#include "gemm_shapes.h"
#include "kernels.h"

/* The entry points of one build, prefixed P_ (scripts/ab_prefix.sh). */
#define DECLARE_BUILD(P)                                                                                       \
    const elbo_kernels *P##_elbo_kernels_select(void);                                                         \
    int P##_elbo_gemm_workspace_init(elbo_gemm_workspace *ws, const elbo_kernels *kern);                       \
    void P##_elbo_gemm(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,        \
                       float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,          \
                       const elbo_epilogue *epi);                                                              \
    int P##_elbo_packed_b_alloc(elbo_packed_b *pb, const elbo_kernels *kern, size_t k, size_t n);              \
    void P##_elbo_pack_b(elbo_packed_b *pb, elbo_operand b);                                                   \
    void P##_elbo_gemm_packed(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k, \
                              float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c,       \
                              size_t ldc, const elbo_epilogue *epi);                                           \
    int P##_elbo_gemm_bf16_workspace_init(elbo_gemm_bf16_workspace *ws, const elbo_kernels *kern);             \
    void P##_elbo_gemm_bf16(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n,        \
                            size_t k, float alpha, elbo_operand a, elbo_operand b, float beta, float *c,       \
                            size_t ldc, const elbo_epilogue *epi);                                             \
    int P##_elbo_packed_b_bf16_alloc(elbo_packed_b_bf16 *pb, const elbo_kernels *kern, size_t k, size_t n);    \
    void P##_elbo_pack_b_bf16(elbo_packed_b_bf16 *pb, elbo_operand b);                                         \
    void P##_elbo_gemm_bf16_packed(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n, \
                                   size_t k, float alpha, elbo_operand a, const elbo_packed_b_bf16 *b,         \
                                   float beta, float *c, size_t ldc, const elbo_epilogue *epi);
DECLARE_BUILD(base)
DECLARE_BUILD(tree)

/* What a row runs: sizes and transposes, whether B is a weight packed once, and for the bf16 rows (bf16 set) which
 * operands are stored in bf16 (bench_bf16.c's rows). */
typedef struct {
    size_t m, n, k;
    elbo_trans ta, tb;
    int b_is_weight, bf16, a_bf16, b_bf16;
} row_spec;

/* One build's state for one row: its kernels, workspace, B packed once when the row's B is a weight, and its C. */
typedef struct {
    int is_tree;
    const elbo_kernels *kern;
    elbo_gemm_workspace ws;
    elbo_gemm_bf16_workspace ws_h;
    elbo_packed_b packed;
    elbo_packed_b_bf16 packed_h;
    float *c;
} build_side;

/* One row: what it runs, operands (shared by both builds; bf16 copies where the row stores them so) and the two
 * sides. */
typedef struct {
    row_spec s;
    size_t lda, ldb;
    float *a, *b;
    elbo_bf16 *a_h, *b_h;
    build_side side[2];
} ab_row;

/* 64-byte aligned n floats in [-0.5, 0.5) with full mantissas, a deterministic hash of (i, salt), so that sums in a
 * different order round differently (values on a coarse grid would sum exactly in any order and hide a change of
 * the summation order); NULL on failure. */
static float *pattern(size_t n, unsigned salt)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; p && i < n; i++) {
        uint32_t h = (uint32_t)i * 2654435761u ^ salt * 0x9e3779b9u;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        p[i] = (float)(h >> 8) * 0x1p-24f - 0.5f;
    }
    return p;
}

/* Row r's operand A (f32, or its bf16 copy where the row stores A in bf16). */
static elbo_operand operand_a(const ab_row *r)
{
    return r->s.bf16 && r->s.a_bf16 ? elbo_operand_bf16(r->a_h, r->lda, r->s.ta) : elbo_operand_f32(r->a, r->lda, r->s.ta);
}

/* Row r's operand B (f32, or its bf16 copy where the row stores B in bf16: a bf16 row's weight always). */
static elbo_operand operand_b(const ab_row *r)
{
    return r->s.bf16 && (r->s.b_bf16 || r->s.b_is_weight) ? elbo_operand_bf16(r->b_h, r->ldb, r->s.tb)
                                                          : elbo_operand_f32(r->b, r->ldb, r->s.tb);
}

/* Sets up one side of row r: the build's kernels and workspace, B packed when it is a weight, and C; 0 or -1. */
static int side_init(ab_row *r, build_side *sd)
{
    const int t = sd->is_tree;
    sd->kern = t ? tree_elbo_kernels_select() : base_elbo_kernels_select();
    sd->c = pattern(r->s.m * r->s.n, 7);
    if (!sd->c)
        return -1;
    if (r->s.bf16) {
        if ((t ? tree_elbo_gemm_bf16_workspace_init : base_elbo_gemm_bf16_workspace_init)(&sd->ws_h, sd->kern) != 0)
            return -1;
        if (r->s.b_is_weight) {
            if ((t ? tree_elbo_packed_b_bf16_alloc : base_elbo_packed_b_bf16_alloc)(&sd->packed_h, sd->kern, r->s.k,
                                                                                    r->s.n) != 0)
                return -1;
            (t ? tree_elbo_pack_b_bf16 : base_elbo_pack_b_bf16)(&sd->packed_h, operand_b(r));
        }
        return 0;
    }
    if ((t ? tree_elbo_gemm_workspace_init : base_elbo_gemm_workspace_init)(&sd->ws, sd->kern) != 0)
        return -1;
    if (r->s.b_is_weight) {
        if ((t ? tree_elbo_packed_b_alloc : base_elbo_packed_b_alloc)(&sd->packed, sd->kern, r->s.k, r->s.n) != 0)
            return -1;
        (t ? tree_elbo_pack_b : base_elbo_pack_b)(&sd->packed, operand_b(r));
    }
    return 0;
}

/* C = op(A) op(B) with one build, as the bench's elbo row of the shape calls it. */
static void side_gemm(const ab_row *r, build_side *sd)
{
    const row_spec *s = &r->s;
    const int t = sd->is_tree;
    if (s->bf16 && s->b_is_weight)
        (t ? tree_elbo_gemm_bf16_packed : base_elbo_gemm_bf16_packed)(sd->kern, &sd->ws_h, s->m, s->n, s->k, 1.0f,
                                                                      operand_a(r), &sd->packed_h, 0.0f, sd->c, s->n,
                                                                      NULL);
    else if (s->bf16)
        (t ? tree_elbo_gemm_bf16 : base_elbo_gemm_bf16)(sd->kern, &sd->ws_h, s->m, s->n, s->k, 1.0f, operand_a(r),
                                                        operand_b(r), 0.0f, sd->c, s->n, NULL);
    else if (s->b_is_weight)
        (t ? tree_elbo_gemm_packed : base_elbo_gemm_packed)(sd->kern, &sd->ws, s->m, s->n, s->k, 1.0f, operand_a(r),
                                                            &sd->packed, 0.0f, sd->c, s->n, NULL);
    else
        (t ? tree_elbo_gemm : base_elbo_gemm)(sd->kern, &sd->ws, s->m, s->n, s->k, 1.0f, operand_a(r), operand_b(r),
                                              0.0f, sd->c, s->n, NULL);
}

/* GFLOP/s of `calls` back-to-back GEMMs with one build. */
static double side_rate(const ab_row *r, build_side *sd, int calls)
{
    double t0 = bench_seconds();
    for (int i = 0; i < calls; i++)
        side_gemm(r, sd);
    return 2.0 * (double)r->s.m * (double)r->s.n * (double)r->s.k * calls / (bench_seconds() - t0) * 1e-9;
}

/* Elements of the two sides' C whose bits differ. */
static size_t differing(const ab_row *r)
{
    size_t d = 0;
    for (size_t i = 0; i < r->s.m * r->s.n; i++)
        d += memcmp(&r->side[0].c[i], &r->side[1].c[i], sizeof(float)) != 0;
    return d;
}

/* Frees what row r and its sides hold. */
static void row_free(ab_row *r)
{
    free(r->a);
    free(r->b);
    free(r->a_h);
    free(r->b_h);
    for (int s = 0; s < 2; s++)
        free(r->side[s].c); /* workspaces and packed B are left to process exit: each belongs to its build */
}

/* n floats of x in bf16 (allocated, 64-byte aligned; NULL when out of memory), by the tree build's conversion. */
static elbo_bf16 *bf16_copy(const float *x, size_t n)
{
    elbo_bf16 *h = aligned_alloc(64, (n * sizeof(elbo_bf16) + 63) / 64 * 64);
    if (h)
        tree_elbo_kernels_select()->f32_to_bf16(h, x, n);
    return h;
}

/* The command line: rounds per row, whether differing bits fail the run, the row filter and the JSON path. */
typedef struct {
    int rounds, same_bits;
    const char *filter, *json;
} ab_options;

/* Parses argv into o; 0, or -1 after printing an error line naming the flag. */
static int parse_args(int argc, char **argv, ab_options *o)
{
    *o = (ab_options){.rounds = 21};
    for (int i = 1; i < argc; i++) {
        const char *v = strchr(argv[i], '=');
        if (strncmp(argv[i], "--rounds=", 9) == 0) {
            char *end;
            long n = strtol(v + 1, &end, 10);
            if (*end || n < 3 || n > 999) {
                fprintf(stderr, "gemm_ab: --rounds: expected an integer 3..999, got '%s'\n", v + 1);
                return -1;
            }
            o->rounds = (int)n;
        } else if (strncmp(argv[i], "--filter=", 9) == 0) {
            o->filter = v + 1;
        } else if (strncmp(argv[i], "--json=", 7) == 0) {
            o->json = v + 1;
        } else if (strcmp(argv[i], "--same-bits") == 0) {
            o->same_bits = 1;
        } else {
            fprintf(stderr, "gemm_ab: unknown flag '%s' (--rounds=N --filter=REGEX --same-bits --json=FILE)\n",
                    argv[i]);
            return -1;
        }
    }
    return 0;
}

/* Times row r in o->rounds rounds and prints (and appends to json, when open) its line; returns the number of
 * differing C elements, or -1 when the row could not be set up. */
static long run_row(ab_row *r, const char *name, const ab_options *o, FILE *json, int *first_json)
{
    const size_t m = r->s.m, n = r->s.n, k = r->s.k;
    r->lda = r->s.ta ? m : k;
    r->ldb = r->s.tb ? k : n;
    r->a = pattern(m * k, 1);
    r->b = pattern(k * n, 2);
    r->a_h = r->a && r->s.bf16 ? bf16_copy(r->a, m * k) : NULL;
    r->b_h = r->b && r->s.bf16 ? bf16_copy(r->b, k * n) : NULL;
    r->side[0].is_tree = 0;
    r->side[1].is_tree = 1;
    if (!r->a || !r->b || (r->s.bf16 && (!r->a_h || !r->b_h)) || side_init(r, &r->side[0]) != 0 ||
        side_init(r, &r->side[1]) != 0) {
        fprintf(stderr, "gemm_ab: %s: out of memory\n", name);
        return -1;
    }
    side_gemm(r, &r->side[0]);
    side_gemm(r, &r->side[1]);
    size_t diff = differing(r);
    const double flops = 2.0 * (double)m * (double)n * (double)k;
    const int calls = (int)(0.02 / (flops / 100e9)) + 1; /* about 20 ms at 100 GFLOP/s */
    double ratio[999], best[2] = {0, 0};
    for (int i = 0; i < o->rounds; i++) {
        double rate[2];
        for (int j = 0; j < 2; j++) {
            int s = (i + j) % 2; /* base first in even rounds, tree first in odd ones */
            rate[s] = side_rate(r, &r->side[s], calls);
            best[s] = rate[s] > best[s] ? rate[s] : best[s];
        }
        ratio[i] = rate[1] / rate[0];
    }
    qsort(ratio, (size_t)o->rounds, sizeof ratio[0], bench_cmp_double);
    const double q1 = ratio[o->rounds / 4], med = ratio[o->rounds / 2], q3 = ratio[3 * o->rounds / 4];
    char bits[64];
    if (diff)
        snprintf(bits, sizeof bits, "%zu of %zu C elements differ", diff, m * n);
    else
        snprintf(bits, sizeof bits, "same bits");
    printf("%-25s base %6.1f tree %6.1f GFLOP/s (best) | tree/base %.3f [%.3f, %.3f] | %s\n", name, best[0], best[1],
           med, q1, q3, bits);
    if (json) {
        fprintf(json, "%s\n  {\"row\": \"%s\", \"m\": %zu, \"n\": %zu, \"k\": %zu, \"base_best_gflops\": %.2f, "
                      "\"tree_best_gflops\": %.2f, \"ratio_median\": %.4f, \"ratio_q1\": %.4f, \"ratio_q3\": %.4f, "
                      "\"differing_elements\": %zu}",
                *first_json ? "" : ",", name, m, n, k, best[0], best[1], med, q1, q3, diff);
        *first_json = 0;
    }
    fflush(stdout);
    row_free(r);
    return (long)diff;
}

int main(int argc, char **argv)
{
    ab_options o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    regex_t re;
    if (o.filter && regcomp(&re, o.filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "gemm_ab: --filter: not an extended regular expression: '%s'\n", o.filter);
        return 2;
    }
    char json_part[4096] = ""; /* the JSON is written here, then renamed over --json's path when complete */
    if (o.json && snprintf(json_part, sizeof json_part, "%s.part", o.json) >= (int)sizeof json_part) {
        fprintf(stderr, "gemm_ab: --json: path too long: '%s'\n", o.json);
        return 2;
    }
    FILE *json = o.json ? fopen(json_part, "w") : NULL;
    if (o.json && !json) {
        fprintf(stderr, "gemm_ab: --json: cannot write '%s'\n", json_part);
        return 2;
    }
    if (json)
        fprintf(json, "{\"rounds\": %d, \"rows\": [", o.rounds);
    printf("gemm_ab: base = BASE's build, tree = the working tree's; %d rounds per row, the median of the per-round "
           "tree/base rate ratios [quartiles]\n", o.rounds);
    int first_json = 1, failed = 0, differ = 0;
    const int bf16 = tree_elbo_kernels_select()->gemm_bf16_ukernel != NULL;
    for (int pass = 0; pass < (bf16 ? 2 : 1); pass++) {
        const size_t shapes = pass ? N_BF16_SHAPES : N_SHAPES;
        for (size_t i = 0; i < shapes; i++) {
            const char *shape = pass ? BF16_SHAPES[i].name : SHAPES[i].name;
            row_spec spec;
            if (pass) {
                const bf16_shape *s = &BF16_SHAPES[i];
                spec = (row_spec){s->m, s->n, s->k, s->ta, s->tb, s->b_is_weight, 1, s->a_bf16, s->b_bf16};
            } else {
                const gemm_shape *s = &SHAPES[i];
                spec = (row_spec){s->m, s->n, s->k, s->ta, s->tb, s->b_is_weight, 0, 0, 0};
            }
            const int batched = !spec.m || !spec.n || !spec.k;
            const size_t batches = !batched ? 1 : pass ? N_BF16_BATCHES : N_BATCHES;
            for (size_t j = 0; j < batches; j++) {
                const size_t batch = !batched ? 0 : pass ? BF16_BATCHES[j] : BATCHES[j];
                char name[64];
                snprintf(name, sizeof name, "%s%s", pass ? "bf16/" : "", shape);
                if (batched)
                    snprintf(name + strlen(name), sizeof name - strlen(name), "/b:%zu", batch);
                if (o.filter && regexec(&re, name, 0, NULL, 0) != 0)
                    continue;
                ab_row r = {.s = spec};
                r.s.m = spec.m ? spec.m : batch, r.s.n = spec.n ? spec.n : batch, r.s.k = spec.k ? spec.k : batch;
                long d = run_row(&r, name, &o, json, &first_json);
                failed |= d < 0;
                differ |= d > 0;
            }
        }
    }
    if (json) {
        fprintf(json, "\n]}\n");
        if (fclose(json) != 0 || failed || rename(json_part, o.json) != 0) {
            remove(json_part);
            if (!failed)
                fprintf(stderr, "gemm_ab: --json: cannot write '%s'\n", o.json);
            failed = 1;
        }
    }
    if (o.filter)
        regfree(&re);
    if (failed)
        return 1;
    if (o.same_bits && differ) {
        fprintf(stderr, "gemm_ab: --same-bits: the two builds' C differ (rows above)\n");
        return 1;
    }
    return 0;
}
