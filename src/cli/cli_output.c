/* Checked, atomic output files (written, fsynced, renamed). */
#include "cli_output.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_check_output(const char *command, const char *option, const char *path)
{
    struct stat st;
    if (strlen(path) + 16 >= sizeof ((cli_tmpfile *)0)->tmp_path) {
        fprintf(stderr, "elbo %s: --%s: path too long\n", command, option);
        return -1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "elbo %s: --%s: '%s' is a directory\n", command, option, path);
        return -1;
    }
    char *copy = strdup(path);
    if (!copy)
        return -1;
    const char *dir = dirname(copy);
    int rc = access(dir, W_OK | X_OK);
    if (rc != 0)
        fprintf(stderr, "elbo %s: --%s: cannot write %s: directory '%s': %s\n", command, option, path, dir,
                strerror(errno));
    free(copy);
    return rc ? -1 : 0;
}

FILE *cli_tmpfile_open(cli_tmpfile *t, const char *path, char *err, size_t errlen)
{
    int n = snprintf(t->final_path, sizeof t->final_path, "%s", path);
    int m = snprintf(t->tmp_path, sizeof t->tmp_path, "%s.tmp.XXXXXX", path);
    if (n < 0 || m < 0 || (size_t)m >= sizeof t->tmp_path) {
        snprintf(err, errlen, "%s: path too long", path);
        return NULL;
    }
    int fd = mkstemp(t->tmp_path);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        return NULL;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(t->tmp_path);
    }
    return f;
}

int cli_tmpfile_commit(cli_tmpfile *t, FILE *f, char *err, size_t errlen)
{
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "%s: write failed: %s", t->final_path, strerror(errno));
        unlink(t->tmp_path);
        return -1;
    }
    if (rename(t->tmp_path, t->final_path) != 0) {
        snprintf(err, errlen, "%s: cannot rename the temporary file into place: %s", t->final_path, strerror(errno));
        unlink(t->tmp_path);
        return -1;
    }
    return 0;
}

void cli_tmpfile_abort(cli_tmpfile *t, FILE *f)
{
    fclose(f);
    unlink(t->tmp_path);
}
