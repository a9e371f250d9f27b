/* A GEMM peer measured in a child process: the bench re-executes itself (/proc/self/exe) as
 * `elbo_bench --peer=NAME --peer-fd=N` with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the child's
 * environment only, and talks to it over a socket, one text line per request and reply:
 *   child:  hello <what the library runs on this CPU>
 *   parent: check M N K TA TB THREADS        child: ok <worst error / bound>  |  fail <why>
 *   parent: time M N K TA TB THREADS ITERS   child: ok <seconds> <cpu seconds>  |  fail <why>
 * Why a re-executed child rather than the parent's own calls or a fork: OpenBLAS picks its kernels in a
 * constructor when it loads, from the environment, so a measurement on the peer's best kernel needs a process
 * that loaded it without the forcing variables (a fork inherits the parent's choice); and a peer that crashes
 * or hangs on some CPU then ends its child, which is reported, not the bench. The child builds the operands
 * itself from the bench's fixed seeds (the same data as elbo's rows) and keeps them per shape.
 *
 * `check` runs one GEMM over a C filled with NaN, requires every element written and finite, and compares the
 * first and last rows and columns and 256 more elements with a double-precision product: |c - ref| must stay
 * within (k + 1) u sum_p |a_ip b_pj| (u = 2^-24), the bound of any fp32 summation order. `time` runs ITERS
 * GEMMs back to back and returns their wall time as the child measured it, and the child's CPU time over them
 * (all its threads: below THREADS x wall time when it was descheduled). */
#ifndef ELBO_BENCH_PEER_H
#define ELBO_BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_peer bench_peer;

/* One GEMM as a peer runs it: row-major C[m][n] = op(A) op(B), A and B from the bench's seeds. */
typedef struct {
    size_t m, n, k;
    int ta, tb;  /* non-zero: transposed */
    int threads; /* the peer's own threads */
} bench_peer_gemm;

/* If argv asks for the child mode (--peer=NAME), serves the parent and returns the process's exit status;
 * else returns -1. */
int bench_peer_child_main(int argc, char **argv);

/* Starts the child of peer `name` and waits for its hello; NULL with a one-line reason in err. */
bench_peer *bench_peer_start(const char *name, char *err, size_t errlen);

/* Non-zero while the child answers (zero once it died, hung or misbehaved: start another to go on). */
int bench_peer_alive(const bench_peer *p);

/* The child's description of what the peer runs on this CPU (its hello line). */
const char *bench_peer_kernel(const bench_peer *p);

/* Checks the peer's result of g (see above): 0 with *worst = the largest error / bound seen, or -1 with why
 * (a wrong element, a library error, or the child's death) in err. */
int bench_peer_check(bench_peer *p, const bench_peer_gemm *g, double *worst, char *err, size_t errlen);

/* Runs g `iters` times in the child: 0 with their wall time in *seconds and the child's CPU time over them in
 * *cpu_seconds, or -1 with why in err. */
int bench_peer_time(bench_peer *p, const bench_peer_gemm *g, int64_t iters, double *seconds, double *cpu_seconds,
                    char *err, size_t errlen);

/* Ends the child (closing its socket) and waits for it; NULL is allowed. */
void bench_peer_stop(bench_peer *p);

#endif
