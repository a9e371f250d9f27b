/* `elbo info`: what this CPU can run, which kernels elbo chose, how it was built. */
#include "cli.h"
#include "gemm_bf16.h"

#include "args.h"
#include "cli_common.h"
#include "vae_checkpoint.h"
#include "classifier.h"
#include "diffusion.h"
#include "flow.h"
#include "gan.h"
#include "chips.h"
#include "cpu_features.h"
#include "kernels.h"
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ELBO_BUILD_FLAGS
#define ELBO_BUILD_FLAGS "unknown"
#endif

/* Prints a checkpoint's training state (its GEMMs' precision last). */
static void print_state(const elbo_train_state *st)
{
    printf("training:     %ld steps, %ld epochs, %s lr %g, batch %zu, seed %llu, data %s%s%s, precision %s\n", st->step,
           st->epoch, st->optimizer, st->lr, st->batch, (unsigned long long)st->seed, st->dataset,
           st->classes[0] ? ", classes " : "", st->classes, st->precision == ELBO_PRECISION_BF16 ? "bf16" : "fp32");
}

/* Prints the config and training state of the classifier checkpoint at path; returns the exit status. */
static int print_classifier(const char *path, const elbo_kernels *k)
{
    char err[512], desc[256], hidden[128];
    elbo_classifier m;
    elbo_train_state st;
    if (elbo_classifier_load(path, &m, k, &st, err, sizeof err)) {
        fprintf(stderr, "elbo info: %s\n", err);
        return 2;
    }
    elbo_classifier_config_describe(&m.cfg, desc, sizeof desc);
    elbo_format_widths(hidden, sizeof hidden, m.cfg.hidden, m.cfg.n_hidden);
    printf("checkpoint:   %s\n", path);
    printf("model:        %s (%zu parameters)\n", desc, elbo_param_layout_count(&m.layout));
    printf("  input_dim %zu, hidden %s, classes %zu\n", m.cfg.input_dim, hidden, m.cfg.classes);
    print_state(&st);
    elbo_classifier_free(&m);
    return 0;
}

/* Prints the config and training state of the GAN checkpoint at path; returns the exit status. */
static int print_gan(const char *path, const elbo_kernels *k)
{
    char err[512], desc[256], g[128], d[128];
    elbo_gan m;
    elbo_train_state st;
    if (elbo_gan_load(path, &m, k, &st, err, sizeof err)) {
        fprintf(stderr, "elbo info: %s\n", err);
        return 2;
    }
    elbo_gan_config_describe(&m.cfg, desc, sizeof desc);
    elbo_format_widths(g, sizeof g, m.cfg.g_hidden, m.cfg.n_g);
    elbo_format_widths(d, sizeof d, m.cfg.d_hidden, m.cfg.n_d);
    printf("checkpoint:   %s\n", path);
    printf("model:        %s (%zu parameters)\n", desc, elbo_param_layout_count(&m.layout));
    printf("  images %zux%zu, latent %zu, generator %s, discriminator %s, LeakyReLU slope %g, Adam betas %g, %g\n",
           m.cfg.image_rows, m.cfg.image_cols, m.cfg.latent, g, d, m.cfg.slope, m.cfg.adam_beta1, m.cfg.adam_beta2);
    print_state(&st);
    elbo_gan_free(&m);
    return 0;
}

/* Prints the config and training state of the diffusion checkpoint at path; returns the exit status. */
static int print_diffusion(const char *path, const elbo_kernels *k)
{
    char err[512], desc[256];
    elbo_diffusion m;
    elbo_train_state st;
    if (elbo_diffusion_load(path, &m, k, &st, err, sizeof err)) {
        fprintf(stderr, "elbo info: %s\n", err);
        return 2;
    }
    const elbo_diffusion_config *c = &m.cfg;
    elbo_diffusion_config_describe(c, desc, sizeof desc);
    printf("checkpoint:   %s\n", path);
    printf("model:        %s (%zu parameters, and their moving average)\n", desc, elbo_param_layout_count(&m.layout));
    printf("  images %zux%zu, hidden %zu, %zu blocks, time embedding %zu -> %zu, %zu steps, %s beta %g .. %g, EMA "
           "decay %g\n", c->image_rows, c->image_cols, c->hidden, c->n_blocks, c->emb_dim, c->time_dim, c->T,
           elbo_schedule_name(c->schedule), c->beta_1, c->beta_T, c->ema_decay);
    print_state(&st);
    elbo_diffusion_free(&m);
    return 0;
}

