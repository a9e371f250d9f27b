/* Output files of the subcommands: checked before any work, written through a temporary file in the same
 * directory and renamed into place, so a failure never leaves a partial file. */
#ifndef ELBO_CLI_OUTPUT_H
#define ELBO_CLI_OUTPUT_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char final_path[4096];
    char tmp_path[4096];
} cli_tmpfile;

/* Checks that path names a file (not a directory) in a writable directory; prints
 * "elbo CMD: --OPTION: ..." and returns -1 when not. */
int cli_check_output(const char *command, const char *option, const char *path);

/* Opens a new temporary file beside path for writing; NULL with a message in err naming path. */
FILE *cli_tmpfile_open(cli_tmpfile *t, const char *path, char *err, size_t errlen);

/* Closes f and renames the temporary file to the final path; on any failure removes it and returns -1 with a
 * message in err. */
int cli_tmpfile_commit(cli_tmpfile *t, FILE *f, char *err, size_t errlen);

/* Closes f and removes the temporary file. */
void cli_tmpfile_abort(cli_tmpfile *t, FILE *f);

#endif
