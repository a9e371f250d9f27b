/* Running the elbo command from the tests: the binary beside the test's build directory, each run a separate
 * process with its status, stdout and stderr captured; one-line error expectations; scratch directories. */
#ifndef ELBO_TEST_CLI_RUN_H
#define ELBO_TEST_CLI_RUN_H

#include "test_scratch.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 32
#define CAPTURE_MAX (1 << 20)

/* Path of the elbo binary: beside this test's directory, else build/elbo from the repo root. */
static char elbo_path[MAX_PATH] = "build/elbo";

/* Seconds a run may take before it is killed (SIGALRM). */
static unsigned run_alarm_seconds = 60;

/* When set, runs as user and group nobody if the test is root (so that file permissions apply), from a copy of
 * the binary that nobody may reach (see nobody_elbo). */
static int run_unprivileged;

/* The directory holding the copy of elbo that runs as nobody ("" until made). */
static char nobody_dir[MAX_PATH];

/* ---- running the command ---- */

/* What one run of elbo did. */
typedef struct {
    int status;       /* exit status, or -1 if it did not exit normally */
    char *out, *err;  /* captured stdout and stderr, NUL-terminated */
} run_result;

/* Reads the whole file behind fd (from the start) into a new NUL-terminated buffer. */
static inline char *read_fd(int fd)
{
    char *buf = malloc(CAPTURE_MAX + 1);
    assert_non_null(buf);
    size_t len = 0;
    ssize_t n;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while (len < CAPTURE_MAX && (n = read(fd, buf + len, CAPTURE_MAX - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return buf;
}

/* An unlinked temporary file for capturing output. */
static inline int capture_file(void)
{
    char path[] = "/tmp/elbo-cli-out-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Removes the directory of the copy of elbo that runs as nobody (at exit). */
static inline void remove_nobody_dir(void)
{
    remove_tree(nobody_dir);
}

/* Path of a copy of elbo that user nobody may run: the checkout, and so elbo_path, may lie in a directory only
 * its owner can enter (as mktemp -d makes), so the binary is copied once into a fresh directory under /tmp
 * (not $TMPDIR, which may be private too) that everyone may read, removed at exit. */
static inline const char *nobody_elbo(void)
{
    static char path[MAX_PATH];
    if (nobody_dir[0])
        return path;
    snprintf(nobody_dir, sizeof nobody_dir, "/tmp/elbo-nobody-XXXXXX");
    assert_non_null(mkdtemp(nobody_dir));
    atexit(remove_nobody_dir);
    assert_int_equal(chmod(nobody_dir, 0755), 0);
    join(path, nobody_dir, "elbo");
    FILE *in = fopen(elbo_path, "rb"), *out = fopen(path, "wb");
    if (!in || !out)
        test_failf("copying %s to %s: %s\n", elbo_path, path, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    assert_false(ferror(in));
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(path, 0755), 0);
    return path;
}

/* Runs elbo with the NULL-terminated arguments args (stdin from /dev/null, run_alarm_seconds limit) and captures its
 * exit status, stdout and stderr; as nobody (run_unprivileged, when root) it runs the copy from nobody_elbo. */
static inline void run_argv(run_result *r, const char *const *args)
{
    int as_nobody = run_unprivileged && geteuid() == 0;
    const char *exe = as_nobody ? nobody_elbo() : elbo_path;
    const char *argv[MAX_ARGS + 2] = {elbo_path};
    size_t n = 0;
    while (args[n]) {
        assert_true(n < MAX_ARGS);
        argv[n + 1] = args[n];
        n++;
    }
    argv[n + 1] = NULL;
    int out = capture_file(), err = capture_file();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (as_nobody && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(126);
        alarm(run_alarm_seconds);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = read_fd(out);
    r->err = read_fd(err);
    close(out);
    close(err);
    if (r->status == 127)
        test_failf("cannot run %s (build it with make)\n", exe);
}

/* Runs elbo with the arguments given (NULL-terminated). */
static inline void run(run_result *r, ...)
{
    const char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n < MAX_ARGS);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    run_argv(r, args);
}

/* Frees a run's captured output. */
static inline void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Number of newline-terminated lines in s (a final line without a newline counts too). */
static inline size_t count_lines(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '\n';
    if (*s && s[strlen(s) - 1] != '\n')
        n++;
    return n;
}

/* Fails unless the run exited with `status` and wrote exactly one line to stderr containing a (and b). */
static inline void expect_error(const run_result *r, int status, const char *a, const char *b)
{
    print_message("    [%d] %s", r->status, r->err);
    if (r->status != status)
        test_failf("exit status %d, expected %d; stderr: %s\n", r->status, status, r->err);
    if (count_lines(r->err) != 1 || r->err[strlen(r->err) - 1] != '\n')
        test_failf("stderr is not exactly one line: \"%s\"\n", r->err);
    const char *want[] = {a, b};
    for (size_t i = 0; i < 2; i++)
        if (want[i] && !strstr(r->err, want[i]))
            test_failf("stderr \"%s\" lacks \"%s\"\n", r->err, want[i]);
}

/* Runs elbo with the NULL-terminated arguments after a and b and expects status 2 with one stderr line
 * naming a (and b). */
static inline void expect_usage_error(const char *a, const char *b, ...)
{
    const char *args[MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, b);
    const char *s;
    while ((s = va_arg(ap, const char *))) {
        assert_true(n < MAX_ARGS);
        args[n++] = s;
    }
    va_end(ap);
    args[n] = NULL;
    run_result r;
    run_argv(&r, args);
    expect_error(&r, 2, a, b);
    /* bad usage is refused before any work: no training output */
    if (strstr(r.out, "epoch"))
        test_failf("a training run started: %s\n", r.out);
    run_free(&r);
}

/* ---- results of runs ---- */

/* The number named key of JSON object j (fails the test if absent). */
static inline double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        test_failf("JSON lacks number \"%s\"\n", key);
    return v->valuedouble;
}

/* The whole file at path (caller frees; fails the test if unreadable); *len its size. */
static inline unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        test_failf("cannot read %s\n", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len ? *len : 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* Fails unless the files at a and b hold the same bytes; what names the comparison. */
static inline void expect_same_file(const char *a, const char *b, const char *what)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    if (na != nb || memcmp(x, y, na) != 0)
        test_failf("%s: %s and %s differ\n", what, a, b);
    free(x);
    free(y);
}

/* dir/name into buf (2 * MAX_PATH bytes). */
static inline const char *in_dir(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 2 * MAX_PATH, "%s/%s", dir, name);
    return buf;
}

/* ---- scratch directory ---- */

/* Creates a fresh temporary directory in dir (MAX_PATH bytes). */
static inline void scratch_open(char *dir)
{
    scratch_mkdtemp(dir, "elbo-cli");
}

/* Fails unless dir holds exactly `want` entries. */
static inline void expect_entries(const char *dir, size_t want)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            print_message("    %s: %s\n", dir, e->d_name);
            n++;
        }
    closedir(d);
    if (n != want)
        test_failf("%s holds %zu entries, expected %zu\n", dir, n, want);
}

