/* The GEMM peers themselves: OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm), each behind the same small table
 * so the child process of bench_peer.c can serve any of them. Only a peer's child calls these: the parent never
 * initializes a peer for a measurement (OpenBLAS picks its kernels when it loads, from the environment). */
#ifndef ELBO_BENCH_PEER_LIBS_H
#define ELBO_BENCH_PEER_LIBS_H

#include <stddef.h>

typedef struct {
    const char *name; /* as in the rows: gemm/<name>/... */
    /* What the library runs on this CPU, one line: version, kernel or ISA, threading runtime. */
    void (*describe)(char *out, size_t outlen);
    /* Uses `threads` threads from now on. */
    void (*set_threads)(int threads);
    /* Row-major C[m][n] = op(A) op(B) (alpha 1, beta 0; ta/tb non-zero: transposed); 0, or -1 with a message. */
    int (*sgemm)(int ta, int tb, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                 size_t ldb, float *c, size_t ldc, char *err, size_t errlen);
    /* Non-zero: a bf16 peer, which multiplies A and B rounded to bf16 (converted once per operand, outside the
     * timed calls) with fp32 accumulation; its check takes the rounded inputs as the reference's. */
    int bf16;
} bench_peer_lib;

/* The peer called `name`, or NULL when there is none. */
const bench_peer_lib *bench_peer_lib_find(const char *name);

#endif
