/* Same-process A/B of elbo's GEMM: the working tree's kernels ("new") against those of a base commit ("old",
 * compiled from its gemm.c and gemm_avx512.c with ab_old_ prefixes, build_ab.sh), oneDNN's dnnl_sgemm, and the
 * FMA peak loop, one timed window each per repetition in rotating order. Prints per shape the medians and
 * quartiles over the repetitions of: new/old speed, new/onednn speed, new's share of the FMA peak.
 * Times are the thread's CPU time (AB_WALL=1: wall time), so time sliced away to other load does not count.
 * usage: ab_gemm REPS shape... (shape: name:m:n:k:ta:tb:w, w 1 = B packed once as a weight) */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "fma_peak.h"
#include "gemm.h"
#include "kernels.h"

void ab_old_elbo_gemm(const elbo_kernels *, elbo_gemm_workspace *, size_t, size_t, size_t, float, elbo_operand,
                      elbo_operand, float, float *, size_t, const elbo_epilogue *);
void ab_old_elbo_gemm_packed(const elbo_kernels *, elbo_gemm_workspace *, size_t, size_t, size_t, float,
                             elbo_operand, const elbo_packed_b *, float, float *, size_t, const elbo_epilogue *);
void ab_old_elbo_gemm_register_avx512(elbo_kernels *);

