/* elbo_pack_b, elbo_pack_b_part and elbo_pack_b_region: a weight packed whole, in parts or in regions (as the
 * threads of a training step do) is exactly the whole packed B layout of test_pack_layout.h (K blocks of
 * NR-column panels, zero padding), for every ISA, both B layouts, and part counts that leave some parts empty;
 * a view of B (read in place) is B itself and packing it writes nothing. */
#include "test_util.h"

#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "test_pack_layout.h"

/* Fails unless the packed floats of pb (op(B) = op, K x N) are the whole packed B layout, bit for bit. */
static void check_layout(const elbo_kernels *k, const elbo_packed_b *pb, elbo_operand op, const char *how)
{
    size_t floats = elbo_packed_b_floats(k, pb->k, pb->n);
    float *want = malloc((floats ? floats : 1) * sizeof(float));
    layout_packed_b(want, k, op, pb->k, pb->n);
    size_t bad = layout_first_mismatch(pb->data, want, floats);
    if (bad < floats)
        test_failf("%s: %zux%zu %s packed %s: packed[%zu] = %.9g, the layout has %.9g (K blocks of %zu)\n", k->isa,
                   pb->k, pb->n, op.trans == ELBO_TRANS ? "T" : "N", how, bad, pb->data[bad], want[bad],
                   layout_k_block(k, pb->k));
    free(want);
}

/* Packs a random K x N operand whole and in nparts parts, and compares both with the layout bitwise. */
static void check_parts(const elbo_kernels *k, size_t kdim, size_t n, elbo_trans tb, size_t nparts)
{
    test_rng r = {kdim * 131 + n * 7 + nparts};
    size_t rows = tb == ELBO_TRANS ? n : kdim, cols = tb == ELBO_TRANS ? kdim : n;
    float *b = malloc(rows * cols * sizeof(float));
    test_fill(&r, b, rows * cols, -1.0f, 1.0f);
    elbo_operand op = elbo_operand_f32(b, cols, tb);
    elbo_packed_b whole, parts;
    assert_int_equal(elbo_packed_b_alloc(&whole, k, kdim, n), 0);
    assert_int_equal(elbo_packed_b_alloc(&parts, k, kdim, n), 0);
    size_t floats = elbo_packed_b_floats(k, kdim, n);
    memset(whole.data, 0xff, floats * sizeof(float)); /* NaN: every float must be written, padding too */
    memset(parts.data, 0xff, floats * sizeof(float));
    elbo_pack_b(&whole, op);
    for (size_t p = nparts; p-- > 0;) /* reverse order: parts must not depend on each other */
        elbo_pack_b_part(&parts, op, p, nparts);
    check_layout(k, &whole, op, "whole");
    check_layout(k, &parts, op, "in parts");
    elbo_packed_b_free(&whole);
    elbo_packed_b_free(&parts);
    free(b);
}

/* Boundary c of kparts depth slices of [0, kdim): even cuts moved by c % 3, so slices rarely meet the
 * GEMM's K blocks on their edges. */
static size_t depth_cut(size_t kdim, size_t c, size_t kparts)
{
    if (c == 0 || c >= kparts)
        return c == 0 ? 0 : kdim;
    size_t cut = kdim * c / kparts + c % 3;
    return cut < kdim ? cut : kdim;
}

/* Packs a random K x N operand whole and as a grid of regions (depth cut into kparts arbitrary slices,
 * columns into jparts slices of whole panels), regions in reverse order; compares both with the layout bitwise. */
