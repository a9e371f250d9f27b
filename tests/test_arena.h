/* Test buffers that end exactly at an inaccessible page: a read or write past a row's tail crashes the test, and
 * sealed (read-only) inputs crash on any write. Fresh float buffers start as NaN, so an element a kernel should
 * have written and did not fails a finiteness or bitwise check. */
#ifndef ELBO_TEST_ARENA_H
#define ELBO_TEST_ARENA_H

#include "test_util.h"

#include <sys/mman.h>
#include <unistd.h>

#define ARENA_MAX_BUFFERS 32

typedef struct {
    char *base;
    size_t len, data_len;
} arena_mapping;

typedef struct {
    arena_mapping maps[ARENA_MAX_BUFFERS];
    size_t count;
} arena;

/* Fresh memory of `bytes` bytes ending exactly where a PROT_NONE page begins. */
static inline void *arena_take(arena *a, size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data_len = (bytes + page - 1) / page * page;
    assert_true(a->count < ARENA_MAX_BUFFERS);
    char *base = mmap(NULL, data_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base + data_len, page, PROT_NONE), 0);
    a->maps[a->count++] = (arena_mapping){base, data_len + page, data_len};
    return base + data_len - bytes;
}

/* n floats ending at a guard page, all NaN. */
static inline float *arena_floats(arena *a, size_t n)
{
    float *p = arena_take(a, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

/* Makes the buffer holding p read-only. */
static inline void arena_seal(arena *a, const void *p)
{
    for (size_t i = 0; i < a->count; i++) {
        arena_mapping *m = &a->maps[i];
        if ((const char *)p >= m->base && (const char *)p <= m->base + m->data_len) {
            assert_int_equal(mprotect(m->base, m->data_len, PROT_READ), 0);
            return;
        }
    }
    fail_msg("arena_seal: pointer not in arena");
}

/* Unmaps every buffer of the arena. */
static inline void arena_free(arena *a)
{
    for (size_t i = 0; i < a->count; i++)
        munmap(a->maps[i].base, a->maps[i].len);
    a->count = 0;
}

#endif
