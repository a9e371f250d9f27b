/* Memory placed on NUMA nodes: bound or interleaved where the system allows it, first-touch otherwise. */
#include "topology_internal.h"

#include <stdint.h>
#include <unistd.h>

/* 1 when memory binding with policy (BIND or INTERLEAVE) is reported supported for this machine's topology. */
static int membind_supported(const elbo_topology *t, hwloc_membind_policy_t policy)
{
    if (!t->this_machine)
        return 0;
    const struct hwloc_topology_support *s = hwloc_topology_get_support(t->topo);
    if (!s->membind->alloc_membind)
        return 0;
    return policy == HWLOC_MEMBIND_INTERLEAVE ? s->membind->interleave_membind : s->membind->bind_membind;
}

/* Allocates bytes with policy over nodeset (strictly, so a refusal is seen), else page-aligned memory left to
 * first touch; sets *policy_name. */
static void *alloc_policy(const elbo_topology *t, size_t bytes, hwloc_const_nodeset_t nodeset,
                          hwloc_membind_policy_t policy, const char *bound_name, const char **policy_name)
{
    if (bytes == 0)
        bytes = 1;
    void *p = NULL;
    if (nodeset && membind_supported(t, policy))
        p = hwloc_alloc_membind(t->topo, bytes, nodeset, policy, HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT);
    if (p) {
        if (policy_name)
            *policy_name = bound_name;
        return p;
    }
    /* hwloc_alloc gives page-aligned memory (mmap on Linux) whose pages are placed when first written */
    p = hwloc_alloc(t->topo, bytes);
    if (policy_name)
        *policy_name = "first-touch";
    return p;
}

void *elbo_topology_alloc_on_node(const elbo_topology *t, size_t bytes, int numa_node, const char **policy)
{
    hwloc_obj_t node = elbo_topology_node_obj(t, numa_node);
    return alloc_policy(t, bytes, node ? node->nodeset : NULL, HWLOC_MEMBIND_BIND, "bind", policy);
}

void *elbo_topology_alloc_interleaved(const elbo_topology *t, size_t bytes, const char **policy)
{
    return alloc_policy(t, bytes, hwloc_topology_get_topology_nodeset(t->topo), HWLOC_MEMBIND_INTERLEAVE,
                        "interleave", policy);
}

/* The whole pages inside [p, p + bytes) as [*lo, *hi) (empty when none), in this system's page size (4 KiB on x86,
 * 4, 16 or 64 KiB on arm64): the pages at the range's edges are shared with its neighbours. */
static void whole_pages(const void *p, size_t bytes, uintptr_t *lo, uintptr_t *hi)
{
    static uintptr_t page;
    if (!page) {
        long sz = sysconf(_SC_PAGESIZE);
        page = sz > 0 ? (uintptr_t)sz : 4096;
    }
    *lo = ((uintptr_t)p + page - 1) / page * page;
    *hi = ((uintptr_t)p + bytes) / page * page;
}

int elbo_topology_bind_area(const elbo_topology *t, void *p, size_t bytes, int numa_node)
{
    hwloc_obj_t node = elbo_topology_node_obj(t, numa_node);
    if (!node || !t->this_machine || !hwloc_topology_get_support(t->topo)->membind->set_area_membind)
        return -1;
    uintptr_t lo, hi; /* whole pages only: the pages at the edges are shared with the neighbours' rows */
    whole_pages(p, bytes, &lo, &hi);
    if (hi <= lo)
        return 0;
    return hwloc_set_area_membind(t->topo, (void *)lo, hi - lo, node->nodeset, HWLOC_MEMBIND_BIND,
                                  HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) == 0 ? 0 : -1;
}

int elbo_topology_interleave_area(const elbo_topology *t, void *p, size_t bytes)
{
    if (!t->this_machine || t->n_numa < 2 || !hwloc_topology_get_support(t->topo)->membind->set_area_membind ||
        !hwloc_topology_get_support(t->topo)->membind->interleave_membind)
        return -1;
    uintptr_t lo, hi;
    whole_pages(p, bytes, &lo, &hi);
    if (hi <= lo)
        return 0;
    return hwloc_set_area_membind(t->topo, (void *)lo, hi - lo, hwloc_topology_get_topology_nodeset(t->topo),
                                  HWLOC_MEMBIND_INTERLEAVE, HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) == 0
               ? 0 : -1;
}

void elbo_topology_free(const elbo_topology *t, void *p, size_t bytes)
{
    if (p)
        hwloc_free(t->topo, p, bytes ? bytes : 1);
}

int elbo_topology_area_node(const elbo_topology *t, const void *p, size_t bytes)
{
    if (!t->this_machine || !hwloc_topology_get_support(t->topo)->membind->get_area_memlocation)
        return -1;
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    if (!set)
        return -1;
    int node = -1;
    if (hwloc_get_area_memlocation(t->topo, p, bytes, set, HWLOC_MEMBIND_BYNODESET) == 0) {
        int w = hwloc_bitmap_weight(set);
        hwloc_obj_t obj = w == 1 ? hwloc_get_numanode_obj_by_os_index(t->topo, (unsigned)hwloc_bitmap_first(set)) : NULL;
        node = w > 1 ? -2 : obj ? (int)obj->logical_index : -1;
    }
    hwloc_bitmap_free(set);
    return node;
}
