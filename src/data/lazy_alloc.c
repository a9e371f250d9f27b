/* Byte arrays reserved whole and committed as they are written (lazy_alloc.h). */
#include "lazy_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Arrays below this size come from calloc (a mapping per array would cost more than it saves). */
#define MAPPED_MIN ((size_t)1 << 20)

/* Stored just below the array: the mapping to unmap, or len 0 and the calloc block to free. */
typedef struct {
    void *base;
    size_t len;
} header;

void *elbo_lazy_alloc(size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes == 0)
        bytes = 1;
    if (bytes > SIZE_MAX - 2 * page)
        return NULL;
    if (bytes < MAPPED_MIN) {
        uint8_t *block = calloc(1, sizeof(header) + bytes);
        if (!block)
            return NULL;
        *(header *)block = (header){block, 0};
        return block + sizeof(header);
    }
    size_t len = page + (bytes + page - 1) / page * page; /* the header's page, then the array */
    uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    *((header *)(base + page) - 1) = (header){base, len};
    return base + page;
}

void elbo_lazy_free(void *p)
{
    if (!p)
        return;
    const header *h = (const header *)p - 1;
    if (h->len)
        munmap(h->base, h->len);
    else
        free(h->base);
}
