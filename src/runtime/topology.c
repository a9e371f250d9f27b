/* Opening a topology (this machine's or a synthetic one), the facts derived from it, the default thread count
 * and the CPU descriptor. */
#include "topology_internal.h"

#include "errmsg.h"
#include "warn_once.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Logical index of the first NUMA node whose CPUs include all of obj's, or 0. */
static int node_of(hwloc_topology_t topo, hwloc_obj_t obj)
{
    hwloc_obj_t node = NULL;
    while ((node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)))
        if (node->cpuset && hwloc_bitmap_isincluded(obj->cpuset, node->cpuset))
            return (int)node->logical_index;
    return 0;
}

/* Fills the per-core tables of t from its loaded hwloc topology; returns 0 or -1 (out of memory, no CPU). */
static int derive_facts(elbo_topology *t, char *err, size_t errlen)
{
    hwloc_topology_t topo = t->topo;
    hwloc_obj_type_t core_type = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    int nc = hwloc_get_nbobjs_by_type(topo, core_type), np = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    if (nc <= 0 || np <= 0) {
        elbo_errf(err, errlen, "topology: hwloc reports no CPU");
        return -1;
    }
    t->n_cores = (size_t)nc;
    t->n_pus = (size_t)np;
    int nn = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE), npk = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    t->n_numa = nn > 0 ? (size_t)nn : 1;
    t->n_packages = npk > 0 ? (size_t)npk : 1;
    t->cores = calloc(t->n_cores, sizeof *t->cores);
    t->core_node = calloc(t->n_cores, sizeof *t->core_node);
    t->core_package = calloc(t->n_cores, sizeof *t->core_package);
    t->core_pus = calloc(t->n_cores, sizeof *t->core_pus);
    if (!t->cores || !t->core_node || !t->core_package || !t->core_pus) {
        elbo_errf(err, errlen, "topology: out of memory");
        return -1;
    }
    for (size_t i = 0; i < t->n_cores; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, core_type, (unsigned)i);
        hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, c);
        int pus = hwloc_get_nbobjs_inside_cpuset_by_type(topo, c->cpuset, HWLOC_OBJ_PU);
        t->cores[i] = c;
        t->core_node[i] = node_of(topo, c);
        t->core_package[i] = pkg ? (int)pkg->logical_index : 0;
        t->core_pus[i] = pus > 0 ? (unsigned)pus : 1;
    }
    return 0;
}

/* Loads t->topo from the description or XML path `synthetic`, or from this machine restricted to the process's
 * CPU binding; returns 0 or -1 with a message. */
static int load(elbo_topology *t, const char *synthetic, char *err, size_t errlen)
{
    if (synthetic) {
        int xml = access(synthetic, R_OK) == 0 || strstr(synthetic, ".xml");
        int rc = xml ? hwloc_topology_set_xml(t->topo, synthetic) : hwloc_topology_set_synthetic(t->topo, synthetic);
        if (rc || hwloc_topology_load(t->topo)) {
            elbo_errf(err, errlen, "topology: cannot load %s '%s': %s", xml ? "XML file" : "synthetic description",
                      synthetic, strerror(errno));
            return -1;
        }
        return 0;
    }
    /* Cores outside the process's binding (taskset, cgroups) are left out of the discovery altogether. */
    if (hwloc_topology_set_flags(t->topo, HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM |
                                              HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING) == 0 &&
        hwloc_topology_load(t->topo) == 0)
        return 0;
    /* Where the process binding cannot be read, discover without the restriction (still within cgroups). */
    hwloc_topology_destroy(t->topo);
    if (hwloc_topology_init(&t->topo) || hwloc_topology_load(t->topo)) {
        elbo_errf(err, errlen, "topology: hwloc cannot discover this machine: %s", strerror(errno));
        return -1;
    }
    return 0;
}

