/* Running a child elbo command for `elbo zoo` (posix_spawn; stdout through a pipe, stderr to an unlinked file). */
#include "zoo_child.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_common.h"

extern char **environ;

void zoo_argv_add(zoo_argv *a, ...)
{
    va_list ap;
    va_start(ap, a);
    const char *s;
    while ((s = va_arg(ap, const char *))) {
        assert(a->n < ZOO_CHILD_MAX_ARGS);
        a->args[a->n++] = s;
    }
    va_end(ap);
    a->args[a->n] = NULL;
}

/* Reads fd to its end into a new NUL-terminated buffer (NULL when out of memory). */
static char *read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger, cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The last non-empty line of the file behind fd (read from its start, at most its last 64 KiB) into line. */
static void last_line(int fd, char *line, size_t len)
{
    line[0] = '\0';
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > 65536 ? size - 65536 : 0;
    if (size <= 0 || lseek(fd, from, SEEK_SET) < 0)
        return;
    char *text = read_all(fd);
    if (!text)
        return;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    char *start = strrchr(text, '\n');
    start = start ? start + 1 : text;
    char *cr = strrchr(start, '\r'); /* a progress bar's last redraw */
    snprintf(line, len, "%s", cr ? cr + 1 : start);
    free(text);
}

int zoo_child_run(const char *exe, const zoo_argv *a, zoo_child *c)
{
    memset(c, 0, sizeof *c);
    c->status = -1;
    char errpath[] = "/tmp/elbo-zoo-stderr-XXXXXX";
    int pipefd[2] = {-1, -1}, errfd = mkstemp(errpath);
    if (errfd >= 0)
        unlink(errpath);
    if (errfd < 0 || pipe(pipefd) != 0) {
        snprintf(c->err_line, sizeof c->err_line, "cannot capture its output: %s", strerror(errno));
        if (errfd >= 0)
            close(errfd);
        return -1;
    }
    const char *argv[ZOO_CHILD_MAX_ARGS + 2] = {exe};
    for (size_t i = 0; i <= a->n; i++)
        argv[i + 1] = a->args[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    if (pipefd[1] > 2)
        posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    if (errfd > 2)
        posix_spawn_file_actions_addclose(&fa, errfd);
    double t0 = cli_now();
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        snprintf(c->err_line, sizeof c->err_line, "cannot run %s: %s", exe, strerror(rc));
        close(pipefd[0]);
        close(errfd);
        return -1;
    }
    c->out = read_all(pipefd[0]);
    close(pipefd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->seconds = cli_now() - t0;
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    last_line(errfd, c->err_line, sizeof c->err_line);
    close(errfd);
    if (!c->out) {
        snprintf(c->err_line, sizeof c->err_line, "out of memory reading its output");
        c->status = c->status ? c->status : 1;
    }
    return c->status;
}

void zoo_child_free(zoo_child *c)
{
    free(c->out);
    c->out = NULL;
}

void zoo_argv_format(const char *exe, const zoo_argv *a, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i <= a->n && used < len; i++) {
        const char *s = i == 0 ? exe : a->args[i - 1];
        int quote = s[0] == '\0' || strpbrk(s, " \t'\"$\\*?;&|<>()") != NULL;
        int w = snprintf(buf + used, len - used, "%s%s%s%s", i ? " " : "", quote ? "'" : "", s, quote ? "'" : "");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}
