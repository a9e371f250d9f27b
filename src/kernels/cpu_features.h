/* What the CPU we run on can execute, read once from cpuid (x86) or the aux vector (arm64). */
#ifndef ELBO_CPU_FEATURES_H
#define ELBO_CPU_FEATURES_H

typedef struct {
    int avx2;        /* AVX2 and the OS saves YMM state */
    int fma;         /* FMA3 */
    int avx512f;     /* reported only; no AVX-512 path */
    int neon;        /* Advanced SIMD (always on arm64) */
    char arch[16];   /* "x86_64", "aarch64", ... */
    char model[64];  /* CPU brand string, or "unknown" */
} elbo_cpu_features;

/* Features of this CPU (computed on first call, then cached; thread-safe to call). */
const elbo_cpu_features *elbo_cpu_features_get(void);

#endif
