/* Shared helpers for the tests: deterministic random data, double-precision references. */
#ifndef ELBO_TEST_UTIL_H
#define ELBO_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <fnmatch.h>
#include <string.h>

#include "kernels.h"

/* The kernel table this CPU selects (fails the test if there is none). */
static inline const elbo_kernels *test_kernels(void)
{
    const elbo_kernels *k = elbo_kernels_select();
    assert_non_null(k);
    return k;
}

/* 1 when isa is an item of the comma-separated list only. */
static inline int test_table_listed(const char *isa, const char *only)
{
    size_t n = strlen(isa);
    for (const char *p = only; (p = strstr(p, isa)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* The i-th kernel table the model tests train on (NULL past the last): every table this CPU runs
 * (elbo_kernels_available), or only those named in ELBO_TEST_ISAS (a comma-separated list such as "neon"; the
 * arm64 run under qemu sets it, as emulation makes each table's model tests minutes long and the scalar table's
 * arithmetic is the same C on every target, tested natively). Says once on stdout which tables it leaves out. */
static inline const elbo_kernels *test_model_tables(size_t i)
{
    static int said;
    const char *only = getenv("ELBO_TEST_ISAS");
    if (!only || !*only)
        return elbo_kernels_available(i);
    for (size_t j = 0; !said && elbo_kernels_available(j); j++)
        if (!test_table_listed(elbo_kernels_available(j)->isa, only))
            printf("  %-6s not run here (ELBO_TEST_ISAS=%s)\n", elbo_kernels_available(j)->isa, only);
    said = 1;
    size_t seen = 0;
    for (size_t j = 0; elbo_kernels_available(j); j++)
        if (test_table_listed(elbo_kernels_available(j)->isa, only) && seen++ == i)
            return elbo_kernels_available(j);
    if (seen == 0) { /* a filter that leaves nothing would pass every model test untested */
        print_error("ELBO_TEST_ISAS=%s names no kernel table this CPU runs\n", only);
        fail();
    }
    return NULL;
}

/* Deterministic 64-bit generator (splitmix64) for test data. */
typedef struct { uint64_t s; } test_rng;

/* Next 64 random bits. */
static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform float in [lo, hi). */
static inline float test_rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

/* Uniform integer in [0, n). */
static inline size_t test_rng_below(test_rng *r, size_t n)
{
    return n ? (size_t)(test_rng_next(r) % n) : 0;
}

/* Fills n floats uniformly in [lo, hi). */
static inline void test_fill(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(r, lo, hi);
}

/* 64-byte aligned allocation of n floats (at least one), filled with NaN so unread-ness is testable. */
static inline float *test_alloc_nan(size_t n)
{
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    assert_non_null(p);
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        p[i] = NAN;
    return p;
}

/* What a test filtered out by ELBO_TEST_SKIP runs instead: a skip, counted and listed as such. */
static inline void test_skipped_by_env(void **state)
{
    (void)state;
    print_message("skipped: ELBO_TEST_SKIP=%s\n", getenv("ELBO_TEST_SKIP"));
    skip();
}

/* ELBO_TEST_SKIP=pattern[:pattern...] (fnmatch, * and ? wildcards): the matching tests of the n in tests skip
 * under their own names (make test-sanitize skips the slowest). */
static inline void test_apply_skip_filter(struct CMUnitTest *tests, size_t n)
{
    const char *env = getenv("ELBO_TEST_SKIP");
    char list[512];
    if (!env || !*env)
        return;
    snprintf(list, sizeof list, "%s", env);
    for (char *save = NULL, *pat = strtok_r(list, ":", &save); pat; pat = strtok_r(NULL, ":", &save))
        for (size_t i = 0; i < n; i++)
            if (fnmatch(pat, tests[i].name, 0) == 0)
                tests[i].test_func = test_skipped_by_env;
}

/* Fails the current test with a formatted message. */
#define test_failf(...) do { print_error(__VA_ARGS__); fail(); } while (0)

#endif
