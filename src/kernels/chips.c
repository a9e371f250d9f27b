/* The chip configs: per chip family, which cpuid / MIDR signatures it answers to and how it tunes each ISA
 * table (MC, NC, prefetch and in-place flags; chips.h says why nothing else may vary). Figures are the ones
 * measured on the chip named; a config without measurements of its own says so and repeats the generic one. */
#include "chips.h"

#include <string.h>

/* AVX2 on a Zen 3 / Haswell-class core (32 KiB L1d, 512 KiB L2 per core, large shared L3), measured on Zen 3:
 * a KC x 16 B panel (25 KiB) stays in L1, an MC x KC A block (168 x 400: 262 KiB) in L2, a KC x NC B panel
 * (6.2 MiB) in L3. The macro-kernel fetches the next column strip of packed B towards L2 during each strip. */
#define ZEN3_AVX2 {.isa = "avx2", .mc = 168, .nc = 4080, .prefetch_next_b = 1, .in_place_trans_a = 0}

/* AVX-512 on a Zen 5 core (1 MiB L2): the AVX2 blocking (168 is a multiple of the 12-row tile as of the
 * 6-row one, so blocks keep the AVX2 path's cache footprint), without the next-strip prefetch (it cost more
 * than it saved: the VAE's forward and data-gradient GEMMs ran 2-5 % faster without it and a training step
 * 1 % faster, same process, alternating), and a transposed A under a wide C read in place (the 12 x 32 tile:
 * the K = 128 weight gradients 2-6 % faster than with the per-call packing). */
#define ZEN5_AVX512 {.isa = "avx512", .mc = 168, .nc = 4080, .prefetch_next_b = 0, .in_place_trans_a = 1}

/* AVX-512 on a Zen 4 core (32 KiB L1d, 1 MiB L2): the Zen 5 row, with each packed A panel (12 x KC: 16 KiB) run over
 * every B strip of the block before the next panel, so the A panel stays in L1 while the contiguous packed B
 * streams past it (a strip of the 32-column tile, KC x 32 floats, overflows L1, so in the other order both
 * operands came from L2 at every tile): 2048^3 1.03x (quartiles 1.02-1.04, 15 same-process alternations), the
 * batch-1024 layers with a packed A 0.996-1.01x (no change); MC 96 or 336 and NC 512 or 1024 measured no better
 * (0.98-1.02x, with or without it). */
#define ZEN4_AVX512                                                                                               \
    {.isa = "avx512", .mc = 168, .nc = 4080, .prefetch_next_b = 0, .in_place_trans_a = 1, .a_panel_outer = 1}

/* NEON on a Neoverse-N1 / Cortex-A76 class core (64 KiB 4-way L1d, 512 KiB..1 MiB private L2, a shared
 * last-level cache of several MiB), sized, not measured: MC = 120 (15 x MR) makes the packed A block
 * 120 x 400 x 4 = 188 KiB, a comfortable part of L2 even on 512 KiB-L2 parts, each B micro-panel brought into
 * L1 serving 15 tiles; NC = 3072 (256 x NR) makes the packed B block 400 x 3072 x 4 = 4.7 MiB, for the shared
 * last-level cache, reused across every MC block of A. */
#define N1_NEON {.isa = "neon", .mc = 120, .nc = 3072, .prefetch_next_b = 1, .in_place_trans_a = 0}

static const elbo_chip_config chips[] = {
    /* Unknown x86 chips: the Zen 3 AVX2 figures and the Zen 5 AVX-512 ones, the best measured so far. */
    {.name = "generic-x86", .arch = "x86_64", .tuning = {ZEN3_AVX2, ZEN5_AVX512}},
    /* Zen 3 and Zen 3+ (Milan, Vermeer, Cezanne, Rembrandt): family 0x19, models 0x00-0x0f and 0x20-0x5f.
     * No AVX-512: ELBO_CHIP=zen3 on an AVX-512 CPU takes the generic AVX-512 row. */
    {.name = "zen3",
     .arch = "x86_64",
     .x86_vendor = "AuthenticAMD",
     .x86 = {{0x19, 0x00, 0x0f}, {0x19, 0x20, 0x5f}},
     .tuning = {ZEN3_AVX2}},
    /* Zen 4 (Genoa, Raphael, Phoenix, Bergamo/Siena): family 0x19, models 0x10-0x1f, 0x60-0x7f, 0xa0-0xaf.
     * Its AVX-512 row is measured on Genoa (ZEN4_AVX512); the AVX2 table keeps the Zen 3 figures. */
    {.name = "zen4",
     .arch = "x86_64",
     .x86_vendor = "AuthenticAMD",
     .x86 = {{0x19, 0x10, 0x1f}, {0x19, 0x60, 0x7f}, {0x19, 0xa0, 0xaf}},
     .tuning = {ZEN3_AVX2, ZEN4_AVX512}},
    /* Zen 5 (Turin, Granite Ridge, Strix): family 0x1a. The AVX2 table keeps the Zen 3 figures (not measured
     * apart on Zen 5). */
    {.name = "zen5",
     .arch = "x86_64",
     .x86_vendor = "AuthenticAMD",
     .x86 = {{0x1a, 0x00, 0xff}},
     .tuning = {ZEN5_AVX512, ZEN3_AVX2}},
    /* Unknown arm64 chips: the Neoverse-N1 sizing. */
    {.name = "generic-arm64", .arch = "aarch64", .tuning = {N1_NEON}},
    /* Arm Neoverse-N1 (MIDR part 0xd0c) and its client sibling Cortex-A76 (0xd0b), implementer Arm (0x41). */
    {.name = "neoverse-n1", .arch = "aarch64", .arm64 = {{0x41, 0xd0c}, {0x41, 0xd0b}}, .tuning = {N1_NEON}},
    /* Any other architecture: only the scalar reference runs there, and it is not tuned per chip. */
    {.name = "generic", .arch = NULL},
};
#define CHIP_COUNT (sizeof chips / sizeof chips[0])

size_t elbo_chip_count(void)
{
    return CHIP_COUNT;
}

const elbo_chip_config *elbo_chip_at(size_t i)
{
    return i < CHIP_COUNT ? &chips[i] : NULL;
}
