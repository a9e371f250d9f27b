/* GEMM rows: every GEMM shape one training step of the 784-400-20 VAE runs, at batch 32/128/256/1024, and
 * 2048^3, each as elbo and as its peers, OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm), one thread each. A peer
 * runs in its own child process on its best kernel for this CPU (bench_peer.h: OPENBLAS_CORETYPE and
 * OPENBLAS_L2_SIZE cleared for it alone), after its result was checked on every selected shape. */
#ifndef ELBO_BENCH_GEMM_H
#define ELBO_BENCH_GEMM_H

#include "bench_common.h"

/* Registers gemm/elbo/SHAPE/b:B (as the trainer calls it: a weight B packed once beforehand),
 * gemm/elbo_packB/SHAPE/b:B (packing B inside every call; weight operands only), gemm/openblas/SHAPE/b:B and
 * gemm/onednn/SHAPE/b:B; 2048^3 is gemm/VARIANT/square2048. Counters GFLOP/s and pct_peak (one core); the label
 * is "MxNxK op". A peer row's time is the parent's wall clock over round trips to the child, its GFLOP/s and
 * pct_peak are over the child's own time of its GEMM loops (child_time_share: that over the wall clock, ~0.99;
 * child_cpu_share: the child's CPU time over it, as cpu_time / real_time of elbo's rows), and its JSON cpu_time
 * is the parent's, near 0: the work is the child's. */
void bench_gemm_register(const bench_env *env);
/* Before gbench_run: starts the child of each peer with a row selected by argv's --benchmark_filter, checks its
 * result on each selected shape, and adds the context peer_NAME (what it runs: OpenBLAS's core name, oneDNN's
 * version and ISA; or why it is not measured) and peer_NAME_check. Failed rows report the error untimed. */
void bench_gemm_peers_start(int argc, char **argv);
/* Frees the operands kept between calls and ends the peers' children (after gbench_run). */
void bench_gemm_free(void);

#endif
