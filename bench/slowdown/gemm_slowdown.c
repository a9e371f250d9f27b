/* The benchmark with a planted regression, for measuring the regression check (make bench-check-rates): every call
 * of the GEMM entry points takes ELBO_BENCH_SLOWDOWN_PCT percent (default 10) longer, by spinning after the call for
 * that share of the CPU time the calling thread spent in it. Linked only into build/bench/elbo_bench_slowdown, with
 * -Wl,--wrap for the three entry points; the library and elbo_bench are untouched. */
#include <stdlib.h>
#include <time.h>

#include "gemm.h"

/* The calling thread's CPU time in seconds. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The planted slowdown as a fraction (ELBO_BENCH_SLOWDOWN_PCT / 100, read once). */
static double slowdown(void)
{
    static double fraction = -1;
    if (fraction < 0) {
        const char *s = getenv("ELBO_BENCH_SLOWDOWN_PCT");
        fraction = (s ? atof(s) : 10.0) / 100.0;
    }
    return fraction;
}

/* Spins until the thread has spent fraction x (its CPU time since t0) more. */
static void spin_after(double t0)
{
    double spent = thread_seconds() - t0, until = t0 + spent * (1.0 + slowdown());
    while (thread_seconds() < until)
        ;
}

void __real_elbo_gemm(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                      float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                      const elbo_epilogue *epi);
void __real_elbo_gemm_packed(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                             float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c, size_t ldc,
                             const elbo_epilogue *epi);
void __real_elbo_gemm_packed_cols(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j0,
                                  size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b *b,
                                  float beta, float *c, size_t ldc, const elbo_epilogue *epi);
void __wrap_elbo_gemm(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                      float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                      const elbo_epilogue *epi);
void __wrap_elbo_gemm_packed(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                             float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c, size_t ldc,
                             const elbo_epilogue *epi);
void __wrap_elbo_gemm_packed_cols(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j0,
                                  size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b *b,
                                  float beta, float *c, size_t ldc, const elbo_epilogue *epi);

/* elbo_gemm, then the planted slowdown. */
void __wrap_elbo_gemm(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                      float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                      const elbo_epilogue *epi)
{
    double t0 = thread_seconds();
    __real_elbo_gemm(kern, ws, m, n, k, alpha, a, b, beta, c, ldc, epi);
    spin_after(t0);
}

/* elbo_gemm_packed, then the planted slowdown. */
void __wrap_elbo_gemm_packed(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                             float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c, size_t ldc,
                             const elbo_epilogue *epi)
{
    double t0 = thread_seconds();
    __real_elbo_gemm_packed(kern, ws, m, n, k, alpha, a, b, beta, c, ldc, epi);
    spin_after(t0);
}

/* elbo_gemm_packed_cols, then the planted slowdown. */
void __wrap_elbo_gemm_packed_cols(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j0,
                                  size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b *b,
                                  float beta, float *c, size_t ldc, const elbo_epilogue *epi)
{
    double t0 = thread_seconds();
    __real_elbo_gemm_packed_cols(kern, ws, m, j0, j1, k, alpha, a, b, beta, c, ldc, epi);
    spin_after(t0);
}
