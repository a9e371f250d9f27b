/* scripts/bench_check.py (make bench-check) on synthetic result pairs in Google Benchmark's JSON format, with two
 * gated rows (a GEMM and a training step) and one that is not (an elementwise row): identical runs pass; a gated
 * row whose pct_peak median dropped 20 % in every repetition is listed as slower and fails through the gated
 * rows' geometric mean (-10.6 %); one dropped 30 % fails alone (REGRESSED) even when the geometric-mean gate is
 * set out of reach; the ungated row dropping 30 % is listed but passes; a machine uniformly 30 % slower (times,
 * GFLOP/s, GB/s and the FMA peak alike, same efficiency) passes; an 8 % median drop whose repetitions overlap the
 * baseline's (U test not significant) is noise; --gate-geomean moves the gate and --tolerance the listing; a gated
 * row missing from the current run fails and is named; a baseline whose start-of-run peak was halved by a busy
 * moment is compared through its interleaved fma_peak row and passes; rows whose wall time is 1.5x their CPU time
 * (descheduled by other load) pass.
 *
 * Runs `/usr/bin/python3 scripts/bench_check.py --baseline A --current B` (no benchmarking) with the script
 * found from this binary (build/tests/x -> scripts/), else from the current directory. */
#include "test_util.h"

#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PATH 1024
#define REPS 5
#define CAPTURE_MAX (1 << 20)

static char script[MAX_PATH] = "scripts/bench_check.py";
static char dir[] = "/tmp/elbo-bench-check-XXXXXX";

/* One synthetic row: its name and the efficiency of each repetition (pct_peak, or GB/s when gbs is set). */
typedef struct {
    const char *name;
    int gbs;
    double eff[REPS];
} row;

