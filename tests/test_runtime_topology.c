/* The hwloc runtime layer: thread placement planned on synthetic topologies (shapes this machine does not
 * have), OMP_NUM_THREADS, the one-line warnings, and on this machine binding, NUMA allocation and the
 * `elbo info --topology` report.
 *
 * A check that depends on what the system allows (binding in a VM or container, memory location queries under
 * qemu-user) is a test of its own that calls skip() and says why where the system does not allow it, so it is
 * counted as skipped, never as passed. */
#include "test_util.h"

#include "topology.h"
#include "warn_once.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#define TWO_PACKAGES "package:2 numa:2 core:4 pu:1" /* 2 packages x 2 NUMA nodes x 4 cores */

/* Opens the synthetic topology desc, failing the test with hwloc's message if it cannot. */
static elbo_topology *open_synthetic(const char *desc)
{
    char err[256] = "";
    elbo_topology *t = elbo_topology_open(desc, err, sizeof err);
    if (!t)
        test_failf("open '%s': %s\n", desc, err);
    return t;
}

/* Plans n threads on t, expecting the return code want_rc; returns the malloc'ed plan. */
static elbo_thread_place *plan(const elbo_topology *t, size_t n, int want_rc, char *note, size_t notelen)
{
    elbo_thread_place *p = calloc(n, sizeof *p);
    assert_non_null(p);
    note[0] = '\0';
    int rc = elbo_topology_plan(t, n, p, note, notelen);
    if (rc != want_rc)
        test_failf("plan of %zu threads returned %d (want %d): %s\n", n, rc, want_rc, note);
    return p;
}

/* Fails unless no two threads of the plan share a PU (when distinct_pus) and each core appears at most once
 * (when distinct_cores). */
static void expect_distinct(const elbo_thread_place *p, size_t n, int distinct_cores)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (p[i].pu_os == p[j].pu_os)
                test_failf("threads %zu and %zu share PU %d\n", i, j, p[i].pu_os);
            if (distinct_cores && p[i].core == p[j].core)
                test_failf("threads %zu and %zu share core %d\n", i, j, p[i].core);
        }
}

/* Fails unless the plan's threads fill nodes in contiguous blocks (node never decreases with the thread index)
 * and node loads differ by at most one; loads[] receives the per-node thread counts. */
static void expect_balanced_blocks(const elbo_thread_place *p, size_t n, size_t n_nodes, size_t *loads)
{
    memset(loads, 0, n_nodes * sizeof *loads);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && p[i].numa_node < p[i - 1].numa_node)
            test_failf("thread %zu on node %d after thread %zu on node %d: nodes not in blocks\n", i,
                       p[i].numa_node, i - 1, p[i - 1].numa_node);
        assert_in_range(p[i].numa_node, 0, n_nodes - 1);
        loads[p[i].numa_node]++;
    }
    size_t lo = loads[0], hi = loads[0];
    for (size_t k = 1; k < n_nodes; k++) {
        lo = loads[k] < lo ? loads[k] : lo;
        hi = loads[k] > hi ? loads[k] : hi;
    }
    if (hi - lo > 1)
        test_failf("node loads range from %zu to %zu threads\n", lo, hi);
}

/* ---- planning on synthetic topologies ---- */

/* 16 threads on 16 cores: one per core, threads 0-3 on node 0, 4-7 on node 1, ..., packages 0 then 1.
 * Catches: round-robin numbering (thread t on node t % 4), two threads on a core, PUs counted as cores. */
static void test_plan_two_packages_full(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic(TWO_PACKAGES);
    assert_int_equal(elbo_topology_cores(t), 16);
    assert_int_equal(elbo_topology_numa_nodes(t), 4);
    assert_int_equal(elbo_topology_packages(t), 2);
    assert_int_equal(elbo_topology_is_this_machine(t), 0);
    char note[256];
    elbo_thread_place *p = plan(t, 16, 0, note, sizeof note);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(p[i].numa_node, i / 4);
        assert_int_equal(p[i].numa_os, i / 4);
        assert_int_equal(p[i].package, i / 8);
        assert_int_equal(p[i].core, i);
        assert_int_equal(p[i].smt, 0);
    }
    expect_distinct(p, 16, 1);
    free(p);
    elbo_topology_close(t);
}

