/* A grayscale canvas of equal image tiles in rows and columns, separated and framed by a gray border. */
#ifndef ELBO_IMAGE_GRID_H
#define ELBO_IMAGE_GRID_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_GRID_PAD 2      /* border pixels around and between tiles */
#define IMAGE_GRID_BORDER 128 /* border gray level */

typedef struct {
    size_t grid_rows, grid_cols, tile_h, tile_w;
    size_t width, height;   /* grid_cols * tile_w + (grid_cols + 1) * PAD, likewise for rows */
    uint8_t *pix;           /* (height, width) */
} image_grid;

/* Allocates a grid_rows x grid_cols canvas of tile_h x tile_w tiles; returns 0 or -1 (out of memory). */
int image_grid_init(image_grid *g, size_t grid_rows, size_t grid_cols, size_t tile_h, size_t tile_w);

/* Frees the canvas (safe on a zeroed grid). */
void image_grid_free(image_grid *g);

/* Draws tile (r, c) from probs (tile_h * tile_w) in [0, 1], as gray levels round(255 p). */
void image_grid_put_probs(image_grid *g, size_t r, size_t c, const float *probs);

/* Draws tile (r, c) from 8-bit pixels (tile_h * tile_w). */
void image_grid_put_pixels(image_grid *g, size_t r, size_t c, const uint8_t *pix);

/* Writes the canvas as a PNG (atomically); returns 0 or -1 with a message in err. */
int image_grid_write_png(const image_grid *g, const char *path, char *err, size_t errlen);

#endif