static const row ROWS[] = {
    {"gemm/elbo/enc1.fwd/b:128", 0, {85.1, 85.6, 84.9, 85.3, 85.8}},
    {"elementwise/adam/b:128", 1, {56.1, 56.5, 55.9, 56.8, 56.3}},
    {"train/b:128/t:1", 0, {64.2, 64.9, 65.1, 64.5, 64.7}},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

/* When non-zero, write_run's runs measured this start-of-run peak (a busy moment: pct_peak is taken against
 * it) and carry an fma_peak row at the real peak, as a run on a machine busy only at its start does. */
static double start_peak;
/* Wall time / CPU time of write_run's rows other than fma_peak: > 1 when other load descheduled them. */
static double desched = 1.0;
/* The row whose repetitions write_run's row0 replaces (0 unless a test says otherwise). */
static size_t replaced_row;
/* When set, write_run's context names this kernel path ("isa"), as elbo_bench's does. */
static const char *run_isa;

/* Writes DIR/file: the rows (the first nrows of them), each repetition's efficiency of row replaced_row replaced by
 * row0 when given, on a machine `slow` times slower (peak, rates and times all scaled; pct_peak kept). */
static const char *write_run(const char *file, const double *row0, size_t nrows, double slow)
{
    static char path[MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    double peak = 100.0 / slow, start = start_peak ? start_peak : peak;
    fprintf(f, "{\"context\": {\"date\": \"2026-11-23\", \"num_cpus\": 2, \"fma_peak_gflops\": \"%.2f\"%s%s%s},\n"
               " \"benchmarks\": [\n", start, run_isa ? ", \"isa\": \"" : "", run_isa ? run_isa : "", run_isa ? "\"" : "");
    const char *sep = "";
    for (int i = 0; start_peak && i < REPS; i++, sep = ",\n")
        fprintf(f, "%s  {\"name\": \"fma_peak/process_time/real_time\", \"run_type\": \"iteration\", \"repetitions\": %d,"
                   " \"repetition_index\": %d, \"iterations\": 1000, \"real_time\": %.6f, \"cpu_time\": %.6f,"
                   " \"time_unit\": \"us\", \"GFLOP/s\": %.6f, \"pct_peak\": %.6f}",
                sep, REPS, i, 12800.0 / peak, 12800.0 / peak, peak * (1 + 0.001 * i), 100.0 * peak / start);
    for (size_t r = 0; r < nrows; r++)
        for (int i = 0; i <= REPS; i++) { /* REPS repetitions, then a _median aggregate (ignored) */
            int agg = i == REPS;
            double eff = agg ? ROWS[r].eff[2] : (r == replaced_row && row0) ? row0[i] : ROWS[r].eff[i];
            double rate = ROWS[r].gbs ? eff / slow : eff * peak / 100.0; /* GB/s and GFLOP/s: / slow */
            double cpu = 1000.0 / rate, time = cpu * desched;
            rate /= desched;
            fprintf(f, "%s  {\"name\": \"%s/process_time/real_time%s\", \"run_name\": \"%s/process_time/real_time\","
                       " \"run_type\": \"%s\",%s \"repetitions\": %d, \"repetition_index\": %d, \"threads\": 1,"
                       " \"iterations\": 100, \"real_time\": %.6f, \"cpu_time\": %.6f, \"time_unit\": \"us\", ",
                    sep, ROWS[r].name, agg ? "_median" : "", ROWS[r].name, agg ? "aggregate" : "iteration",
                    agg ? " \"aggregate_name\": \"median\"," : "", REPS, agg ? 0 : i, time, cpu);
            if (ROWS[r].gbs)
                fprintf(f, "\"GB/s\": %.6f, \"bytes_per_second\": %.1f}", rate, rate * 1e9);
            else
                fprintf(f, "\"GFLOP/s\": %.6f, \"pct_peak\": %.6f, \"label\": \"128x400x784 NT\"}", rate,
                        100.0 * rate / start);
            sep = ",\n";
        }
    fprintf(f, "\n]}\n");
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Runs the comparator on DIR/base.json and DIR/cur.json with an optional extra pair of arguments; returns
 * its exit status and its output (stdout and stderr) in *out. */
static int check(char **out, const char *flag, const char *value)
{
    char base[MAX_PATH], cur[MAX_PATH];
    snprintf(base, sizeof base, "%s/base.json", dir);
    snprintf(cur, sizeof cur, "%s/cur.json", dir);
    const char *argv[] = {"/usr/bin/python3", script, "--baseline", base, "--current", cur, flag, value, NULL};
    char cap[] = "/tmp/elbo-bench-check-out-XXXXXX";
    int fd = mkstemp(cap);
    assert_true(fd >= 0);
    unlink(cap);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        alarm(60);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    *out = malloc(CAPTURE_MAX + 1);
    assert_non_null(*out);
    ssize_t n = pread(fd, *out, CAPTURE_MAX, 0);
    (*out)[n > 0 ? n : 0] = '\0';
    close(fd);
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    print_message("    [exit %d]\n%s", status, *out);
    if (status == 127)
        test_failf("cannot run /usr/bin/python3 %s\n", script);
    return status;
}

/* Fails unless a line of out starts with `verdict` and names `name`. */
static void expect_line(const char *out, const char *verdict, const char *name)
{
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (strncmp(l, verdict, strlen(verdict)) == 0 && memmem(l, len, name, strlen(name)))
            return;
    }
    test_failf("no \"%s ... %s\" line in the output\n", verdict, name);
}

/* Scales row 0's repetitions by f into out. */
static const double *scaled(double *out, double f)
{
    for (int i = 0; i < REPS; i++)
        out[i] = ROWS[0].eff[i] * f;
    return out;
}

static void test_identical_runs_pass(void **state)
{
    (void)state;
    char *out;
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", NULL, NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 0);
    assert_non_null(strstr(out, "geometric mean change +0.0 %"));
    assert_non_null(strstr(out, "bench-check: passed"));
    free(out);
}

static void test_consistent_drop_fails(void **state)
{
    (void)state;
    char *out;
    double e[REPS];
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", scaled(e, 0.8), NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 1);
    expect_line(out, "slower", "gemm/elbo/enc1.fwd/b:128");
    assert_non_null(strstr(out, "-20.0 %"));
    assert_non_null(strstr(out, "geometric mean change -10.6 % (fails below -6 %): REGRESSED"));
    assert_null(strstr(out, "train/b:128/t:1")); /* the unchanged rows are not listed */
    free(out);
    /* The other way round it is an improvement, which passes. */
    write_run("base.json", scaled(e, 0.8), NROWS, 1.0);
    write_run("cur.json", NULL, NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 0);
    expect_line(out, "improved", "gemm/elbo/enc1.fwd/b:128");
    free(out);
}

static void test_one_row_alone_fails(void **state)
{
    (void)state;
    char *out;
    double e[REPS];
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", scaled(e, 0.7), NROWS, 1.0); /* -30 % on one gated row of two */
    assert_int_equal(check(&out, "--gate-geomean", "50"), 1);
    expect_line(out, "REGRESSED", "gemm/elbo/enc1.fwd/b:128");
    free(out);
}

static void test_ungated_row_passes(void **state)
{
    (void)state;
    char *out;
    write_run("base.json", NULL, NROWS, 1.0);
    double e[REPS];
    for (int i = 0; i < REPS; i++)
        e[i] = ROWS[1].eff[i] * 0.7; /* the elementwise row 30 % slower */
    replaced_row = 1;
    write_run("cur.json", e, NROWS, 1.0);
    replaced_row = 0;
    assert_int_equal(check(&out, NULL, NULL), 0);
    expect_line(out, "slower", "elementwise/adam/b:128");
    assert_non_null(strstr(out, "not gated"));
    free(out);
}

static void test_slower_machine_same_efficiency_passes(void **state)
{
    (void)state;
    char *out;
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", NULL, NROWS, 1.3); /* every time 30 % longer, every rate and the peak lower */
    assert_int_equal(check(&out, NULL, NULL), 0);
    assert_null(strstr(out, "REGRESSED"));
    free(out);
}

static void test_peak_from_interleaved_fma_row(void **state)
{
    (void)state;
    char *out;
    start_peak = 50.0; /* the baseline's start-of-run peak was halved by a busy moment: pct_peak doubled */
    write_run("base.json", NULL, NROWS, 1.0);
    start_peak = 0.0;
    write_run("cur.json", NULL, NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 0); /* efficiency against the fma_peak row: unchanged */
    assert_null(strstr(out, "REGRESSED"));
    assert_non_null(strstr(out, "start of run 50.0"));
    free(out);
}

static void test_descheduled_rows_pass(void **state)
{
    (void)state;
    char *out;
    start_peak = 100.0; /* both runs with an fma_peak row, undisturbed */
    write_run("base.json", NULL, NROWS, 1.0);
    desched = 1.5; /* the current run's rows spent a third of their wall time descheduled */
    write_run("cur.json", NULL, NROWS, 1.0);
    start_peak = 0.0;
    desched = 1.0;
    assert_int_equal(check(&out, NULL, NULL), 0); /* per second on the CPU: unchanged */
    assert_null(strstr(out, "REGRESSED"));
    free(out);
}

static void test_noisy_drop_not_significant_passes(void **state)
{
    (void)state;
    char *out;
    /* median 78.5 (-8 %), but two repetitions above every baseline one: U test p ~ 0.7 */
    const double noisy[REPS] = {78.5, 86.0, 70.0, 85.9, 74.0};
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", noisy, NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 0);
    expect_line(out, "noise", "gemm/elbo/enc1.fwd/b:128");
    free(out);
}

static void test_gate_and_tolerance_flags(void **state)
{
    (void)state;
    char *out;
    double e[REPS];
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", scaled(e, 0.92), NROWS, 1.0); /* -8 % in every repetition: geometric mean -4.1 % */
    assert_int_equal(check(&out, NULL, NULL), 0);       /* the gate at -6 % */
    expect_line(out, "slower", "gemm/elbo/enc1.fwd/b:128"); /* listed beyond 5 % */
    free(out);
    assert_int_equal(check(&out, "--gate-geomean", "3"), 1);
    free(out);
    assert_int_equal(check(&out, "--tolerance", "10"), 0);
    assert_null(strstr(out, "slower"));
    free(out);
}

static void test_missing_row_fails(void **state)
{
    (void)state;
    char *out;
    write_run("base.json", NULL, NROWS, 1.0);
    write_run("cur.json", NULL, NROWS - 1, 1.0); /* no train/b:128/t:1 row, a gated one */
    assert_int_equal(check(&out, NULL, NULL), 1);
    expect_line(out, "MISSING", "train/b:128/t:1");
    free(out);
}

/* A baseline from another kernel path is refused (exit 2, naming both), unless --allow-other-kernels; the
   same path on both sides compares as usual. */
static void test_other_kernel_path_refused(void **state)
{
    (void)state;
    char *out;
    run_isa = "avx2";
    write_run("base.json", NULL, NROWS, 1.0);
    run_isa = "avx512";
    write_run("cur.json", NULL, NROWS, 1.0);
    assert_int_equal(check(&out, NULL, NULL), 2);
    if (!strstr(out, "not comparable") || !strstr(out, "isa avx2 in the baseline") || !strstr(out, "avx512 in this run"))
        test_failf("the refusal does not name both kernel paths\n");
    free(out);
    assert_int_equal(check(&out, "--allow-other-kernels", NULL), 0);
    free(out);
    write_run("base.json", NULL, NROWS, 1.0); /* avx512 on both sides */
    assert_int_equal(check(&out, NULL, NULL), 0);
    free(out);
    run_isa = NULL;
}

/* Finds the script from this binary (build/tests/x -> scripts/bench_check.py) and makes the temp dir. */
static int setup(void **state)
{
    (void)state;
    char self[MAX_PATH], candidate[MAX_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        int w = snprintf(candidate, sizeof candidate, "%s/../../scripts/bench_check.py", dirname(self));
        if (w > 0 && (size_t)w < sizeof candidate && access(candidate, R_OK) == 0)
            snprintf(script, sizeof script, "%s", candidate);
    }
    if (access(script, R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "test_cli_bench_check: %s or /usr/bin/python3 not found\n", script);
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *files[] = {"base.json", "cur.json"};
    char path[MAX_PATH];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_runs_pass),
        cmocka_unit_test(test_consistent_drop_fails),
        cmocka_unit_test(test_one_row_alone_fails),
        cmocka_unit_test(test_ungated_row_passes),
        cmocka_unit_test(test_slower_machine_same_efficiency_passes),
        cmocka_unit_test(test_peak_from_interleaved_fma_row),
        cmocka_unit_test(test_descheduled_rows_pass),
        cmocka_unit_test(test_noisy_drop_not_significant_passes),
        cmocka_unit_test(test_gate_and_tolerance_flags),
        cmocka_unit_test(test_missing_row_fails),
        cmocka_unit_test(test_other_kernel_path_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