/* Fewer threads than cores: 4 threads go one per node; 2 threads go to different packages; 6 threads load
 * the nodes 2,1,2,1 in blocks. Catches: filling node 0 first (all 4 on one node), spreading by node index
 * only (2 threads on nodes 0 and 1 of the same package), unbalanced or interleaved numbering. */
static void test_plan_two_packages_partial(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic(TWO_PACKAGES);
    char note[256];
    size_t loads[4];
    elbo_thread_place *p = plan(t, 4, 0, note, sizeof note);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p[i].numa_node, i);
    assert_int_equal(p[0].package, 0);
    assert_int_equal(p[2].package, 1);
    expect_distinct(p, 4, 1);
    free(p);

    p = plan(t, 2, 0, note, sizeof note);
    assert_int_equal(p[0].package, 0);
    assert_int_equal(p[1].package, 1);
    free(p);

    p = plan(t, 6, 0, note, sizeof note);
    expect_balanced_blocks(p, 6, 4, loads);
    assert_int_equal(loads[0] + loads[1], 3); /* 3 threads per package */
    assert_int_equal(loads[2] + loads[3], 3);
    expect_distinct(p, 6, 1);
    free(p);

    for (size_t n = 1; n <= 16; n++) { /* every count: balanced blocks, one thread per core */
        p = plan(t, n, 0, note, sizeof note);
        expect_balanced_blocks(p, n, 4, loads);
        expect_distinct(p, n, 1);
        free(p);
    }
    elbo_topology_close(t);
}

/* The reference machine's shape, one node with 2 cores: 2 threads on cores 0 and 1. */
static void test_plan_reference_shape(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic("numa:1 core:2 pu:1");
    assert_int_equal(elbo_topology_cores(t), 2);
    assert_int_equal(elbo_topology_numa_nodes(t), 1);
    assert_int_equal(elbo_topology_packages(t), 1);
    char note[256];
    elbo_thread_place *p = plan(t, 2, 0, note, sizeof note);
    assert_int_equal(p[0].core, 0);
    assert_int_equal(p[1].core, 1);
    assert_int_equal(p[0].pu_os, 0);
    assert_int_equal(p[1].pu_os, 1);
    assert_int_equal(p[0].numa_node, 0);
    assert_int_equal(p[1].numa_node, 0);
    free(p);
    elbo_topology_close(t);
}

/* 2 cores with 2 hardware threads each: cores() counts 2, not 4; 2 threads take the cores' first PUs; 4 threads
 * wrap onto the second PUs (distinct PUs), and the plan says so. Catches: counting PUs as cores, two threads on
 * one core before the other core is used, two threads on one PU, a silent wrap. */
static void test_plan_wraps_onto_hardware_threads(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic("core:2 pu:2");
    assert_int_equal(elbo_topology_cores(t), 2);
    assert_int_equal(elbo_topology_pus(t), 4);
    char note[256];
    elbo_thread_place *p = plan(t, 2, 0, note, sizeof note);
    assert_int_equal(p[0].core, 0);
    assert_int_equal(p[1].core, 1);
    assert_int_equal(p[0].smt + p[1].smt, 0);
    free(p);

    p = plan(t, 4, 1, note, sizeof note);
    if (!strstr(note, "hardware threads"))
        test_failf("the wrap is not reported: '%s'\n", note);
    expect_distinct(p, 4, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(p[i].core, i % 2);
        assert_int_equal(p[i].smt, i / 2);
    }
    free(p);
    elbo_topology_close(t);
}

