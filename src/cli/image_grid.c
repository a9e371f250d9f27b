/* Tiled image canvases. */
#include "image_grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "png_out.h"

int image_grid_init(image_grid *g, size_t grid_rows, size_t grid_cols, size_t tile_h, size_t tile_w)
{
    memset(g, 0, sizeof *g);
    g->grid_rows = grid_rows;
    g->grid_cols = grid_cols;
    g->tile_h = tile_h;
    g->tile_w = tile_w;
    g->width = grid_cols * tile_w + (grid_cols + 1) * IMAGE_GRID_PAD;
    g->height = grid_rows * tile_h + (grid_rows + 1) * IMAGE_GRID_PAD;
    g->pix = malloc(g->width * g->height);
    if (!g->pix)
        return -1;
    memset(g->pix, IMAGE_GRID_BORDER, g->width * g->height);
    return 0;
}

void image_grid_free(image_grid *g)
{
    free(g->pix);
    memset(g, 0, sizeof *g);
}

/* Top-left pixel of tile (r, c). */
static uint8_t *tile_origin(image_grid *g, size_t r, size_t c)
{
    size_t y = IMAGE_GRID_PAD + r * (g->tile_h + IMAGE_GRID_PAD), x = IMAGE_GRID_PAD + c * (g->tile_w + IMAGE_GRID_PAD);
    return g->pix + y * g->width + x;
}

void image_grid_put_probs(image_grid *g, size_t r, size_t c, const float *probs)
{
    uint8_t *o = tile_origin(g, r, c);
    for (size_t y = 0; y < g->tile_h; y++)
        for (size_t x = 0; x < g->tile_w; x++) {
            float p = probs[y * g->tile_w + x];
            p = p < 0.0f ? 0.0f : p > 1.0f ? 1.0f : p;
            o[y * g->width + x] = (uint8_t)lrintf(255.0f * p);
        }
}

void image_grid_put_pixels(image_grid *g, size_t r, size_t c, const uint8_t *pix)
{
    uint8_t *o = tile_origin(g, r, c);
    for (size_t y = 0; y < g->tile_h; y++)
        memcpy(o + y * g->width, pix + y * g->tile_w, g->tile_w);
}

int image_grid_write_png(const image_grid *g, const char *path, char *err, size_t errlen)
{
    return png_write_gray(path, g->pix, g->width, g->height, err, errlen);
}
