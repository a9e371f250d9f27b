/* Deterministic synthetic shapes (see synthetic.h): integer arithmetic only. */
#include "synthetic.h"

#include "lazy_alloc.h"

#include <stdlib.h>
#include <string.h>

const char *const elbo_synthetic_class_names[ELBO_SYNTHETIC_CLASSES + 1] = {
    "class 0", "class 1", "class 2", "class 3", "class 4",
    "class 5", "class 6", "class 7", "class 8", "class 9", NULL,
};

/* Per-sample shape parameters. */
typedef struct {
    int cx, cy;  /* centre */
    int t;       /* half stroke width, 1..2 */
    int len;     /* half length / radius, 6..9 */
    int ink;     /* stroke intensity, 170..255 */
} shape;

/* Next 64 bits of a splitmix64 stream. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* |a|. */
static int iabs(int a)
{
    return a < 0 ? -a : a;
}

/* Whether pixel offset (u, v) from the centre is on the stroke of class c. */
static int on_shape(int c, int u, int v, const shape *p)
{
    const int t = p->t, L = p->len, au = iabs(u), av = iabs(v);
    const int r2 = u * u + v * v;
    switch (c) {
    case 0: return iabs(v + 7) <= t && au <= L;
    case 1: return iabs(v - 7) <= t && au <= L;
    case 2: return iabs(u + 7) <= t && av <= L;
    case 3: return iabs(u - 7) <= t && av <= L;
    case 4: return (u - v) * (u - v) <= 2 * t * t && au <= L && av <= L;
    case 5: return (u + v) * (u + v) <= 2 * t * t && au <= L && av <= L;
    case 6: return r2 >= (L - t) * (L - t) && r2 <= (L + t) * (L + t);
    case 7: return r2 <= (L / 2 + 1) * (L / 2 + 1);
    case 8: return (au <= t && av <= L) || (av <= t && au <= L);
    default: return au <= L && av <= L && ((u + 32) / 2 + (v + 32) / 2) % 2 == 0;
    }
}

/* Draws one 28x28 image of class c from the stream s. */
static void draw(uint8_t *img, int c, uint64_t *s)
{
    const uint64_t r = splitmix64(s);
    const shape p = {
        .cx = ELBO_SYNTHETIC_SIDE / 2 + (int)(r % 5) - 2,
        .cy = ELBO_SYNTHETIC_SIDE / 2 + (int)((r >> 8) % 5) - 2,
        .t = 1 + (int)((r >> 16) % 2),
        .len = 6 + (int)((r >> 24) % 4),
        .ink = 170 + (int)((r >> 32) % 86),
    };
    uint64_t noise = 0;
    for (int i = 0; i < ELBO_SYNTHETIC_SIDE * ELBO_SYNTHETIC_SIDE; i++) {
        if (i % 8 == 0)
            noise = splitmix64(s);
        const int n = (int)(noise & 31);
        noise >>= 8;
        const int x = i % ELBO_SYNTHETIC_SIDE, y = i / ELBO_SYNTHETIC_SIDE;
        img[i] = (uint8_t)(on_shape(c, x - p.cx, y - p.cy, &p) ? p.ink - n : n);
    }
}

/* Fills *s with n synthetic samples drawn from the stream `seed`. */
int elbo_synthetic_split(elbo_split *s, size_t n, uint64_t seed)
{
    const size_t dim = ELBO_SYNTHETIC_SIDE * ELBO_SYNTHETIC_SIDE;
    memset(s, 0, sizeof *s);
    s->pixels = elbo_lazy_alloc(n * dim);
    s->labels = elbo_lazy_alloc(n);
    if (!s->pixels || !s->labels) {
        elbo_split_free(s);
        return -1;
    }
    s->n = n;
    s->rows = s->cols = ELBO_SYNTHETIC_SIDE;
    s->dim = dim;
    uint64_t order = seed;
    for (size_t i = 0; i < n; i++)
        s->labels[i] = (uint8_t)(i % ELBO_SYNTHETIC_CLASSES);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&order) % (uint64_t)i);
        uint8_t tmp = s->labels[i - 1];
        s->labels[i - 1] = s->labels[j];
        s->labels[j] = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t stream = seed ^ ((uint64_t)(i + 1) * 0xd1b54a32d192ed03ull);
        draw(s->pixels + i * dim, s->labels[i], &stream);
    }
    return 0;
}