/* More threads than PUs: the plan still places every thread on a real PU and says PUs are shared; 0 threads
 * is an error naming the count. */
static void test_plan_oversubscribed_and_errors(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic("numa:1 core:2 pu:1");
    char note[256];
    elbo_thread_place *p = plan(t, 5, 1, note, sizeof note);
    if (!strstr(note, "shared"))
        test_failf("oversubscription not reported: '%s'\n", note);
    for (int i = 0; i < 5; i++)
        assert_in_range(p[i].pu_os, 0, 1);
    free(p);
    elbo_thread_place one;
    assert_int_equal(elbo_topology_plan(t, 0, &one, note, sizeof note), -1);
    assert_non_null(strstr(note, "0 threads"));
    elbo_topology_close(t);
}

/* A bad synthetic description: NULL and one line naming it. */
static void test_open_bad_description(void **state)
{
    (void)state;
    char err[256] = "";
    elbo_topology *t = elbo_topology_open("bogus:3 pu:1", err, sizeof err);
    assert_null(t);
    if (!strstr(err, "bogus:3") || strchr(err, '\n'))
        test_failf("error does not name the description on one line: '%s'\n", err);
}

/* ---- default thread count ---- */

/* Sets OMP_NUM_THREADS to value (NULL: unset) and returns the default thread count of t. */
static size_t threads_with(const elbo_topology *t, const char *value)
{
    if (value)
        setenv("OMP_NUM_THREADS", value, 1);
    else
        unsetenv("OMP_NUM_THREADS");
    return elbo_topology_default_threads(t);
}

/* Unset: one per core (16, not 32 hardware threads); valid values are taken; garbage falls back to the cores.
 * Catches: PUs as the default, atoi-style parsing that accepts "3x" or turns "abc" into 0. */
static void test_default_threads(void **state)
{
    (void)state;
    char *saved = getenv("OMP_NUM_THREADS") ? strdup(getenv("OMP_NUM_THREADS")) : NULL;
    elbo_topology *t = open_synthetic("package:2 numa:2 core:4 pu:2");
    assert_int_equal(threads_with(t, NULL), 16);
    assert_int_equal(threads_with(t, "3"), 3);
    assert_int_equal(threads_with(t, " 5 "), 5);
    assert_int_equal(threads_with(t, "4,2"), 4);
    assert_int_equal(threads_with(t, "64"), 64);
    static const char *garbage[] = {"abc", "0", "-2", "3x", "2.5", "", "99999999999999999999", "4,x"};
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++)
        if (threads_with(t, garbage[i]) != 16)
            test_failf("OMP_NUM_THREADS='%s' was not rejected\n", garbage[i]);
    if (saved)
        setenv("OMP_NUM_THREADS", saved, 1);
    else
        unsetenv("OMP_NUM_THREADS");
    free(saved);
    elbo_topology_close(t);
}

/* ---- warn once ---- */

typedef struct {
    elbo_warn_flag *flag;
    FILE *f;
    int printed;
} warn_arg;

/* Thread body: warns three times with the shared flag, counting how often it printed. */
static void *warn_thread(void *arg)
{
    warn_arg *a = arg;
    for (int i = 0; i < 3; i++)
        a->printed += elbo_warn_once(a->flag, a->f, "elbo: warning: binding unsupported (%d)", i);
    return NULL;
}

/* Four threads warning three times each: exactly one line is written, and exactly one call says it printed. */
static void test_warn_once(void **state)
{
    (void)state;
    elbo_warn_flag flag = ELBO_WARN_FLAG_INIT;
    FILE *f = tmpfile();
    assert_non_null(f);
    pthread_t th[4];
    warn_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (warn_arg){&flag, f, 0};
        assert_int_equal(pthread_create(&th[i], NULL, warn_thread, &args[i]), 0);
    }
    int printed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        printed += args[i].printed;
    }
    assert_int_equal(printed, 1);
    rewind(f);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        assert_non_null(strstr(line, "elbo: warning: binding unsupported"));
    }
    assert_int_equal(lines, 1);
    fclose(f);
}

