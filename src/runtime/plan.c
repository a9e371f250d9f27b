/* Thread placement: which core, hardware thread and NUMA node each of n threads gets. */
#include "topology_internal.h"

#include "errmsg.h"

#include <stdlib.h>

/* Per-node tallies used while dealing threads to nodes. */
typedef struct {
    size_t cores, pus; /* capacity: cores, hardware threads */
    size_t load;       /* threads dealt so far */
    int package;       /* package of the node's first core */
} node_tally;

/* Deals one thread to the least loaded node whose load is below its capacity for phase (0: cores, 1: PUs,
 * 2: unbounded), ties going to the package with fewer threads, then the lower node; returns it or -1. */
static int pick_node(node_tally *nodes, size_t n_nodes, const size_t *pkg_load, int phase)
{
    int best = -1;
    for (size_t k = 0; k < n_nodes; k++) {
        node_tally *nd = &nodes[k];
        size_t cap = phase == 0 ? nd->cores : phase == 1 ? nd->pus : (nd->cores ? (size_t)-1 : 0);
        if (nd->load >= cap)
            continue;
        if (best < 0 || nd->load < nodes[best].load ||
            (nd->load == nodes[best].load && pkg_load[nd->package] < pkg_load[nodes[best].package]))
            best = (int)k;
    }
    return best;
}

/* Slot j of node k: hardware thread round r of the node's cores taken in order (round 0 = the first PU of every
 * core, then the second PUs, ...), wrapping when j exceeds the node's PUs. Fills core and smt. */
static void node_slot(const elbo_topology *t, int k, size_t j, size_t node_pus, int *core, int *smt)
{
    j %= node_pus;
    for (unsigned r = 0;; r++)
        for (size_t c = 0; c < t->n_cores; c++)
            if (t->core_node[c] == k && t->core_pus[c] > r && j-- == 0) {
                *core = (int)c;
                *smt = (int)r;
                return;
            }
}

/* Fills *p for core c, hardware thread smt of it. */
static void place_on(const elbo_topology *t, int c, int smt, elbo_thread_place *p)
{
    hwloc_obj_t pu = hwloc_get_obj_inside_cpuset_by_type(t->topo, t->cores[c]->cpuset, HWLOC_OBJ_PU, (unsigned)smt);
    hwloc_obj_t node = elbo_topology_node_obj(t, t->core_node[c]);
    p->core = c;
    p->smt = smt;
    p->pu_os = pu ? (int)pu->os_index : -1;
    p->numa_node = t->core_node[c];
    p->numa_os = node ? (int)node->os_index : 0;
    p->package = t->core_package[c];
}

int elbo_topology_plan(const elbo_topology *t, size_t n, elbo_thread_place *out, char *err, size_t errlen)
{
    if (n == 0 || !out) {
        elbo_errf(err, errlen, "thread plan: %s", n == 0 ? "0 threads asked for" : "no output array");
        return -1;
    }
    node_tally *nodes = calloc(t->n_numa, sizeof *nodes);
    size_t *pkg_load = calloc(t->n_packages, sizeof *pkg_load);
    if (!nodes || !pkg_load) {
        free(nodes);
        free(pkg_load);
        elbo_errf(err, errlen, "thread plan: out of memory");
        return -1;
    }
    for (size_t c = t->n_cores; c-- > 0;) { /* backwards, so each node's package is its first core's */
        node_tally *nd = &nodes[t->core_node[c]];
        nd->cores++;
        nd->pus += t->core_pus[c];
        nd->package = t->core_package[c];
    }
    for (size_t i = 0; i < n; i++) {
        int k = -1;
        for (int phase = 0; k < 0 && phase < 3; phase++)
            k = pick_node(nodes, t->n_numa, pkg_load, phase);
        nodes[k].load++;
        pkg_load[nodes[k].package]++;
    }
    size_t i = 0;
    for (size_t k = 0; k < t->n_numa; k++)
        for (size_t j = 0; j < nodes[k].load; j++, i++) {
            int core, smt;
            node_slot(t, (int)k, j, nodes[k].pus, &core, &smt);
            place_on(t, core, smt, &out[i]);
        }
    free(nodes);
    free(pkg_load);
    if (n <= t->n_cores)
        return 0;
    if (n <= t->n_pus)
        elbo_errf(err, errlen, "%zu threads on %zu cores: %zu of them run on the cores' other hardware "
                  "threads", n, t->n_cores, n - t->n_cores);
    else
        elbo_errf(err, errlen, "%zu threads on %zu cores with %zu hardware threads: hardware threads "
                  "are shared", n, t->n_cores, t->n_pus);
    return 1;
}
