/* Packing tests: every ISA table's pack routines (its non-temporal pack_b_stream too), and the generic ones at the widths of the tables this CPU
 * does not run (NEON: 8 x 12), write exactly the panels of the layout formulas in test_pack_layout.h (bitwise,
 * zero padding included) and nothing past them, for f32 and uint8 operands in both layouts. */
#include "test_util.h"

#include "gemm_pack.h"
#include "kernels.h"
#include "test_pack_layout.h"

#include <string.h>

#define GUARD 64

/* A stored matrix of rows x cols (leading dimension ld) in f32 or uint8, as an operand with trans. */
typedef struct {
    float *f;
    uint8_t *u;
    elbo_operand op;
} pack_matrix;

/* Allocates and fills a stored matrix; uint8 values cover 0 and 255. */
static pack_matrix make_matrix(test_rng *rng, size_t rows, size_t ld, elbo_trans t, elbo_dtype dt)
{
    pack_matrix x = {0};
    size_t n = rows * ld;
    if (dt == ELBO_DTYPE_U8) {
        x.u = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            x.u[i] = (uint8_t)(i % 7 == 0 ? 255 * (i % 2) : test_rng_below(rng, 256));
        x.op = elbo_operand_u8(x.u, ld, t);
    } else {
        x.f = malloc((n ? n : 1) * sizeof(float));
        test_fill(rng, x.f, n, -1.0f, 1.0f);
        x.op = elbo_operand_f32(x.f, ld, t);
    }
    return x;
}

/* A set of pack routines and the panel widths they are used with. */
typedef struct {
    const char *name;
    elbo_pack_a_fn pack_a;
    elbo_pack_b_fn pack_b;
    size_t mr, nr;
} packers;

/* Packs one A block and one B panel with a set of routines; compares their bits with the layout formulas. */
static void check_shape(const packers *pk, test_rng *rng, size_t outer, size_t depth, size_t off_o, size_t off_d,
                        elbo_trans t, elbo_dtype dt)
{
    for (int is_b = 0; is_b < 2; is_b++) {
        /* op(A) is outer x depth (NOTRANS stores it so); op(B) is depth x outer (NOTRANS stores that). */
        int stored_outer_major = is_b ? t == ELBO_TRANS : t == ELBO_NOTRANS;
        size_t rows = stored_outer_major ? off_o + outer : off_d + depth;
        size_t cols = stored_outer_major ? off_d + depth : off_o + outer;
        pack_matrix x = make_matrix(rng, rows, cols + 3, t, dt);
        size_t w = is_b ? pk->nr : pk->mr, len = (outer + w - 1) / w * w * depth;
        float *got = test_alloc_nan(len + GUARD), *want = test_alloc_nan(len + GUARD);
        if (is_b) {
            pk->pack_b(got, x.op, off_d, off_o, depth, outer, pk->nr);
            layout_b_panel(want, x.op, off_d, off_o, depth, outer, pk->nr);
        } else {
            pk->pack_a(got, x.op, off_o, off_d, outer, depth, pk->mr);
            layout_a_block(want, x.op, off_o, off_d, outer, depth, pk->mr);
        }
        size_t bad = layout_first_mismatch(got, want, len);
        if (bad < len)
            test_failf("%s pack_%c %c %s outer=%zu depth=%zu: packed[%zu] (panel %zu, depth %zu, lane %zu) = %.9g, "
                       "the layout has %.9g\n", pk->name, is_b ? 'b' : 'a', t ? 'T' : 'N', dt ? "u8" : "f32", outer,
                       depth, bad, bad / (w * depth), bad % (w * depth) / w, bad % w, got[bad], want[bad]);
        for (size_t i = len; i < len + GUARD; i++)
            if (!isnan(got[i]))
                test_failf("%s pack_%c outer=%zu depth=%zu: wrote past the panels\n", pk->name,
                           is_b ? 'b' : 'a', outer, depth);
        free(got), free(want), free(x.f), free(x.u);
    }
}

/* One set of pack routines x both layouts x both dtypes over edge shapes (1, below/above MR, NR, 8-deep
 * blocks), with row and depth offsets. */
static void check_packers(const packers *pk, test_rng *rng)
{
    static const size_t outers[] = {1, 3, 5, 6, 7, 8, 12, 13, 16, 17, 20, 31, 40, 168};
    static const size_t depths[] = {1, 2, 7, 8, 9, 15, 16, 17, 64, 129, 400};
    for (size_t o = 0; o < sizeof outers / sizeof outers[0]; o++)
        for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
            for (int v = 0; v < 4; v++) {
                size_t off_o = (o + d) % 3 == 0 ? 0 : 5 * o + 1, off_d = (o + d) % 2 ? 0 : 3 * d + 2;
                check_shape(pk, rng, outers[o], depths[d], off_o, off_d, (elbo_trans)(v & 1), (elbo_dtype)(v >> 1));
            }
}

/* Every table this CPU runs, at its own widths (and its streaming B packing where it has one). */
static void test_pack_tables_match_layout(void **state)
{
    (void)state;
    test_rng rng = {7};
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        packers pk = {kern->isa, kern->pack_a, kern->pack_b, kern->blocking.mr, kern->blocking.nr};
        check_packers(&pk, &rng);
        if (kern->pack_b_stream) { /* into 64-byte aligned panels (test_alloc_nan), where it streams */
            char name[64];
            snprintf(name, sizeof name, "%s stream", kern->isa);
            packers st = {name, kern->pack_a, kern->pack_b_stream, kern->blocking.mr, kern->blocking.nr};
            check_packers(&st, &rng);
        }
    }
}

/* The generic routines at the widths of every table (scalar 4 x 8, AVX2 6 x 16, AVX-512 12 x 16, NEON 8 x 12),
 * whichever this CPU runs. */
static void test_pack_generic_match_layout(void **state)
{
    (void)state;
    static const size_t widths[][2] = {{4, 8}, {6, 16}, {12, 16}, {8, 12}};
    test_rng rng = {8};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        packers pk = {"generic", elbo_pack_a_block, elbo_pack_b_panel, widths[w][0], widths[w][1]};
        check_packers(&pk, &rng);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_tables_match_layout),
        cmocka_unit_test(test_pack_generic_match_layout),
    };
    return cmocka_run_group_tests_name("kernel_gemm_pack", tests, NULL, NULL);
}
