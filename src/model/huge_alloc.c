/* Byte arrays on transparent huge pages (huge_alloc.h). */
#include "huge_alloc.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)

/* What elbo_huge_free unmaps, stored just below the array, in its own page. */
typedef struct {
    void *base;
    size_t len;
} mapping;

void *elbo_huge_alloc(size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : page;
    if (bytes == 0)
        bytes = 1;
    if (bytes > SIZE_MAX - 2 * align - page)
        return NULL;
    size_t body = (bytes + align - 1) / align * align;
    size_t len = page + body + align; /* the header's page, the array, and room to align it */
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)base + page + align - 1) & ~(uintptr_t)(align - 1));
    uint8_t *head = p - page, *end = p + body;
    /* keep [head, end): the header's page and the array */
    if (head > base)
        munmap(base, (size_t)(head - base));
    if (base + len > end)
        munmap(end, (size_t)(base + len - end));
    if (align == HUGE_PAGE)
        (void)madvise(p, body, MADV_HUGEPAGE); /* EINVAL without transparent huge pages: 4 KiB pages then */
    mapping *m = (mapping *)p - 1;
    m->base = head;
    m->len = (size_t)(end - head);
    return p;
}

void elbo_huge_free(void *p)
{
    if (!p)
        return;
    const mapping *m = (const mapping *)p - 1;
    munmap(m->base, m->len);
}
