/* `elbo info --topology`: the machine as hwloc sees it, the binding support, and the planned placement. */
#include "topology_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Formats bytes as "512 KiB", "32 MiB", "4.96 GiB" into out. */
static const char *human_bytes(unsigned long long b, char *out, size_t outlen)
{
    if (b >= 1ull << 30)
        snprintf(out, outlen, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= 1ull << 20)
        snprintf(out, outlen, "%llu MiB", b >> 20);
    else
        snprintf(out, outlen, "%llu KiB", b >> 10);
    return out;
}

/* Prints one NUMA node line per node: memory, CPUs, cores. */
static void print_nodes(const elbo_topology *t, FILE *f)
{
    fprintf(f, "numa nodes:   %zu\n", t->n_numa);
    for (size_t k = 0; k < t->n_numa; k++) {
        hwloc_obj_t node = elbo_topology_node_obj(t, (int)k);
        char mem[32], cpus[128] = "none";
        size_t cores = 0;
        for (size_t c = 0; c < t->n_cores; c++)
            cores += t->core_node[c] == (int)k;
        if (node && node->cpuset && !hwloc_bitmap_iszero(node->cpuset))
            hwloc_bitmap_list_snprintf(cpus, sizeof cpus, node->cpuset);
        fprintf(f, "  node %zu (os %u): %s memory, cpus %s, %zu cores\n", k, node ? node->os_index : 0,
                human_bytes(node ? node->attr->numanode.local_memory : 0, mem, sizeof mem), cpus, cores);
    }
}

/* Appends printf-style text at the end of the string out (of outlen bytes), truncating. */
static void appendf(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *out, size_t outlen, const char *fmt, ...)
{
    size_t len = strlen(out);
    if (len + 1 >= outlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + len, outlen - len, fmt, ap);
    va_end(ap);
}

/* The first data (or unified) cache object of hwloc cache type `type` and how many there are. */
static hwloc_obj_t first_data_cache(const elbo_topology *t, hwloc_obj_type_t type, int *count)
{
    hwloc_obj_t c = NULL, first = NULL;
    *count = 0;
    while ((c = hwloc_get_next_obj_by_type(t->topo, type, c)))
        if (c->attr->cache.type != HWLOC_OBJ_CACHE_INSTRUCTION && (*count)++ == 0)
            first = c;
    return first;
}

static const hwloc_obj_type_t CACHE_TYPES[] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE};

void elbo_topology_caches(const elbo_topology *t, char *out, size_t outlen)
{
    static const char *names[] = {"L1d", "L2", "L3"};
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    for (int i = 0; i < 3; i++) {
        int count;
        hwloc_obj_t first = first_data_cache(t, CACHE_TYPES[i], &count);
        if (!first)
            continue;
        char size[32];
        int shared = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, first->cpuset, HWLOC_OBJ_CORE);
        appendf(out, outlen, "%s%s %s x%d (", out[0] ? ", " : "", names[i],
                human_bytes(first->attr->cache.size, size, sizeof size), count);
        if (shared <= 1)
            appendf(out, outlen, "per core)");
        else
            appendf(out, outlen, "shared by %d cores)", shared);
    }
}

unsigned long long elbo_topology_cache_bytes(const elbo_topology *t, int level)
{
    if (level < 1 || level > 3)
        return 0;
    int count;
    hwloc_obj_t first = first_data_cache(t, CACHE_TYPES[level - 1], &count);
    return first ? first->attr->cache.size * (unsigned long long)count : 0;
}

/* Prints the data caches hwloc reports: L1d, L2, L3 size, count and how many cores share one. */
static void print_caches(const elbo_topology *t, FILE *f)
{
    char caches[256];
    elbo_topology_caches(t, caches, sizeof caches);
    fprintf(f, "caches:       %s\n", caches[0] ? caches : "none reported");
}

/* Prints what binding hwloc reports as supported on this machine. */
static void print_support(const elbo_topology *t, FILE *f)
{
    if (!t->this_machine) {
        fprintf(f, "binding:      none (the topology is not this machine's)\n");
        return;
    }
    const struct hwloc_topology_support *s = hwloc_topology_get_support(t->topo);
#define YN(x) ((x) ? "yes" : "no")
    fprintf(f, "binding:      thread cpubind %s, memory bind %s, interleave %s, first-touch %s, memory location "
               "query %s\n", YN(s->cpubind->set_thisthread_cpubind), YN(s->membind->alloc_membind &&
               s->membind->bind_membind), YN(s->membind->interleave_membind), YN(s->membind->firsttouch_membind),
            YN(s->membind->get_area_memlocation));
#undef YN
}

/* Prints the placement of n threads and which node holds each thread's buffers. */
static void print_plan(const elbo_topology *t, size_t n, FILE *f)
{
    elbo_thread_place *plan = calloc(n, sizeof *plan);
    char note[256] = "";
    if (!plan || elbo_topology_plan(t, n, plan, note, sizeof note) < 0) {
        fprintf(f, "threads:      %zu (no plan: %s)\n", n, plan ? note : "out of memory");
        free(plan);
        return;
    }
    if (n <= t->n_cores)
        fprintf(f, "threads:      %zu (one per core)\n", n);
    else
        fprintf(f, "threads:      %zu (%s)\n", n, note);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  thread %zu -> core %d, PU %d, node %d, package %d\n", i, plan[i].core, plan[i].pu_os,
                plan[i].numa_node, plan[i].package);
    fprintf(f, "buffers:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  activations+workspace of thread %zu -> node %d\n", i, plan[i].numa_node);
    fprintf(f, "  parameters -> interleaved across %zu node%s\n", t->n_numa, t->n_numa == 1 ? "" : "s");
    free(plan);
}

void elbo_topology_print(const elbo_topology *t, size_t n_threads, FILE *f)
{
    char desc[256], allowed[256] = "";
    elbo_topology_cpu_model(t, desc, sizeof desc);
    hwloc_const_cpuset_t cpus = hwloc_topology_get_allowed_cpuset(t->topo);
    hwloc_bitmap_list_snprintf(allowed, sizeof allowed, cpus);
    fprintf(f, "topology:     %s\n", desc);
    fprintf(f, "packages:     %zu\n", t->n_packages);
    print_nodes(t, f);
    fprintf(f, "cores:        %zu (%zu hardware threads)\n", t->n_cores, t->n_pus);
    print_caches(t, f);
    fprintf(f, "allowed cpus: %s\n", allowed);
    print_support(t, f);
    print_plan(t, n_threads ? n_threads : elbo_topology_default_threads(t), f);
}