elbo_topology *elbo_topology_open(const char *synthetic, char *err, size_t errlen)
{
    elbo_topology *t = calloc(1, sizeof *t);
    if (!t) {
        elbo_errf(err, errlen, "topology: out of memory");
        return NULL;
    }
    if (hwloc_topology_init(&t->topo)) {
        elbo_errf(err, errlen, "topology: hwloc_topology_init failed: %s", strerror(errno));
        free(t);
        return NULL;
    }
    if (load(t, synthetic, err, errlen) || derive_facts(t, err, errlen)) {
        elbo_topology_close(t);
        return NULL;
    }
    /* hwloc decides: a synthetic or XML topology is not this machine's unless HWLOC_THISSYSTEM=1 (hwloc's own
     * override) asserts it, and then binding acts on this process with the description's indices
     * (tests/test_runtime_placement.c does so with the binding calls recorded instead of made). */
    t->this_machine = hwloc_topology_is_thissystem(t->topo);
    return t;
}

void elbo_topology_close(elbo_topology *t)
{
    if (!t)
        return;
    if (t->topo)
        hwloc_topology_destroy(t->topo);
    free(t->cores);
    free(t->core_node);
    free(t->core_package);
    free(t->core_pus);
    free(t);
}

int elbo_topology_is_this_machine(const elbo_topology *t) { return t->this_machine; }
size_t elbo_topology_cores(const elbo_topology *t) { return t->n_cores; }
size_t elbo_topology_pus(const elbo_topology *t) { return t->n_pus; }
size_t elbo_topology_numa_nodes(const elbo_topology *t) { return t->n_numa; }
size_t elbo_topology_packages(const elbo_topology *t) { return t->n_packages; }

/* Parses an OMP_NUM_THREADS value: a positive integer, or a comma list whose first entry is one, with optional
 * surrounding blanks; returns 0 when s is not that. */
static size_t parse_thread_count(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0 || v > 1u << 20)
        return 0;
    const char *rest = end;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest == ',') { /* the rest of a nesting list must be numbers too */
        for (rest++; *rest; rest++)
            if (!isdigit((unsigned char)*rest) && *rest != ',' && !isspace((unsigned char)*rest))
                return 0;
    } else if (*rest) {
        return 0;
    }
    return (size_t)v;
}

size_t elbo_topology_default_threads(const elbo_topology *t)
{
    static elbo_warn_flag warned = ELBO_WARN_FLAG_INIT;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        size_t n = parse_thread_count(env);
        if (n)
            return n;
        elbo_warn_once(&warned, stderr, "elbo: warning: OMP_NUM_THREADS='%.40s' is not a positive integer; using %zu "
                                        "threads (one per core)", env, t->n_cores);
    }
    return t->n_cores;
}

/* The value of info attribute name on obj, or NULL. */
static const char *info(hwloc_obj_t obj, const char *name)
{
    return obj ? hwloc_obj_get_info_by_name(obj, name) : NULL;
}

/* Appends ", " (unless out is empty) and the formatted text to out, truncating. */
static void append(char *out, size_t outlen, const char *sep, const char *a, const char *b, const char *c)
{
    size_t len = strlen(out);
    if (len + 1 >= outlen)
        return;
    snprintf(out + len, outlen - len, "%s%s%s%s%s%s", len ? sep : "", a, b && *b ? " " : "", b ? b : "",
             c && *c ? " " : "", c ? c : "");
}

void elbo_topology_cpu_model(const elbo_topology *t, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    hwloc_obj_t root = hwloc_get_root_obj(t->topo);
    hwloc_obj_t pkg = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_PACKAGE, 0);
    const char *model = info(pkg, "CPUModel") ? info(pkg, "CPUModel") : info(root, "CPUModel");
    const char *vendor = info(pkg, "CPUVendor") ? info(pkg, "CPUVendor") : info(root, "CPUVendor");
    const char *synth = info(root, "SyntheticDescription");
    char count[32] = "";
    if (t->n_packages > 1)
        snprintf(count, sizeof count, "%zux ", t->n_packages);
    if (synth) {
        append(out, outlen, ", ", "synthetic", synth, NULL);
        return;
    }
    char cpu[256];
    snprintf(cpu, sizeof cpu, "%s%s%s%s%s", count, model ? model : "unknown CPU", vendor ? " (" : "",
             vendor ? vendor : "", vendor ? ")" : "");
    append(out, outlen, ", ", cpu, NULL, NULL);
    if (info(root, "OSName"))
        append(out, outlen, ", ", info(root, "OSName"), info(root, "OSRelease"), info(root, "Architecture"));
    if (info(root, "HostName"))
        append(out, outlen, ", ", "host", info(root, "HostName"), NULL);
}
