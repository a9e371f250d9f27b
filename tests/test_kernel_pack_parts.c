/* elbo_pack_b_part and elbo_pack_b_region: packing a weight in parts or regions (as the threads of a training
 * step do) gives exactly the bytes of one elbo_pack_b, for every ISA, both B layouts, and part counts that
 * leave some parts empty. */
#include "test_util.h"

#include <string.h>

#include "gemm.h"
#include "kernels.h"

/* Packs a random K x N operand whole and in nparts parts, and compares the packed floats bitwise. */
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
    memset(whole.data, 0, floats * sizeof(float));
    memset(parts.data, 0, floats * sizeof(float));
    elbo_pack_b(&whole, op);
    for (size_t p = nparts; p-- > 0;) /* reverse order: parts must not depend on each other */
        elbo_pack_b_part(&parts, op, p, nparts);
    if (memcmp(whole.data, parts.data, floats * sizeof(float)) != 0)
        test_failf("%s: %zux%zu %s in %zu parts differs from one pack\n", k->isa, kdim, n,
                   tb == ELBO_TRANS ? "T" : "N", nparts);
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
 * columns into jparts slices of whole panels), regions in reverse order; compares bitwise. */
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
    memset(whole.data, 0, floats * sizeof(float));
    memset(regions.data, 0xff, floats * sizeof(float)); /* NaN: every float must be written */
    elbo_pack_b(&whole, op);
    for (size_t kp = kparts; kp-- > 0;)
        for (size_t jp = jparts; jp-- > 0;) {
            size_t j1 = panels * (jp + 1) / jparts * nr;
            elbo_pack_b_region(&regions, op, depth_cut(kdim, kp, kparts), depth_cut(kdim, kp + 1, kparts),
                               panels * jp / jparts * nr, j1 > n ? n : j1);
        }
    if (memcmp(whole.data, regions.data, floats * sizeof(float)) != 0)
        test_failf("%s: %zux%zu %s in %zux%zu regions differs from one pack\n", k->isa, kdim, n,
                   tb == ELBO_TRANS ? "T" : "N", kparts, jparts);
    elbo_packed_b_free(&whole);
    elbo_packed_b_free(&regions);
    free(b);
}

/* The VAE's weight shapes and awkward ones, as grids of 1 to 4 depth slices by 1 to 3 column slices. */
static void test_pack_regions_equal_whole(void **state)
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
static void test_pack_parts_equal_whole(void **state)
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_parts_equal_whole),
        cmocka_unit_test(test_pack_regions_equal_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
