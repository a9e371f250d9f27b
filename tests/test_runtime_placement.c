/* Where the trainer puts its threads and its memory, on a synthetic topology of two NUMA nodes (two packages of
 * one node and two cores each) that hwloc is told is this machine (HWLOC_THISSYSTEM=1), so the trainer takes
 * its real binding path. This binary is linked with -Wl,--wrap=hwloc_set_cpubind,--wrap=hwloc_set_area_membind
 * (Makefile): the library's calls land in the __wrap_ functions below, which record them (the set, the address
 * range, the policy, the calling thread) and return success without binding anything, since the synthetic PU
 * and node indices are not this machine's.
 *
 * For 2, 3 and 4 threads the records must say: every thread t of the trainer's team binds itself to
 * plan[t].pu_os (elbo_topology_plan on the same topology); every whole page inside thread t's rows of every
 * activation buffer (the rows elbo_team_rows gives thread t, as the training step uses them) is bound to
 * plan[t]'s node, by thread t; pages that straddle two threads' rows or the buffer's ends are bound by nobody
 * (they are placed by the first touch of one of the owners); the parameters, gradients, both Adam moments and
 * every packed weight are interleaved over both nodes, whole pages; and nothing else is bound. */
#include "test_util.h"

#include <hwloc.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "optim.h"
#include "params.h"
#include "team.h"
#include "topology.h"
#include "train.h"
#include "vae.h"

/* 2 packages x 1 NUMA node x 2 cores x 1 PU: PUs 0-1 on node 0, PUs 2-3 on node 1 (synthetic descriptions number
 * PUs and nodes in order, OS index = logical index). */
#define TWO_NODES "package:2 numa:1 core:2 pu:1"
#define ALL_NODES "0-1" /* the nodeset of both nodes as an hwloc list: what interleaving must name */
/* Rows of the activation buffers. kl and recon have 4 bytes a row, so with 4 threads each thread's 2050 rows are
 * 8200 bytes, at least one whole 4 KiB page wherever they start (checked by check_rows). The views of the arenas
 * start on page boundaries; 8200 = 8 * 1025 rows make the row blocks of 2, 3 and 4 threads end inside pages
 * (2050 rows of 4 bytes are 2 pages and 8 bytes), so every case has pages shared by two threads' rows. */
#define BATCH 8200

/* One recorded call of a wrapped hwloc function. */
typedef struct {
    int membind;        /* 0: hwloc_set_cpubind, 1: hwloc_set_area_membind */
    uintptr_t lo, hi;   /* membind: the address range [lo, hi) */
    char set[64];       /* the cpuset or nodeset as an hwloc list ("2", "0-1") */
    int policy, flags;  /* policy: membind only */
    int omp_thread;     /* omp_get_thread_num() of the caller */
    pthread_t thread;   /* the calling thread */
    int used;           /* matched by a check (every membind must be) */
} call_record;

#define MAX_RECORDS 4096 /* a trainer of 4 threads makes about 100 calls */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static call_record recs[MAX_RECORDS];
static size_t n_recs, lost_recs; /* recorded; beyond MAX_RECORDS (a failure) */

/* Appends r to the records (thread-safe), counting it as lost when they are full. */
static void record(const call_record *r)
{
    pthread_mutex_lock(&rec_lock);
    if (n_recs < MAX_RECORDS)
        recs[n_recs++] = *r;
    else
        lost_recs++;
    pthread_mutex_unlock(&rec_lock);
}

/* Forgets every record. */
static void records_reset(void)
{
    n_recs = lost_recs = 0;
}

int __wrap_hwloc_set_cpubind(hwloc_topology_t topology, hwloc_const_cpuset_t set, int flags);
int __wrap_hwloc_set_area_membind(hwloc_topology_t topology, const void *addr, size_t len, hwloc_const_bitmap_t set,
                                  hwloc_membind_policy_t policy, int flags);

/* Stands in for hwloc_set_cpubind: records the cpuset, flags and calling thread; binds nothing. */
int __wrap_hwloc_set_cpubind(hwloc_topology_t topology, hwloc_const_cpuset_t set, int flags)
{
    (void)topology;
    call_record r = {.membind = 0, .flags = flags, .omp_thread = omp_get_thread_num(), .thread = pthread_self()};
    hwloc_bitmap_list_snprintf(r.set, sizeof r.set, set);
    record(&r);
    return 0;
}

