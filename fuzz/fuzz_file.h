/* Fuzz targets' input as a file: the readers under test take a path, so each input is written to one
 * in-memory file (memfd) and read back through /proc/self/fd/N, exercising the real open/read paths. */
#ifndef ELBO_FUZZ_FILE_H
#define ELBO_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Replaces the contents of the process's one in-memory file with data[0..size) and returns its path
 * (valid until the next call). Aborts when the file cannot be written: that is the harness failing. */
static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("elbo-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz input file");
        abort();
    }
    return path;
}

#endif
