/* The zoo's JSON and Markdown files, and the efficiency figures both show. */
#include "zoo_report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

/* Number `key` of o, NaN when absent or null. */
static double num(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* String `key` of o, or fallback. */
static const char *str(const cJSON *o, const char *key, const char *fallback)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

/* Object `key` of o (NULL when absent or not an object). */
static const cJSON *obj(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsObject(v) ? v : NULL;
}

void zoo_report_add_efficiency(cJSON *root)
{
    const cJSON *peaks = obj(root, "peaks");
    double fma = num(peaks, "fma_gflops"), bf16 = num(peaks, "bf16_gflops");
    const cJSON *run;
    cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(root, "runs"))
    {
        double sps = num(obj(run, "train"), "samples_per_s"), flops = num(run, "train_flops_per_sample");
        if (!isfinite(sps) || !isfinite(flops))
            continue;
        double gflops = sps * flops / 1e9;
        cJSON_AddNumberToObject((cJSON *)run, "train_gflops", gflops);
        int use_bf16 = strcmp(str(run, "precision", ""), "bf16") == 0 && bf16 > 0;
        double peak = use_bf16 ? bf16 : fma;
        if (peak > 0) {
            cJSON_AddStringToObject((cJSON *)run, "peak", use_bf16 ? "bf16" : "fma");
            cJSON_AddNumberToObject((cJSON *)run, "pct_peak", 100.0 * gflops / peak);
        } else {
            cJSON_AddNullToObject((cJSON *)run, "peak");
        }
    }
}

/* Writes the NUL-terminated text to path atomically; 0 or -1 with err. */
static int write_text(const char *path, const char *text, char *err, size_t errlen)
{
    elbo_atomic_file f;
    if (elbo_atomic_open(&f, path, err, errlen))
        return -1;
    elbo_atomic_write(&f, text, strlen(text));
    return elbo_atomic_commit(&f, err, errlen);
}

int zoo_report_write_json(const cJSON *root, const char *path, char *err, size_t errlen)
{
    char *text = cJSON_Print(root);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    int rc = -1;
    if (line) {
        memcpy(line, text, n);
        memcpy(line + n, "\n", 2);
        rc = write_text(path, line, err, errlen);
    } else {
        snprintf(err, errlen, "%s: out of memory", path);
    }
    free(line);
    free(text);
    return rc;
}

/* A growing text buffer. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} text_buf;

/* Appends printf-style text to b. */
static void add(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[4096];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom)
        return;
    size_t w = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
    if (b->len + w + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 8192) + w;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    memcpy(b->s + b->len, tmp, w);
    b->len += w;
    b->s[b->len] = '\0';
}

/* A table cell of x with `decimals` decimals, or "—" when x is not a number. */
static const char *cell(char *buf, size_t len, double x, int decimals)
{
    if (!isfinite(x))
        snprintf(buf, len, "—");
    else
        snprintf(buf, len, "%.*f", decimals, x);
    return buf;
}

/* x with thousands separators (an integer count), or "—". */
static const char *count_cell(char *buf, size_t len, double x)
{
    if (!isfinite(x) || x < 0)
        return cell(buf, len, NAN, 0);
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", x);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* One table row of run. */
static void add_row(text_buf *b, const cJSON *run)
{
    char c[12][48];
    const cJSON *t = obj(run, "train"), *m = obj(run, "metric"), *sc = obj(run, "score");
    const char *err = str(run, "error", NULL);
    if (err) {
        add(b, "| %s | %s | — | %s | failed: %s | | | | | | | | |\n", str(run, "title", "?"), str(run, "precision", "?"),
            count_cell(c[0], sizeof c[0], num(run, "steps")), err);
        return;
    }
    const char *peak = str(run, "peak", NULL);
    char pct[64];
    if (peak && isfinite(num(run, "pct_peak")))
        snprintf(pct, sizeof pct, "%.1f %%%s", num(run, "pct_peak"),
                 strcmp(str(run, "precision", ""), "bf16") == 0 && strcmp(peak, "fma") == 0 ? " of the FMA peak" : "");
    else
        snprintf(pct, sizeof pct, "—");
    add(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", str(run, "title", "?"),
        str(run, "precision", "?"), count_cell(c[0], sizeof c[0], num(run, "parameters")),
        count_cell(c[1], sizeof c[1], num(run, "steps")), count_cell(c[2], sizeof c[2], num(t, "samples_per_s")), pct,
        cell(c[3], sizeof c[3], num(m, "neg_elbo_nats"), 1), cell(c[4], sizeof c[4], num(m, "log_px_iw_nats"), 1),
        cell(c[5], sizeof c[5], num(m, "bits_per_dim"), 3), cell(c[6], sizeof c[6], num(m, "bound_bits_per_dim"), 3),
        cell(c[7], sizeof c[7], num(sc, "fd"), 2), cell(c[8], sizeof c[8], num(sc, "coverage_entropy_bits"), 2),
        cell(c[9], sizeof c[9], num(sc, "sample_images_per_s"), num(sc, "sample_images_per_s") < 100 ? 1 : 0));
}

/* The first run holding object `key` (for the figures every run shares), or NULL. */
static const cJSON *first_with(const cJSON *root, const char *key)
{
    const cJSON *run;
    cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(root, "runs")) if (obj(run, key)) return run;
    return NULL;
}

