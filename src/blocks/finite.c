/* NaN and infinity checks over float arrays (parameters, gradients, losses). */
#include "finite.h"

#include <stdint.h>
#include <string.h>

int elbo_floats_finite(const float *x, size_t n)
{
    /* NaN and the infinities are the floats whose exponent bits are all ones. Integer ops, OR-reduced: the
     * compiler vectorizes this (a float reduction would be one dependent add per element). */
    uint32_t special = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        special |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return special == 0;
}
