/* Binding the calling thread to its planned PU, and reading back where it is bound. */
#include "topology_internal.h"

#include "warn_once.h"

#include <errno.h>
#include <string.h>

int elbo_topology_bind_thread(const elbo_topology *t, const elbo_thread_place *p)
{
    if (!t->this_machine) {
        errno = ENOSYS;
        return -1;
    }
    hwloc_obj_t pu = p->pu_os >= 0 ? hwloc_get_pu_obj_by_os_index(t->topo, (unsigned)p->pu_os) : NULL;
    if (!pu) {
        errno = EINVAL;
        return -1;
    }
    return hwloc_set_cpubind(t->topo, pu->cpuset, HWLOC_CPUBIND_THREAD) ? -1 : 0;
}

int elbo_topology_bind_thread_or_warn(const elbo_topology *t, const elbo_thread_place *p)
{
    static elbo_warn_flag warned = ELBO_WARN_FLAG_INIT;
    int rc = elbo_topology_bind_thread(t, p);
    if (rc) {
        int e = errno;
        elbo_warn_once(&warned, stderr, "elbo: warning: cannot bind threads to cores (%s); threads run unbound",
                       t->this_machine ? strerror(e) : "the topology is not this machine's");
        errno = e;
    }
    return rc;
}

int elbo_topology_thread_cpus(const elbo_topology *t, char *out, size_t outlen)
{
    if (!t->this_machine)
        return -1;
    hwloc_cpuset_t set = hwloc_bitmap_alloc();
    if (!set)
        return -1;
    int n = -1;
    if (hwloc_get_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) == 0) {
        n = hwloc_bitmap_weight(set);
        if (out && outlen)
            hwloc_bitmap_list_snprintf(out, outlen, set);
    }
    hwloc_bitmap_free(set);
    return n;
}
