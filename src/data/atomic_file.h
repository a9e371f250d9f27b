/* Files written atomically: the data goes to a temporary file beside the target ("<path>.tmp.XXXXXX"), is
 * fsynced, renamed over the target, and the directory is fsynced; on any failure the temporary file is removed
 * and nothing at the target changes. A process killed mid-write leaves only the temporary file (see
 * elbo_st_remove_stale_temps). Used by every writer of the model layer (checkpoints, IDX files). */
#ifndef ELBO_ATOMIC_FILE_H
#define ELBO_ATOMIC_FILE_H

#include <stddef.h>

/* What the temporary file's name adds to the target's (then mkstemp's 6 characters). */
#define ELBO_ATOMIC_TMP_SUFFIX ".tmp."

typedef struct {
    const char *path; /* the target (not copied: must outlive the file) */
    char *tmp;        /* the temporary file's path (owned) */
    int fd;           /* open on tmp, or -1 */
    int error;        /* errno of the first failed write, 0 while all succeeded */
} elbo_atomic_file;

/* Creates the temporary file beside path. Returns 0, or -1 with "path: cannot create a temporary file beside
 * it: REASON" in err (and *f safe to abort). */
int elbo_atomic_open(elbo_atomic_file *f, const char *path, char *err, size_t errlen);

/* Appends len bytes (any size; short writes and EINTR retried). Returns 0, or -1 and remembers the error for
 * elbo_atomic_commit (later writes are skipped). */
int elbo_atomic_write(elbo_atomic_file *f, const void *data, size_t len);

/* Makes the file durable and renames it over the target. Returns 0, or -1 with "path: write failed: REASON" in
 * err (the first write error, or that of fsync, close or rename) after removing the temporary file. Either way
 * *f is released. */
int elbo_atomic_commit(elbo_atomic_file *f, char *err, size_t errlen);

/* Closes and removes the temporary file and releases *f (safe after a failed open, or twice). */
void elbo_atomic_abort(elbo_atomic_file *f);

#endif
