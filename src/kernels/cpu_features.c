#include "cpu_features.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void elbo_x86_family_model(unsigned eax, unsigned *family, unsigned *model)
{
    unsigned base_family = (eax >> 8) & 0xf, base_model = (eax >> 4) & 0xf;
    *family = base_family == 0xf ? base_family + ((eax >> 20) & 0xff) : base_family;
    *model = base_family == 0x6 || base_family == 0xf ? (((eax >> 16) & 0xf) << 4) | base_model : base_model;
}

/* The hex value after the colon of the first line of text starting with key, or -1 when there is none. */
static long cpuinfo_hex(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (strncmp(line, key, n) == 0) {
            const char *colon = strchr(line, ':');
            if (!colon || (eol && colon > eol))
                return -1;
            char *end;
            long v = strtol(colon + 1, &end, 16);
            return end == colon + 1 ? -1 : v;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return -1;
}

int elbo_arm64_midr_from_cpuinfo(const char *text, unsigned *implementer, unsigned *part)
{
    long impl = cpuinfo_hex(text, "CPU implementer"), pt = cpuinfo_hex(text, "CPU part");
    *implementer = *part = 0;
    if (impl < 0 || pt < 0)
        return -1;
    *implementer = (unsigned)impl;
    *part = (unsigned)pt;
    return 0;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* Reads XCR0 (which register state the OS saves on context switch). */
static unsigned long long read_xcr0(void)
{
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

/* Fills the x86 feature bits and brand string from cpuid. */
static void detect_x86(elbo_cpu_features *f)
{
    unsigned int a, b, c, d;
    snprintf(f->arch, sizeof f->arch, "x86_64");
    if (__get_cpuid(0, &a, &b, &c, &d)) { /* the vendor string is ebx, edx, ecx */
        memcpy(f->vendor, &b, 4);
        memcpy(f->vendor + 4, &d, 4);
        memcpy(f->vendor + 8, &c, 4);
        f->vendor[12] = '\0';
    }
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    elbo_x86_family_model(a, &f->family, &f->model_number);
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    int ymm_saved = osxsave && (read_xcr0() & 0x6) == 0x6;
    int zmm_saved = osxsave && (read_xcr0() & 0xe6) == 0xe6;
    f->fma = fma && avx && ymm_saved;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = ((b >> 5) & 1) && avx && ymm_saved;
        f->avx512f = ((b >> 16) & 1) && zmm_saved;
        f->avx512bw = ((b >> 30) & 1) && zmm_saved;
        f->avx512vl = ((b >> 31) & 1) && zmm_saved;
        if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) /* leaf 7 subleaf 1: eax bit 5 AVX512_BF16 */
            f->avx512bf16 = ((a >> 5) & 1) && zmm_saved;
    }
    unsigned int brand[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
        char s[49];
        memcpy(s, brand, 48);
        s[48] = '\0';
        const char *p = s;
        while (*p == ' ')
            p++;
        snprintf(f->model, sizeof f->model, "%s", p);
        size_t n = strlen(f->model);
        while (n > 0 && f->model[n - 1] == ' ')
            f->model[--n] = '\0';
    }
}
#endif

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CPUID
#define HWCAP_CPUID (1UL << 11)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif

/* MIDR_EL1's implementer and part: from /proc/cpuinfo (its first core), else from the register itself where
 * the kernel lets user space read it (HWCAP_CPUID); both 0 when neither is available. */
static void detect_arm64_midr(elbo_cpu_features *f)
{
    char text[8192];
    size_t n = 0;
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (fp) {
        n = fread(text, 1, sizeof text - 1, fp);
        fclose(fp);
    }
    text[n] = '\0';
    if (elbo_arm64_midr_from_cpuinfo(text, &f->midr_implementer, &f->midr_part) == 0)
        return;
    if (getauxval(AT_HWCAP) & HWCAP_CPUID) {
        unsigned long midr;
        __asm__ volatile("mrs %0, MIDR_EL1" : "=r"(midr));
        f->midr_implementer = (unsigned)(midr >> 24) & 0xff;
        f->midr_part = (unsigned)(midr >> 4) & 0xfff;
    }
}

/* Fills the arm64 features: Advanced SIMD is architectural, the model from /proc/cpuinfo if present. */
static void detect_arm64(elbo_cpu_features *f)
{
    snprintf(f->arch, sizeof f->arch, "aarch64");
    f->neon = 1;
    f->arm_bf16 = (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0;
    detect_arm64_midr(f);
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "CPU part", 8) == 0 || strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ')
                    colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(f->model, sizeof f->model, "%s", colon);
                break;
            }
        }
    }
    fclose(fp);
}
#endif

static elbo_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

/* Detects once into the static cache. */
static void detect(void)
{
    snprintf(features.model, sizeof features.model, "unknown");
    snprintf(features.arch, sizeof features.arch, "unknown");
#if defined(__x86_64__) || defined(__i386__)
    detect_x86(&features);
#elif defined(__aarch64__)
    detect_arm64(&features);
#endif
}

const elbo_cpu_features *elbo_cpu_features_get(void)
{
    pthread_once(&features_once, detect);
    return &features;
}
