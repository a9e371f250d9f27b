/* A small C interface to Google Benchmark (libbenchmark 1.7.1), so benchmarks are written in C.
 *
 * Describe a benchmark with a gbench_def (name, a C function, a user pointer, up to GBENCH_MAX_ARGS int64
 * arguments), register it, then call gbench_run(argc, argv): every --benchmark_* flag works (filter,
 * repetitions, min time, interleaving, JSON output, ...). The function loops on gbench_keep_running; whatever
 * it does before the first call and after the last is not timed:
 *
 *     static void run_copy(gbench_state *st, void *user)
 *     {
 *         buffers *b = user;                          // set up here (untimed)
 *         while (gbench_keep_running(st))
 *             copy(b->dst, b->src, b->n);              // timed
 *         gbench_set_bytes_processed(st, gbench_iterations(st) * 2 * b->n * 4);
 *     }
 *
 * Rows are timed by wall clock with the whole process's CPU time beside it (UseRealTime +
 * MeasureProcessCPUTime), on one benchmark thread: OpenMP threads inside a row are the row's own business.
 * After gbench_run, the rows it reported can be read back (gbench_result_count / gbench_result_at). */
#ifndef ELBO_GBENCH_H
#define ELBO_GBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gbench_state gbench_state; /* opaque: one running benchmark (a benchmark::State) */

/* gbench_def.flags: the default (0) times rows by wall clock and reports the process's CPU time. */
enum {
    GBENCH_CPU_TIME = 1u << 0,    /* time by CPU time instead of wall clock */
    GBENCH_THREAD_CPU = 1u << 1,  /* report the calling thread's CPU time, not the whole process's */
    GBENCH_MANUAL_TIME = 1u << 2, /* the function reports each iteration's time (gbench_set_iteration_time) */
};

typedef enum { GBENCH_UNIT_DEFAULT = 0, GBENCH_NS, GBENCH_US, GBENCH_MS, GBENCH_S } gbench_unit;

/* Counter flags (benchmark::Counter::Flags): how a counter's value is turned into what is reported. */
enum {
    GBENCH_COUNTER_DEFAULT = 0,
    GBENCH_COUNTER_RATE = 1 << 0,                /* divided by the row's time (wall clock here): per second */
    GBENCH_COUNTER_AVG_THREADS = 1 << 1,         /* divided by the number of benchmark threads */
    GBENCH_COUNTER_ITERATION_INVARIANT = 1 << 2, /* multiplied by the iteration count */
    GBENCH_COUNTER_AVG_ITERATIONS = 1 << 3,      /* divided by the iteration count */
    GBENCH_COUNTER_INVERT = 1 << 4,              /* inverted last (1/x) */
    GBENCH_COUNTER_KIBI = 1 << 5,                /* displayed with 1024 per k instead of 1000 */
};

#define GBENCH_MAX_ARGS 4

typedef struct gbench_def {
    const char *name; /* copied; the arguments are appended as /name:value (or /value without arg_names) */
    void (*run)(gbench_state *state, void *user);
    void *user;
    int n_args;
    int64_t args[GBENCH_MAX_ARGS];
    const char *arg_names[GBENCH_MAX_ARGS]; /* NULL: unnamed */
    unsigned flags;                         /* GBENCH_* above; 0 for wall clock + process CPU time */
    gbench_unit unit;                       /* display unit; DEFAULT: the library's (ns) */
    double min_time;                        /* seconds per repetition; 0: --benchmark_min_time */
    int repetitions;                        /* 0: --benchmark_repetitions */
    int64_t iterations;                     /* fixed iteration count; 0: chosen from min_time */
} gbench_def;

/* Registers a benchmark (the definition is copied; user must outlive gbench_run). */
void gbench_register(const gbench_def *def);

/* Adds key=value to the context of the run (console header and the JSON "context"). Call before gbench_run. */
void gbench_add_context(const char *key, const char *value);

/* Runs the benchmarks selected by the command line: parses and removes the --benchmark_* flags, reports
 * any other argument as unrecognized (returns 2 then), runs, and shuts the library down. Returns 0. */
int gbench_run(int argc, char **argv);

/* ---- inside a benchmark function ---- */

/* Non-zero while the timed loop should go on. */
int gbench_keep_running(gbench_state *st);
/* As gbench_keep_running, counting n iterations per loop trip. */
int gbench_keep_running_batch(gbench_state *st, int64_t n);
/* Argument i of the definition. */
int64_t gbench_arg(gbench_state *st, int i);
/* Iterations run so far (after the loop: all of them). */
int64_t gbench_iterations(gbench_state *st);
/* Stops the clock (costly: not for tight loops). */
void gbench_pause_timing(gbench_state *st);
/* Restarts the clock after gbench_pause_timing. */
void gbench_resume_timing(gbench_state *st);
/* For GBENCH_MANUAL_TIME rows: the time of this iteration in seconds. */
void gbench_set_iteration_time(gbench_state *st, double seconds);
/* Marks the row as failed with a message; return without running the loop (or leave it at once). */
void gbench_skip_with_error(gbench_state *st, const char *message);
/* A label shown beside the row and stored in the JSON. */
void gbench_set_label(gbench_state *st, const char *label);
/* Items processed in all iterations: reported as items_per_second. */
void gbench_set_items_processed(gbench_state *st, int64_t items);
/* Bytes processed in all iterations: reported as bytes_per_second. */
void gbench_set_bytes_processed(gbench_state *st, int64_t bytes);
/* Sets the user counter `name` (GBENCH_COUNTER_* flags). Call after the loop for rates. */
void gbench_set_counter(gbench_state *st, const char *name, double value, unsigned flags);

/* ---- after gbench_run: the rows the console saw (medians etc. when repetitions were aggregated) ---- */

typedef struct gbench_result {
    const char *name;      /* as in the JSON, without the aggregate suffix: "train/b:128/t:2/process_time/real_time" */
    const char *row;       /* name and arguments only: "train/b:128/t:2" */
    const char *aggregate; /* "" for a plain run, else "mean", "median", "stddev", "cv", ... */
    const char *label;
    const char *error;     /* NULL unless the row failed */
    int64_t family;        /* registration order of the row's definition */
    int64_t iterations;
    double real_seconds;   /* per iteration */
    double cpu_seconds;    /* per iteration */
    const void *impl;      /* counters */
} gbench_result;

/* Number of rows reported by the last gbench_run, in registration order. */
size_t gbench_result_count(void);
/* Row i (0 <= i < gbench_result_count()). */
const gbench_result *gbench_result_at(size_t i);
/* The reported value of counter `name` of a row into *value; returns 0, or -1 when the row has none. */
int gbench_result_counter(const gbench_result *r, const char *name, double *value);

#ifdef __cplusplus
}
#endif

#endif