/* ---- this machine ---- */

/* Opens this machine's topology, failing the test if hwloc cannot. */
static elbo_topology *open_here(void)
{
    char err[256] = "";
    elbo_topology *t = elbo_topology_open(NULL, err, sizeof err);
    if (!t)
        test_failf("open this machine: %s\n", err);
    return t;
}

/* The machine's topology opens, is this machine, and counts agree with each other and with what the process may
 * use (sched_getaffinity); the CPU descriptor is filled. */
static void test_machine_open(void **state)
{
    (void)state;
    elbo_topology *t = open_here();
    assert_int_equal(elbo_topology_is_this_machine(t), 1);
    size_t cores = elbo_topology_cores(t), pus = elbo_topology_pus(t);
    cpu_set_t allowed;
    assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    assert_true(cores >= 1 && cores <= pus);
    if (pus != (size_t)CPU_COUNT(&allowed))
        test_failf("hwloc sees %zu PUs, the process may use %d\n", pus, CPU_COUNT(&allowed));
    assert_true(elbo_topology_numa_nodes(t) >= 1);
    char desc[256];
    elbo_topology_cpu_model(t, desc, sizeof desc);
    assert_true(strlen(desc) > 0);
    printf("note: this machine: %s; %zu cores, %zu PUs, %zu NUMA nodes\n", desc, cores, pus,
           elbo_topology_numa_nodes(t));
    elbo_topology_close(t);
}

/* Threads of this process as the kernel lists them (qemu-user adds threads of its own), or -1. */
static int process_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Restricting the process to one CPU (as taskset does) restricts the topology to it. The process binding is
 * the union over its threads, so this is checked only when the test is the process's one thread; skipped
 * (saying why) when only one CPU is allowed already, other threads exist, or the affinity cannot be set. */
static void test_machine_respects_affinity(void **state)
{
    (void)state;
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
    if (CPU_COUNT(&saved) < 2) {
        print_message("skipped: only one CPU allowed already, nothing to restrict\n");
        skip();
    }
    int threads = process_threads();
    if (threads != 1) {
        print_message("skipped: the process has %d threads (an emulator's own?), whose affinity stays wide\n",
                      threads);
        skip();
    }
    int first = 0;
    while (!CPU_ISSET(first, &saved))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof one, &one)) {
        print_message("skipped: cannot restrict the affinity here (%s)\n", strerror(errno));
        skip();
    }
    char err[256] = "";
    elbo_topology *t = elbo_topology_open(NULL, err, sizeof err);
    size_t pus = t ? elbo_topology_pus(t) : 0, cores = t ? elbo_topology_cores(t) : 0;
    char note[256];
    elbo_thread_place p[2];
    int rc = t ? elbo_topology_plan(t, 2, p, note, sizeof note) : -1;
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
    if (!t)
        test_failf("open with one CPU allowed: %s\n", err);
    elbo_topology_close(t);
    if (pus != 1 || cores != 1)
        test_failf("with only CPU %d allowed hwloc sees %zu PUs, %zu cores\n", first, pus, cores);
    assert_int_equal(rc, 1); /* 2 threads on the one allowed core share it */
    assert_int_equal(p[0].pu_os, first);
    assert_int_equal(p[1].pu_os, first);
}

/* Binding the calling thread to place 0: hwloc_get_cpubind reads back exactly that PU; skipped (saying why)
 * where the system refuses binding. The thread's previous binding is restored. */
