/* GEMM peers in a child process (see bench_peer.h): the child's server and the parent's side. */
#include "bench_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "bench_peer_libs.h"
#include "bf16.h"

extern char **environ;

#define PEER_FD 3             /* the child's end of the socket */
#define REPLY_TIMEOUT_MS 60000 /* longest wait for one reply (the largest check takes well under a second) */
#define CHECK_SAMPLES 256     /* elements checked besides the first and last rows and columns */

/* The variables that force OpenBLAS's kernels: removed from the child's environment only. */
static const char *const FORCING_VARS[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};

/* ---- the child ---- */

/* One shape's operands, made from the bench's seeds (as bench_gemm.c makes elbo's). */
typedef struct {
    bench_peer_gemm g;
    size_t lda, ldb;
    float *a, *b, *c;
} peer_case;

static peer_case *g_cases;
static size_t g_n_cases;

/* The operands of g's shape, made on first use; NULL when out of memory. */
static peer_case *case_for(const bench_peer_gemm *g)
{
    for (size_t i = 0; i < g_n_cases; i++) {
        const bench_peer_gemm *h = &g_cases[i].g;
        if (h->m == g->m && h->n == g->n && h->k == g->k && h->ta == g->ta && h->tb == g->tb)
            return &g_cases[i];
    }
    peer_case *grown = realloc(g_cases, (g_n_cases + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    g_cases = grown;
    peer_case *pc = &g_cases[g_n_cases];
    *pc = (peer_case){.g = *g, .lda = g->ta ? g->m : g->k, .ldb = g->tb ? g->k : g->n};
    pc->a = bench_random_floats(g->m * g->k, 1);
    pc->b = bench_random_floats(g->k * g->n, 2);
    pc->c = bench_random_floats(g->m * g->n, 3);
    if (!pc->a || !pc->b || !pc->c) {
        free(pc->a), free(pc->b), free(pc->c);
        return NULL;
    }
    g_n_cases++;
    return pc;
}

/* x, or x rounded to bf16 for a bf16 peer (its inputs as it multiplies them). */
static double input_value(float x, int bf16)
{
    return bf16 ? (double)elbo_bf16_to_f32(elbo_bf16_from_f32(x)) : (double)x;
}

/* Error of element (i, j) of the peer's C over its bound (k + 1) u sum_p |a_ip b_pj|, from a double product (of
 * the inputs rounded to bf16 for a bf16 peer). */
static double element_error(const peer_case *pc, size_t i, size_t j, int bf16)
{
    const bench_peer_gemm *g = &pc->g;
    double ref = 0, mag = 0;
    for (size_t p = 0; p < g->k; p++) {
        double a = input_value(pc->a[g->ta ? p * pc->lda + i : i * pc->lda + p], bf16);
        double b = input_value(pc->b[g->tb ? j * pc->ldb + p : p * pc->ldb + j], bf16);
        ref += a * b;
        mag += fabs(a * b);
    }
    double bound = (double)(g->k + 1) * 0x1p-24 * mag + 1e-30;
    double c = pc->c[i * g->n + j];
    return isfinite(c) ? fabs(c - ref) / bound : INFINITY;
}

/* Runs one GEMM over a NaN-filled C and checks it (see bench_peer.h); 0 with *worst, or -1 with why. */
static int check_case(const bench_peer_lib *lib, peer_case *pc, double *worst, char *why, size_t whylen)
{
    const bench_peer_gemm *g = &pc->g;
    for (size_t x = 0; x < g->m * g->n; x++)
        pc->c[x] = NAN;
    if (lib->sgemm(g->ta, g->tb, g->m, g->n, g->k, pc->a, pc->lda, pc->b, pc->ldb, pc->c, g->n, why, whylen) != 0)
        return -1;
    for (size_t x = 0; x < g->m * g->n; x++)
        if (!isfinite(pc->c[x])) {
            snprintf(why, whylen, "C[%zu][%zu] = %g: not written or not finite", x / g->n, x % g->n, pc->c[x]);
            return -1;
        }
    *worst = 0;
    uint32_t s = 12345;
    for (size_t t = 0; t < 2 * (g->m + g->n) + CHECK_SAMPLES; t++) {
        size_t i, j;
        if (t < 2 * g->n) /* first and last rows */
            i = t < g->n ? 0 : g->m - 1, j = t % g->n;
        else if (t < 2 * (g->m + g->n)) /* first and last columns */
            i = (t - 2 * g->n) % g->m, j = t - 2 * g->n < g->m ? 0 : g->n - 1;
        else {
            s ^= s << 13, s ^= s >> 17, s ^= s << 5; /* xorshift32 */
            i = s % g->m, j = (s / g->m) % g->n;
        }
        double e = element_error(pc, i, j, lib->bf16);
        if (e > *worst)
            *worst = e;
        if (e > 1) {
            snprintf(why, whylen, "C[%zu][%zu] = %.9g is off by %.3g times the bound (k + 1) u sum|a b|", i, j,
                     pc->c[i * g->n + j], e);
            return -1;
        }
    }
    return 0;
}

/* Seconds on `clock` (CLOCK_MONOTONIC: wall time; CLOCK_PROCESS_CPUTIME_ID: the process's CPU time). */
static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Answers one request line on out. */
static void serve(const bench_peer_lib *lib, const char *line, FILE *out)
{
    char cmd[16], why[256] = "";
    bench_peer_gemm g = {0};
    long long iters = 0;
    int n = sscanf(line, "%15s %zu %zu %zu %d %d %d %lld", cmd, &g.m, &g.n, &g.k, &g.ta, &g.tb, &g.threads, &iters);
    int is_check = n == 7 && strcmp(cmd, "check") == 0, is_time = n == 8 && strcmp(cmd, "time") == 0;
    if ((!is_check && !is_time) || !g.m || !g.n || !g.k || g.threads < 1 || (is_time && iters < 1)) {
        fprintf(out, "fail bad request: %s", line);
        return;
    }
    peer_case *pc = case_for(&g);
    if (!pc) {
        fprintf(out, "fail out of memory\n");
        return;
    }
    lib->set_threads(g.threads);
    if (is_check) {
        double worst;
        if (check_case(lib, pc, &worst, why, sizeof why) != 0)
            fprintf(out, "fail %s\n", why);
        else
            fprintf(out, "ok %.6g\n", worst);
        return;
    }
    double t0 = clock_seconds(CLOCK_MONOTONIC), cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (long long it = 0; it < iters; it++)
        if (lib->sgemm(g.ta, g.tb, g.m, g.n, g.k, pc->a, pc->lda, pc->b, pc->ldb, pc->c, g.n, why, sizeof why) != 0) {
            fprintf(out, "fail %s\n", why);
            return;
        }
    double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    fprintf(out, "ok %.9g %.9g\n", clock_seconds(CLOCK_MONOTONIC) - t0, cpu);
}

int bench_peer_child_main(int argc, char **argv)
{
    const char *name = NULL;
    int fd = -1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--peer=", 7) == 0)
            name = argv[i] + 7;
        else if (strncmp(argv[i], "--peer-fd=", 10) == 0)
            fd = atoi(argv[i] + 10);
    }
    if (!name)
        return -1;
    FILE *in = fd >= 0 ? fdopen(fd, "r") : NULL, *out = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
    if (!in || !out) {
        fprintf(stderr, "elbo_bench --peer=%s: no socket to the parent (--peer-fd)\n", name);
        return 2;
    }
    dup2(STDERR_FILENO, STDOUT_FILENO); /* whatever a library prints stays off the socket */
    const bench_peer_lib *lib = bench_peer_lib_find(name);
    if (!lib) {
        fprintf(out, "fail no peer called '%s'\n", name);
        return 2;
    }
    char line[512];
    lib->describe(line, sizeof line);
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' ';
    fprintf(out, "hello %s\n", line);
    fflush(out);
    while (fgets(line, sizeof line, in)) {
        serve(lib, line, out);
        fflush(out);
    }
    return 0;
}

/* ---- the parent ---- */

struct bench_peer {
    pid_t pid;
    int fd;
    char name[32];
    char kernel[1024];
    char dead[256]; /* non-empty once the child is gone or misbehaved: every later call fails with it */
    char buf[1024];
    size_t len; /* bytes of buf not yet consumed */
};

/* Marks the peer dead with why (killing and reaping its child) and copies why into err. */
static int fail_dead(bench_peer *p, const char *why, char *err, size_t errlen)
{
    if (!p->dead[0]) {
        snprintf(p->dead, sizeof p->dead, "%s", why);
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = -1;
        }
    }
    snprintf(err, errlen, "%s", p->dead);
    return -1;
}

