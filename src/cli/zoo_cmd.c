/* `elbo zoo`: the four families (VAE, GAN, flow, diffusion) trained for fixed step counts, one after another in
 * each precision, as children of this binary; each scored on its own test metric and by the reference classifier
 * (FD, class coverage, sampling speed); the training's % of the peak measured in the same run. Writes
 * OUT/zoo-<cpu>-<date>.json (every figure and command), .md (the one table), the sample grids in
 * OUT/zoo-<cpu>-<date>/ and, through scripts/zoo_figure.py, the grids side by side in .png. */
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "cli_common.h"
#include "cpu_features.h"
#include "gemm_bf16.h"
#include "peak.h"
#include "zoo_child.h"
#include "zoo_report.h"
#include "zoo_runs.h"

#ifndef ELBO_GIT_COMMIT
#define ELBO_GIT_COMMIT "unknown"
#endif

#define PEAK_ROUNDS 5
#define PEAK_SECONDS 0.1

/* SIGINT or SIGTERM received (the running child gets it too and stops): the zoo stops after it, writing nothing. */
static volatile sig_atomic_t stop_signal;

/* Records a stop request. */
static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

/* The zoo's options after parsing. */
typedef struct {
    const char *data, *classifier, *out_dir, *precision, *families, *figure;
    size_t threads, count, bound_images, iw_k;
    long steps;
    uint64_t seed;
    int quick;
} zoo_args;

