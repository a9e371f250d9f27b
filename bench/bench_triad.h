/* The bandwidth references of the run: a one-core STREAM triad over a given number of bytes. */
#ifndef ELBO_BENCH_TRIAD_H
#define ELBO_BENCH_TRIAD_H

#include <stddef.h>

/* GB/s of a one-thread triad a = b + s*c over three float arrays of footprint_bytes / 3 bytes each (bytes read
 * plus written, as STREAM counts them), vectorized for AVX2 where the CPU has it: the median of `rounds`
 * rounds of at least `seconds` each, after one warm-up round. So the bandwidth of the memory level that
 * holds footprint_bytes: DRAM for arrays much larger than the last-level cache. 0 when out of memory. */
double bench_triad_gbs(size_t footprint_bytes, int rounds, double seconds);

#endif