/* The child's exit as a phrase ("died of signal 11 (Segmentation fault)", "exited with status 2"). */
static void describe_exit(bench_peer *p, char *out, size_t outlen)
{
    int status = 0;
    pid_t r = waitpid(p->pid, &status, 0);
    p->pid = -1;
    if (r < 0)
        snprintf(out, outlen, "%s child: lost (%s)", p->name, strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "%s child died of signal %d (%s)", p->name, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, outlen, "%s child exited with status %d", p->name, WEXITSTATUS(status));
}

/* Reads the child's next reply line into line (without the newline); 0, or -1 with why in err. */
static int read_reply(bench_peer *p, char *line, size_t linelen, char *err, size_t errlen)
{
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            size_t n = (size_t)(nl - p->buf);
            snprintf(line, linelen, "%.*s", (int)n, p->buf);
            memmove(p->buf, nl + 1, p->len - n - 1);
            p->len -= n + 1;
            return 0;
        }
        char why[256];
        if (p->len == sizeof p->buf) {
            snprintf(why, sizeof why, "%s child: reply longer than %zu bytes", p->name, sizeof p->buf);
            return fail_dead(p, why, err, errlen);
        }
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, REPLY_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            snprintf(why, sizeof why, "%s child: no reply in %d s (killed)", p->name, REPLY_TIMEOUT_MS / 1000);
            return fail_dead(p, why, err, errlen);
        }
        ssize_t got = r > 0 ? read(p->fd, p->buf + p->len, sizeof p->buf - p->len) : -1;
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            describe_exit(p, why, sizeof why);
            return fail_dead(p, why, err, errlen);
        }
        p->len += (size_t)got;
    }
}

