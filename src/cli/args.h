/* Command-line options of the elbo subcommands: a table of typed options parsed from argv, with range
 * checks, one-line errors and generated --help text showing every default. */
#ifndef ELBO_ARGS_H
#define ELBO_ARGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    ARG_STRING,  /* const char *  */
    ARG_SIZE,    /* size_t, in [min, max] */
    ARG_LONG,    /* long, in [min, max] */
    ARG_U64,     /* uint64_t */
    ARG_DOUBLE,  /* double, finite, in [min, max] */
    ARG_FLAG,    /* int set to 1, takes no value */
} cli_arg_kind;

typedef struct {
    const char *name;     /* long name without the dashes */
    cli_arg_kind kind;
    void *dest;           /* holds the default before parsing */
    const char *metavar;  /* e.g. "N", "PATH" */
    const char *help;     /* one line; the default is appended unless default_text says otherwise */
    double min, max;      /* numeric range (inclusive); ignored when both are 0 */
    const char *default_text; /* shown instead of the dest's value when not NULL */
    int seen;             /* set when given on the command line */
    char short_name;      /* one-letter alias ("-n"), or 0 */
} cli_option;

/* Which outcome cli_parse reached. */
typedef enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_ERROR = 2 } cli_parse_result;

/* Parses argv[1..argc) ("--name value", "--name=value", or "-x value" for a one-letter alias) into opts
 * without printing anything: returns CLI_PARSE_HELP at --help or -h, CLI_PARSE_ERROR with one line (no
 * newline) naming the option in err. Positional arguments are errors. */
cli_parse_result cli_parse_args(const char *command, int argc, char **argv, cli_option *opts, size_t n_opts,
                                char *err, size_t errlen);

/* cli_parse_args, then prints: on --help the help text to stdout (usage line, description, options with
 * defaults), on error the one line to stderr. */
cli_parse_result cli_parse(const char *command, int argc, char **argv, cli_option *opts, size_t n_opts,
                           const char *description);

/* Prints the option list with defaults to f. */
void cli_print_options(FILE *f, const cli_option *opts, size_t n_opts);

/* The option called name in opts (NULL if absent). */
const cli_option *cli_find(const cli_option *opts, size_t n_opts, const char *name);

#endif
