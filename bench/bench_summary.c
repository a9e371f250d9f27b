/* Summary table from the recorded rows of gbench_run. */
#include "bench_summary.h"

#include <stdio.h>
#include <string.h>

#include "bench_fma.h"
#include "gbench.h"

/* The median of row `row` if aggregated, else its single run; NULL when it did not run. */
static const gbench_result *find_row(const char *row)
{
    const gbench_result *plain = NULL;
    for (size_t i = 0; i < gbench_result_count(); i++) {
        const gbench_result *r = gbench_result_at(i);
        if (strcmp(r->row, row) != 0)
            continue;
        if (strcmp(r->aggregate, "median") == 0)
            return r;
        if (!plain && r->aggregate[0] == '\0')
            plain = r;
    }
    return plain;
}

/* A counter of a row, or 0 when it has none. */
static double counter(const gbench_result *r, const char *name)
{
    double v = 0;
    return r && gbench_result_counter(r, name, &v) == 0 ? v : 0;
}

/* Seconds as "812 ns", "41.2 us", "3.10 ms", "1.25 s". */
static const char *human_time(double s, char *out, size_t outlen)
{
    if (s < 1e-6)
        snprintf(out, outlen, "%.0f ns", s * 1e9);
    else if (s < 1e-3)
        snprintf(out, outlen, "%.1f us", s * 1e6);
    else if (s < 1)
        snprintf(out, outlen, "%.2f ms", s * 1e3);
    else
        snprintf(out, outlen, "%.2f s", s);
    return out;
}

/* The main rate of a row: samples/s for training, else GFLOP/s, else GB/s. */
static const char *human_rate(const gbench_result *r, char *out, size_t outlen)
{
    double v;
    if ((v = counter(r, "samples_per_s")) > 0)
        snprintf(out, outlen, "%.0f samples/s", v);
    else if ((v = counter(r, "GFLOP/s")) > 0)
        snprintf(out, outlen, "%.1f GFLOP/s", v);
    else if ((v = counter(r, "GB/s")) > 0)
        snprintf(out, outlen, "%.2f GB/s", v);
    else
        snprintf(out, outlen, "-");
    return out;
}

/* The GEMM peers whose rows gemm/elbo... rows are compared with (the best of them in the same run). */
static const char *const PEERS[] = {"openblas", "onednn"};

/* The row this one is compared with: X/t:N -> X/t:1 (GEMM rows: see best_peer_ratio). Empty when none. */
static void reference_row(const char *row, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *t = strstr(row, "/t:");
    if (t && strcmp(t, "/t:1") != 0)
        snprintf(out, outlen, "%.*s/t:1", (int)(t - row), row);
}

/* Ratio of two rows' main rates as "1.07x vs t:1"; empty when either is missing. */
static void ratio(const gbench_result *r, const char *ref_row, char *out, size_t outlen)
{
    out[0] = '\0';
    const gbench_result *ref = ref_row[0] ? find_row(ref_row) : NULL;
    if (!ref || ref->error || r->error)
        return;
    static const char *keys[] = {"samples_per_s", "GFLOP/s", "GB/s"};
    for (int k = 0; k < 3; k++) {
        double a = counter(r, keys[k]), b = counter(ref, keys[k]);
        if (a > 0 && b > 0) {
            snprintf(out, outlen, "%.2fx vs t:1", a / b);
            return;
        }
    }
}

/* For a gemm/elbo... row, its GFLOP/s over the best peer's on the same shape as "0.97x onednn"; empty for
 * other rows or when no peer row of the shape ran. */
static void best_peer_ratio(const gbench_result *r, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *rest = strncmp(r->row, "gemm/elbo", 9) == 0 ? strchr(r->row + 5, '/') : NULL;
    double mine = counter(r, "GFLOP/s"), best = 0;
    const char *best_name = NULL;
    for (size_t i = 0; rest && i < sizeof PEERS / sizeof PEERS[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "gemm/%s%s", PEERS[i], rest);
        const gbench_result *p = find_row(name);
        double v = p && !p->error ? counter(p, "GFLOP/s") : 0;
        if (v > best)
            best = v, best_name = PEERS[i];
    }
    if (best_name && mine > 0)
        snprintf(out, outlen, "%.2fx %s", mine / best, best_name);
}

void bench_summary_print(FILE *f, const bench_env *env)
{
    if (gbench_result_count() == 0)
        return;
    const int path = env->path_peak_gflops > 0;
    fprintf(f, "\nsummary (median of repetitions; measured at start: FMA peak %.1f GFLOP/s per core", env->peak_gflops);
    if (path)
        fprintf(f, ", %d-bit FMA peak of the %s path %.1f", bench_fma_path_vector_bits(env->kern), env->kern->isa,
                env->path_peak_gflops);
    fprintf(f, ", memory bandwidth %.1f GB/s (triad, one core))\n", env->membw_gbs);
    fprintf(f, "%-38s %10s %18s %7s", "row", "time", "rate", "%peak");
    if (path)
        fprintf(f, " %7s", "%path");
    fprintf(f, " %7s %18s  %s\n", "%bw", "ratio", "label");
    const char *last = "";
    for (size_t i = 0; i < gbench_result_count(); i++) {
        const gbench_result *r = gbench_result_at(i);
        if (strcmp(r->row, last) == 0)
            continue;
        last = r->row;
        r = find_row(r->row);
        if (!r)
            continue;
        if (r->error) {
            fprintf(f, "%-38s error: %s\n", r->row, r->error);
            continue;
        }
        char tm[32], rate[32], pct[16] = "", ppct[16] = "", bw[16] = "", ref[96], rat[48];
        double p = counter(r, "pct_peak"), pp = counter(r, "pct_path_peak"), b = counter(r, "pct_bw");
        if (p > 0)
            snprintf(pct, sizeof pct, "%.1f%%", p);
        if (pp > 0)
            snprintf(ppct, sizeof ppct, "%.1f%%", pp);
        if (b > 0)
            snprintf(bw, sizeof bw, "%.1f%%", b);
        reference_row(r->row, ref, sizeof ref);
        ratio(r, ref, rat, sizeof rat);
        if (!rat[0])
            best_peer_ratio(r, rat, sizeof rat);
        fprintf(f, "%-38s %10s %18s %7s", r->row, human_time(r->real_seconds, tm, sizeof tm),
                human_rate(r, rate, sizeof rate), pct);
        if (path)
            fprintf(f, " %7s", ppct);
        fprintf(f, " %7s %18s  %s\n", bw, rat, r->label);
    }
}
