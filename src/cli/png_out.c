/* Grayscale PNG output with libpng. */
#include "png_out.h"

#include <png.h>
#include <stdio.h>

#include "cli_output.h"

#define WHY_LEN 200   /* bytes of libpng's error message kept */

/* libpng error callback: keeps the message for the caller and unwinds to png_write_gray's setjmp. */
static void on_png_error(png_structp png, png_const_charp msg)
{
    char *buf = png_get_error_ptr(png);
    snprintf(buf, WHY_LEN, "%s", msg);
    png_longjmp(png, 1);
}

/* Writes pix (height, width) to an open file; returns 0 or -1 with libpng's message in why (WHY_LEN bytes). */
static int encode(FILE *f, const uint8_t *pix, size_t width, size_t height, char *why)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, why, on_png_error, NULL);
    if (!png) {
        snprintf(why, WHY_LEN, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info)
            snprintf(why, WHY_LEN, "out of memory");
        png_destroy_write_struct(&png, info ? &info : NULL);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (size_t r = 0; r < height; r++)
        png_write_row(png, pix + r * width);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int png_write_gray(const char *path, const uint8_t *pix, size_t width, size_t height, char *err, size_t errlen)
{
    char why[WHY_LEN] = "";
    if (width == 0 || height == 0 || width > 0x7fffffff || height > 0x7fffffff) {
        snprintf(err, errlen, "%s: cannot write a %zux%zu image", path, width, height);
        return -1;
    }
    cli_tmpfile tmp;
    FILE *f = cli_tmpfile_open(&tmp, path, err, errlen);
    if (!f)
        return -1;
    if (encode(f, pix, width, height, why) != 0) {
        cli_tmpfile_abort(&tmp, f);
        snprintf(err, errlen, "%s: PNG encoding failed: %s", path, why);
        return -1;
    }
    return cli_tmpfile_commit(&tmp, f, err, errlen);
}
