/* fp32 -> bf16 conversion (bf16.h): the scalar reference against an independent definition (the nearest bf16 by
 * value, ties to the even one), and every ISA table's conversion against the reference bit for bit over all 2^32
 * inputs (a dense sample under emulation: arm64 builds run under qemu), at every tail length. */
#include "test_util.h"

#include "bf16.h"
#include "kernels.h"

/* Inputs per conversion call of the sweep: not a multiple of any vector width, so each call ends in a tail. */
#define CHUNK 65531u

#if defined(__aarch64__)
#define SWEEP_STEP 251u /* qemu: about 17 million inputs */
#define DEFINITION_STEP 6007u
#else
#define SWEEP_STEP 1u
#define DEFINITION_STEP 61u
#endif

/* The expected bf16 of fp32 bits u, from the definition by value: NaN quiet with the upper payload, zero and
 * denormals signed zero, else the nearer of the two bf16 around u (truncated t and t + 1; ties to the even
 * fraction; t + 1 past the largest finite value is Inf, whose distance is that of 2^128). */
static elbo_bf16 expected_bf16(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (elbo_bf16)((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0)
        return (elbo_bf16)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) == 0x7f800000u)
        return (elbo_bf16)(u >> 16);
    const uint32_t t = u >> 16, up = t + 1;
    const double x = fabs((double)elbo_f32_from_bits(u)), lo = fabs((double)elbo_bf16_to_f32((elbo_bf16)t));
    const double hi = (up & 0x7fffu) == 0x7f80u ? ldexp(1.0, 128) : fabs((double)elbo_bf16_to_f32((elbo_bf16)up));
    const double dlo = x - lo, dhi = hi - x;
    if (dlo < dhi || (dlo == dhi && (t & 1u) == 0))
        return (elbo_bf16)t;
    return (elbo_bf16)up;
}

/* The reference equals the definition on every 61st input (6007th under emulation) and on every input near a tie, the overflow
 * threshold and the denormal boundary (where the integer rounding carries into the exponent). */
static void test_reference_matches_definition(void **state)
{
    (void)state;
    size_t bad = 0;
    for (uint64_t v = 0; v <= 0xffffffffu; v += DEFINITION_STEP) {
        const uint32_t u = (uint32_t)v;
        bad += elbo_bf16_from_f32_bits(u) != expected_bf16(u);
    }
    for (uint32_t e = 0; e < 256; e++) /* each exponent, both signs: the ties, their neighbours, the carries */
        for (uint32_t sign = 0; sign < 2; sign++)
            for (uint32_t f = 0; f < 128; f++) {
                const uint32_t base = sign << 31 | e << 23 | f << 16;
                static const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
                for (size_t l = 0; l < sizeof lows / sizeof lows[0]; l++)
                    bad += elbo_bf16_from_f32_bits(base | lows[l]) != expected_bf16(base | lows[l]);
            }
    if (bad)
        test_failf("the scalar reference differs from the definition on %zu inputs\n", bad);
    /* A few by name: 1 + 2^-8 (a tie) rounds to 1, 1 + 3 * 2^-8 to 1 + 2^-6; the largest float to Inf; the
     * largest denormal to 0; a signalling NaN to a quiet one. */
    assert_int_equal(elbo_bf16_from_f32_bits(0x3f808000u), 0x3f80);
    assert_int_equal(elbo_bf16_from_f32_bits(0x3f818000u), 0x3f82);
    assert_int_equal(elbo_bf16_from_f32_bits(0x7f7fffffu), 0x7f80);
    assert_int_equal(elbo_bf16_from_f32_bits(0x807fffffu), 0x8000);
    assert_int_equal(elbo_bf16_from_f32_bits(0x7f800001u), 0x7fc0);
    assert_int_equal(elbo_bf16_from_f32_bits(0xff812345u), 0xffc1);
}

/* Every table's conversion equals the reference on every input (every SWEEP_STEP-th under emulation). */
static void test_every_isa_matches_reference_on_all_inputs(void **state)
{
    (void)state;
    float *x = malloc(CHUNK * sizeof(float));
    elbo_bf16 *ref = malloc(CHUNK * sizeof(elbo_bf16)), *y = malloc((CHUNK + 1) * sizeof(elbo_bf16));
    assert_non_null(x), assert_non_null(ref), assert_non_null(y);
    const elbo_kernels *tables[8];
    size_t n_tables = 0;
    for (size_t i = 0; n_tables < 8 && elbo_kernels_available(i); i++) /* the scalar table runs the reference */
        if (elbo_kernels_available(i)->f32_to_bf16 != elbo_f32_to_bf16_scalar)
            tables[n_tables++] = elbo_kernels_available(i);
    size_t bad[8] = {0};
    uint64_t v = 0, calls = 0;
    while (v <= 0xffffffffu) {
        size_t n = 0;
        for (; n < CHUNK - calls % 37 && v <= 0xffffffffu; n++, v += SWEEP_STEP) /* lengths vary: every tail */
            x[n] = elbo_f32_from_bits((uint32_t)v);
        calls++;
        elbo_f32_to_bf16_scalar(ref, x, n);
        for (size_t t = 0; t < n_tables; t++) {
            y[n] = 0xabcd; /* nothing past n is written */
            tables[t]->f32_to_bf16(y, x, n);
            if (memcmp(y, ref, n * sizeof(elbo_bf16)) != 0 || y[n] != 0xabcd) {
                for (size_t i = 0; i < n; i++)
                    if (y[i] != ref[i] && bad[t]++ < 3)
                        print_error("%s: bf16 of 0x%08x is 0x%04x, the reference gives 0x%04x\n", tables[t]->isa,
                                    elbo_f32_bits(x[i]), y[i], ref[i]);
                bad[t] += y[n] != 0xabcd;
            }
        }
    }
    for (size_t t = 0; t < n_tables; t++) {
        print_message("%s: checked on %s inputs\n", tables[t]->isa,
                      SWEEP_STEP == 1 ? "all 2^32" : "every 251st of the 2^32");
        if (bad[t])
            test_failf("%s: %zu conversions differ from the reference\n", tables[t]->isa, bad[t]);
    }
    free(x), free(ref), free(y);
}

/* Short lengths 0..70 at every start offset 0..3 (unaligned, all tail paths) on every table. */
static void test_short_lengths(void **state)
{
    (void)state;
    float x[80];
    elbo_bf16 ref[80], y[80];
    test_rng rng = {5};
    for (size_t i = 0; i < 80; i++)
        x[i] = elbo_f32_from_bits((uint32_t)test_rng_next(&rng));
    const elbo_kernels *k;
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t off = 0; off < 4; off++)
            for (size_t n = 0; n + off <= 74; n++) {
                elbo_f32_to_bf16_scalar(ref, x + off, n);
                for (size_t i = 0; i < 80; i++)
                    y[i] = 0x1234;
                k->f32_to_bf16(y + off, x + off, n);
                for (size_t i = 0; i < 80; i++)
                    if (i >= off && i < off + n ? y[i] != ref[i - off] : y[i] != 0x1234)
                        test_failf("%s: length %zu at offset %zu: element %zu wrong or written\n", k->isa, n, off, i);
            }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_matches_definition),
        cmocka_unit_test(test_every_isa_matches_reference_on_all_inputs),
        cmocka_unit_test(test_short_lengths),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof tests[0]);
    return cmocka_run_group_tests_name("kernel_bf16_convert", tests, NULL, NULL);
}
