/* Memory bandwidth rows: STREAM-style copy and triad over arrays much larger than the last-level cache. */
#ifndef ELBO_BENCH_MEMBW_H
#define ELBO_BENCH_MEMBW_H

#include "bench_common.h"

/* Registers membw/copy/t:T and membw/triad/t:T for T = 1..cores (GB/s counted as STREAM does: bytes read
 * plus bytes written, no write-allocate traffic). */
void bench_membw_register(const bench_env *env);
/* Bytes of each of the rows' three arrays: 4x the last-level cache, within 64 to 256 MiB. */
size_t bench_membw_array_bytes(const bench_env *env);
/* Frees the arrays (after gbench_run). */
void bench_membw_free(void);

#endif
