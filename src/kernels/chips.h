/* Per-microarchitecture tuning, BLIS style (config/<chip>/bli_cntx_init_<chip>.c): a chip reuses an ISA's
 * microkernels with its own cache blocking and flags. The table is chips.c; recognition, ELBO_CHIP and
 * applying a config to an ISA table are chip_select.c.
 *
 * Only what leaves every C element's summation order alone may vary per chip: MC and NC (how C and the packed
 * blocks are traversed), prefetch_next_b (a cache hint), a_panel_outer (the order tiles are visited in) and
 * in_place_trans_a (where A is read from, not how it
 * is summed). The K blocking (KC and the single-block depth) fixes the order of each element's sum, so it is
 * one constant shared by every FMA table and every chip (gemm_depth.h), and no chip row carries it. */
#ifndef ELBO_CHIPS_H
#define ELBO_CHIPS_H

#include <stddef.h>

#include "cpu_features.h"
#include "ukernel.h"

struct elbo_kernels;

#define ELBO_CHIP_MAX_TUNINGS 3
#define ELBO_CHIP_MAX_SIGNATURES 4

/* A chip's tuning of one ISA table. */
typedef struct {
    const char *isa;      /* the table tuned: "avx2", "avx512", "neon"; NULL ends a chip's list */
    size_t mc, nc;        /* rows of A per packed block (multiple of the table's MR), columns of B (of NR) */
    int prefetch_next_b;  /* elbo_gemm_blocking.prefetch_next_b */
    int in_place_trans_a; /* elbo_gemm_blocking.in_place_trans_a */
    int a_panel_outer;    /* elbo_gemm_blocking.a_panel_outer */
} elbo_chip_tuning;

/* An x86 family with a model range [model_lo, model_hi] (display values); family 0 ends a list. */
typedef struct {
    unsigned family, model_lo, model_hi;
} elbo_chip_x86_models;

/* An arm64 MIDR implementer and part number; implementer 0 ends a list. */
typedef struct {
    unsigned implementer, part;
} elbo_chip_arm64_part;

/* One chip family: how it is recognized and how it tunes each ISA table it runs. A generic config (no
 * signature) is what unknown chips of its architecture get; a chip without a row for some ISA of its
 * architecture takes the generic config's row. The scalar reference is not tuned per chip. */
typedef struct {
    const char *name;       /* "zen3", "generic-x86", ... (ELBO_CHIP, `elbo info`, the bench's chip_config) */
    const char *arch;       /* elbo_cpu_features.arch it runs on: "x86_64", "aarch64"; NULL: any other */
    const char *x86_vendor; /* cpuid vendor string the x86 signatures belong to; NULL: none */
    elbo_chip_x86_models x86[ELBO_CHIP_MAX_SIGNATURES];
    elbo_chip_arm64_part arm64[ELBO_CHIP_MAX_SIGNATURES];
    elbo_chip_tuning tuning[ELBO_CHIP_MAX_TUNINGS + 1];
} elbo_chip_config;

/* The table (chips.c): config i for i < elbo_chip_count(). */
size_t elbo_chip_count(void);
const elbo_chip_config *elbo_chip_at(size_t i);
/* The config named name, or NULL. */
const elbo_chip_config *elbo_chip_by_name(const char *name);
/* The generic config of an architecture ("x86_64", "aarch64"; for any other, the untuned "generic"). */
const elbo_chip_config *elbo_chip_generic(const char *arch);

/* Recognition as pure functions of what the CPU reports: an x86 vendor string with display family and model,
 * an arm64 MIDR implementer and part. Unknown chips get the architecture's generic config. */
const elbo_chip_config *elbo_chip_recognize_x86(const char *vendor, unsigned family, unsigned model);
const elbo_chip_config *elbo_chip_recognize_arm64(unsigned implementer, unsigned part);
/* The config of the CPU f describes (its architecture's generic one for unknown chips). */
const elbo_chip_config *elbo_chip_recognize(const elbo_cpu_features *f);

/* The config to run: the one named by forced when forced is non-empty (the ELBO_CHIP value), else the one
 * recognized from f. An unknown name, or a config of another architecture, is refused: NULL, and one line
 * (no newline) in err. */
const elbo_chip_config *elbo_chip_choose(const char *forced, const elbo_cpu_features *f, char *err,
                                         size_t errlen);
/* elbo_chip_choose(getenv("ELBO_CHIP"), this CPU), decided once and cached (thread-safe; the kernel tables
 * are built with it); a refusal prints its line on stderr once and returns NULL from then on. */
const elbo_chip_config *elbo_chip_selected(void);

/* The config the kernel tables were built with (dispatch.c): elbo_chip_selected(), or the recognized one when
 * ELBO_CHIP was refused. What `elbo info` and the bench report. */
const elbo_chip_config *elbo_kernels_chip(void);

/* The row of chip that applies to the ISA table named isa: the chip's own, else its architecture's generic
 * config's; NULL when the ISA is not tuned per chip (scalar, or an ISA of another architecture). */
const elbo_chip_tuning *elbo_chip_tuning_for(const elbo_chip_config *chip, const char *isa);
/* Whether row t suits a table with blocking bl (register tile and K blocking set): MC a positive multiple of
 * MR and NC of NR, blocks that still hold a whole register tile when a single K block is deeper than KC (the
 * packed blocks then shrink in proportion, gemm.c, and must stay within the workspace sized from MC x KC and
 * KC x NC), and packed blocks of sane sizes. Returns 0, or -1 with one line in err. */
int elbo_chip_tuning_check(const elbo_chip_tuning *t, const elbo_gemm_blocking *bl, char *err, size_t errlen);
/* Applies chip's row for k's ISA (elbo_chip_tuning_for) to k->blocking: MC, NC and the flags; the register
 * tile and the K blocking stay. Returns 0 (also when no row applies: k is left alone), or -1 with one line in
 * err when the row does not suit k (elbo_chip_tuning_check). */
int elbo_chip_apply(const elbo_chip_config *chip, struct elbo_kernels *k, char *err, size_t errlen);

#endif
