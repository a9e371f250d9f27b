/* OpenBLAS and oneDNN as GEMM peers (see bench_peer_libs.h). */
#include "bench_peer_libs.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <string.h>

/* OpenBLAS's version, build and the core whose kernels it chose when it loaded. */
static void openblas_describe(char *out, size_t outlen)
{
    snprintf(out, outlen, "kernel %s (openblas_get_corename); %s", openblas_get_corename(), openblas_get_config());
}

/* OpenBLAS's own thread count. */
static void openblas_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

/* cblas_sgemm, row-major, alpha 1, beta 0. */
static int openblas_sgemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, float *c, size_t ldc, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
    return 0;
}

/* oneDNN's name of a CPU ISA level (dnnl_cpu_isa_t). */
static const char *dnnl_isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

/* oneDNN's version, source hash, threading runtime and the ISA it dispatches to on this CPU. */
static void onednn_describe(char *out, size_t outlen)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(out, outlen, "oneDNN %d.%d.%d (%s), effective ISA %s (dnnl_get_effective_cpu_isa), CPU runtime %s",
             v->major, v->minor, v->patch, v->hash ? v->hash : "no hash", dnnl_isa_name(dnnl_get_effective_cpu_isa()),
             v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential" : "other");
}

/* oneDNN's OpenMP runtime is the process's libgomp: its thread count. */
static void onednn_set_threads(int threads)
{
    omp_set_num_threads(threads);
}

/* dnnl_sgemm (row-major, like cblas_sgemm with CblasRowMajor), alpha 1, beta 0. */
static int onednn_sgemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                        size_t ldb, float *c, size_t ldc, char *err, size_t errlen)
{
    dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', (dnnl_dim_t)m, (dnnl_dim_t)n, (dnnl_dim_t)k, 1.0f, a,
                                 (dnnl_dim_t)lda, b, (dnnl_dim_t)ldb, 0.0f, c, (dnnl_dim_t)ldc);
    if (s == dnnl_success)
        return 0;
    snprintf(err, errlen, "dnnl_sgemm returned status %d", (int)s);
    return -1;
}

static const bench_peer_lib PEERS[] = {
    {"openblas", openblas_describe, openblas_set_threads, openblas_sgemm},
    {"onednn", onednn_describe, onednn_set_threads, onednn_sgemm},
};

const bench_peer_lib *bench_peer_lib_find(const char *name)
{
    for (size_t i = 0; i < sizeof PEERS / sizeof PEERS[0]; i++)
        if (strcmp(PEERS[i].name, name) == 0)
            return &PEERS[i];
    return NULL;
}