static void test_machine_bind(void **state)
{
    (void)state;
    elbo_topology *t = open_here();
    char note[256], cpus[256] = "";
    elbo_thread_place p[1];
    assert_true(elbo_topology_plan(t, 1, p, note, sizeof note) == 0);
    cpu_set_t saved;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof saved, &saved), 0);
    if (elbo_topology_bind_thread(t, p) != 0) {
        print_message("skipped: binding refused here (%s); threads would run unbound\n", strerror(errno));
        elbo_topology_close(t);
        skip();
    }
    int n = elbo_topology_thread_cpus(t, cpus, sizeof cpus);
    char want[32];
    snprintf(want, sizeof want, "%d", p[0].pu_os);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof saved, &saved), 0);
    if (n != 1 || strcmp(cpus, want) != 0)
        test_failf("bound to PU %s, hwloc_get_cpubind reads back '%s' (%d PUs)\n", want, cpus, n);
    elbo_topology_close(t);
}

/* A synthetic topology is not this machine: binding to it is refused, never pretended, and no binding is read
 * back. */
static void test_synthetic_bind_refused(void **state)
{
    (void)state;
    char note[256], cpus[256] = "";
    elbo_thread_place p[1];
    elbo_topology *t = open_synthetic("numa:1 core:2 pu:1");
    assert_int_equal(elbo_topology_plan(t, 1, p, note, sizeof note), 0);
    assert_int_equal(elbo_topology_bind_thread(t, p), -1);
    assert_int_equal(elbo_topology_thread_cpus(t, cpus, sizeof cpus), -1);
    elbo_topology_close(t);
}

/* Fills bytes of p from this thread and reads them back, failing on a mismatch. */
static void touch_and_check(unsigned char *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)(i * 31 + 7);
    for (size_t i = 0; i < bytes; i++)
        if (p[i] != (unsigned char)(i * 31 + 7))
            test_failf("byte %zu reads back %u\n", i, p[i]);
}

/* Memory on node 0 and interleaved memory: aligned, usable, a policy reported. */
static void test_machine_alloc(void **state)
{
    (void)state;
    elbo_topology *t = open_here();
    const size_t bytes = (1u << 20) + 123;
    const char *policy = NULL;
    unsigned char *p = elbo_topology_alloc_on_node(t, bytes, 0, &policy);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    if (!policy || (strcmp(policy, "bind") && strcmp(policy, "first-touch")))
        test_failf("alloc_on_node policy '%s'\n", policy ? policy : "(null)");
    touch_and_check(p, bytes);
    elbo_topology_free(t, p, bytes);

    const char *ipolicy = NULL;
    p = elbo_topology_alloc_interleaved(t, bytes, &ipolicy);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    if (!ipolicy || (strcmp(ipolicy, "interleave") && strcmp(ipolicy, "first-touch")))
        test_failf("alloc_interleaved policy '%s'\n", ipolicy ? ipolicy : "(null)");
    touch_and_check(p, bytes);
    elbo_topology_free(t, p, bytes);
    elbo_topology_close(t);

    /* synthetic topology: plain first-touch memory, no location claimed */
    t = open_synthetic(TWO_PACKAGES);
    p = elbo_topology_alloc_on_node(t, 4096, 3, &policy);
    assert_non_null(p);
    assert_string_equal(policy, "first-touch");
    touch_and_check(p, 4096);
    assert_int_equal(elbo_topology_area_node(t, p, 4096), -1);
    elbo_topology_free(t, p, 4096);
    elbo_topology_close(t);
}

/* Where the kernel answers memory location queries: memory bound to node 0 lives on node 0 (first-touch
 * memory on some node of the machine), and on a one-node machine interleaved memory lives on node 0; skipped
 * (saying why) where the query is unsupported (qemu-user). */
