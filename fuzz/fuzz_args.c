/* libFuzzer target: the command-line parser (src/cli/args.c) with a table holding every kind of option, and
 * the width lists (--hidden) and likelihood names (--recon) parsed after it. The input is the argument list,
 * NUL-separated. Checks, beyond the sanitizers: an error is one line naming `elbo fuzz`; a success leaves
 * every number inside its option's range (doubles finite); the help text prints. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config.h"

#define MAX_ARGS 64

/* Aborts with a message when cond is false (libFuzzer records the input as a crash). */
#define FUZZ_REQUIRE(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz check failed: " __VA_ARGS__); \
    fprintf(stderr, "\n"); abort(); } } while (0)

/* Option values of the table below. */
typedef struct {
    const char *data, *hidden, *recon;
    size_t epochs, batch;
    long steps;
    double lr, beta;
    uint64_t seed;
    int json;
} fuzz_values;

/* Fails unless the number behind a parsed option lies in its range. */
static void check_range(const cli_option *o)
{
    double v;
    switch (o->kind) {
    case ARG_SIZE: v = (double)*(size_t *)o->dest; break;
    case ARG_LONG: v = (double)*(long *)o->dest; break;
    case ARG_DOUBLE:
        v = *(double *)o->dest;
        FUZZ_REQUIRE(isfinite(v), "--%s accepted a non-finite value", o->name);
        break;
    default: return;
    }
    if (o->min != 0 || o->max != 0)
        FUZZ_REQUIRE(v >= o->min && v <= o->max, "--%s = %.17g outside [%g, %g]", o->name, v, o->min, o->max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    /* the arguments: NUL-separated strings, the last one terminated by the copy */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"fuzz"};
    int argc = 1;
    for (size_t i = 0; i <= size && argc < MAX_ARGS; argc++) {
        argv[argc] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    fuzz_values a = {.hidden = "400", .recon = "mse", .epochs = 10, .batch = 128, .lr = 1e-3, .beta = 1, .seed = 1};
    cli_option opts[] = {
        {"data", ARG_STRING, &a.data, "DIR", "dataset", 0, 0, "/usr/share/datasets/fashion-mnist", 0, 'd'},
        {"epochs", ARG_SIZE, &a.epochs, "N", "passes", 1, 1e6, NULL, 0, 0},
        {"steps", ARG_LONG, &a.steps, "N", "steps", 0, 1e15, NULL, 0, 0},
        {"batch", ARG_SIZE, &a.batch, "N", "batch", 1, 1 << 20, NULL, 0, 'b'},
        {"lr", ARG_DOUBLE, &a.lr, "X", "learning rate", 1e-12, 1e6, NULL, 0, 0},
        {"beta", ARG_DOUBLE, &a.beta, "X", "KL weight", 0, 1e6, NULL, 0, 0},
        {"hidden", ARG_STRING, &a.hidden, "W[,W...]", "widths", 0, 0, NULL, 0, 0},
        {"recon", ARG_STRING, &a.recon, "mse|bce", "likelihood", 0, 0, NULL, 0, 0},
        {"seed", ARG_U64, &a.seed, "N", "seed", 0, 0, NULL, 0, 0},
        {"json", ARG_FLAG, &a.json, "", "JSON lines", 0, 0, NULL, 0, 'j'},
    };
    size_t n_opts = sizeof opts / sizeof opts[0];
    char err[1024];
    cli_parse_result r = cli_parse_args("fuzz", argc, argv, opts, n_opts, err, sizeof err);
    if (r == CLI_PARSE_ERROR) {
        FUZZ_REQUIRE(strncmp(err, "elbo fuzz: ", 11) == 0, "error does not name the command: %s", err);
        FUZZ_REQUIRE(strchr(err, '\n') == NULL, "error on several lines: %s", err);
    } else if (r == CLI_PARSE_OK) {
        for (size_t i = 0; i < n_opts; i++)
            check_range(&opts[i]);
        size_t widths[ELBO_MAX_HIDDEN], n = 0;
        if (elbo_parse_widths(a.hidden, widths, &n, err, sizeof err) == 0) {
            FUZZ_REQUIRE(n >= 1 && n <= ELBO_MAX_HIDDEN, "width list of %zu items accepted", n);
            for (size_t i = 0; i < n; i++)
                FUZZ_REQUIRE(widths[i] >= 1 && widths[i] <= ((size_t)1 << 20), "width %zu accepted", widths[i]);
            char text[256];
            elbo_format_widths(text, sizeof text, widths, n);
        }
        elbo_recon rc;
        (void)elbo_recon_parse(a.recon, &rc);
    }
    /* the help text with whatever values the parse left */
    static FILE *null_out;
    if (!null_out)
        null_out = fopen("/dev/null", "w");
    if (null_out)
        cli_print_options(null_out, opts, n_opts);
    free(buf);
    return 0;
}
