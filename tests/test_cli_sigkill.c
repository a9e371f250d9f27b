/* Atomic checkpoints under SIGKILL: `elbo train --save X --save-every 1` rewrites X after every step and is
 * killed with SIGKILL at pseudo-random moments (fixed seed: the same delays every run), 15 times, each run
 * resuming from the X the last one left. After every kill X must load completely (parameters, config,
 * training state and optimizer moments, through the library), hold as many bytes as every other
 * checkpoint of the run (give or take the header's digits), and hold a step no earlier than the one seen before (the old file or a new
 * one, never a mix); the next run removes the temporary file a kill left. Finally the run is resumed to the
 * end of its epoch and must give the bytes of an uninterrupted run to that epoch: nothing a kill interrupted leaked into the result. */
#include "test_scratch.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "kernels.h"
#include "safetensors.h"

#define KILLS 15
/* the killed runs would go on for this long; the final comparison runs to the epoch after the last kill */
#define EPOCHS "100000"
/* the run: 1200 synthetic images, batch 40 (30 steps per epoch), a small model so each write is quick */
#define TRAIN_ARGS "--data", "synthetic:1200", "--batch", "40", "--hidden", "64", "--latent", "8", "--threads", "1"

/* Path of the elbo binary: beside this test's directory (build/tests/x -> build/elbo). */
static char elbo_path[MAX_PATH] = "build/elbo";

/* Starts elbo with the NULL-terminated arguments (stdout and stderr to log) and returns its pid. */
static pid_t start(const char *log, const char *const *args)
{
    const char *argv[40] = {elbo_path};
    size_t n = 0;
    while (args[n]) {
        assert_true(n < 38);
        argv[n + 1] = args[n];
        n++;
    }
    argv[n + 1] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execv(elbo_path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid; returns its exit status, or 128 + the signal that ended it. */
static int finish(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Sleeps ms milliseconds. */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Number of "<name>.tmp.*" files in dir. */
static size_t temp_files(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, len = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, name, len) == 0 && strncmp(e->d_name + len, ".tmp.", 5) == 0;
    closedir(d);
    return n;
}

/* Loads the checkpoint at path completely (model, state, optimizer); returns its step and sets *bytes and
 * *epoch (epochs completed). */
static long load_complete(const char *path, size_t *bytes, long *epoch)
{
    char err[512] = "";
    elbo_vae m;
    elbo_train_state st;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    *bytes = (size_t)sb.st_size;
    if (elbo_checkpoint_load(path, &m, elbo_kernels_by_name("scalar"), &st, err, sizeof err))
        test_failf("after a kill the checkpoint does not load: %s\n", err);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, st.lr);
    elbo_optimizer opt;
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    if (elbo_checkpoint_load_optimizer(path, &m, &opt, err, sizeof err))
        test_failf("after a kill the optimizer state does not load: %s\n", err);
    elbo_optimizer_free(&opt);
    elbo_vae_free(&m);
    *epoch = st.epoch;
    return st.step;
}

/* Reads a whole file into a new buffer (*len bytes). */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void test_sigkill_during_checkpoint_writes(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[MAX_PATH], whole[MAX_PATH], log[MAX_PATH];
    scratch_mkdtemp(dir, "elbo-sigkill");
    join(ckpt, dir, "run.safetensors");
    join(whole, dir, "whole.safetensors");
    join(log, dir, "log");
    test_rng rng = {20261123};
    long last_step = -1, epoch = 0;
    size_t size0 = 0, kills_in_write = 0;
    for (int k = 0; k < KILLS; k++) {
        int fresh = access(ckpt, F_OK) != 0;
        const char *fresh_args[] = {"train", TRAIN_ARGS, "--epochs", EPOCHS, "--save", ckpt, "--save-every", "1", NULL};
        const char *resume_args[] = {"train", "--data", "synthetic:1200", "--threads", "1", "--epochs", EPOCHS,
                                     "--resume", ckpt, "--save", ckpt, "--save-every", "1", NULL};
        size_t temps_before = fresh ? 0 : temp_files(dir, "run.safetensors");
        pid_t pid = start(log, fresh ? fresh_args : resume_args);
        if (fresh)
            while (access(ckpt, F_OK) != 0)
                sleep_ms(1);
        long delay = 20 + (long)test_rng_below(&rng, 180);
        sleep_ms(delay);
        kill(pid, SIGKILL);
        int status = finish(pid);
        size_t bytes;
        long step = load_complete(ckpt, &bytes, &epoch);
        size_t temps = temp_files(dir, "run.safetensors");
        kills_in_write += temps > 0;
        print_message("    kill %2d after %3ld ms: status %d, checkpoint of step %ld loads, %zu temporary file(s)"
                      " (%zu before the run)\n", k + 1, delay, status, step, temps, temps_before);
        if (status != 128 + SIGKILL)
            test_failf("the run ended before its kill (status %d); see %s\n", status, log);
        /* the header's numbers change length with the step: the data region is what must not change */
        if (size0 == 0)
            size0 = bytes;
        if (bytes + 64 < size0 || bytes > size0 + 64)
            test_failf("checkpoint of %zu bytes after kill %d, %zu before\n", bytes, k + 1, size0);
        if (step < last_step)
            test_failf("the checkpoint went back from step %ld to %ld\n", last_step, step);
        last_step = step;
        assert_true(temps <= 1);
    }
    print_message("    %zu of %d kills interrupted a write (a temporary file was left)\n", kills_in_write, KILLS);
    /* the rest of the epoch, then the same run without interruption: the same bytes */
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%ld", epoch + 1);
    const char *rest[] = {"train", "--data", "synthetic:1200", "--threads", "1", "--epochs", epochs, "--resume", ckpt,
                          "--save", ckpt, NULL};
    int status = finish(start(log, rest));
    if (status != 0)
        test_failf("the resumed run failed (status %d); see %s\n", status, log);
    assert_int_equal(temp_files(dir, "run.safetensors"), 0);
    const char *uninterrupted[] = {"train", TRAIN_ARGS, "--epochs", epochs, "--save", whole, NULL};
    assert_int_equal(finish(start(log, uninterrupted)), 0);
    size_t l0, l1;
    unsigned char *a = read_file(whole, &l0), *b = read_file(ckpt, &l1);
    if (l0 != l1 || memcmp(a, b, l0) != 0)
        test_failf("after %d kills and resumes the final checkpoint differs from an uninterrupted run's\n", KILLS);
    free(a);
    free(b);
    remove_tree(dir);
}

/* Finds the elbo binary beside this test's directory (build/tests/x -> build/elbo). */
static int find_elbo(void **state)
{
    (void)state;
    char self[MAX_PATH];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char candidate[MAX_PATH];
        int w = snprintf(candidate, sizeof candidate, "%s/../elbo", dirname(self));
        if (w > 0 && (size_t)w < sizeof candidate && access(candidate, X_OK) == 0)
            snprintf(elbo_path, sizeof elbo_path, "%s", candidate);
    }
    if (access(elbo_path, X_OK) != 0) {
        fprintf(stderr, "test_cli_sigkill: %s not found (run make first)\n", elbo_path);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_during_checkpoint_writes),
    };
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