static void test_machine_alloc_location(void **state)
{
    (void)state;
    elbo_topology *t = open_here();
    const size_t bytes = (1u << 20) + 123;
    const char *policy = NULL;
    unsigned char *p = elbo_topology_alloc_on_node(t, bytes, 0, &policy);
    assert_non_null(p);
    touch_and_check(p, bytes);
    int node = elbo_topology_area_node(t, p, bytes);
    elbo_topology_free(t, p, bytes);
    if (node == -1) {
        print_message("skipped: memory location query unsupported here (policy %s)\n", policy);
        elbo_topology_close(t);
        skip();
    }
    print_message("alloc_on_node policy %s, pages on node %d\n", policy, node);
    if (!strcmp(policy, "bind") && node != 0)
        test_failf("memory bound to node 0 lives on node %d\n", node);
    assert_in_range(node, 0, elbo_topology_numa_nodes(t) - 1);

    p = elbo_topology_alloc_interleaved(t, bytes, &policy);
    assert_non_null(p);
    touch_and_check(p, bytes);
    node = elbo_topology_area_node(t, p, bytes);
    elbo_topology_free(t, p, bytes);
    if (elbo_topology_numa_nodes(t) == 1 && node != 0)
        test_failf("interleaved memory on a one-node machine lives on node %d\n", node);
    elbo_topology_close(t);
}

/* ---- the report ---- */

/* elbo_topology_print of t for n threads, into a malloc'ed string. */
static char *print_to_string(const elbo_topology *t, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    elbo_topology_print(t, n, f);
    fclose(f);
    return buf;
}

/* Fails unless text contains line. */
static void expect_line(const char *text, const char *line)
{
    if (!strstr(text, line))
        test_failf("report lacks '%s':\n%s\n", line, text);
}

/* The report of the two-package topology for 6 threads: node count, cores, the plan, the buffer placement. */
static void test_print_synthetic(void **state)
{
    (void)state;
    elbo_topology *t = open_synthetic(TWO_PACKAGES);
    char *s = print_to_string(t, 6);
    expect_line(s, "packages:     2\n");
    expect_line(s, "numa nodes:   4\n");
    expect_line(s, "  node 3 (os 3): 1.00 GiB memory, cpus 12-15, 4 cores\n");
    expect_line(s, "cores:        16 (16 hardware threads)\n");
    expect_line(s, "binding:      none (the topology is not this machine's)\n");
    expect_line(s, "threads:      6 (one per core)\n");
    expect_line(s, "  thread 0 -> core 0, PU 0, node 0, package 0\n");
    expect_line(s, "  thread 2 -> core 4, PU 4, node 1, package 0\n");
    expect_line(s, "  thread 5 -> core 12, PU 12, node 3, package 1\n");
    expect_line(s, "  activations+workspace of thread 5 -> node 3\n");
    expect_line(s, "  parameters -> interleaved across 4 nodes\n");
    free(s);
    elbo_topology_close(t);
}

/* The report of this machine names the binding support and plans the threads asked for. */
static void test_print_machine(void **state)
{
    (void)state;
    elbo_topology *t = open_here();
    char *s = print_to_string(t, 2);
    expect_line(s, "binding:      thread cpubind ");
    expect_line(s, "threads:      2 (");
    expect_line(s, "  thread 1 -> core ");
    expect_line(s, "allowed cpus: ");
    printf("%s", s);
    free(s);
    elbo_topology_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_two_packages_full),
        cmocka_unit_test(test_plan_two_packages_partial),
        cmocka_unit_test(test_plan_reference_shape),
        cmocka_unit_test(test_plan_wraps_onto_hardware_threads),
        cmocka_unit_test(test_plan_oversubscribed_and_errors),
        cmocka_unit_test(test_open_bad_description),
        cmocka_unit_test(test_default_threads),
        cmocka_unit_test(test_warn_once),
        cmocka_unit_test(test_machine_open),
        cmocka_unit_test(test_machine_respects_affinity),
        cmocka_unit_test(test_machine_bind),
        cmocka_unit_test(test_synthetic_bind_refused),
        cmocka_unit_test(test_machine_alloc),
        cmocka_unit_test(test_machine_alloc_location),
        cmocka_unit_test(test_print_synthetic),
        cmocka_unit_test(test_print_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