static void check_regions(const elbo_kernels *k, size_t kdim, size_t n, elbo_trans tb, size_t kparts, size_t jparts)
{
    test_rng r = {kdim * 17 + n * 3 + kparts * 5 + jparts};
    const size_t nr = k->blocking.nr, panels = (n + nr - 1) / nr;
    size_t rows = tb == ELBO_TRANS ? n : kdim, cols = tb == ELBO_TRANS ? kdim : n;
    float *b = malloc(rows * cols * sizeof(float));
    test_fill(&r, b, rows * cols, -1.0f, 1.0f);
    elbo_operand op = elbo_operand_f32(b, cols, tb);
    elbo_packed_b whole, regions;
    assert_int_equal(elbo_packed_b_alloc(&whole, k, kdim, n), 0);
    assert_int_equal(elbo_packed_b_alloc(&regions, k, kdim, n), 0);
    size_t floats = elbo_packed_b_floats(k, kdim, n);
    memset(whole.data, 0xff, floats * sizeof(float)); /* NaN: every float must be written, padding too */
    memset(regions.data, 0xff, floats * sizeof(float));
    elbo_pack_b(&whole, op);
    for (size_t kp = kparts; kp-- > 0;)
        for (size_t jp = jparts; jp-- > 0;) {
            size_t j1 = panels * (jp + 1) / jparts * nr;
            elbo_pack_b_region(&regions, op, depth_cut(kdim, kp, kparts), depth_cut(kdim, kp + 1, kparts),
                               panels * jp / jparts * nr, j1 > n ? n : j1);
        }
    check_layout(k, &whole, op, "whole");
    check_layout(k, &regions, op, "in regions");
    elbo_packed_b_free(&whole);
    elbo_packed_b_free(&regions);
    free(b);
}

/* The VAE's weight shapes and awkward ones, as grids of 1 to 4 depth slices by 1 to 3 column slices. */
static void test_pack_regions_match_layout(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{784, 400}, {400, 784}, {400, 40}, {20, 400}, {1000, 17}, {2000, 33}, {7, 97}};
    for (size_t i = 0; elbo_kernels_available(i); i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t kp = 1; kp <= 4; kp++)
                for (size_t jp = 1; jp <= 3; jp++) {
                    check_regions(elbo_kernels_available(i), shapes[s][0], shapes[s][1], ELBO_TRANS, kp, jp);
                    check_regions(elbo_kernels_available(i), shapes[s][0], shapes[s][1], ELBO_NOTRANS, kp, jp);
                }
}

/* The VAE's weight shapes and awkward ones, split 1 to 7 ways. */
static void test_pack_parts_match_layout(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{784, 400}, {400, 784}, {400, 40}, {20, 400}, {400, 20}, {1, 1}, {1000, 17}, {3, 97}};
    for (size_t i = 0; elbo_kernels_available(i); i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t p = 1; p <= 7; p++) {
                check_parts(elbo_kernels_available(i), shapes[s][0], shapes[s][1], ELBO_TRANS, p);
                check_parts(elbo_kernels_available(i), shapes[s][0], shapes[s][1], ELBO_NOTRANS, p);
            }
}

/* A view of row-major B (K x N, row stride ld) is B in place: element (p, j) at data[p * ld + j]; packing it
 * whole, in parts or in regions writes nothing. Shapes whose N is whole NR panels, on tables that read B in
 * place. */
static void test_view_is_b_in_place(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{784, 400, 400}, {400, 784, 800}, {20, 400, 403}, {7, 48, 50}};
    const elbo_kernels *k;
    for (size_t i = 0; (k = elbo_kernels_available(i)); i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t kdim = shapes[s][0], n = shapes[s][1], ld = shapes[s][2];
            test_rng r = {s + 1};
            float *b = malloc(kdim * ld * sizeof(float)), *copy = malloc(kdim * ld * sizeof(float));
            test_fill(&r, b, kdim * ld, -1.0f, 1.0f);
            memcpy(copy, b, kdim * ld * sizeof(float));
            elbo_operand op = elbo_operand_f32(b, ld, ELBO_NOTRANS);
            elbo_packed_b view;
            if (elbo_packed_b_view(&view, k, kdim, n, b, ld) != 0) {
                assert_null(k->gemm_ukernel_strided_a); /* refused only where no kernel reads B in place */
                free(b), free(copy);
                continue;
            }
            elbo_pack_b(&view, op);
            elbo_pack_b_part(&view, op, 0, 2);
            elbo_pack_b_region(&view, op, 0, kdim, 0, n);
            assert_memory_equal(b, copy, kdim * ld * sizeof(float));
            for (size_t p = 0; p < kdim; p++)
                for (size_t j = 0; j < n; j++)
                    if (view.data[p * view.view_ld + j] != layout_op(op, p, j))
                        test_failf("%s: view %zux%zu: element (%zu, %zu) is not B's\n", k->isa, kdim, n, p, j);
            elbo_packed_b_free(&view);
            free(b), free(copy);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_parts_match_layout),
        cmocka_unit_test(test_pack_regions_match_layout),
        cmocka_unit_test(test_view_is_b_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
