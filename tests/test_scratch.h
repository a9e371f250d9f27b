/* Scratch directories for the tests that write files: fresh under $TMPDIR (default /tmp), removed whole. */
#ifndef ELBO_TEST_SCRATCH_H
#define ELBO_TEST_SCRATCH_H

#include "test_util.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PATH 1024

/* dir/name into buf (MAX_PATH bytes). */
static inline char *join(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, MAX_PATH, "%s/%s", dir, name);
    assert_true(n > 0 && n < MAX_PATH);
    return buf;
}

/* Creates a fresh directory named prefix-XXXXXX under $TMPDIR or /tmp, into dir (MAX_PATH bytes). */
static inline void scratch_mkdtemp(char *dir, const char *prefix)
{
    char name[64];
    const char *tmp = getenv("TMPDIR");
    snprintf(name, sizeof name, "%s-XXXXXX", prefix);
    join(dir, tmp && *tmp ? tmp : "/tmp", name);
    assert_non_null(mkdtemp(dir));
}

/* Removes dir and everything below it (made writable first; only regular files and directories are
 * created by the tests). */
static inline void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    chmod(dir, 0700);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[MAX_PATH];
        struct stat st;
        join(path, dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#endif
