/* Which chip config runs: recognition from cpuid / MIDR, the ELBO_CHIP override, and applying a config's row
 * to an ISA table's blocking. */
#include "chips.h"

#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest packed blocks a row may ask for: far beyond any L2 (A) or last-level cache (B) a block is sized for,
 * so only a typo reaches them. */
#define MAX_PACKED_A_BYTES ((size_t)8 << 20)
#define MAX_PACKED_B_BYTES ((size_t)64 << 20)

/* Whether config c has no signature (the generic config of its architecture). */
static int is_generic(const elbo_chip_config *c)
{
    return !c->x86_vendor && c->arm64[0].implementer == 0;
}

/* The signature-less config whose arch is exactly arch (NULL: the one for any other architecture), or NULL. */
static const elbo_chip_config *generic_of(const char *arch)
{
    for (size_t i = 0; i < elbo_chip_count(); i++) {
        const elbo_chip_config *c = elbo_chip_at(i);
        if (is_generic(c) && (c->arch && arch ? strcmp(c->arch, arch) == 0 : c->arch == arch))
            return c;
    }
    return NULL;
}

const elbo_chip_config *elbo_chip_by_name(const char *name)
{
    for (size_t i = 0; i < elbo_chip_count(); i++)
        if (strcmp(elbo_chip_at(i)->name, name) == 0)
            return elbo_chip_at(i);
    return NULL;
}

/* Whether config c runs on architecture arch (a NULL arch: any architecture without configs of its own). */
static int runs_on(const elbo_chip_config *c, const char *arch)
{
    return c->arch ? arch && strcmp(c->arch, arch) == 0 : !generic_of(arch);
}

const elbo_chip_config *elbo_chip_generic(const char *arch)
{
    const elbo_chip_config *g = generic_of(arch);
    return g ? g : generic_of(NULL);
}

const elbo_chip_config *elbo_chip_recognize_x86(const char *vendor, unsigned family, unsigned model)
{
    for (size_t i = 0; i < elbo_chip_count(); i++) {
        const elbo_chip_config *c = elbo_chip_at(i);
        if (!c->x86_vendor || strcmp(c->x86_vendor, vendor) != 0)
            continue;
        for (size_t s = 0; s < ELBO_CHIP_MAX_SIGNATURES && c->x86[s].family; s++)
            if (c->x86[s].family == family && model >= c->x86[s].model_lo && model <= c->x86[s].model_hi)
                return c;
    }
    return elbo_chip_generic("x86_64");
}

const elbo_chip_config *elbo_chip_recognize_arm64(unsigned implementer, unsigned part)
{
    for (size_t i = 0; i < elbo_chip_count(); i++) {
        const elbo_chip_config *c = elbo_chip_at(i);
        for (size_t s = 0; s < ELBO_CHIP_MAX_SIGNATURES && c->arm64[s].implementer; s++)
            if (c->arm64[s].implementer == implementer && c->arm64[s].part == part)
                return c;
    }
    return elbo_chip_generic("aarch64");
}

const elbo_chip_config *elbo_chip_recognize(const elbo_cpu_features *f)
{
    if (strcmp(f->arch, "x86_64") == 0)
        return elbo_chip_recognize_x86(f->vendor, f->family, f->model_number);
    if (strcmp(f->arch, "aarch64") == 0)
        return elbo_chip_recognize_arm64(f->midr_implementer, f->midr_part);
    return elbo_chip_generic(f->arch);
}

const elbo_chip_config *elbo_chip_choose(const char *forced, const elbo_cpu_features *f, char *err,
                                         size_t errlen)
{
    if (!forced || !*forced)
        return elbo_chip_recognize(f);
    const elbo_chip_config *c = elbo_chip_by_name(forced);
    if (!c) {
        char names[256] = "";
        for (size_t i = 0, n = 0; i < elbo_chip_count() && n < sizeof names; i++)
            if (runs_on(elbo_chip_at(i), f->arch))
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", elbo_chip_at(i)->name);
        snprintf(err, errlen, "ELBO_CHIP=%s: no such chip config (this CPU's: %s)", forced,
                 names[0] ? names : "none");
        return NULL;
    }
    if (!runs_on(c, f->arch)) {
        snprintf(err, errlen, "ELBO_CHIP=%s: a config for %s, this CPU is %s", forced,
                 c->arch ? c->arch : "other architectures", f->arch);
        return NULL;
    }
    return c;
}

static const elbo_chip_config *selected;
static pthread_once_t selected_once = PTHREAD_ONCE_INIT;

/* Decides the selected config once; prints the refusal of a bad ELBO_CHIP on stderr. */
static void select_once(void)
{
    char err[512];
    selected = elbo_chip_choose(getenv("ELBO_CHIP"), elbo_cpu_features_get(), err, sizeof err);
    if (!selected)
        fprintf(stderr, "elbo: %s\n", err);
}

const elbo_chip_config *elbo_chip_selected(void)
{
    pthread_once(&selected_once, select_once);
    return selected;
}

const elbo_chip_tuning *elbo_chip_tuning_for(const elbo_chip_config *chip, const char *isa)
{
    for (size_t i = 0; i < ELBO_CHIP_MAX_TUNINGS && chip->tuning[i].isa; i++)
        if (strcmp(chip->tuning[i].isa, isa) == 0)
            return &chip->tuning[i];
    const elbo_chip_config *generic = elbo_chip_generic(chip->arch);
    return generic != chip ? elbo_chip_tuning_for(generic, isa) : NULL;
}

int elbo_chip_tuning_check(const elbo_chip_tuning *t, const elbo_gemm_blocking *bl, char *err, size_t errlen)
{
    const size_t deepest = bl->kc_single > bl->kc ? bl->kc_single : bl->kc;
    const char *why = NULL;
    if (t->mc < bl->mr || t->mc % bl->mr != 0)
        why = "MC is not a positive multiple of MR";
    else if (t->nc < bl->nr || t->nc % bl->nr != 0)
        why = "NC is not a positive multiple of NR";
    else if (t->mc * bl->kc / deepest < bl->mr)
        why = "MC shrunk for a single deepest K block holds no MR rows (the block would outgrow the workspace)";
    else if (t->nc * bl->kc / deepest < bl->nr)
        why = "NC shrunk for a single deepest K block holds no NR columns (the block would outgrow the workspace)";
    else if (t->mc * bl->kc * sizeof(float) > MAX_PACKED_A_BYTES)
        why = "the packed A block (MC x KC) exceeds 8 MiB";
    else if (t->nc * bl->kc * sizeof(float) > MAX_PACKED_B_BYTES)
        why = "the packed B block (KC x NC) exceeds 64 MiB";
    if (!why)
        return 0;
    snprintf(err, errlen, "%s row MC=%zu NC=%zu under MR=%zu NR=%zu KC=%zu single-block depth %zu: %s", t->isa,
             t->mc, t->nc, bl->mr, bl->nr, bl->kc, bl->kc_single, why);
    return -1;
}

int elbo_chip_apply(const elbo_chip_config *chip, elbo_kernels *k, char *err, size_t errlen)
{
    const elbo_chip_tuning *t = elbo_chip_tuning_for(chip, k->isa);
    if (!t)
        return 0;
    if (elbo_chip_tuning_check(t, &k->blocking, err, errlen) != 0)
        return -1;
    k->blocking.mc = t->mc;
    k->blocking.nc = t->nc;
    k->blocking.prefetch_next_b = t->prefetch_next_b;
    k->blocking.in_place_trans_a = t->in_place_trans_a;
    k->blocking.a_panel_outer = t->a_panel_outer;
    return 0;
}
