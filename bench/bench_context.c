/* The run's context: CPU, caches, NUMA, ISA path, compiler and flags, commit, dataset, measured peak. */
#include "bench_context.h"

#include "bench_fma.h"

#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chips.h"
#include "cpu_features.h"

#ifndef ELBO_BUILD_FLAGS
#define ELBO_BUILD_FLAGS "unknown"
#endif
#ifndef ELBO_GIT_COMMIT
#define ELBO_GIT_COMMIT "unknown"
#endif

/* gbench_add_context with a printf-formatted value. */
static void add(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(const char *key, const char *fmt, ...)
{
    char value[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    gbench_add_context(key, value);
}

void bench_context_add(const bench_env *env, const char *dataset)
{
    char cpu[512] = "", caches[256] = "";
    if (env->topo) {
        elbo_topology_cpu_model(env->topo, cpu, sizeof cpu);
        elbo_topology_caches(env->topo, caches, sizeof caches);
    }
    add("cpu_model", "%s", cpu[0] ? cpu : elbo_cpu_features_get()->model);
    add("cores", "%zu", env->cores);
    add("threads_used", "1 (fma_peak, gemm, elementwise); 1..%zu (membw, train, epoch: t:N)", env->cores);
    add("isa", "%s", env->kern->isa);
    add("gemm_microkernel", "%s", env->kern->gemm_ukernel_name);
    add("chip_config", "%s", elbo_kernels_chip()->name);
    add("cache_sizes", "%s", caches[0] ? caches : "not reported");
    add("numa_nodes", "%zu", env->topo ? elbo_topology_numa_nodes(env->topo) : (size_t)1);
    add("compiler", "gcc %s", __VERSION__);
    add("build_flags", "%s", ELBO_BUILD_FLAGS);
    add("git_commit", "%s", ELBO_GIT_COMMIT);
    add("openblas", "%s", openblas_get_config());
    add("dataset", "%s", dataset);
    add("fma_peak_gflops", "%.2f", env->peak_gflops);
    add("fma_peak_vector_bits", "%d", bench_fma_peak_vector_bits());
    if (env->path_peak_gflops > 0) {
        add("fma_peak_path_gflops", "%.2f", env->path_peak_gflops);
        add("fma_peak_path_vector_bits", "%d", bench_fma_path_vector_bits(env->kern));
    }
    add("membw_triad_gbs", "%.2f", env->membw_gbs);
}

int bench_results_path(const char *dir, char *out, size_t outlen)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return -1;
    char slug[64], date[16];
    elbo_cpu_slug(slug, sizeof slug);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y%m%d", &tm);
    snprintf(out, outlen, "%s/%s-%s.json", dir, slug, date);
    for (int i = 2; access(out, F_OK) == 0 && i < 1000; i++)
        snprintf(out, outlen, "%s/%s-%s-%d.json", dir, slug, date, i);
    return 0;
}