/* Sends a request and reads the reply's text after "ok "; 0, or -1 with why (the child's "fail" text too). */
static int request(bench_peer *p, const char *req, char *reply, size_t replylen, char *err, size_t errlen)
{
    if (p->dead[0])
        return fail_dead(p, p->dead, err, errlen);
    size_t n = strlen(req);
    if (send(p->fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        char why[256];
        describe_exit(p, why, sizeof why);
        return fail_dead(p, why, err, errlen);
    }
    char line[sizeof p->buf];
    if (read_reply(p, line, sizeof line, err, errlen) != 0)
        return -1;
    if (strncmp(line, "ok ", 3) == 0) {
        snprintf(reply, replylen, "%s", line + 3);
        return 0;
    }
    snprintf(err, errlen, "%s: %s", p->name, strncmp(line, "fail ", 5) == 0 ? line + 5 : line);
    return -1;
}

/* envp without the variables that force OpenBLAS's kernels (the strings are environ's). */
static char **peer_environment(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 1, sizeof *envp);
    if (!envp)
        return NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int forcing = 0;
        for (size_t v = 0; v < sizeof FORCING_VARS / sizeof FORCING_VARS[0]; v++) {
            size_t len = strlen(FORCING_VARS[v]);
            forcing |= strncmp(environ[i], FORCING_VARS[v], len) == 0 && environ[i][len] == '=';
        }
        if (!forcing)
            envp[kept++] = environ[i];
    }
    return envp;
}

bench_peer *bench_peer_start(const char *name, char *err, size_t errlen)
{
    bench_peer *p = calloc(1, sizeof *p);
    char **envp = peer_environment();
    int sv[2] = {-1, -1};
    if (!p || !envp || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "%s: cannot start a child: %s", name, strerror(errno));
        free(p), free(envp);
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    p->fd = sv[0];
    if (sv[1] == PEER_FD) { /* dup2 onto itself would keep close-on-exec */
        int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, PEER_FD + 1);
        close(sv[1]);
        sv[1] = moved;
    }
    char peer_arg[64], fd_arg[32];
    snprintf(peer_arg, sizeof peer_arg, "--peer=%s", name);
    snprintf(fd_arg, sizeof fd_arg, "--peer-fd=%d", PEER_FD);
    char *child_argv[] = {"elbo_bench", peer_arg, fd_arg, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], PEER_FD);
    int rc = sv[1] >= 0 ? posix_spawn(&p->pid, "/proc/self/exe", &fa, NULL, child_argv, envp) : errno;
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    free(envp);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot start a child: %s", name, strerror(rc));
        close(p->fd);
        free(p);
        return NULL;
    }
    char line[sizeof p->buf];
    if (read_reply(p, line, sizeof line, err, errlen) != 0 || strncmp(line, "hello ", 6) != 0) {
        if (!p->dead[0])
            snprintf(err, errlen, "%s child: %s", name, line);
        bench_peer_stop(p);
        return NULL;
    }
    snprintf(p->kernel, sizeof p->kernel, "%s", line + 6);
    return p;
}

int bench_peer_alive(const bench_peer *p)
{
    return !p->dead[0];
}

const char *bench_peer_kernel(const bench_peer *p)
{
    return p->kernel;
}

/* The request's shape fields "M N K TA TB THREADS". */
static void shape_fields(const bench_peer_gemm *g, char *out, size_t outlen)
{
    snprintf(out, outlen, "%zu %zu %zu %d %d %d", g->m, g->n, g->k, g->ta ? 1 : 0, g->tb ? 1 : 0, g->threads);
}

int bench_peer_check(bench_peer *p, const bench_peer_gemm *g, double *worst, char *err, size_t errlen)
{
    char shape[96], req[128], reply[1024];
    shape_fields(g, shape, sizeof shape);
    snprintf(req, sizeof req, "check %s\n", shape);
    if (request(p, req, reply, sizeof reply, err, errlen) != 0)
        return -1;
    *worst = strtod(reply, NULL);
    return 0;
}

int bench_peer_time(bench_peer *p, const bench_peer_gemm *g, int64_t iters, double *seconds, double *cpu_seconds,
                    char *err, size_t errlen)
{
    char shape[96], req[160], reply[1024];
    shape_fields(g, shape, sizeof shape);
    snprintf(req, sizeof req, "time %s %lld\n", shape, (long long)iters);
    if (request(p, req, reply, sizeof reply, err, errlen) != 0)
        return -1;
    char *rest;
    *seconds = strtod(reply, &rest);
    *cpu_seconds = strtod(rest, NULL);
    return 0;
}

void bench_peer_stop(bench_peer *p)
{
    if (!p)
        return;
    close(p->fd);
    if (p->pid > 0)
        waitpid(p->pid, NULL, 0);
    free(p);
}
