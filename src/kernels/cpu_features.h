/* What the CPU we run on can execute, read once from cpuid (x86) or the aux vector (arm64). */
#ifndef ELBO_CPU_FEATURES_H
#define ELBO_CPU_FEATURES_H

#include <stddef.h>

typedef struct {
    int avx2;        /* AVX2 and the OS saves YMM state */
    int fma;         /* FMA3 */
    int avx512f;     /* reported only; no AVX-512 path */
    int avx512bw;    /* AVX-512BW (the bf16 GEMM's packing) */
    int avx512vl;    /* AVX-512VL (the bf16 GEMM's 8-column tiles: VDPBF16PS on ymm) */
    int avx512bf16;  /* AVX512_BF16: VDPBF16PS, VCVTNE2PS2BF16 */
    int neon;        /* Advanced SIMD (always on arm64) */
    int arm_bf16;    /* arm64 FEAT_BF16 (BFDOT, BFMMLA; HWCAP2_BF16) */
    char arch[16];   /* "x86_64", "aarch64", ... */
    char model[64];  /* CPU brand string, or "unknown" */
    char vendor[16]; /* x86: cpuid vendor ("AuthenticAMD", "GenuineIntel", ...); "" elsewhere */
    unsigned family, model_number; /* x86: display family and model (extended fields folded in); else 0 */
    unsigned midr_implementer, midr_part; /* arm64: MIDR_EL1 implementer and part number; 0 when unreadable */
} elbo_cpu_features;

/* Features of this CPU (computed on first call, then cached; thread-safe to call). */
const elbo_cpu_features *elbo_cpu_features_get(void);

/* x86: the display family and model from cpuid leaf 1's eax (family 0xf adds the extended family; families
 * 0x6 and 0xf take the extended model as the high nibble), e.g. 0x00a00f11 -> family 0x19, model 0x01. */
void elbo_x86_family_model(unsigned eax, unsigned *family, unsigned *model);

/* arm64: the first "CPU implementer" and "CPU part" of /proc/cpuinfo text (hex, e.g. 0x41 and 0xd0c) into
 * *implementer and *part; returns 0, or -1 (both left 0) when the text names neither. */
int elbo_arm64_midr_from_cpuinfo(const char *text, unsigned *implementer, unsigned *part);

/* The CPU brand string as a file-name slug, as results/ names files: "AMD EPYC 7B13 64-Core Processor" ->
 * "amd-epyc-7b13-64-core-processor" ("(R)", "(TM)" and the clock after " @ " dropped; "unknown-cpu" when empty). */
void elbo_cpu_slug(char *out, size_t outlen);

#endif
