/* What the runtime files share: the topology object and the facts derived from it when it is opened. */
#ifndef ELBO_TOPOLOGY_INTERNAL_H
#define ELBO_TOPOLOGY_INTERNAL_H

#include "topology.h"

#include <hwloc.h>

struct elbo_topology {
    hwloc_topology_t topo;
    int this_machine;     /* real discovery (binding and memory placement act on this process) */
    size_t n_cores;       /* entries of cores[] */
    hwloc_obj_t *cores;   /* CORE objects by logical index, or the PUs when hwloc reports no core level */
    int *core_node;       /* logical index of each core's NUMA node */
    int *core_package;    /* logical index of each core's package (0 when there is no package level) */
    unsigned *core_pus;   /* PUs in each core */
    size_t n_pus, n_numa, n_packages;
};

/* The NUMA node object with logical index i, or NULL. */
static inline hwloc_obj_t elbo_topology_node_obj(const elbo_topology *t, int i)
{
    return i < 0 ? NULL : hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
}

#endif
