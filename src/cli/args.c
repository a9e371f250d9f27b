/* Table-driven option parsing for the elbo subcommands. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const cli_option *cli_find(const cli_option *opts, size_t n_opts, const char *name)
{
    for (size_t i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* Formats the current value of o (its default before parsing) into buf. */
static void format_value(const cli_option *o, char *buf, size_t len)
{
    switch (o->kind) {
    case ARG_STRING: {
        const char *s = *(const char **)o->dest;
        snprintf(buf, len, "%s", s ? s : "none");
        break;
    }
    case ARG_SIZE:
        snprintf(buf, len, "%zu", *(size_t *)o->dest);
        break;
    case ARG_LONG:
        snprintf(buf, len, "%ld", *(long *)o->dest);
        break;
    case ARG_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(uint64_t *)o->dest);
        break;
    case ARG_DOUBLE:
        snprintf(buf, len, "%g", *(double *)o->dest);
        break;
    case ARG_FLAG:
        snprintf(buf, len, "off");
        break;
    }
}

void cli_print_options(FILE *f, const cli_option *opts, size_t n_opts)
{
    for (size_t i = 0; i < n_opts; i++) {
        const cli_option *o = &opts[i];
        char left[64], def[96], alias[24] = "";
        if (o->short_name)
            snprintf(alias, sizeof alias, ", -%c%s%s", o->short_name, o->kind == ARG_FLAG ? "" : " ",
                     o->kind == ARG_FLAG ? "" : o->metavar);
        snprintf(left, sizeof left, "--%s%s%s%s", o->name, o->kind == ARG_FLAG ? "" : " ",
                 o->kind == ARG_FLAG ? "" : o->metavar, alias);
        if (o->default_text)
            snprintf(def, sizeof def, "%s", o->default_text);
        else
            format_value(o, def, sizeof def);
        if (o->kind == ARG_FLAG && !o->default_text)
            fprintf(f, "  %-24s %s\n", left, o->help);
        else
            fprintf(f, "  %-24s %s (default: %s)\n", left, o->help, def);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help and exit");
}

/* Checks a number against o's range; writes the error into err and returns -1 when outside. */
static int check_range(const char *command, const cli_option *o, double v, const char *text, char *err,
                       size_t errlen)
{
    if ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max)) {
        snprintf(err, errlen, "elbo %s: --%s: '%s' is out of range [%.15g, %.15g]", command, o->name, text, o->min,
                 o->max);
        return -1;
    }
    return 0;
}

/* Parses text into o->dest according to o->kind; returns 0 or -1 with one error line in err. */
static int parse_value(const char *command, cli_option *o, const char *text, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case ARG_STRING:
        if (!*text) {
            snprintf(err, errlen, "elbo %s: --%s: empty value", command, o->name);
            return -1;
        }
        *(const char **)o->dest = text;
        return 0;
    case ARG_SIZE:
    case ARG_U64: {
        if (*text < '0' || *text > '9')
            break;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || *end)
            break;
        if (check_range(command, o, (double)v, text, err, errlen))
            return -1;
        if (o->kind == ARG_SIZE)
            *(size_t *)o->dest = (size_t)v;
        else
            *(uint64_t *)o->dest = (uint64_t)v;
        return 0;
    }
    case ARG_LONG: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end)
            break;
        if (check_range(command, o, (double)v, text, err, errlen))
            return -1;
        *(long *)o->dest = v;
        return 0;
    }
    case ARG_DOUBLE: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v))
            break;
        if (check_range(command, o, v, text, err, errlen))
            return -1;
        *(double *)o->dest = v;
        return 0;
    }
    case ARG_FLAG:
        break;
    }
    snprintf(err, errlen, "elbo %s: --%s: '%s' is not a valid %s", command, o->name, text,
            o->kind == ARG_DOUBLE ? "number" : o->kind == ARG_LONG ? "integer" : "non-negative integer");
    return -1;
}

/* cli_parse_args before the error line is made printable. */
static cli_parse_result parse_args(const char *command, int argc, char **argv, cli_option *opts, size_t n_opts,
                                   char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CLI_PARSE_HELP;
        cli_option *o = NULL;
        const char *name = arg + 2, *eq = NULL;
        size_t name_len = 0;
        if (arg[0] == '-' && arg[1] && arg[1] != '-' && arg[2] == '\0') {
            for (size_t j = 0; j < n_opts; j++)
                if (opts[j].short_name == arg[1])
                    o = &opts[j];
            if (!o) {
                snprintf(err, errlen, "elbo %s: unknown option '%s' (see 'elbo %s --help')", command, arg, command);
                return CLI_PARSE_ERROR;
            }
        } else if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "elbo %s: unexpected argument '%s' (options start with --; see 'elbo %s --help')",
                     command, arg, command);
            return CLI_PARSE_ERROR;
        }
        if (!o) {
            eq = strchr(name, '=');
            name_len = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t j = 0; j < n_opts; j++)
                if (strlen(opts[j].name) == name_len && strncmp(opts[j].name, name, name_len) == 0)
                    o = &opts[j];
        }
        if (!o) {
            snprintf(err, errlen, "elbo %s: unknown option '--%.*s' (see 'elbo %s --help')", command,
                     name_len > 256 ? 256 : (int)name_len, name, command);
            return CLI_PARSE_ERROR;
        }
        if (o->seen) {
            snprintf(err, errlen, "elbo %s: --%s: given more than once", command, o->name);
            return CLI_PARSE_ERROR;
        }
        o->seen = 1;
        if (o->kind == ARG_FLAG) {
            if (eq) {
                snprintf(err, errlen, "elbo %s: --%s: takes no value", command, o->name);
                return CLI_PARSE_ERROR;
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) {
            snprintf(err, errlen, "elbo %s: --%s: missing value %s", command, o->name, o->metavar);
            return CLI_PARSE_ERROR;
        }
        if (parse_value(command, o, value, err, errlen) != 0)
            return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

/* Turns control characters (a newline inside an argument) into spaces so that err stays one line. */
static void one_line(char *err)
{
    for (; *err; err++)
        if ((unsigned char)*err < 0x20)
            *err = ' ';
}

cli_parse_result cli_parse_args(const char *command, int argc, char **argv, cli_option *opts, size_t n_opts,
                                char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    cli_parse_result r = parse_args(command, argc, argv, opts, n_opts, err, errlen);
    if (r == CLI_PARSE_ERROR && errlen)
        one_line(err);
    return r;
}

cli_parse_result cli_parse(const char *command, int argc, char **argv, cli_option *opts, size_t n_opts,
                           const char *description)
{
    char err[1024] = "";
    cli_parse_result r = cli_parse_args(command, argc, argv, opts, n_opts, err, sizeof err);
    if (r == CLI_PARSE_HELP) {
        printf("usage: elbo %s [options]\n\n%s\n\noptions:\n", command, description);
        cli_print_options(stdout, opts, n_opts);
    } else if (r == CLI_PARSE_ERROR) {
        fprintf(stderr, "%s\n", err);
    }
    return r;
}
