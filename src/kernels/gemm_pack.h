/* Packing of GEMM operands into the microkernel's contiguous, zero-padded panels. */
#ifndef ELBO_GEMM_PACK_H
#define ELBO_GEMM_PACK_H

#include "gemm.h"

/* Generic C packing (every ISA's fallback; ISA tables may install faster routines with identical output). */

/* dst (cols x rows, row stride ldd) = src^T (src: rows x cols, row stride lds); the two do not overlap. */
typedef void (*elbo_transpose_fn)(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);

/* Packs rows [i0, i0+mc) x depth [k0, k0+kc) of op(A) into MR-row panels (see elbo_pack_a_block). */
typedef void (*elbo_pack_a_fn)(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t mr);
/* Packs depth [k0, k0+kc) x columns [j0, j0+nc) of op(B) into NR-column panels (see elbo_pack_b_panel). */
typedef void (*elbo_pack_b_fn)(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc, size_t nr);

/* Packs rows [i0, i0+mc) x depth [k0, k0+kc) of op(A) into ceil(mc/mr) panels of mr x kc
 * (dst[panel][p*mr + i]), zero-padding rows past mc. */
void elbo_pack_a_block(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t mr);

/* Packs depth [k0, k0+kc) x columns [j0, j0+nc) of op(B) into ceil(nc/nr) panels of kc x nr
 * (dst[panel][p*nr + j]), zero-padding columns past nc. */
void elbo_pack_b_panel(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc, size_t nr);

/* elbo_transpose_fn in C, 16-row blocks (every ISA's fallback). */
void x32_transpose_ukernel__scalar(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);

#endif
