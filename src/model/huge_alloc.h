/* Byte arrays on transparent huge pages: for data read at random rows (the training images), where 4 KiB
 * pages cost a TLB miss, and in a VM a nested page walk, per row gathered. */
#ifndef ELBO_HUGE_ALLOC_H
#define ELBO_HUGE_ALLOC_H

#include <stddef.h>

/* A new zero-filled array of `bytes` bytes (an anonymous mapping: memory is committed as it is first
 * written, so reserving a size a file header only claims costs nothing until the data arrives). Arrays of
 * 2 MiB or more start on a 2 MiB boundary and are advised for huge pages (MADV_HUGEPAGE; ignored where
 * transparent huge pages are off). NULL on failure. */
void *elbo_huge_alloc(size_t bytes);

/* Frees an array from elbo_huge_alloc (NULL is a no-op). */
void elbo_huge_free(void *p);

#endif
