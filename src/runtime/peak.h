/* A machine's measured peak for a training's "% of peak": the FMA probe (fma_peak.h) or the bf16 dot-product probe
 * (bf16_peak.h) on several threads at once, at the vector width of the kernel table the training runs. */
#ifndef ELBO_PEAK_H
#define ELBO_PEAK_H

#include <stddef.h>

#include "kernels.h"

typedef enum { ELBO_PEAK_FMA = 0, ELBO_PEAK_BF16 = 1 } elbo_peak_kind;

/* The probe that matches a kernel table. */
typedef struct {
    elbo_peak_kind kind;
    int vector_bits;          /* 256 or 512 */
    const char *name;         /* the probe's function, e.g. "fma_peak_avx512_run" */
} elbo_peak_probe;

/* The probe of `kind` for kernel table k on this CPU into *out: FMA chains at the width of k's ISA (avx2: 256,
 * avx512: 512 bits); bf16: VDPBF16PS chains where k's bf16 GEMM is the AVX512_BF16 one. Returns 0, or -1 when there
 * is none (the scalar and NEON tables, a bf16 GEMM that is emulated or absent). */
int elbo_peak_probe_for(const elbo_kernels *k, elbo_peak_kind kind, elbo_peak_probe *out);

/* GFLOP/s of `threads` threads running probe p at once (OpenMP), the median of `rounds` rounds (after a warm-up
 * round) of about `seconds` each: a round's flops summed over the threads, over its slowest thread's time. */
double elbo_peak_measure(const elbo_peak_probe *p, size_t threads, int rounds, double seconds);

#endif
