/* OpenBLAS and oneDNN as GEMM peers (see bench_peer_libs.h). */
#include "bench_peer_libs.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

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

/* A oneDNN bf16 matmul of one shape and its operands: A converted to bf16 once (plain layout, as stored), B
 * reordered once into the bf16 layout the primitive prefers (format any: its prepacked weights), C fp32. */
typedef struct {
    const float *a, *b;
    size_t m, n, k, lda, ldb, ldc;
    int ta, tb;
    dnnl_primitive_t matmul;
    dnnl_memory_t a_mem, b_mem, c_mem;
    elbo_bf16 *a_h;
    void *b_h;
} onednn_bf16_case;

static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static onednn_bf16_case g_bf16_cases[64];
static size_t g_n_bf16_cases;

/* A 2-D memory descriptor rows x cols of type dt, transposed storage (column stride ld) or not (row stride ld). */
static dnnl_memory_desc_t md_2d(size_t rows, size_t cols, size_t ld, int trans, dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {(dnnl_dim_t)rows, (dnnl_dim_t)cols};
    dnnl_dims_t strides = {trans ? 1 : (dnnl_dim_t)ld, trans ? (dnnl_dim_t)ld : 1};
    dnnl_memory_desc_init_by_strides(&md, 2, dims, dt, strides);
    return md;
}

/* Builds the primitive and the bf16 operands of a case (x holds its shape and operand pointers); 0 or -1. */
static int onednn_bf16_build(onednn_bf16_case *x, char *err, size_t errlen)
{
    dnnl_status_t s = dnnl_success;
    if (!g_engine && ((s = dnnl_engine_create(&g_engine, dnnl_cpu, 0)) != dnnl_success ||
                      (s = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags)) != dnnl_success)) {
        snprintf(err, errlen, "oneDNN engine or stream: status %d", (int)s);
        return -1;
    }
    dnnl_memory_desc_t a_md = md_2d(x->m, x->k, x->lda, x->ta, dnnl_bf16), c_md = md_2d(x->m, x->n, x->ldc, 0, dnnl_f32);
    dnnl_memory_desc_t b_any, b_f32 = md_2d(x->k, x->n, x->ldb, x->tb, dnnl_f32);
    dnnl_dims_t b_dims = {(dnnl_dim_t)x->k, (dnnl_dim_t)x->n};
    dnnl_memory_desc_init_by_tag(&b_any, 2, b_dims, dnnl_bf16, dnnl_format_tag_any);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t b_src = NULL;
    if ((s = dnnl_matmul_desc_init(&desc, &a_md, &b_any, NULL, &c_md)) != dnnl_success ||
        (s = dnnl_primitive_desc_create(&pd, &desc, NULL, g_engine, NULL)) != dnnl_success ||
        (s = dnnl_primitive_create(&x->matmul, pd)) != dnnl_success) {
        snprintf(err, errlen, "oneDNN bf16 matmul %zux%zux%zu: status %d", x->m, x->n, x->k, (int)s);
        return -1;
    }
    const dnnl_memory_desc_t *b_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t a_elems = x->ta ? x->k * x->lda : x->m * x->lda;
    x->a_h = malloc(a_elems * sizeof(elbo_bf16));
    x->b_h = malloc(dnnl_memory_desc_get_size(b_md));
    if (!x->a_h || !x->b_h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < a_elems; i++)
        x->a_h[i] = elbo_bf16_from_f32(x->a[i]);
    if ((s = dnnl_memory_create(&x->a_mem, &a_md, g_engine, x->a_h)) != dnnl_success ||
        (s = dnnl_memory_create(&x->b_mem, b_md, g_engine, x->b_h)) != dnnl_success ||
        (s = dnnl_memory_create(&x->c_mem, &c_md, g_engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (s = dnnl_memory_create(&b_src, &b_f32, g_engine, (void *)x->b)) != dnnl_success ||
        (s = dnnl_reorder_primitive_desc_create(&rpd, &b_f32, g_engine, b_md, g_engine, NULL)) != dnnl_success ||
        (s = dnnl_primitive_create(&reorder, rpd)) != dnnl_success) {
        snprintf(err, errlen, "oneDNN bf16 memories or weights reorder: status %d", (int)s);
        return -1;
    }
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, b_src}, {DNNL_ARG_TO, x->b_mem}};
    s = dnnl_primitive_execute(reorder, g_stream, 2, args);
    dnnl_stream_wait(g_stream);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(b_src);
    if (s != dnnl_success) {
        snprintf(err, errlen, "oneDNN weights reorder: status %d", (int)s);
        return -1;
    }
    return 0;
}

/* oneDNN's bf16 matmul (bf16 src and weights, f32 dst), its operands converted once per shape and pointers. */
static int onednn_bf16_gemm(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                            size_t ldb, float *c, size_t ldc, char *err, size_t errlen)
{
    onednn_bf16_case *x = NULL;
    for (size_t i = 0; i < g_n_bf16_cases && !x; i++) {
        onednn_bf16_case *y = &g_bf16_cases[i];
        if (y->a == a && y->b == b && y->m == m && y->n == n && y->k == k && y->ta == ta && y->tb == tb &&
            y->lda == lda && y->ldb == ldb && y->ldc == ldc)
            x = y;
    }
    if (!x) {
        if (g_n_bf16_cases == sizeof g_bf16_cases / sizeof g_bf16_cases[0]) {
            snprintf(err, errlen, "too many shapes");
            return -1;
        }
        x = &g_bf16_cases[g_n_bf16_cases++];
        *x = (onednn_bf16_case){.a = a, .b = b, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                                .ta = ta, .tb = tb};
        if (onednn_bf16_build(x, err, errlen) != 0) {
            g_n_bf16_cases--;
            return -1;
        }
    }
    dnnl_memory_set_data_handle(x->c_mem, c);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, x->a_mem}, {DNNL_ARG_WEIGHTS, x->b_mem}, {DNNL_ARG_DST, x->c_mem}};
    dnnl_status_t s = dnnl_primitive_execute(x->matmul, g_stream, 3, args);
    dnnl_stream_wait(g_stream);
    if (s == dnnl_success)
        return 0;
    snprintf(err, errlen, "dnnl_primitive_execute (bf16 matmul) returned status %d", (int)s);
    return -1;
}

static const bench_peer_lib PEERS[] = {
    {"openblas", openblas_describe, openblas_set_threads, openblas_sgemm, 0},
    {"onednn", onednn_describe, onednn_set_threads, onednn_sgemm, 0},
    {"onednn_bf16", onednn_describe, onednn_set_threads, onednn_bf16_gemm, 1},
};

const bench_peer_lib *bench_peer_lib_find(const char *name)
{
    for (size_t i = 0; i < sizeof PEERS / sizeof PEERS[0]; i++)
        if (strcmp(PEERS[i].name, name) == 0)
            return &PEERS[i];
    return NULL;
}