/* Removes one entry of a tree (nftw callback). */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes the directory tree at path (if any). */
static void remove_tree(const char *path)
{
    if (path && path[0])
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* 1 when name is one of the comma-separated items of list. */
static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Checks that every item of list is one of the n names; prints "elbo zoo: --flag: 'x' is not ..." and returns -1. */
static int check_list(const char *flag, const char *list, const char *const *names, size_t n)
{
    if (!list[0]) {
        fprintf(stderr, "elbo zoo: --%s: empty list\n", flag);
        return -1;
    }
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int ok = 0;
        for (size_t i = 0; i < n; i++)
            ok |= strlen(names[i]) == len && strncmp(p, names[i], len) == 0;
        if (!ok) {
            fprintf(stderr, "elbo zoo: --%s: '%.*s' is not one of", flag, (int)len, p);
            for (size_t i = 0; i < n; i++)
                fprintf(stderr, "%s %s", i ? "," : "", names[i]);
            fprintf(stderr, "\n");
            return -1;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Checks the reference classifier: present, and a classifier checkpoint; prints one line and returns -1. */
static int check_classifier(const char *path)
{
    char kind[32], err[512];
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "elbo zoo: --classifier: %s: %s (make classifier trains the reference classifier)\n", path,
                strerror(errno));
        return -1;
    }
    if (elbo_checkpoint_model_kind(path, kind, sizeof kind, err, sizeof err)) {
        fprintf(stderr, "elbo zoo: --classifier: %s\n", err);
        return -1;
    }
    if (strcmp(kind, "classifier") != 0) {
        fprintf(stderr, "elbo zoo: --classifier: %s is a %s checkpoint, not a classifier (make classifier)\n", path,
                kind);
        return -1;
    }
    return 0;
}

/* The precisions to run into list (a copy of --precision, or the default: fp32,bf16 where k runs bf16, else fp32
 * with a line saying why); -1 after one line when --precision asks for bf16 this machine cannot run. */
static int choose_precisions(const zoo_args *a, const elbo_kernels *k, char *list, size_t len)
{
    static const char *const names[] = {"fp32", "bf16"};
    int bf16_runs = elbo_kernels_with_precision(k, ELBO_PRECISION_BF16) != NULL;
    if (a->precision) {
        if (check_list("precision", a->precision, names, 2))
            return -1;
        if (in_list(a->precision, "bf16") && !bf16_runs) {
            fprintf(stderr, "elbo zoo: --precision bf16: this CPU lacks %s for the %s kernels' bf16 GEMM "
                            "(ELBO_ISA=scalar runs its emulation)\n", elbo_gemm_bf16_missing(k), k->isa);
            return -1;
        }
        snprintf(list, len, "%s", a->precision);
        return 0;
    }
    snprintf(list, len, "%s", bf16_runs ? "fp32,bf16" : "fp32");
    if (!bf16_runs)
        printf("zoo: fp32 only: this CPU lacks %s for the %s kernels' bf16 GEMM (ELBO_ISA=scalar runs its "
               "emulation)\n", elbo_gemm_bf16_missing(k), k->isa);
    return 0;
}

/* OUT/zoo-<cpu>-<yyyymmdd> into base, numbered -2, -3, ... when its .json, .md, .png or directory exists. */
static void results_base(const char *out_dir, char *base, size_t len)
{
    char slug[64], date[16], stem[PATH_MAX];
    elbo_cpu_slug(slug, sizeof slug);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y%m%d", &tm);
    snprintf(stem, sizeof stem, "%s/zoo-%s-%s", out_dir, slug, date);
    snprintf(base, len, "%s", stem);
    for (int i = 2; i < 1000; i++) {
        static const char *const ext[] = {".json", ".md", ".png", "", ".part"};
        int taken = 0;
        for (size_t e = 0; e < 5; e++) {
            char p[PATH_MAX + 16];
            snprintf(p, sizeof p, "%s%s", base, ext[e]);
            taken |= access(p, F_OK) == 0;
        }
        if (!taken)
            return;
        if (snprintf(base, len, "%s-%d", stem, i) >= (int)len)
            return;
    }
}

/* The peaks for kernel table k on `threads` threads into root["peaks"] under prefix ("" first, "end_" after the
 * runs); the FMA peak always, the bf16 one when bf16 runs; the figures used are each's larger measurement. */
static void measure_peaks(cJSON *peaks, const elbo_kernels *k, size_t threads, int bf16, const char *prefix)
{
    elbo_peak_probe p;
    char key[64];
    for (int kind = 0; kind < 2; kind++) {
        if (kind == ELBO_PEAK_BF16 && !bf16)
            continue;
        const char *name = kind == ELBO_PEAK_BF16 ? "bf16" : "fma";
        double g = elbo_peak_probe_for(k, (elbo_peak_kind)kind, &p) == 0 ?
                       elbo_peak_measure(&p, threads, PEAK_ROUNDS, PEAK_SECONDS) : 0;
        snprintf(key, sizeof key, "%s%s_gflops_measured", prefix, name);
        cJSON_AddNumberToObject(peaks, key, g);
        snprintf(key, sizeof key, "%s_gflops", name);
        cJSON *best = cJSON_GetObjectItemCaseSensitive(peaks, key);
        if (!best)
            cJSON_AddNumberToObject(peaks, key, g);
        else if (g > best->valuedouble)
            cJSON_SetNumberValue(best, g);
        if (!prefix[0]) {
            snprintf(key, sizeof key, "%s_vector_bits", name);
            cJSON_AddNumberToObject(peaks, key, p.name ? p.vector_bits : 0);
            snprintf(key, sizeof key, "%s_probe", name);
            cJSON_AddStringToObject(peaks, key, p.name ? p.name : "none");
        }
    }
}

/* The zoo's own command line (from argv) into buf. */
static void own_command(int argc, char **argv, char *buf, size_t len)
{
    zoo_argv a = {0};
    for (int i = 0; i < argc && a.n < ZOO_CHILD_MAX_ARGS; i++)
        a.args[a.n++] = argv[i];
    a.args[a.n] = NULL;
    zoo_argv_format("elbo", &a, buf, len);
}

/* The machine's description into a new object. */
static cJSON *machine(const elbo_kernels *k)
{
    const elbo_cpu_features *f = elbo_cpu_features_get();
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "cpu", f->model);
    cJSON_AddStringToObject(m, "arch", f->arch);
    cJSON_AddStringToObject(m, "isa", k->isa);
    cJSON_AddNumberToObject(m, "online_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    return m;
}

/* Runs the figure script on the JSON at json (writing base.png); 0, or -1 after one line. */
static int run_figure(const char *script, const char *json)
{
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "elbo zoo: --figure: %s: %s (--figure none skips the picture)\n", script, strerror(errno));
        return -1;
    }
    zoo_argv a = {0};
    zoo_argv_add(&a, script, json, NULL);
    zoo_child c;
    int status = zoo_child_run("/usr/bin/python3", &a, &c);
    zoo_child_free(&c);
    if (status != 0) {
        fprintf(stderr, "elbo zoo: figure: /usr/bin/python3 %s: %s%d: %s\n", script,
                status < 0 ? "could not start " : "exit status ", status, c.err_line);
        return -1;
    }
    return 0;
}

