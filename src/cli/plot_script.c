/* Running the matplotlib plot script. */
#include "plot_script.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

int plot_script_find(const char *command, char *out, size_t outlen)
{
    const char *env = getenv("ELBO_PLOT_SCRIPT");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) {
            fprintf(stderr, "elbo %s: cannot locate the plot script (set ELBO_PLOT_SCRIPT)\n", command);
            return -1;
        }
        exe[n] = '\0';
        snprintf(out, outlen, "%s/../scripts/elbo_plot.py", dirname(exe));
    }
    if (access(out, R_OK) != 0) {
        fprintf(stderr, "elbo %s: plot script %s: %s (set ELBO_PLOT_SCRIPT)\n", command, out, strerror(errno));
        return -1;
    }
    if (access(PYTHON, X_OK) != 0) {
        fprintf(stderr, "elbo %s: %s: %s (install python3-matplotlib)\n", command, PYTHON, strerror(errno));
        return -1;
    }
    return 0;
}

int plot_script_run(const char *command, const char *script, const char *const *args)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = PYTHON;
    argv[n++] = script;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "elbo %s: cannot start the plot script: %s\n", command, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execv(PYTHON, (char *const *)argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "elbo %s: plot script: %s\n", command, strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "elbo %s: plot script %s failed (status %d)\n", command, script,
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return -1;
    }
    return 0;
}
