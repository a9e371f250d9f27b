/* The machine's topology through hwloc: cores, NUMA nodes, where threads run and where their memory lives.
 *
 * Open a topology once, plan the thread placement with elbo_topology_plan, then let each worker thread bind
 * itself (elbo_topology_bind_thread_or_warn) and allocate its buffers on its node. Everything degrades: where
 * binding is unsupported or refused (VMs, containers, restricted cpusets) threads run unbound after one warning
 * line, and memory falls back to page-aligned allocations placed by first touch. The process's cpuset (taskset,
 * cgroups) is respected: cores outside it do not exist for elbo. */
#ifndef ELBO_TOPOLOGY_H
#define ELBO_TOPOLOGY_H

#include <stddef.h>
#include <stdio.h>

typedef struct elbo_topology elbo_topology; /* opaque: hwloc topology + derived facts */

/* Discovers this machine's topology, restricted to the CPUs the process may use, or a synthetic one when
 * `synthetic` is non-NULL: an hwloc synthetic description ("package:2 numa:2 core:4 pu:2") or the path of an
 * XML export. The process's binding is read now (the union over its threads), so open before binding any
 * thread. Returns NULL with a one-line message in err on failure. */
elbo_topology *elbo_topology_open(const char *synthetic, char *err, size_t errlen);
void elbo_topology_close(elbo_topology *t);

/* 1 when the topology is this machine's (binding and memory placement are real), 0 for synthetic/XML ones
 * unless the environment sets HWLOC_THISSYSTEM=1 (hwloc's assertion that they describe this machine). */
int elbo_topology_is_this_machine(const elbo_topology *t);
size_t elbo_topology_cores(const elbo_topology *t);      /* physical cores available (not hardware threads) */
size_t elbo_topology_pus(const elbo_topology *t);        /* hardware threads (PUs) available */
size_t elbo_topology_numa_nodes(const elbo_topology *t); /* NUMA nodes, including any without CPUs */
size_t elbo_topology_packages(const elbo_topology *t);   /* packages (sockets); 1 when hwloc reports none */

/* Default thread count: OMP_NUM_THREADS if set and valid (a positive integer; of a list "4,2" the first),
 * else one thread per available core. An invalid value prints one warning line to stderr and is ignored. */
size_t elbo_topology_default_threads(const elbo_topology *t);

/* Where one thread runs. Indices are hwloc logical indices unless named os. */
typedef struct {
    int core;      /* logical index of the core */
    int smt;       /* which hardware thread of the core: 0 = the first; > 0 only when threads outnumber cores */
    int pu_os;     /* OS index of the PU the thread binds to (the core's first PU when smt == 0) */
    int numa_node; /* logical index of the core's NUMA node (what elbo_topology_alloc_on_node takes) */
    int numa_os;   /* OS index of that node (what numactl and /sys call it) */
    int package;   /* logical index of the package; 0 when hwloc reports none */
} elbo_thread_place;

/* Plans where n threads run, into out[0..n).
 *
 * Policy: one thread per physical core while there are cores. Threads are dealt to NUMA nodes one at a time,
 * each to the least loaded node with a free core (ties: the package with fewer threads, then the lower node),
 * so node loads differ by at most one and, with fewer threads than nodes, the threads spread over packages
 * first. Each node's threads are then numbered contiguously: threads 0..k0-1 on node 0, k0..k0+k1-1 on node 1,
 * ..., so thread t and t+1 share a node when possible, and within a node they take its cores in order.
 * With more threads than cores they wrap onto the cores' other hardware threads (the same dealing per node);
 * with more threads than PUs, PUs are shared.
 *
 * Returns 0 when every thread has a core of its own; 1 when threads share cores, with a one-line note in err
 * saying so ("4 threads on 2 cores: 2 of them run on the cores' other hardware threads"); -1 with a message in err when n is 0 or the topology has no CPU. */
int elbo_topology_plan(const elbo_topology *t, size_t n, elbo_thread_place *out, char *err, size_t errlen);