/* Everything after the checks: the runs, then the files; returns the exit status. */
static int run_zoo(const zoo_args *a, const char *precisions, const elbo_kernels *k, const char *exe,
                   const char *command, const char *default_figure)
{
    char base[PATH_MAX], grids[PATH_MAX + 8], json[PATH_MAX + 8], md[PATH_MAX + 8], work[] = "/tmp/elbo-zoo-XXXXXX";
    results_base(a->out_dir, base, sizeof base);
    snprintf(grids, sizeof grids, "%s.part", base);
    snprintf(json, sizeof json, "%s.json", base);
    snprintf(md, sizeof md, "%s.md", base);
    if (mkdir(grids, 0777) != 0 || !mkdtemp(work)) {
        fprintf(stderr, "elbo zoo: --out-dir: cannot create %s or %s: %s\n", grids, work, strerror(errno));
        rmdir(grids);
        return 1;
    }
    char base_copy[PATH_MAX], prefix[PATH_MAX];
    snprintf(base_copy, sizeof base_copy, "%s", base);
    snprintf(prefix, sizeof prefix, "%s", basename(base_copy));
    zoo_setup s = {exe, a->data, a->classifier, work, grids, prefix, {0}, {0}, {0}, {0}, {0}, "8"};
    snprintf(s.threads, sizeof s.threads, "%zu", a->threads);
    snprintf(s.seed, sizeof s.seed, "%llu", (unsigned long long)a->seed);
    snprintf(s.count, sizeof s.count, "%zu", a->count);
    snprintf(s.bound_images, sizeof s.bound_images, "%zu", a->bound_images);
    snprintf(s.iw_k, sizeof s.iw_k, "%zu", a->iw_k);

    cJSON *root = cJSON_CreateObject(), *runs = cJSON_CreateArray(), *peaks = cJSON_CreateObject();
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddStringToObject(root, "command", command);
    cJSON_AddStringToObject(root, "elbo_revision", ELBO_GIT_COMMIT);
    cJSON_AddItemToObject(root, "machine", machine(k));
    cJSON *set = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(set, "data", a->data ? a->data : ELBO_DEFAULT_DATA_DIR);
    cJSON_AddStringToObject(set, "classifier", a->classifier);
    cJSON_AddNumberToObject(set, "threads", (double)a->threads);
    cJSON_AddNumberToObject(set, "seed", (double)a->seed);
    cJSON_AddNumberToObject(set, "quick", a->quick);
    cJSON_AddStringToObject(set, "precisions", precisions);
    cJSON_AddNumberToObject(set, "score_samples", (double)a->count);
    cJSON_AddNumberToObject(set, "bound_images", (double)a->bound_images);
    cJSON_AddNumberToObject(set, "iw_k", (double)a->iw_k);
    cJSON_AddNumberToObject(set, "grid_side", 8);
    cJSON_AddStringToObject(root, "grid_dir", prefix);
    cJSON_AddItemToObject(root, "peaks", peaks);
    cJSON_AddItemToObject(root, "runs", runs);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* a handler, not SIG_IGN: the children start with the default action */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int bf16 = in_list(precisions, "bf16");
    printf("zoo: measuring the peak on %zu threads (%s kernels)\n", a->threads, k->isa);
    fflush(stdout);
    measure_peaks(peaks, k, a->threads, bf16, "");
    double t0 = cli_now();
    int status = 0, abort_all = 0;
    for (size_t fi = 0; fi < zoo_n_families && !abort_all; fi++) {
        const zoo_family *f = &zoo_families[fi];
        if (!in_list(a->families, f->name))
            continue;
        for (int pi = 0; pi < 2 && !abort_all; pi++) {
            const char *prec = pi ? "bf16" : "fp32";
            if (!in_list(precisions, prec))
                continue;
            long steps = a->steps > 0 ? a->steps : a->quick ? f->quick_steps : f->steps;
            char err[1024];
            cJSON *run = NULL;
            int rc = zoo_run_family(&s, f, prec, steps, &run, err, sizeof err);
            cJSON_AddItemToArray(runs, run);
            if (stop_signal && rc == 0) {
                snprintf(err, sizeof err, "stopped by %s after %s %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
                         f->name, prec);
                rc = 128 + stop_signal;
            }
            if (rc != 0) {
                fprintf(stderr, "elbo zoo: %s\n", err);
                cJSON_AddStringToObject(run, "error", err);
                cJSON_AddNumberToObject(run, "exit_status", rc);
                /* bad input fails every family alike; a signal asks to stop */
                abort_all = rc == 2 || rc >= 128 || rc < 0;
                if (!status)
                    status = rc < 0 ? 1 : rc;
            }
        }
    }
    cJSON_AddNumberToObject(root, "seconds", cli_now() - t0);
    if (!abort_all) {
        measure_peaks(peaks, k, a->threads, bf16, "end_");
        zoo_report_add_efficiency(root);
    }
    char err[1024];
    if (abort_all) {
        remove_tree(grids);
    } else if (rename(grids, base) != 0) {
        fprintf(stderr, "elbo zoo: cannot rename %s to %s: %s\n", grids, base, strerror(errno));
        remove_tree(grids);
        status = status ? status : 1;
    } else if (zoo_report_write_json(root, json, err, sizeof err) ||
               zoo_report_write_md(root, md, err, sizeof err)) {
        fprintf(stderr, "elbo zoo: %s\n", err);
        status = status ? status : 1;
    } else {
        const char *figure = a->figure ? a->figure : default_figure;
        int drawn = strcmp(figure, "none") != 0 && run_figure(figure, json) == 0;
        if (strcmp(figure, "none") != 0 && !drawn)
            status = status ? status : 1;
        printf("zoo: wrote %s, %s%s%s%s and the sample grids in %s/ (%.0f s)\n", json, md, drawn ? ", " : "",
               drawn ? base : "", drawn ? ".png" : "", base, cli_now() - t0);
    }
    remove_tree(work);
    cJSON_Delete(root);
    return status;
}

