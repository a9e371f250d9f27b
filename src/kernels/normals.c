/* Box-Muller normals (normals.h): the libm implementation and the choice of implementation. */
#include "normals.h"

#include "cpu_features.h"

#include <math.h>
#include <string.h>

/* (w + 1) / 2^32: a uniform in (0, 1], exact in double. */
static double open_unit(uint32_t w)
{
    return ((double)w + 1.0) * (1.0 / 4294967296.0);
}

void elbo_box_muller_libm(float *out, const uint32_t *words, size_t n)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t j = 0; j < n; j += 2) {
        double r = sqrt(-2.0 * log(open_unit(words[j])));
        double t = two_pi * open_unit(words[j + 1]);
        out[j] = (float)(r * cos(t));
        if (j + 1 < n)
            out[j + 1] = (float)(r * sin(t));
    }
}

/* A vector implementation: out (n floats) from words for n a multiple of its group. */
typedef void (*box_muller_group_fn)(float *out, const uint32_t *words, size_t n);

void elbo_box_muller(float *out, const uint32_t *words, size_t n)
{
    box_muller_group_fn fn = NULL;
    size_t group = 0;
#if defined(__x86_64__)
    const elbo_cpu_features *f = elbo_cpu_features_get();
    if (f->avx2 && f->fma) {
        fn = elbo_box_muller_avx2;
        group = 8;
    }
#elif defined(__aarch64__)
    fn = elbo_box_muller_neon;
    group = 4;
#endif
    if (!fn) {
        elbo_box_muller_libm(out, words, n);
        return;
    }
    size_t whole = n / group * group;
    fn(out, words, whole);
    if (whole < n) { /* the last outputs: their words, zero-padded to a group, through the same code */
        uint32_t w[8] = {0};
        float z[8];
        memcpy(w, words + whole, ((n - whole + 1) & ~(size_t)1) * sizeof *w);
        fn(z, w, group);
        memcpy(out + whole, z, (n - whole) * sizeof *z);
    }
}