int zoo_report_write_md(const cJSON *root, const char *path, char *err, size_t errlen)
{
    text_buf b = {0};
    const cJSON *mach = obj(root, "machine"), *peaks = obj(root, "peaks"), *set = obj(root, "settings");
    add(&b, "# The four families side by side: elbo zoo on %s (%s)\n\n", str(mach, "cpu", "?"), str(root, "date", "?"));
    add(&b, "%s, %s threads, %s kernels, seed %.0f, elbo %s%s. Each family trains for a fixed number of steps at its "
            "default configuration and batch, then is scored by the reference classifier `%s` (tensors %s).\n\n",
        str(set, "data", "?"), cell((char[32]){0}, 32, num(set, "threads"), 0), str(mach, "isa", "?"),
        num(set, "seed"), str(root, "elbo_revision", "unknown"), num(set, "quick") > 0 ? " (--quick)" : "",
        str(set, "classifier", "?"), str(obj(first_with(root, "score"), "score"), "classifier_hash", "?"));
    add(&b, "| family | precision | parameters | steps | train samples/s | %% of peak | −ELBO (nats) | "
            "IW log p(x) (nats) | bits/dim | bound (bits/dim) | FD | class coverage (bits) | sampling images/s |\n");
    add(&b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    const cJSON *run;
    cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(root, "runs")) add_row(&b, run);
    const cJSON *vae = NULL, *dif = NULL, *scored = first_with(root, "score");
    cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(root, "runs"))
    {
        if (!vae && obj(run, "metric") && !strcmp(str(run, "family", ""), "vae"))
            vae = obj(run, "metric");
        if (!dif && obj(run, "metric") && !strcmp(str(run, "family", ""), "diffusion"))
            dif = obj(run, "metric");
    }
    char x[4][48];
    add(&b, "\nHow to read it:\n\n");
    add(&b, "- **train samples/s**: training images per second of wall time over the training's epochs (%s threads); "
            "**%% of peak**: those samples/s times the model's training FLOPs per sample, over the peak measured in this "
            "run on as many threads: FMA chains %s GFLOP/s (%s-bit vectors, the training's kernel path), bf16 "
            "dot-product chains %s GFLOP/s (bf16 rows; a bf16 row says \"of the FMA peak\" when there is no bf16 "
            "probe). The machine may be shared: both are wall-clock figures.\n",
        cell(x[0], sizeof x[0], num(set, "threads"), 0), cell(x[1], sizeof x[1], num(peaks, "fma_gflops"), 1),
        cell(x[2], sizeof x[2], num(peaks, "fma_vector_bits"), 0),
        num(peaks, "bf16_gflops") > 0 ? cell(x[3], sizeof x[3], num(peaks, "bf16_gflops"), 1) : "(not measured)");
    add(&b, "- **−ELBO** and **IW log p(x)** (VAE): nats per test image of the VAE's continuous Gaussian likelihood "
            "(normalized, K = %s importance samples), a density of pixels in [0, 1]: not comparable with bits/dim.\n",
        cell(x[0], sizeof x[0], num(vae, "iw_k"), 0));
    add(&b, "- **bits/dim** (flow): exact test negative log-likelihood of the discrete 8-bit pixels (uniform "
            "dequantization), all test images. **bound** (diffusion): its variational bound on the same discrete "
            "likelihood in bits/dim, %s eval steps, on the first %s test images. Lower is better; the GAN has no "
            "likelihood.\n",
        cell(x[0], sizeof x[0], num(dif, "eval_steps"), 0), cell(x[1], sizeof x[1], num(dif, "images"), 0));
    add(&b, "- **FD**: Fréchet distance of %s samples to the %s test images in the classifier's last hidden layer "
            "(%s features; as many training images score %s: the floor). **class coverage**: entropy of the "
            "classifier's predicted classes of the samples, %s bits when uniform. The diffusion model samples with "
            "DDIM-50. **sampling images/s**: wall time of drawing those samples.\n",
        cell(x[0], sizeof x[0], num(obj(scored, "score"), "images"), 0),
        cell(x[1], sizeof x[1], num(obj(scored, "score"), "test_images"), 0),
        cell(x[2], sizeof x[2], num(obj(scored, "score"), "features"), 0),
        cell(x[3], sizeof x[3], num(obj(scored, "score"), "fd_floor"), 2),
        cell((char[48]){0}, 48, num(obj(scored, "score"), "coverage_max_bits"), 2));
    add(&b, "\nEvery child command (train, eval, score, sample of each row) is in the JSON beside this file; the sample "
            "grids (the same seed for every family) are in `%s/`.\n\n## Command\n\n```sh\n%s\n```\n",
        str(root, "grid_dir", "?"), str(root, "command", "?"));
    int rc = -1;
    if (b.oom)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        rc = write_text(path, b.s, err, errlen);
    free(b.s);
    return rc;
}
