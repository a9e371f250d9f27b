/* PNG files through libpng, written atomically (a temporary file in the same directory, then rename). */
#ifndef ELBO_PNG_OUT_H
#define ELBO_PNG_OUT_H

#include <stddef.h>
#include <stdint.h>

/* Writes pix (height, width) 8-bit grayscale, row-major, to path. Returns 0, or -1 with a message in err
 * naming the file; on failure nothing is left at path or beside it. */
int png_write_gray(const char *path, const uint8_t *pix, size_t width, size_t height, char *err, size_t errlen);

#endif
