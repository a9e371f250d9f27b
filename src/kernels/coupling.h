/* The affine coupling of a normalizing flow (RealNVP), elementwise: each row's pixels are kept (keep = 1) or
 * transformed (keep = 0) by h' = h exp(s) + t with s = scale tanh(raw_s), t = raw_t, where raw (rows, 2d) is the
 * coupling network's output [raw_s | raw_t]; its inverse, and its backward pass. The log-determinant of a row is the
 * sum of s over the transformed pixels.
 *
 * Shapes: h, h', g, dscale are (rows, d) with row stride d; raw is (rows, 2d) with row stride 2d; scale and keep are
 * (d), keep holding exactly 0 or 1. Per-row sums run in a fixed order (the ISA's lanes, then the lanes in order in
 * double), so a row's result does not depend on the other rows or on the thread that computes it. */
#ifndef ELBO_COUPLING_H
#define ELBO_COUPLING_H

#include <stddef.h>

/* hout (rows, d) = the coupling of h; logdet (rows) = each row's sum of s over the transformed pixels. */
typedef void (*elbo_coupling_forward_fn)(const float *h, const float *raw, const float *scale, const float *keep,
                                         float *hout, double *logdet, size_t rows, size_t d);

/* h (rows, d) = the inverse of the coupling from hout: (hout - t) exp(-s) on the transformed pixels, hout on the
 * kept ones (raw is the network's output on the kept pixels, which the coupling leaves unchanged). */
typedef void (*elbo_coupling_inverse_fn)(const float *hout, const float *raw, const float *scale, const float *keep,
                                         float *h, size_t rows, size_t d);

/* The backward pass of the coupling of input h given g = d loss / d hout (rows, d) and a loss that also holds
 * -w * logdet of each row: on the transformed pixels, with th = tanh(raw_s), s = scale th, e = exp(s) and
 * ds = g h e - w, raw becomes d loss / d raw: [ds scale (1 - th^2) | g] (0 on the kept pixels), dscale = ds th (0 on
 * the kept pixels) and g becomes g e, the gradient through the coupling's direct path (g on the kept pixels; the
 * path through the network's input is the caller's). */
typedef void (*elbo_coupling_backward_fn)(const float *h, float *raw, const float *scale, const float *keep,
                                          float *g, float *dscale, float w, size_t rows, size_t d);

#endif
