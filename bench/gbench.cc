// The C interface of gbench.h over Google Benchmark 1.7.1: registration, the state calls, the run, and a
// display reporter that also records what it shows so C can print a summary afterwards.
#include "gbench.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

// One recorded row: the C view plus the strings and counters it points into.
struct Record {
    gbench_result c{};
    std::string name, row, aggregate, label, error;
    int64_t instance = 0;
    size_t order = 0;
    std::vector<std::pair<std::string, double>> counters;
};

std::deque<Record> g_records;              // stable addresses for the C views
std::vector<const gbench_result *> g_sorted;

// The benchmark::State behind an opaque C handle.
benchmark::State &S(gbench_state *st)
{
    return *reinterpret_cast<benchmark::State *>(st);
}

// Display reporter: forwards to the console (or JSON) reporter and records every run it is shown.
class Recorder : public benchmark::BenchmarkReporter {
  public:
    // Takes ownership of the reporter that prints.
    explicit Recorder(benchmark::BenchmarkReporter *inner) : inner_(inner) {}

    // Forwards the context.
    bool ReportContext(const Context &context) override { return inner_->ReportContext(context); }

    // Records then forwards a group of runs.
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &r : runs)
            record(r);
        inner_->ReportRuns(runs);
    }

    // Forwards the end of the run.
    void Finalize() override { inner_->Finalize(); }

  private:
    // Keeps one run's name, times and counters.
    void record(const Run &r)
    {
        g_records.emplace_back();
        Record &x = g_records.back();
        x.name = r.run_name.str();
        x.row = r.run_name.function_name + (r.run_name.args.empty() ? "" : "/" + r.run_name.args);
        x.aggregate = r.run_type == Run::RT_Aggregate ? r.aggregate_name : "";
        x.label = r.report_label;
        x.error = r.error_message;
        x.instance = r.per_family_instance_index;
        x.order = g_records.size();
        for (const auto &kv : r.counters)
            x.counters.emplace_back(kv.first, kv.second.value);
        double mult = benchmark::GetTimeUnitMultiplier(r.time_unit);
        x.c.name = x.name.c_str();
        x.c.row = x.row.c_str();
        x.c.aggregate = x.aggregate.c_str();
        x.c.label = x.label.c_str();
        x.c.error = r.error_occurred ? x.error.c_str() : nullptr;
        x.c.family = r.family_index;
        x.c.iterations = r.iterations;
        x.c.real_seconds = r.GetAdjustedRealTime() / mult;
        x.c.cpu_seconds = r.GetAdjustedCPUTime() / mult;
        x.c.impl = &x;
    }

    std::unique_ptr<benchmark::BenchmarkReporter> inner_;
};

// The value of --NAME=VALUE in argv (the last one), or fallback.
std::string flag_value(int argc, char **argv, const char *name, const char *fallback)
{
    std::string prefix = std::string("--") + name + "=", v = fallback;
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
            v = argv[i] + prefix.size();
    return v;
}

// True for the spellings Google Benchmark reads as true.
bool truthy(const std::string &v)
{
    return v == "true" || v == "1" || v == "yes" || v == "on" || v == "t" || v == "y";
}

// The reporter to print with, as the flags --benchmark_format, _color and _counters_tabular ask
// (nullptr: let the library choose, as for csv).
benchmark::BenchmarkReporter *make_display(int argc, char **argv)
{
    std::string format = flag_value(argc, argv, "benchmark_format", "console");
    if (format == "json")
        return new benchmark::JSONReporter();
    if (format != "console")
        return nullptr;
    std::string color = flag_value(argc, argv, "benchmark_color", "auto");
    bool use_color = color == "auto" ? isatty(STDOUT_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb")
                                     : truthy(color);
    bool tabular = truthy(flag_value(argc, argv, "benchmark_counters_tabular", "false"));
    int opts = (use_color ? benchmark::ConsoleReporter::OO_Color : 0) |
               (tabular ? benchmark::ConsoleReporter::OO_Tabular : 0);
    return new benchmark::ConsoleReporter(static_cast<benchmark::ConsoleReporter::OutputOptions>(opts));
}

// Sorts the records by registration order, then instance, then arrival (repetitions before aggregates).
void sort_records()
{
    std::vector<const Record *> v;
    for (const Record &r : g_records)
        v.push_back(&r);
    std::stable_sort(v.begin(), v.end(), [](const Record *a, const Record *b) {
        if (a->c.family != b->c.family)
            return a->c.family < b->c.family;
        if (a->instance != b->instance)
            return a->instance < b->instance;
        return a->order < b->order;
    });
    g_sorted.clear();
    for (const Record *r : v)
        g_sorted.push_back(&r->c);
}

// benchmark::Counter flags from GBENCH_COUNTER_* bits.
benchmark::Counter::Flags counter_flags(unsigned f)
{
    int out = 0;
    if (f & GBENCH_COUNTER_RATE)
        out |= benchmark::Counter::kIsRate;
    if (f & GBENCH_COUNTER_AVG_THREADS)
        out |= benchmark::Counter::kAvgThreads;
    if (f & GBENCH_COUNTER_ITERATION_INVARIANT)
        out |= benchmark::Counter::kIsIterationInvariant;
    if (f & GBENCH_COUNTER_AVG_ITERATIONS)
        out |= benchmark::Counter::kAvgIterations;
    if (f & GBENCH_COUNTER_INVERT)
        out |= benchmark::Counter::kInvert;
    return static_cast<benchmark::Counter::Flags>(out);
}

// benchmark::TimeUnit of a gbench_unit.
benchmark::TimeUnit time_unit(gbench_unit u)
{
    switch (u) {
    case GBENCH_US:
        return benchmark::kMicrosecond;
    case GBENCH_MS:
        return benchmark::kMillisecond;
    case GBENCH_S:
        return benchmark::kSecond;
    default:
        return benchmark::kNanosecond;
    }
}

} // namespace