/* Binds the calling thread to the place's PU (a single PU, with HWLOC_CPUBIND_THREAD). Returns 0, or -1 with
 * errno set when binding is unsupported or refused, or the topology is not this machine's. Prints nothing. */
int elbo_topology_bind_thread(const elbo_topology *t, const elbo_thread_place *p);
/* elbo_topology_bind_thread, and on failure one warning line on stderr for the whole process (the first
 * failure only); the thread runs unbound. Returns what elbo_topology_bind_thread returned. */
int elbo_topology_bind_thread_or_warn(const elbo_topology *t, const elbo_thread_place *p);

/* Memory for a thread's buffers on NUMA node numa_node (logical index): bound there (hwloc_alloc_membind,
 * BIND, strict) when hwloc reports the support and the kernel accepts it, else a page-aligned allocation whose
 * pages the caller first-touches from the owning thread. *policy (when non-NULL) says which: "bind" or
 * "first-touch". At least 64-byte aligned (page-aligned). Free with elbo_topology_free. NULL when out of memory. */
void *elbo_topology_alloc_on_node(const elbo_topology *t, size_t bytes, int numa_node, const char **policy);
/* Memory interleaved page by page across all NUMA nodes (for shared, read-mostly data such as parameters),
 * with the same fallback; *policy is "interleave" or "first-touch". */
void *elbo_topology_alloc_interleaved(const elbo_topology *t, size_t bytes, const char **policy);
/* Moves the whole pages inside [p, p+bytes) of an existing allocation to NUMA node numa_node (hwloc_set_area_membind,
 * BIND, MIGRATE), for a thread's rows of a buffer shared by rows. Returns 0, or -1 when unsupported or refused
 * (the caller's first touch from the owning thread then decides). */
int elbo_topology_bind_area(const elbo_topology *t, void *p, size_t bytes, int numa_node);
/* Interleaves the whole pages inside [p, p+bytes) across all NUMA nodes (shared read-mostly data allocated
 * elsewhere, such as the parameter arena). Returns 0, or -1 with one node or when unsupported. */
int elbo_topology_interleave_area(const elbo_topology *t, void *p, size_t bytes);
/* Frees memory from the two functions above; bytes is the size that was asked for. */
void elbo_topology_free(const elbo_topology *t, void *p, size_t bytes);

/* Prints packages, NUMA nodes (with memory), cores, PUs, caches, the allowed cpuset, the binding support hwloc
 * reports, the placement planned for n_threads (0: the default thread count) and which buffers go to which
 * node. Backs `elbo info --topology`. */
void elbo_topology_print(const elbo_topology *t, size_t n_threads, FILE *f);

/* A short CPU and system descriptor, e.g. "AMD EPYC (AuthenticAMD), Linux 6.1.0 x86_64, host vm", from hwloc's
 * info attributes (CPUModel/CPUVendor of the packages, OSName/OSRelease/Architecture/HostName of the root). */
void elbo_topology_cpu_model(const elbo_topology *t, char *out, size_t outlen);

/* The data caches, e.g. "L1d 32 KiB x2 (per core), L2 512 KiB x2 (per core), L3 32 MiB x1 (shared by 2 cores)";
 * empty when hwloc reports none. */
void elbo_topology_caches(const elbo_topology *t, char *out, size_t outlen);
/* Total bytes of the level-1..3 data (or unified) caches over all their instances; 0 when not reported. */
unsigned long long elbo_topology_cache_bytes(const elbo_topology *t, int level);

/* For verification. The OS indices of the PUs the calling thread is bound to, as a list ("0", "0-3,8") into
 * out; returns how many PUs, or -1 when the query is unsupported or the topology is not this machine's. */
int elbo_topology_thread_cpus(const elbo_topology *t, char *out, size_t outlen);
/* The logical index of the NUMA node holding the (touched) pages of [p, p+bytes); -2 when they are on several
 * nodes; -1 when the query is unsupported or answers nothing. */
int elbo_topology_area_node(const elbo_topology *t, const void *p, size_t bytes);

#endif
