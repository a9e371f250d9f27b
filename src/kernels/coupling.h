/* The affine coupling of a normalizing flow (RealNVP), elementwise over the n pixels a coupling transforms, stored
 * contiguously (the flow orders its pixels so that each coupling's kept and transformed pixels are two blocks of a
 * row): h' = h exp(s) + t with s = scale tanh(raw_s), t = raw_t, where raw (rows, 2n) is the coupling network's
 * output [raw_s | raw_t] for those pixels only; its inverse, and its backward pass. The log-determinant of a row is
 * the sum of s. The kept pixels are the caller's (copied unchanged).
 *
 * Shapes: h, h', g are the transformed block of (rows, ld) matrices (row stride ldh, ldo, ldg >= n); raw is
 * (rows, 2n) with row stride 2n; dscale is (rows, n) with row stride n; scale is (n). Per-row sums run in a fixed
 * order (the ISA's lanes, then the lanes in order in double), so a row's result does not depend on the other rows or
 * on the thread that computes it. */
#ifndef ELBO_COUPLING_H
#define ELBO_COUPLING_H

#include <stddef.h>

/* hout (rows, n; row stride ldo) = the coupling of h (row stride ldh); logdet (rows) = each row's sum of s. */
typedef void (*elbo_coupling_forward_fn)(const float *h, size_t ldh, const float *raw, const float *scale,
                                         float *hout, size_t ldo, double *logdet, size_t rows, size_t n);

/* h (rows, n; row stride ldh) = the inverse of the coupling from hout (row stride ldo): (hout - t) exp(-s) (raw is
 * the network's output on the kept pixels, which the coupling leaves unchanged). */
typedef void (*elbo_coupling_inverse_fn)(const float *hout, size_t ldo, const float *raw, const float *scale,
                                         float *h, size_t ldh, size_t rows, size_t n);

/* The backward pass of the coupling of input h (row stride ldh) given g = d loss / d hout (rows, n; row stride ldg)
 * and a loss that also holds -w * logdet of each row: with th = tanh(raw_s), s = scale th, e = exp(s) and
 * ds = g h e - w, raw becomes d loss / d raw: [ds scale (1 - th^2) | g], dscale = ds th and g becomes g e, the
 * gradient through the coupling's direct path (the path through the network's input is the caller's). */
typedef void (*elbo_coupling_backward_fn)(const float *h, size_t ldh, float *raw, const float *scale, float *g,
                                          size_t ldg, float *dscale, float w, size_t rows, size_t n);

/* As elbo_coupling_forward_fn, also keeping what the backward pass would recompute: raw's s half (rows, n; row stride
 * 2n) becomes th = tanh(raw_s) in place and e (rows, n; row stride n) = exp(s), the same bits as the backward's own. */
typedef void (*elbo_coupling_forward_saving_fn)(const float *h, size_t ldh, float *raw, const float *scale,
                                                float *hout, size_t ldo, float *e, double *logdet, size_t rows,
                                                size_t n);

/* elbo_coupling_backward_fn after elbo_coupling_forward_saving_fn: th from raw's s half and e as that left them,
 * no tanh or exp; the same bits. e may be dscale (each element is read before it is written). */
typedef void (*elbo_coupling_backward_saved_fn)(const float *h, size_t ldh, float *raw, const float *scale,
                                                const float *e, float *g, size_t ldg, float *dscale, float w,
                                                size_t rows, size_t n);

#endif