/* Stands in for hwloc_set_area_membind: records the range, nodeset, policy, flags and calling thread; moves
 * nothing. */
int __wrap_hwloc_set_area_membind(hwloc_topology_t topology, const void *addr, size_t len, hwloc_const_bitmap_t set,
                                  hwloc_membind_policy_t policy, int flags)
{
    (void)topology;
    call_record r = {.membind = 1, .lo = (uintptr_t)addr, .hi = (uintptr_t)addr + len, .policy = (int)policy,
                     .flags = flags, .omp_thread = omp_get_thread_num(), .thread = pthread_self()};
    hwloc_bitmap_list_snprintf(r.set, sizeof r.set, set);
    record(&r);
    return 0;
}

/* A trainer on the two-node topology, with the thread plan it should follow. */
typedef struct {
    elbo_topology *topo;
    elbo_vae model;
    elbo_trainer tr;
    size_t n;
    elbo_thread_place *plan; /* (n) elbo_topology_plan of the same topology */
    pthread_t *bound;        /* (n) the thread that bound itself as team thread t */
    size_t page;
} fixture;

/* Opens the two-node topology as this machine's, builds a 256-128-16 model (every layer's packed weights span
 * whole pages: the smallest, 16 x 128 floats, is 8 KiB) and an Adam trainer of n threads on it, recording the
 * binding calls of elbo_trainer_init only. */
static void setup(fixture *f, size_t n)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->page = (size_t)sysconf(_SC_PAGESIZE);
    char err[256] = "";
    setenv("HWLOC_THISSYSTEM", "1", 1);
    f->topo = elbo_topology_open(TWO_NODES, err, sizeof err);
    unsetenv("HWLOC_THISSYSTEM");
    if (!f->topo)
        test_failf("open '%s': %s\n", TWO_NODES, err);
    assert_int_equal(elbo_topology_is_this_machine(f->topo), 1);
    assert_int_equal(elbo_topology_numa_nodes(f->topo), 2);
    /* the team leaves binding to OpenMP when these pin threads; this test checks elbo's own binding */
    unsetenv("OMP_PROC_BIND");
    unsetenv("OMP_PLACES");

    f->plan = calloc(n, sizeof *f->plan);
    f->bound = calloc(n, sizeof *f->bound);
    assert_non_null(f->plan);
    assert_non_null(f->bound);
    assert_int_equal(elbo_topology_plan(f->topo, n, f->plan, err, sizeof err), 0);
    /* with two threads or more the plan uses both nodes (it deals threads to the least loaded node), so a thread
     * placed on the other thread's node is visible */
    assert_int_equal(f->plan[0].numa_os, 0);
    assert_int_equal(f->plan[n - 1].numa_os, 1);

    elbo_vae_config c = elbo_vae_config_default(256);
    c.n_enc = 1;
    c.enc_hidden[0] = 128;
    c.latent = 16;
    c.n_dec = 1;
    c.dec_hidden[0] = 128;
    if (elbo_vae_init(&f->model, &c, test_kernels(), err, sizeof err))
        test_failf("model: %s\n", err);
    elbo_params_init(f->model.params, &f->model.layout, 7);
    elbo_vae_pack_weights(&f->model);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    records_reset();
    elbo_model mm = elbo_vae_model(&f->model);
    if (elbo_trainer_init(&f->tr, &mm, &oc, BATCH, 1, 0, n, f->topo, err, sizeof err))
        test_failf("trainer: %s\n", err);
    if (lost_recs)
        test_failf("%zu threads: more than %d binding calls\n", n, MAX_RECORDS);
}

/* Frees what setup made and the records. */
static void teardown(fixture *f)
{
    elbo_trainer_free(&f->tr);
    elbo_vae_free(&f->model);
    elbo_topology_close(f->topo);
    free(f->plan);
    free(f->bound);
    records_reset();
}

