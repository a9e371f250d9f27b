/* `elbo zoo`'s children: another subcommand of the same binary run as a separate process, its stdout captured
 * through a pipe and its stderr kept for the one line that says why it failed. */
#ifndef ELBO_ZOO_CHILD_H
#define ELBO_ZOO_CHILD_H

#include <stddef.h>

#define ZOO_CHILD_MAX_ARGS 48

/* A child's command line: args[0] the subcommand ("train"), NULL-terminated; values owned by the caller. */
typedef struct {
    const char *args[ZOO_CHILD_MAX_ARGS + 1];
    size_t n;
} zoo_argv;

/* What one child did. */
typedef struct {
    int status;         /* exit status; 128 + N when killed by signal N; -1 when it could not be started */
    char *out;          /* its whole stdout, NUL-terminated (NULL when it could not be started) */
    char err_line[512]; /* the last non-empty line of its stderr, or why it could not be started ("" if none) */
    double seconds;     /* wall time from start to exit */
} zoo_child;

/* Appends the arguments given (NULL-terminated) to a. */
void zoo_argv_add(zoo_argv *a, ...);

/* Runs exe with a's arguments (stdin /dev/null, stdout into c->out through a pipe, stderr to a temporary file);
 * returns c->status. */
int zoo_child_run(const char *exe, const zoo_argv *a, zoo_child *c);

/* Frees c's captured output. */
void zoo_child_free(zoo_child *c);

/* The command line "exe arg ..." into buf (arguments with spaces or quotes single-quoted), as a shell would
 * replay it. */
void zoo_argv_format(const char *exe, const zoo_argv *a, char *buf, size_t len);

#endif