/* Prints the config and training state of the flow checkpoint at path; returns the exit status. */
static int print_flow(const char *path, const elbo_kernels *k)
{
    char err[512], desc[256], h[128];
    elbo_flow m;
    elbo_train_state st;
    if (elbo_flow_load(path, &m, k, &st, err, sizeof err)) {
        fprintf(stderr, "elbo info: %s\n", err);
        return 2;
    }
    elbo_flow_config_describe(&m.cfg, desc, sizeof desc);
    elbo_format_widths(h, sizeof h, m.cfg.hidden, m.cfg.n_hidden);
    printf("checkpoint:   %s\n", path);
    printf("model:        %s (%zu parameters)\n", desc, elbo_param_layout_count(&m.layout));
    printf("  images %zux%zu, %zu couplings, mask %s, hidden %s, logit alpha %g\n", m.cfg.image_rows, m.cfg.image_cols,
           m.cfg.couplings, elbo_flow_mask_name(m.cfg.mask), h, m.cfg.alpha);
    print_state(&st);
    elbo_flow_free(&m);
    return 0;
}

/* Prints the model config and training state of the checkpoint at path (any kind); returns the exit status. */
static int print_checkpoint(const char *path, const elbo_kernels *k)
{
    char err[512], desc[256], enc[128], dec[128], kind[32];
    elbo_vae m;
    elbo_train_state st;
    if (elbo_checkpoint_model_kind(path, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "classifier"))
        return print_classifier(path, k);
    if (elbo_checkpoint_model_kind(path, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "gan"))
        return print_gan(path, k);
    if (elbo_checkpoint_model_kind(path, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "diffusion"))
        return print_diffusion(path, k);
    if (elbo_checkpoint_model_kind(path, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "flow"))
        return print_flow(path, k);
    if (elbo_checkpoint_load(path, &m, k, &st, err, sizeof err)) {
        fprintf(stderr, "elbo info: %s\n", err);
        return 2;
    }
    elbo_vae_config_describe(&m.cfg, desc, sizeof desc);
    elbo_format_widths(enc, sizeof enc, m.cfg.enc_hidden, m.cfg.n_enc);
    elbo_format_widths(dec, sizeof dec, m.cfg.dec_hidden, m.cfg.n_dec);
    printf("checkpoint:   %s\n", path);
    printf("model:        %s (%zu parameters)\n", desc, elbo_param_layout_count(&m.layout));
    printf("  input_dim %zu, encoder %s, latent %zu, decoder %s, recon %s, sigma0 %g, beta %g\n", m.cfg.input_dim,
           enc, m.cfg.latent, dec, elbo_recon_name(m.cfg.recon), m.cfg.sigma0, m.cfg.beta);
    print_state(&st);
    elbo_vae_free(&m);
    return 0;
}