/* Every team thread t bound itself, once, from its own thread, to the single PU plan[t].pu_os; fills f->bound. */
static void check_thread_binds(fixture *f)
{
    size_t seen = 0;
    for (size_t t = 0; t < f->n; t++)
        if (f->tr.team.place[t].pu_os != f->plan[t].pu_os || f->tr.team.place[t].numa_node != f->plan[t].numa_node)
            test_failf("%zu threads: the team places thread %zu on PU %d node %d, the plan on PU %d node %d\n", f->n,
                       t, f->tr.team.place[t].pu_os, f->tr.team.place[t].numa_node, f->plan[t].pu_os,
                       f->plan[t].numa_node);
    for (size_t i = 0; i < n_recs; i++) {
        const call_record *r = &recs[i];
        if (r->membind)
            continue;
        if (r->omp_thread < 0 || (size_t)r->omp_thread >= f->n)
            test_failf("%zu threads: a thread bound from outside the team (OpenMP thread %d)\n", f->n, r->omp_thread);
        size_t t = (size_t)r->omp_thread;
        char want[16];
        snprintf(want, sizeof want, "%d", f->plan[t].pu_os);
        if (strcmp(r->set, want) != 0 || !(r->flags & HWLOC_CPUBIND_THREAD))
            test_failf("%zu threads: thread %zu bound to cpuset %s (flags %#x), the plan says PU %s with "
                       "HWLOC_CPUBIND_THREAD\n", f->n, t, r->set, (unsigned)r->flags, want);
        for (size_t j = 0; j < i; j++)
            if (!recs[j].membind && (recs[j].omp_thread == r->omp_thread || pthread_equal(recs[j].thread, r->thread)))
                test_failf("%zu threads: team thread %zu bound twice, or two team threads share an OS thread\n",
                           f->n, t);
        f->bound[t] = r->thread;
        seen++;
    }
    if (seen != f->n)
        test_failf("%zu threads: %zu thread bindings recorded, want one per thread\n", f->n, seen);
}

/* The name of a membind policy, for messages. */
static const char *policy_name(int policy)
{
    return policy == HWLOC_MEMBIND_BIND ? "BIND" : policy == HWLOC_MEMBIND_INTERLEAVE ? "INTERLEAVE" : "another policy";
}

/* The membind record covering any byte of [lo, hi) (a page of buffer `name`, at byte `at` of it), or NULL; fails
 * if two do. */
static call_record *covering(const fixture *f, const char *name, long at, uintptr_t lo, uintptr_t hi)
{
    call_record *found = NULL;
    for (size_t i = 0; i < n_recs; i++)
        if (recs[i].membind && recs[i].lo < hi && lo < recs[i].hi) {
            if (found)
                test_failf("%zu threads: %s: byte %ld is in two membind calls, by threads %d and %d to nodesets %s "
                           "and %s\n", f->n, name, at, found->omp_thread, recs[i].omp_thread, found->set, recs[i].set);
            found = &recs[i];
        }
    return found;
}

/* Checks buffer `name` of rows x row_bytes at buf page by page: a page inside thread t's rows [lo_t, hi_t)
 * (elbo_team_rows) is bound by thread t, on its bound OS thread, to plan[t]'s node alone (BIND, by nodeset); a
 * page straddling two threads' rows or an end of the buffer is not bound. Fails unless every thread owns at
 * least one whole page (else the check would be empty). Adds the pages bound and the partial ones to *whole,
 * *partial. */