/* Finds the elbo binary beside this test's directory (build/tests/x -> build/elbo). */
static inline int find_elbo(void **state)
{
    (void)state;
    char self[MAX_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *tests_dir = dirname(self);
        char candidate[MAX_PATH];
        int w = snprintf(candidate, sizeof candidate, "%s/../elbo", tests_dir);
        if (w > 0 && (size_t)w < sizeof candidate && access(candidate, X_OK) == 0)
            snprintf(elbo_path, sizeof elbo_path, "%s", candidate);
    }
    if (access(elbo_path, X_OK) != 0) {
        fprintf(stderr, "%s not found (run make first)\n", elbo_path);
        return -1;
    }
    return 0;
}

/* One option as --help must show it: name and the default text (NULL for flags, which are off). */
typedef struct {
    const char *name, *def;
} help_option;

/* Runs `elbo cmd --help` and checks status 0, nothing on stderr, and one line per option naming its
 * default, no other option lines; then checks the parser knows each option. Catches: --help that exits
 * non-zero or prints to stderr, an option missing from the help, a default shown that differs from the
 * real one (the table below is the documented behaviour), help listing options the parser rejects. */
static inline void check_help(const char *cmd, const help_option *opts, size_t n)
{
    run_result r;
    run(&r, cmd, "--help", NULL);
    if (r.status != 0 || r.err[0])
        test_failf("elbo %s --help: status %d, stderr \"%s\"\n", cmd, r.status, r.err);
    char usage[64];
    snprintf(usage, sizeof usage, "usage: elbo %s", cmd);
    assert_non_null(strstr(r.out, usage));
    for (size_t i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "  --%s ", opts[i].name);
        const char *line = strstr(r.out, key);
        if (!line)
            test_failf("elbo %s --help does not list --%s:\n%s\n", cmd, opts[i].name, r.out);
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char text[512];
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        if (opts[i].def) {
            char def[128];
            snprintf(def, sizeof def, "(default: %s", opts[i].def);
            if (!strstr(text, def))
                test_failf("elbo %s --help: \"%s\" does not show %s\n", cmd, text, def);
        }
    }
    /* every option line is one of the table's (plus --help) */
    size_t lines = 0;
    for (const char *p = r.out; (p = strstr(p, "\n  --")); p++)
        lines++;
    if (lines != n + 1)
        test_failf("elbo %s --help lists %zu options, expected %zu and --help:\n%s\n", cmd, lines, n, r.out);
    run_free(&r);
    /* the parser accepts each option: given without a value it asks for one (a flag refuses a value) */
    for (size_t i = 0; i < n; i++) {
        char name[64], arg[80];
        snprintf(name, sizeof name, "--%s", opts[i].name);
        snprintf(arg, sizeof arg, "%s%s", name, opts[i].def ? "" : "=1");
        run(&r, cmd, arg, NULL);
        expect_error(&r, 2, name, opts[i].def ? "missing value" : "takes no value");
        run_free(&r);
    }
}

#endif
