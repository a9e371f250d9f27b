/* Byte arrays reserved whole and committed as they are written (lazy_alloc.h). */
#include "lazy_alloc.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* What elbo_lazy_free unmaps, stored at the end of the page just below the array. */
typedef struct {
    void *base;
    size_t len;
} mapping;

void *elbo_lazy_alloc(size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes == 0)
        bytes = 1;
    if (bytes > SIZE_MAX - 2 * page)
        return NULL;
    size_t len = page + (bytes + page - 1) / page * page; /* the header's page, then the array */
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    mapping *m = (mapping *)(base + page) - 1;
    m->base = base;
    m->len = len;
    return base + page;
}

void elbo_lazy_free(void *p)
{
    if (!p)
        return;
    const mapping *m = (const mapping *)p - 1;
    munmap(m->base, m->len);
}