static void check_rows(fixture *f, const char *name, const void *buf, size_t rows, size_t row_bytes, size_t *whole,
                       size_t *partial)
{
    uintptr_t b = (uintptr_t)buf, end = b + rows * row_bytes, pg = f->page;
    size_t *pages = calloc(f->n, sizeof *pages);
    assert_non_null(pages);
    for (uintptr_t lo = b / pg * pg; lo < end; lo += pg) {
        uintptr_t hi = lo + pg;
        size_t owner = f->n; /* the thread whose rows hold the whole page, if one does */
        for (size_t t = 0; t < f->n; t++) {
            size_t r0, r1;
            elbo_team_rows(rows, t, f->n, &r0, &r1);
            if (lo >= b + r0 * row_bytes && hi <= b + r1 * row_bytes)
                owner = t;
        }
        call_record *r = covering(f, name, (long)(lo - b), lo, hi);
        if (owner == f->n) {
            if (r)
                test_failf("%zu threads: %s: page at byte %ld straddles two threads' rows or the buffer's end, yet "
                           "it was bound to node %s by thread %d\n", f->n, name, (long)(lo - b), r->set, r->omp_thread);
            (*partial)++;
            continue;
        }
        char want[16];
        snprintf(want, sizeof want, "%d", f->plan[owner].numa_os);
        if (!r)
            test_failf("%zu threads: %s: page at byte %ld (rows of thread %zu) was not bound to node %s\n", f->n, name,
                       (long)(lo - b), owner, want);
        if (r->lo > lo || r->hi < hi || strcmp(r->set, want) != 0 || r->policy != HWLOC_MEMBIND_BIND ||
            !(r->flags & HWLOC_MEMBIND_BYNODESET))
            test_failf("%zu threads: %s: page at byte %ld (rows of thread %zu) is in a call on [%ld, %ld) to "
                       "nodeset %s, %s, flags %#x; want node %s, BIND, by nodeset\n", f->n, name, (long)(lo - b),
                       owner, (long)(r->lo - b), (long)(r->hi - b), r->set, policy_name(r->policy), (unsigned)r->flags,
                       want);
        if (r->omp_thread != (int)owner || !pthread_equal(r->thread, f->bound[owner]))
            test_failf("%zu threads: %s: rows of thread %zu were bound by OpenMP thread %d%s\n", f->n, name, owner,
                       r->omp_thread, r->omp_thread == (int)owner ? " on another OS thread than the one bound" : "");
        r->used = 1;
        pages[owner]++;
        (*whole)++;
    }
    for (size_t t = 0; t < f->n; t++)
        if (pages[t] == 0)
            test_failf("%zu threads: %s: thread %zu's rows hold no whole page: nothing to check\n", f->n, name, t);
    free(pages);
}

/* Every activation buffer, each as its rows: vae.h's shapes, xbatch (B, D) bytes and xf (B, D) floats. */
static void check_activations(fixture *f, size_t *whole, size_t *partial)
{
    const elbo_vae_activations *a = f->tr.act;
    const elbo_param_layout *l = &f->model.layout;
    size_t z = f->model.cfg.latent, d = f->model.cfg.input_dim, fl = sizeof(float), hidden = 0;
    assert_int_equal(a->max_batch, BATCH);
    for (size_t i = 0; i < l->n_layers; i++)
        if (a->h[i]) {
            char name[32];
            snprintf(name, sizeof name, "h[%zu]", i);
            check_rows(f, name, a->h[i], BATCH, l->layer[i].out * fl, whole, partial);
            snprintf(name, sizeof name, "dh[%zu]", i);
            check_rows(f, name, a->dh[i], BATCH, l->layer[i].out * fl, whole, partial);
            hidden++;
        }
    assert_int_equal(hidden, 2); /* one encoder and one decoder hidden layer */
    check_rows(f, "mulv", a->mulv, BATCH, 2 * z * fl, whole, partial);
    check_rows(f, "dmulv", a->dmulv, BATCH, 2 * z * fl, whole, partial);
    check_rows(f, "eps", a->eps, BATCH, z * fl, whole, partial);
    check_rows(f, "sigma", a->sigma, BATCH, z * fl, whole, partial);
    check_rows(f, "z", a->z, BATCH, z * fl, whole, partial);
    check_rows(f, "dz", a->dz, BATCH, z * fl, whole, partial);
    check_rows(f, "kl", a->kl, BATCH, fl, whole, partial);
    check_rows(f, "recon", a->recon, BATCH, fl, whole, partial);
    check_rows(f, "logits", a->logits, BATCH, d * fl, whole, partial);
    check_rows(f, "xbatch", f->tr.xbatch, BATCH, d, whole, partial);
    check_rows(f, "xf", f->tr.xf, BATCH, d * fl, whole, partial);
}

/* The whole pages inside [p, p + bytes) were interleaved over both nodes in one call (INTERLEAVE, by nodeset),
 * and no other membind call touches [p, p + bytes). Fails if there is no whole page to check. */
