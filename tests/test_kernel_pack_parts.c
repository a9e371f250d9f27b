/* elbo_pack_b_part: packing a weight in parts (as the threads of a training step do) gives exactly the
 * bytes of one elbo_pack_b, for every ISA, both B layouts, and part counts that leave some parts empty. */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
