/* Sampling rows of the diffusion model (sample/diffusion/ddpm, sample/diffusion/ddim50): a batch of images on the
 * team, each iteration SAMPLE_CHUNK steps of the sampler (cycling through its steps), so that a row is short; images/s
 * = the steps' rate over the sampler's steps per image (1000 for DDPM, 50 for DDIM-50). The network's weights are a
 * fresh initialization: the cost of a step does not depend on them. */
#include "bench_sample.h"

#include <omp.h>
#include <string.h>

#include "diffusion.h"
#include "team.h"

#define SAMPLE_CHUNK 10

/* One row's sampler: DDPM (steps 0) or DDIM with that many steps. */
typedef struct {
    elbo_sampler_kind kind;
    size_t steps;
} sample_row;

static const bench_env *g_env;

/* The row: b images (arg 0) on t threads (arg 1). */
static void run_sample(gbench_state *st, void *user)
{
    const sample_row *row = user;
    size_t b = (size_t)gbench_arg(st, 0), nt = (size_t)gbench_arg(st, 1);
    char err[256];
    elbo_diffusion m;
    elbo_diffusion_activations a;
    elbo_team team;
    elbo_diffusion_config cfg = elbo_diffusion_config_default(28, 28);
    if (elbo_diffusion_init(&m, &cfg, g_env->kern, err, sizeof err)) {
        gbench_skip_with_error(st, err);
        return;
    }
    elbo_params_init(m.params, &m.layout, 1);
    elbo_diffusion_pack_weights(&m);
    if (elbo_diffusion_activations_init(&a, &m, b) || elbo_team_init(&team, nt, g_env->kern, g_env->topo)) {
        gbench_skip_with_error(st, "out of memory");
        elbo_diffusion_free(&m);
        return;
    }
    elbo_team_place_arena(&team, &a.arena);
    size_t n = row->kind == ELBO_SAMPLER_DDPM ? cfg.T : row->steps, i = 0;
#pragma omp parallel num_threads((int)nt) default(none) shared(m, a, team, b, nt)
    {
        size_t t = (size_t)omp_get_thread_num(), r0, r1;
        elbo_team_rows(b, t, nt, &r0, &r1);
        elbo_diffusion_start_rows(&m, &a, 1, 0, r0, r1);
    }
    while (gbench_keep_running(st)) {
        size_t i0 = i, i1 = i + SAMPLE_CHUNK < n ? i + SAMPLE_CHUNK : n;
#pragma omp parallel num_threads((int)nt) default(none) shared(m, a, team, b, nt, row, i0, i1)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            elbo_diffusion_denoise_rows(&m, &a, &team.ws[t], row->kind, row->steps, 1, 0, r0, r1, i0, i1);
        }
        i = i1 == n ? 0 : i1;
    }
    double steps = (double)gbench_iterations(st) * SAMPLE_CHUNK;
    gbench_set_counter(st, "images_per_s", steps * (double)b / (double)n, GBENCH_COUNTER_RATE);
    bench_set_flops(st, g_env, elbo_diffusion_forward_flops(&m) * (double)b * SAMPLE_CHUNK, nt);
    elbo_team_free(&team);
    elbo_diffusion_activations_free(&a);
    elbo_diffusion_free(&m);
}

void bench_sample_register(const bench_env *env)
{
    static const sample_row ddpm = {ELBO_SAMPLER_DDPM, 0}, ddim50 = {ELBO_SAMPLER_DDIM, 50};
    static const struct {
        const char *name;
        const sample_row *row;
    } rows[] = {{"sample/diffusion/ddpm", &ddpm}, {"sample/diffusion/ddim50", &ddim50}};
    g_env = env;
    for (size_t r = 0; r < 2; r++)
        for (size_t t = 1; t <= env->cores; t = t == env->cores ? t + 1 : env->cores) {
            gbench_def d = {.name = rows[r].name, .run = run_sample, .user = (void *)rows[r].row, .n_args = 2,
                            .args = {128, (int64_t)t}, .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
}