static void check_interleaved(fixture *f, const char *name, const void *p, size_t bytes)
{
    uintptr_t pg = f->page, lo = ((uintptr_t)p + pg - 1) / pg * pg, hi = ((uintptr_t)p + bytes) / pg * pg;
    if (hi <= lo)
        test_failf("%s: %zu bytes hold no whole page: nothing to check\n", name, bytes);
    call_record *r = covering(f, name, 0, (uintptr_t)p, (uintptr_t)p + bytes);
    if (!r)
        test_failf("%zu threads: %s (%zu bytes) was not interleaved\n", f->n, name, bytes);
    if (r->lo != lo || r->hi != hi || strcmp(r->set, ALL_NODES) != 0 || r->policy != HWLOC_MEMBIND_INTERLEAVE ||
        !(r->flags & HWLOC_MEMBIND_BYNODESET))
        test_failf("%zu threads: %s: membind of bytes [%ld, %ld) to nodeset %s, %s, flags %#x; want its whole "
                   "pages [%ld, %ld) interleaved over %s by nodeset\n", f->n, name, (long)(r->lo - (uintptr_t)p),
                   (long)(r->hi - (uintptr_t)p), r->set, policy_name(r->policy), (unsigned)r->flags, (long)(lo - (uintptr_t)p),
                   (long)(hi - (uintptr_t)p), ALL_NODES);
    r->used = 1;
}

/* Parameters, gradients, Adam's two moments and every packed weight are interleaved; a data-gradient operand
 * that is a view of the weights (no copy) lies inside the parameters. Returns how many buffers were checked. */
static size_t check_shared(fixture *f)
{
    const elbo_vae *m = &f->model;
    size_t bytes = m->layout.total * sizeof(float), n = 4;
    check_interleaved(f, "params", m->params, bytes);
    check_interleaved(f, "grads", m->grads, bytes);
    assert_non_null(f->tr.opt.m);
    assert_non_null(f->tr.opt.v);
    check_interleaved(f, "Adam m", f->tr.opt.m, bytes);
    check_interleaved(f, "Adam v", f->tr.opt.v, bytes);
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        char name[32];
        snprintf(name, sizeof name, "fwd[%zu]", i);
        check_interleaved(f, name, m->layer[i].fwd.data, elbo_packed_b_floats(m->kern, m->layer[i].fwd.k, m->layer[i].fwd.n) * sizeof(float));
        n++;
        if (!m->layer[i].bwd.data)
            continue;
        snprintf(name, sizeof name, "bwd[%zu]", i);
        if (m->layer[i].bwd.view_ld) {
            if (m->layer[i].bwd.data < m->params || m->layer[i].bwd.data >= m->params + m->layout.total)
                test_failf("%s is a view outside the parameters\n", name);
        } else {
            check_interleaved(f, name, m->layer[i].bwd.data,
                              elbo_packed_b_floats(m->kern, m->layer[i].bwd.k, m->layer[i].bwd.n) * sizeof(float));
            n++;
        }
    }
    return n;
}

/* A trainer of n threads on two nodes: threads bound as planned, rows on their threads' nodes, shared data
 * interleaved, and no membind call that no check accounts for. */
static void check_placement(size_t n)
{
    fixture f;
    setup(&f, n);
    size_t whole = 0, partial = 0;
    check_thread_binds(&f);
    check_activations(&f, &whole, &partial);
    size_t shared = check_shared(&f);
    if (partial == 0)
        test_failf("%zu threads: no page is shared by two threads' rows: the partial-page rule went unchecked\n", n);
    for (size_t i = 0; i < n_recs; i++)
        if (recs[i].membind && !recs[i].used)
            test_failf("%zu threads: membind of %zu bytes at %#lx to nodeset %s is on no buffer the trainer places\n",
                       n, (size_t)(recs[i].hi - recs[i].lo), (unsigned long)recs[i].lo, recs[i].set);
    printf("note: %zu threads: %zu thread bindings, %zu pages of rows bound to their threads' nodes, %zu partial pages "
           "left to first touch, %zu shared buffers interleaved\n", n, n, whole, partial, shared);
    teardown(&f);
}

/* Threads 0 and 1 on nodes 0 and 1 (PUs 0 and 2), half the rows each. */
static void test_placement_2_threads(void **state)
{
    (void)state;
    check_placement(2);
}

/* Threads 0, 1 on node 0 (PUs 0, 1) and thread 2 on node 1 (PU 2): unequal node loads, row blocks that do not
 * start on page boundaries (8192 / 3 rows). */
static void test_placement_3_threads(void **state)
{
    (void)state;
    check_placement(3);
}

/* Threads 0, 1 on node 0 and 2, 3 on node 1: every core busy, two threads' rows per node. */
static void test_placement_4_threads(void **state)
{
    (void)state;
    check_placement(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_2_threads),
        cmocka_unit_test(test_placement_3_threads),
        cmocka_unit_test(test_placement_4_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