int cli_info(int argc, char **argv)
{
    const char *load = NULL, *synthetic = NULL;
    int topology = 0;
    size_t threads = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "also print the model config and training state of a checkpoint", 0, 0,
         "none", 0, 0},
        {"topology", ARG_FLAG, &topology, NULL, "also print the hwloc topology, binding support and thread placement",
         0, 0, NULL, 0, 0},
        {"threads", ARG_SIZE, &threads, "N", "threads to plan with --topology", 1, 1 << 20,
         "OMP_NUM_THREADS, else one per core", 0, 0},
        {"synthetic", ARG_STRING, &synthetic, "DESC",
         "with --topology: an hwloc synthetic topology or XML file, not this machine", 0, 0, "none", 0, 0},
    };
    cli_parse_result pr = cli_parse("info", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Prints the CPU model and SIMD features detected, the kernel path chosen "
                                    "(override with\nELBO_ISA=scalar|avx2|avx512|neon), the chip config tuning it "
                                    "(override with ELBO_CHIP=name),\nthe GEMM microkernel and its blocking, the "
                                    "threads used, and the build flags.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    elbo_topology *topo = NULL;
    if (topology || synthetic || opts[2].seen) { /* opened first, so a bad --synthetic prints nothing else */
        char err[512];
        if (!(topo = elbo_topology_open(synthetic, err, sizeof err))) {
            fprintf(stderr, "elbo info: %s\n", err);
            return 2;
        }
    }
    const elbo_cpu_features *f = elbo_cpu_features_get();
    printf("cpu:          %s (%s)\n", f->model, f->arch);
    printf("features:     avx2=%s fma=%s avx512f=%s neon=%s\n", f->avx2 ? "yes" : "no", f->fma ? "yes" : "no",
           f->avx512f ? "yes" : "no", f->neon ? "yes" : "no");
    printf("isa paths:   ");
    for (size_t i = 0; elbo_kernels_available(i); i++)
        printf(" %s", elbo_kernels_available(i)->isa);
    printf("\n");
    const elbo_kernels *k = elbo_kernels_select();
    if (!k) {
        elbo_topology_close(topo);
        return 2;
    }
    const elbo_gemm_blocking *b = &k->blocking;
    const elbo_chip_config *chip = elbo_kernels_chip();
    printf("isa chosen:   %s\n", k->isa);
    if (strcmp(f->arch, "x86_64") == 0)
        printf("chip config:  %s (%s, %s family 0x%x model 0x%x)\n", chip->name,
               getenv("ELBO_CHIP") && *getenv("ELBO_CHIP") ? "ELBO_CHIP" : "recognized", f->vendor, f->family,
               f->model_number);
    else
        printf("chip config:  %s (%s, MIDR implementer 0x%x part 0x%x)\n", chip->name,
               getenv("ELBO_CHIP") && *getenv("ELBO_CHIP") ? "ELBO_CHIP" : "recognized", f->midr_implementer,
               f->midr_part);
    printf("gemm kernel:  %s (MR=%zu NR=%zu MC=%zu KC=%zu NC=%zu, prefetch_next_b=%d in_place_trans_a=%d "
           "a_panel_outer=%d)\n",
           k->gemm_ukernel_name, b->mr, b->nr, b->mc, b->kc, b->nc, b->prefetch_next_b, b->in_place_trans_a,
           b->a_panel_outer);
    if (elbo_gemm_bf16_missing(k))
        printf("bf16 gemm:    no (this CPU lacks %s; --precision bf16 needs it, or ELBO_ISA=scalar's emulation)\n",
               elbo_gemm_bf16_missing(k));
    else
        printf("bf16 gemm:    %s (MR=%zu NR=%zu; --precision bf16)\n", k->gemm_bf16_ukernel_name, k->bf16_mr,
               k->bf16_nr);
    printf("compiler:     %s\n", __VERSION__);
    elbo_topology *here = topo && !synthetic ? topo : cli_open_topology("info");
    printf("threads:      %zu (%s)\n", cli_default_threads(here),
           getenv("OMP_NUM_THREADS") ? "OMP_NUM_THREADS" : "one per physical core; --threads to change");
    if (here && here != topo)
        elbo_topology_close(here);
    printf("build flags:  %s\n", ELBO_BUILD_FLAGS);
    if (topo) {
        elbo_topology_print(topo, threads, stdout);
        elbo_topology_close(topo);
    }
    return load ? print_checkpoint(load, k) : 0;
}
