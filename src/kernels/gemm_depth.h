/* The K blocking shared by every FMA-chain GEMM table (avx2, avx512, neon) and every chip config.
 *
 * Each C element is one FMA chain over the depth of a K block, and the blocks are added into C one after the
 * other (gemm.c, k_block_depth): so KC and the single-block depth fix the order in which every output element
 * is summed, and with it the bits. They are why the AVX2 and AVX-512 tables give the same bits (and the
 * training bits test_cli_golden pins), so they are ONE definition here and cannot vary per ISA or per chip:
 * what a chip may tune is only what leaves that order alone (MC, NC, prefetch and in-place flags; chips.c).
 *
 * KC = 400 rather than BLIS's 256: the VAE's depths 400 and 784 then take 1 and 2 K blocks (C is re-read once
 * per block), which measured 5-15 % faster on its shapes on Zen 3 and no slower on 2048^3; a 400 x 16 B panel
 * (25 KiB) stays in a 32 KiB L1d. Depths up to KC_SINGLE = 800 (the VAE's 784) are one block: a second pass
 * over C cost more than the deeper B panel streaming from L2 (1-4 %); MC and NC shrink in proportion for such
 * blocks (gemm.c), so packed blocks keep their cache footprint.
 *
 * The scalar reference keeps KC 256 and no single-block depth (gemm_scalar.c): it has no FMA, its bits differ
 * from the FMA tables' anyway, and they are pinned as they are (test_cli_golden hashes 784-deep GEMMs, which
 * a different K blocking would re-sum in another order). */
#ifndef ELBO_GEMM_DEPTH_H
#define ELBO_GEMM_DEPTH_H

#define ELBO_GEMM_FMA_KC 400        /* depth of each K block when K is split */
#define ELBO_GEMM_FMA_KC_SINGLE 800 /* depths up to this are one K block */

#endif