extern "C" {

// Registers def as a Google Benchmark with its arguments and timing options.
void gbench_register(const gbench_def *def)
{
    void (*run)(gbench_state *, void *) = def->run;
    void *user = def->user;
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
        def->name, [run, user](benchmark::State &st) { run(reinterpret_cast<gbench_state *>(&st), user); });
    if (def->n_args > 0) {
        int n = std::min(def->n_args, GBENCH_MAX_ARGS);
        std::vector<int64_t> args(def->args, def->args + n);
        std::vector<std::string> names;
        bool named = false;
        for (int i = 0; i < n; i++) {
            names.emplace_back(def->arg_names[i] ? def->arg_names[i] : "");
            named |= def->arg_names[i] != nullptr;
        }
        b->Args(args);
        if (named)
            b->ArgNames(names);
    }
    if (def->flags & GBENCH_MANUAL_TIME)
        b->UseManualTime();
    else if (!(def->flags & GBENCH_CPU_TIME))
        b->UseRealTime();
    if (!(def->flags & GBENCH_THREAD_CPU))
        b->MeasureProcessCPUTime();
    if (def->unit != GBENCH_UNIT_DEFAULT)
        b->Unit(time_unit(def->unit));
    if (def->min_time > 0)
        b->MinTime(def->min_time);
    if (def->repetitions > 0)
        b->Repetitions(def->repetitions);
    if (def->iterations > 0)
        b->Iterations(def->iterations);
}

// Adds a key/value pair to the run's context.
void gbench_add_context(const char *key, const char *value)
{
    benchmark::AddCustomContext(key, value ? value : "");
}

// Initialize, check the arguments, run with the recording reporter, shut down.
int gbench_run(int argc, char **argv)
{
    std::unique_ptr<benchmark::BenchmarkReporter> display;
    if (benchmark::BenchmarkReporter *inner = make_display(argc, argv))
        display.reset(new Recorder(inner));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    g_records.clear();
    benchmark::RunSpecifiedBenchmarks(display.get());
    benchmark::Shutdown();
    std::cout.flush();
    sort_records();
    return 0;
}

// Wraps State::KeepRunning.
int gbench_keep_running(gbench_state *st)
{
    return S(st).KeepRunning();
}

// Wraps State::KeepRunningBatch.
int gbench_keep_running_batch(gbench_state *st, int64_t n)
{
    return S(st).KeepRunningBatch(n);
}

// Wraps State::range.
int64_t gbench_arg(gbench_state *st, int i)
{
    return S(st).range(static_cast<size_t>(i));
}

// Wraps State::iterations.
int64_t gbench_iterations(gbench_state *st)
{
    return S(st).iterations();
}

// Wraps State::PauseTiming.
void gbench_pause_timing(gbench_state *st)
{
    S(st).PauseTiming();
}

// Wraps State::ResumeTiming.
void gbench_resume_timing(gbench_state *st)
{
    S(st).ResumeTiming();
}

// Wraps State::SetIterationTime.
void gbench_set_iteration_time(gbench_state *st, double seconds)
{
    S(st).SetIterationTime(seconds);
}

// Wraps State::SkipWithError.
void gbench_skip_with_error(gbench_state *st, const char *message)
{
    S(st).SkipWithError(message);
}

// Wraps State::SetLabel.
void gbench_set_label(gbench_state *st, const char *label)
{
    S(st).SetLabel(label);
}

// Wraps State::SetItemsProcessed.
void gbench_set_items_processed(gbench_state *st, int64_t items)
{
    S(st).SetItemsProcessed(items);
}

// Wraps State::SetBytesProcessed.
void gbench_set_bytes_processed(gbench_state *st, int64_t bytes)
{
    S(st).SetBytesProcessed(bytes);
}

// Sets a user counter with the mapped flags.
void gbench_set_counter(gbench_state *st, const char *name, double value, unsigned flags)
{
    S(st).counters[name] = benchmark::Counter(value, counter_flags(flags),
                                              (flags & GBENCH_COUNTER_KIBI) ? benchmark::Counter::kIs1024
                                                                            : benchmark::Counter::kIs1000);
}

// Number of recorded rows.
size_t gbench_result_count(void)
{
    return g_sorted.size();
}

// Recorded row i in registration order.
const gbench_result *gbench_result_at(size_t i)
{
    return i < g_sorted.size() ? g_sorted[i] : nullptr;
}

// Looks a counter up by name in a recorded row.
int gbench_result_counter(const gbench_result *r, const char *name, double *value)
{
    const Record *x = static_cast<const Record *>(r->impl);
    for (const auto &kv : x->counters)
        if (kv.first == name) {
            *value = kv.second;
            return 0;
        }
    return -1;
}

} // extern "C"
