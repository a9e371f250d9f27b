/* Atomic file writes: temporary file, fsync, rename, directory fsync. */
#include "atomic_file.h"

#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsyncs the directory holding path so a rename into it is durable; errors are ignored (best effort). */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int elbo_atomic_open(elbo_atomic_file *f, const char *path, char *err, size_t errlen)
{
    *f = (elbo_atomic_file){.path = path, .fd = -1};
    size_t tlen = strlen(path) + sizeof ELBO_ATOMIC_TMP_SUFFIX + 6;
    f->tmp = malloc(tlen);
    if (!f->tmp) {
        elbo_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(f->tmp, tlen, "%s" ELBO_ATOMIC_TMP_SUFFIX "XXXXXX", path);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        elbo_errf(err, errlen, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(f->tmp);
        f->tmp = NULL;
        return -1;
    }
    return 0;
}

int elbo_atomic_write(elbo_atomic_file *f, const void *data, size_t len)
{
    const unsigned char *c = data;
    while (f->error == 0 && len) {
        ssize_t w = write(f->fd, c, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            f->error = w < 0 ? errno : EIO;
            break;
        }
        c += w;
        len -= (size_t)w;
    }
    return f->error ? -1 : 0;
}

int elbo_atomic_commit(elbo_atomic_file *f, char *err, size_t errlen)
{
    int saved = f->error;
    if (saved == 0 && (fchmod(f->fd, 0644) != 0 || fsync(f->fd) != 0))
        saved = errno;
    if (close(f->fd) != 0 && saved == 0)
        saved = errno;
    f->fd = -1;
    if (saved == 0 && rename(f->tmp, f->path) != 0)
        saved = errno;
    if (saved != 0) {
        elbo_errf(err, errlen, "%s: write failed: %s", f->path, strerror(saved));
        elbo_atomic_abort(f);
        return -1;
    }
    sync_parent_dir(f->path);
    free(f->tmp);
    f->tmp = NULL;
    return 0;
}

void elbo_atomic_abort(elbo_atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp)
        unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
    f->fd = -1;
}