/* n floats; AB_HUGE=1: 2 MiB aligned and advised to huge pages. */
static float *alloc_f(size_t n)
{
    if (!getenv("AB_HUGE"))
        return malloc(n * 4);
    size_t bytes = (n * 4 + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    float *p = aligned_alloc(2u << 20, bytes);
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(getenv("AB_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void quart(double *v, int n, double *q)
{
    qsort(v, n, sizeof *v, cmp);
    q[0] = v[n / 4];
    q[1] = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    q[2] = v[(3 * n) / 4];
}

typedef struct {
    size_t m, n, k, lda, ldb;
    int ta, tb, w;
    float *a, *b, *c;
    elbo_packed_b pb_new, pb_old;
} shape;

static const elbo_kernels *knew;
static elbo_kernels knew_copy;
static elbo_kernels kold;
static elbo_gemm_workspace ws_new, ws_old;

static void run(shape *s, int v)
{
    elbo_operand a = elbo_operand_f32(s->a, s->lda, s->ta), b = elbo_operand_f32(s->b, s->ldb, s->tb);
    if (v == 0) {
        if (s->w)
            elbo_gemm_packed(knew, &ws_new, s->m, s->n, s->k, 1.0f, a, &s->pb_new, 0.0f, s->c, s->n, NULL);
        else
            elbo_gemm(knew, &ws_new, s->m, s->n, s->k, 1.0f, a, b, 0.0f, s->c, s->n, NULL);
    } else if (v == 1) {
        if (s->w)
            ab_old_elbo_gemm_packed(&kold, &ws_old, s->m, s->n, s->k, 1.0f, a, &s->pb_old, 0.0f, s->c, s->n, NULL);
        else
            ab_old_elbo_gemm(&kold, &ws_old, s->m, s->n, s->k, 1.0f, a, b, 0.0f, s->c, s->n, NULL);
    } else {
        dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, 1.0f, s->a, s->lda, s->b, s->ldb, 0.0f,
                   s->c, s->n);
    }
}

/* Seconds per call of variant v (3: flops/s of the FMA loop instead), over a window of `win` seconds. */
static double timed(shape *s, int v, double win)
{
    if (v == 3) {
        double t0 = now(), fl = 0;
        while (now() - t0 < win)
            fl += fma_peak_avx512_run(20000);
        return fl / (now() - t0);
    }
    run(s, v);
    size_t calls = 0;
    double t0 = now(), t;
    do {
        run(s, v);
        calls++;
    } while ((t = now() - t0) < win);
    return t / calls;
}

int main(int argc, char **argv)
{
    int reps = atoi(argv[1]);
    knew = elbo_kernels_by_name(getenv("AB_ISA") ? getenv("AB_ISA") : "avx512");
    if (getenv("AB_TMAXN")) { /* new's transposed_c_max_n */
        knew_copy = *knew;
        knew_copy.blocking.transposed_c_max_n = (size_t)atoi(getenv("AB_TMAXN"));
        knew = &knew_copy;
    }
    /* AB_NEW_MC / AB_NEW_NC: new's MC, NC (a copy of the table) */
    if (getenv("AB_NEW_MC") || getenv("AB_NEW_NC") || getenv("AB_NEW_APO")) {
        if (knew != &knew_copy)
            knew_copy = *knew;
        if (getenv("AB_NEW_MC"))
            knew_copy.blocking.mc = (size_t)atoi(getenv("AB_NEW_MC"));
        if (getenv("AB_NEW_APO"))
            knew_copy.blocking.a_panel_outer = 1;
        if (getenv("AB_NEW_NC"))
            knew_copy.blocking.nc = (size_t)atoi(getenv("AB_NEW_NC"));
        knew = &knew_copy;
    }
    kold = *knew;
    elbo_kernels t = *knew;
    ab_old_elbo_gemm_register_avx512(&t);
    kold.gemm_ukernel = t.gemm_ukernel;
    kold.gemm_ukernel_strided_a = t.gemm_ukernel_strided_a;
    kold.gemm_ukernel_wide = t.gemm_ukernel_wide;
    kold.gemm_ukernel_narrow = t.gemm_ukernel_narrow;
    elbo_gemm_workspace_init(&ws_new, knew);
    elbo_gemm_workspace_init(&ws_old, &kold);
    /* AB_NEW_PACK_A / AB_OLD_PACK_A: 1 always pack A, 0 never (default: the heuristic); AB_OLD_SAME=1: old runs
     * the working tree's kernels too (to compare policies). */
    const char *pn = getenv("AB_NEW_PACK_A"), *po = getenv("AB_OLD_PACK_A");
    if (pn)
        ws_new.pack_a = *pn == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
    if (po)
        ws_old.pack_a = *po == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
    const char *bn = getenv("AB_NEW_PACK_B"), *bo = getenv("AB_OLD_PACK_B");
    if (bn)
        ws_new.pack_b = *bn == '1' ? ELBO_PACK_B_ALWAYS : ELBO_PACK_B_NEVER;
    if (bo)
        ws_old.pack_b = *bo == '1' ? ELBO_PACK_B_ALWAYS : ELBO_PACK_B_NEVER;
    if (getenv("AB_WS_HUGE")) { /* new's workspace in huge pages */
        size_t na = ws_new.packed_a_floats, nb = ws_new.packed_b_floats;
        const char *h = getenv("AB_HUGE");
        setenv("AB_HUGE", "1", 1);
        ws_new.packed_a = alloc_f(na);
        ws_new.packed_b = alloc_f(nb);
        if (!h)
            unsetenv("AB_HUGE");
    }
    if (getenv("AB_OLD_SAME")) {
        kold = *elbo_kernels_by_name(getenv("AB_ISA") ? getenv("AB_ISA") : "avx512");
        kold.blocking.transposed_c_max_n = knew->blocking.transposed_c_max_n;
        elbo_gemm_workspace_free(&ws_old);
        elbo_gemm_workspace_init(&ws_old, &kold);
        if (po)
            ws_old.pack_a = *po == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
        if (bo)
            ws_old.pack_b = *bo == '1' ? ELBO_PACK_B_ALWAYS : ELBO_PACK_B_NEVER;
    }
    double win = getenv("AB_WIN") ? atof(getenv("AB_WIN")) : 0.02;
    for (int ai = 2; ai < argc; ai++) {
        shape s = {0};
        char name[64];
        if (sscanf(argv[ai], "%63[^:]:%zu:%zu:%zu:%d:%d:%d", name, &s.m, &s.n, &s.k, &s.ta, &s.tb, &s.w) != 7)
            return 2;
        s.lda = s.ta ? s.m : s.k;
        s.ldb = s.tb ? s.k : s.n;
        s.a = alloc_f(s.m * s.k);
        s.b = alloc_f(s.k * s.n);
        s.c = alloc_f(s.m * s.n);
        for (size_t i = 0; i < s.m * s.k; i++)
            s.a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < s.k * s.n; i++)
            s.b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        elbo_packed_b_alloc(&s.pb_new, knew, s.k, s.n);
        elbo_packed_b_alloc(&s.pb_old, &kold, s.k, s.n);
        elbo_pack_b(&s.pb_new, elbo_operand_f32(s.b, s.ldb, s.tb));
        elbo_pack_b(&s.pb_old, elbo_operand_f32(s.b, s.ldb, s.tb));
        /* bits check: new == old */
        float *c2 = malloc(s.m * s.n * 4);
        run(&s, 1);
        memcpy(c2, s.c, s.m * s.n * 4);
        run(&s, 0);
        int same = memcmp(c2, s.c, s.m * s.n * 4) == 0;
        double *r_old = malloc(reps * 8), *r_dnn = malloc(reps * 8), *r_pk = malloc(reps * 8), *g = malloc(reps * 8);
        double flops = 2.0 * s.m * s.n * s.k;
        for (int r = 0; r < reps; r++) {
            double tv[4];
            for (int j = 0; j < 4; j++) {
                int v = (j + r) % 4;
                tv[v] = timed(&s, v, win);
            }
            r_old[r] = tv[1] / tv[0];
            r_dnn[r] = tv[2] / tv[0];
            r_pk[r] = flops / tv[0] / tv[3];
            g[r] = flops / tv[0] / 1e9;
        }
        double qo[3], qd[3], qp[3], qg[3];
        quart(r_old, reps, qo);
        quart(r_dnn, reps, qd);
        quart(r_pk, reps, qp);
        quart(g, reps, qg);
        printf("%-22s %4zux%4zux%4zu %c%c bits %s | new/old %.3f [%.3f %.3f] | new/onednn %.3f [%.3f %.3f] | "
               "new %%peak %.1f [%.1f %.1f] | new GFLOP/s %.1f\n",
               name, s.m, s.n, s.k, s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', same ? "same" : "DIFFER", qo[1], qo[0], qo[2],
               qd[1], qd[0], qd[2], 100 * qp[1], 100 * qp[0], 100 * qp[2], qg[1]);
        fflush(stdout);
    }
    return 0;
}