int cli_zoo(int argc, char **argv)
{
    zoo_args a = {.classifier = "build/classifier.safetensors", .out_dir = "results", .seed = 1, .count = 10000,
                  .bound_images = 1000, .iw_k = 100, .families = "vae,gan,flow,diffusion"};
    char steps_text[256];
    int w = 0;
    for (size_t i = 0; i < zoo_n_families && w >= 0 && (size_t)w < sizeof steps_text; i++)
        w += snprintf(steps_text + w, sizeof steps_text - (size_t)w, "%s%s %ld", i ? ", " : "", zoo_families[i].name,
                      zoo_families[i].steps);
    for (size_t i = 0; i < zoo_n_families && w >= 0 && (size_t)w < sizeof steps_text; i++)
        w += snprintf(steps_text + w, sizeof steps_text - (size_t)w, "%s%ld", i ? ", " : "; --quick: ",
                      zoo_families[i].quick_steps);
    cli_option opts[] = {
        {"data", ARG_STRING, &a.data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"classifier", ARG_STRING, &a.classifier, "PATH", "the reference classifier that scores the samples "
         "(make classifier)", 0, 0, NULL, 0, 0},
        {"out-dir", ARG_STRING, &a.out_dir, "DIR", "where zoo-<cpu>-<date>.{json,md,png} and the grids go", 0, 0,
         NULL, 0, 0},
        {"threads", ARG_SIZE, &a.threads, "N", "OpenMP threads of every child and of the peak", 1, 4096,
         "one per physical core, or OMP_NUM_THREADS", 0, 0},
        {"seed", ARG_U64, &a.seed, "N", "seed of every training, evaluation and sample grid", 0, 0, NULL, 0, 0},
        {"quick", ARG_FLAG, &a.quick, "", "the short version: fewer steps, 1000 samples scored, the diffusion bound on "
         "100 test images, IW K 10", 0, 0, NULL, 0, 0},
        {"precision", ARG_STRING, &a.precision, "LIST", "fp32 and/or bf16, comma-separated", 0, 0,
         "fp32,bf16 where this CPU runs bf16, else fp32", 0, 0},
        {"families", ARG_STRING, &a.families, "LIST", "which of vae,gan,flow,diffusion to run", 0, 0, NULL, 0, 0},
        {"steps", ARG_LONG, &a.steps, "N", "training steps of every family, or each its own", 1, 1e12, steps_text, 0, 0},
        {"count", ARG_SIZE, &a.count, "N", "samples scored for FD and class coverage", 2, 1000000,
         "10000; --quick: 1000", 0, 0},
        {"bound-images", ARG_SIZE, &a.bound_images, "N", "the diffusion bound's first N test images", 1, 1000000,
         "1000; --quick: 100", 0, 0},
        {"iw", ARG_SIZE, &a.iw_k, "K", "the VAE's importance samples per test image", 1, 100000, "100; --quick: 10",
         0, 0},
        {"figure", ARG_STRING, &a.figure, "PATH",
         "the script drawing the grids side by side (run by /usr/bin/python3 with the JSON); none: no picture", 0, 0,
         "scripts/zoo_figure.py of the source tree holding this binary's directory", 0, 0},
    };
    size_t n_opts = sizeof opts / sizeof opts[0];
    cli_parse_result pr = cli_parse("zoo", argc, argv, opts, n_opts,
                                    "Trains the four families (VAE, GAN, RealNVP flow, DDPM diffusion) at their "
                                    "default configurations for fixed step\ncounts, in each precision, one after "
                                    "another as child processes; then each family's own test metric\n(VAE: -ELBO "
                                    "and the importance-weighted log p(x) in nats; flow: bits/dim; diffusion: its "
                                    "bound in\nbits/dim), FD and class coverage of its samples by the reference "
                                    "classifier (diffusion: DDIM-50) with\nsampling images/s, and a sample grid of "
                                    "the same seed. Training samples/s are set against the FMA (and\nbf16) peak "
                                    "measured in the same run on as many threads. Writes OUT/zoo-<cpu>-<date>.json, "
                                    ".md, .png\nand the grids in OUT/zoo-<cpu>-<date>/; nothing when it fails on "
                                    "bad input.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (a.quick) {
        if (!cli_find(opts, n_opts, "count")->seen)
            a.count = 1000;
        if (!cli_find(opts, n_opts, "bound-images")->seen)
            a.bound_images = 100;
        if (!cli_find(opts, n_opts, "iw")->seen)
            a.iw_k = 10;
    }
    const char *names[8];
    for (size_t i = 0; i < zoo_n_families; i++)
        names[i] = zoo_families[i].name;
    if (check_list("families", a.families, names, zoo_n_families) || check_classifier(a.classifier))
        return 2;
    const elbo_kernels *k = cli_kernels("zoo");
    if (!k)
        return 2;
    char precisions[64];
    if (choose_precisions(&a, k, precisions, sizeof precisions))
        return 2;
    struct stat st;
    if (stat(a.out_dir, &st) != 0 && mkdir(a.out_dir, 0777) != 0) {
        fprintf(stderr, "elbo zoo: --out-dir: cannot create %s: %s\n", a.out_dir, strerror(errno));
        return 2;
    }
    if (stat(a.out_dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(a.out_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "elbo zoo: --out-dir: %s is not a writable directory\n", a.out_dir);
        return 2;
    }
    char exe[PATH_MAX], figure[PATH_MAX + 32], command[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "elbo zoo: cannot find this binary (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    exe[len] = '\0';
    char exe_copy[PATH_MAX];
    snprintf(exe_copy, sizeof exe_copy, "%s", exe);
    snprintf(figure, sizeof figure, "%s/../scripts/zoo_figure.py", dirname(exe_copy));
    if (!cli_find(opts, n_opts, "threads")->seen) {
        elbo_topology *topo = cli_open_topology("zoo");
        a.threads = cli_default_threads(topo);
        if (topo)
            elbo_topology_close(topo);
    }
    own_command(argc, argv, command, sizeof command);
    return run_zoo(&a, precisions, k, exe, command, figure);
}
