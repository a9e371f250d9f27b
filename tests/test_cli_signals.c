/* Stop signals and atomic checkpoints of `elbo train`. Each run is a child process started with fork/exec,
 * signalled with kill(2) by this process and reaped with waitpid:
 * - SIGTERM and SIGINT mid-epoch: the run finishes its step, writes the checkpoint of exactly the step its
 *   stop line on stderr names, exits (WIFEXITED, not killed) with 128 + the signal, and resuming from that
 *   checkpoint gives the bytes of an uninterrupted run;
 * - SIGTERM and SIGINT while a checkpoint is being written (its temporary file open for writing): the write
 *   completes, no temporary file is left, then the same stop;
 * - SIGKILL at pseudo-random moments, then aimed at writes in progress until one lands inside a write: after
 *   every kill the checkpoint on disk is the previous complete one, never a partial file. */
#include "test_cli_run.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <time.h>

#include "vae_checkpoint.h"
#include "kernels.h"

#define CKPT "run.safetensors"

/* Mid-epoch runs: 12000 synthetic images at batch 10 (1200 steps per epoch), a small model, a checkpoint
 * every 97 steps. The signal goes out as soon as the first checkpoint (step 97) exists, so the run stops a
 * few steps later, mid-epoch; a stop at a multiple of 97 or 1200 (which a periodic or end-of-epoch save
 * would also have written) is retried. */
#define MID_DATA "synthetic:12000"
#define MID_STEPS_PER_EPOCH 1200
#define MID_SAVE_EVERY 97
#define MID_ARGS "--data", MID_DATA, "--batch", "10", "--hidden", "64", "--latent", "8", "--threads", "1"

/* Write runs: 784-1024-8-1024-784 with Adam, a 19.6 MB checkpoint (parameters and two moments) after every
 * step, so a write is in progress most of the time. */
#define BIG_ARGS "--data", "synthetic:2000", "--batch", "32", "--hidden", "1024", "--latent", "8", "--threads", "1"
#define WRITE_ATTEMPTS 6

/* SIGKILL runs: 1200 synthetic images, batch 40 (30 steps per epoch), a checkpoint after every step. */
#define KILL_ARGS "--data", "synthetic:1200", "--batch", "40", "--hidden", "64", "--latent", "8", "--threads", "1"
#define KILLS 10
#define AIMED_KILLS 6
/* the killed runs would go on for this long; the final comparison runs to the epoch after the last kill */
#define KILL_EPOCHS "100000"

/* Sleeps us microseconds. */
static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A fresh scratch directory, by its canonical path (as /proc/<pid>/fd shows the files in it). */
static void scratch_real(char *dir)
{
    char made[MAX_PATH];
    scratch_mkdtemp(made, "elbo-signals");
    assert_non_null(realpath(made, dir));
}

/* Starts elbo with the NULL-terminated arguments (stdin and stdout /dev/null, stderr to err_fd, SIGINT and
 * SIGTERM at their default actions, SIGALRM after 60 s in case it is never reaped); returns its pid. */
static pid_t spawn(const char *const *args, int err_fd)
{
    const char *argv[MAX_ARGS + 2] = {elbo_path};
    size_t n = 0;
    while (args[n]) {
        assert_true(n < MAX_ARGS);
        argv[n + 1] = args[n];
        n++;
    }
    argv[n + 1] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(126);
        /* a shell without job control starts background jobs with SIGINT ignored: undo that */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        alarm(60);
        execv(elbo_path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Whether pid has ended (left unreaped, for reap). */
static int ended(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    return si.si_pid == pid;
}

/* Waits for pid; returns waitpid's raw status. */
static int reap(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

/* Fails unless the raw status st says the run exited, not killed, with 128 + sig. A process ended by the
 * signal's default action (no handler installed) is WIFSIGNALED instead, and fails here. */
static void expect_exit_after(int st, int sig, const char *err)
{
    if (WIFSIGNALED(st))
        test_failf("the run was killed by signal %d (its default action: no handler ran); stderr: %s\n",
                   WTERMSIG(st), err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 128 + sig)
        test_failf("exit status %d, expected %d (128 + signal %d); stderr: %s\n", WEXITSTATUS(st), 128 + sig, sig,
                   err);
}

/* The step N of stderr's line "elbo train: stopped by <name> after step N; checkpoint written to <ckpt>";
 * fails when the line is missing. */
static long stop_line_step(const char *err, const char *name, const char *ckpt)
{
    char key[64], tail[MAX_PATH + 64];
    snprintf(key, sizeof key, "elbo train: stopped by %s after step ", name);
    const char *p = strstr(err, key);
    if (!p)
        test_failf("stderr lacks \"%s\": \"%s\"\n", key, err);
    char *end;
    long n = strtol(p + strlen(key), &end, 10);
    snprintf(tail, sizeof tail, "; checkpoint written to %s\n", ckpt);
    if (end == p + strlen(key) || strncmp(end, tail, strlen(tail)) != 0)
        test_failf("stop line does not name a step and %s: \"%s\"\n", ckpt, p);
    return n;
}

/* Loads the checkpoint at path completely (model, config, training state, Adam moments) into *st; *bytes is
 * its size. Fails naming what (the `when` text) left it unloadable. */
static void load_complete(const char *path, const char *when, elbo_train_state *st, size_t *bytes)
{
    char err[512] = "";
    elbo_vae m;
    struct stat sb;
    if (stat(path, &sb) != 0)
        test_failf("%s: %s does not exist\n", when, path);
    *bytes = (size_t)sb.st_size;
    if (elbo_checkpoint_load(path, &m, elbo_kernels_by_name("scalar"), st, err, sizeof err))
        test_failf("%s: the checkpoint does not load: %s\n", when, err);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, st->lr);
    elbo_optimizer opt;
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    if (elbo_checkpoint_load_optimizer(path, &m.layout, &opt, err, sizeof err))
        test_failf("%s: the optimizer state does not load: %s\n", when, err);
    elbo_optimizer_free(&opt);
    elbo_vae_free(&m);
}

/* Number of "<name>.tmp.*" files in dir; the last one's path into path (MAX_PATH bytes) when path is set. */
static size_t temp_files(const char *dir, const char *name, char *path)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, len = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, name, len) == 0 && strncmp(e->d_name + len, ".tmp.", 5) == 0) {
            n++;
            if (path)
                join(path, dir, e->d_name);
        }
    closedir(d);
    return n;
}

/* Whether /proc/<pid>/fd shows a file of dir whose name starts with prefix open for writing (fdinfo flags
 * not O_RDONLY); its path into path (MAX_PATH bytes). */
static int open_for_writing(pid_t pid, const char *dir, const char *prefix, char *path)
{
    char fds[64], want[MAX_PATH], link[MAX_PATH];
    snprintf(fds, sizeof fds, "/proc/%d/fd", (int)pid);
    join(want, dir, prefix);
    DIR *d = opendir(fds);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char p[320];
        snprintf(p, sizeof p, "%s/%s", fds, e->d_name);
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strncmp(link, want, strlen(want)) != 0)
            continue;
        snprintf(p, sizeof p, "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        char line[128];
        long flags = -1;
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "flags:", 6) == 0)
                flags = strtol(line + 6, NULL, 8);
        if (f)
            fclose(f);
        if (flags >= 0 && (flags & O_ACCMODE) != O_RDONLY) {
            snprintf(path, MAX_PATH, "%s", link);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Polls every 100 us until pid has a file dir/prefix* open for writing (its path into path); fails when the
 * run ends first or after 20 s. */
static void await_write(pid_t pid, const char *dir, const char *prefix, char *path)
{
    double t0 = now_s();
    while (!open_for_writing(pid, dir, prefix, path)) {
        if (ended(pid))
            test_failf("the run ended (status %d) before writing a checkpoint\n", reap(pid));
        if (now_s() - t0 > 20)
            test_failf("no checkpoint write began within 20 s\n");
        sleep_us(100);
    }
}

/* Polls every 100 us until path exists; fails when the run ends first or after 20 s. */
static void await_file(pid_t pid, const char *path)
{
    double t0 = now_s();
    while (access(path, F_OK) != 0) {
        if (ended(pid))
            test_failf("the run ended (status %d) before %s appeared\n", reap(pid), path);
        if (now_s() - t0 > 20)
            test_failf("%s did not appear within 20 s\n", path);
        sleep_us(100);
    }
}

/* Polls every 100 us until path is gone; fails when the run ends first or after 20 s. */
static void await_gone(pid_t pid, const char *path, const char *why)
{
    double t0 = now_s();
    while (access(path, F_OK) == 0) {
        if (ended(pid) || now_s() - t0 > 20)
            test_failf("%s still exists: %s\n", path, why);
        sleep_us(100);
    }
}

/* The step in the metadata of the checkpoint open at fd, read from its start (the 8-byte length and the JSON
 * header must be complete), or -1 when the header is not all there. */
static long header_step(int fd)
{
    unsigned char len8[8];
    long step = -1;
    if (pread(fd, len8, 8, 0) != 8)
        return -1;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)len8[i] << (8 * i);
    char *h = hlen < (1 << 20) ? malloc(hlen) : NULL;
    if (h && pread(fd, h, hlen, 8) == (ssize_t)hlen) {
        cJSON *j = cJSON_ParseWithLength(h, hlen);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(meta, "step");
        if (cJSON_IsString(s))
            step = atol(s->valuestring);
        cJSON_Delete(j);
    }
    free(h);
    return step;
}

/* header_step of the file at path. */
static long partial_step(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    long step = header_step(fd);
    close(fd);
    return step;
}

/* Reads a whole file into a new buffer (*len bytes). */
static unsigned char *read_whole(const char *path, size_t *len)
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

/* Fails unless the files at a and b hold the same bytes (what names the comparison). */
static void expect_same_bytes(const char *a, const char *b, const char *what)
{
    size_t la, lb;
    unsigned char *x = read_whole(a, &la), *y = read_whole(b, &lb);
    if (la != lb || memcmp(x, y, la) != 0)
        test_failf("%s: %s (%zu bytes) differs from %s (%zu bytes)\n", what, a, la, b, lb);
    free(x);
    free(y);
}

/* Runs elbo to completion with the arguments (NULL-terminated) and fails unless it exits 0. */
static void run_ok(const char *const *args)
{
    run_result r;
    run_argv(&r, args);
    if (r.status != 0)
        test_failf("elbo %s exited %d: %s\n", args[0], r.status, r.err);
    run_free(&r);
}

/* Signal sig (named name) once the first mid-epoch checkpoint exists: the run stops mid-epoch at step N of
 * its stop line, exits 128 + sig, leaves the checkpoint of exactly step N (epoch 0, epoch_step N), and
 * resuming from it to the end of the epoch gives the bytes of an uninterrupted epoch. */
static void stop_mid_epoch(int sig, const char *name)
{
    char dir[MAX_PATH], ckpt[MAX_PATH], whole[MAX_PATH];
    scratch_real(dir);
    join(ckpt, dir, CKPT);
    join(whole, dir, "whole.safetensors");
    char every[16];
    snprintf(every, sizeof every, "%d", MID_SAVE_EVERY);
    /* two epochs: a run that ignores the signal ends by itself (status 0) instead of running on */
    const char *args[] = {"train", MID_ARGS, "--epochs", "2", "--save", ckpt, "--save-every", every, NULL};
    elbo_train_state st;
    long n = 0;
    for (int attempt = 1;; attempt++) {
        unlink(ckpt);
        int err_fd = capture_file();
        pid_t pid = spawn(args, err_fd);
        await_file(pid, ckpt);
        assert_int_equal(kill(pid, sig), 0);
        int ws = reap(pid);
        char *err = read_fd(err_fd);
        close(err_fd);
        expect_exit_after(ws, sig, err);
        n = stop_line_step(err, name, ckpt);
        free(err);
        size_t bytes;
        load_complete(ckpt, "after the stop", &st, &bytes);
        if (st.step != n)
            test_failf("the stop line says step %ld, the checkpoint holds step %ld\n", n, st.step);
        print_message("    %s stopped the run after step %ld (attempt %d)\n", name, n, attempt);
        if (n % MID_STEPS_PER_EPOCH != 0 && n % MID_SAVE_EVERY != 0)
            break;
        if (attempt == 3)
            test_failf("in 3 attempts %s never stopped the run off a multiple of %d or %d (last: step %ld; a run"
                       " that heeds the signal only at the epoch's end stops at %d)\n", name, MID_SAVE_EVERY,
                       MID_STEPS_PER_EPOCH, n, MID_STEPS_PER_EPOCH);
    }
    if (st.epoch != n / MID_STEPS_PER_EPOCH || st.epoch_step != n % MID_STEPS_PER_EPOCH)
        test_failf("step %ld: the checkpoint says epoch %ld, epoch_step %ld; expected %ld, %ld\n", n, st.epoch,
                   st.epoch_step, n / MID_STEPS_PER_EPOCH, n % MID_STEPS_PER_EPOCH);
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%ld", st.epoch + 1);
    const char *rest[] = {"train", "--data", MID_DATA, "--threads", "1", "--epochs", epochs, "--resume", ckpt,
                          "--save", ckpt, NULL};
    run_ok(rest);
    const char *uninterrupted[] = {"train", MID_ARGS, "--epochs", epochs, "--save", whole, NULL};
    run_ok(uninterrupted);
    expect_same_bytes(ckpt, whole, "stopped mid-epoch, resumed to the epoch's end");
    remove_tree(dir);
}

/* SIGTERM mid-epoch: status 143, "stopped by SIGTERM after step N", checkpoint of step N, bitwise resume. */
static void test_sigterm_mid_epoch(void **state)
{
    (void)state;
    stop_mid_epoch(SIGTERM, "SIGTERM");
}

/* SIGINT mid-epoch: status 130, "stopped by SIGINT after step N", checkpoint of step N, bitwise resume. */
static void test_sigint_mid_epoch(void **state)
{
    (void)state;
    stop_mid_epoch(SIGINT, "SIGINT");
}

/* Signal sig (named name) while the run has a checkpoint's temporary file open for writing (waiting delay
 * microseconds after seeing it open, a quarter as long after each miss): the signal landed inside the write
 * when the temporary file still exists once kill(2) returned. Then the write of step k must complete: no
 * temporary file left, the stop line naming step k + 1 (the step after the write), exit 128 + sig, a
 * checkpoint that loads completely and holds that step. */
static void stop_during_write(int sig, const char *name)
{
    char dir[MAX_PATH], ckpt[MAX_PATH], open_path[MAX_PATH];
    scratch_real(dir);
    join(ckpt, dir, CKPT);
    const char *args[] = {"train", BIG_ARGS, "--epochs", "2", "--save", ckpt, "--save-every", "1", NULL};
    long delay = 2000;
    for (int attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++, delay /= 4) {
        unlink(ckpt);
        int err_fd = capture_file();
        pid_t pid = spawn(args, err_fd);
        await_write(pid, dir, CKPT, open_path);
        if (!strstr(open_path + strlen(dir), ".tmp.")) {
            kill(pid, SIGKILL);
            reap(pid);
            test_failf("%s is written in place (open for writing), not to a temporary file renamed over it\n",
                       open_path);
        }
        /* held open, the file is readable after the run renamed it: the step it was written for */
        int written = open(open_path, O_RDONLY);
        if (written < 0) {
            kill(pid, SIGKILL);
            reap(pid);
            close(err_fd);
            print_message("    attempt %d: the write ended before it could be watched\n", attempt);
            continue;
        }
        sleep_us(delay);
        assert_int_equal(kill(pid, sig), 0);
        int landed = access(open_path, F_OK) == 0;
        int ws = reap(pid);
        char *err = read_fd(err_fd);
        close(err_fd);
        print_message("    attempt %d: %s %ld us after the write began %s\n", attempt, name, delay,
                      landed ? "landed during it" : "came after it ended");
        expect_exit_after(ws, sig, err);
        char left[MAX_PATH];
        if (temp_files(dir, CKPT, left))
            test_failf("%s left %s behind: the write in progress was abandoned; stderr: %s\n", name, left, err);
        long n = stop_line_step(err, name, ckpt);
        free(err);
        elbo_train_state st;
        size_t bytes;
        load_complete(ckpt, "after the stop", &st, &bytes);
        if (st.step != n)
            test_failf("the stop line says step %ld, the checkpoint holds step %ld\n", n, st.step);
        /* the write at step k completes, step k + 1 runs (the step in progress), then the run stops */
        long k = header_step(written);
        struct stat held;
        assert_int_equal(fstat(written, &held), 0);
        close(written);
        /* the header's numbers change length with the step: the data region is what must be whole */
        if (landed && ((size_t)held.st_size + 64 < bytes || (size_t)held.st_size > bytes + 64))
            test_failf("the write of step %ld that %s interrupted ended at %lld bytes; a whole checkpoint has %zu\n",
                       k, name, (long long)held.st_size, bytes);
        if (landed && (k < 0 || n != k + 1))
            test_failf("%s during the write of step %ld: the run stopped after step %ld, not %ld\n", name, k, n,
                       k + 1);
        if (landed) {
            remove_tree(dir);
            return;
        }
    }
    test_failf("in %d attempts no %s landed while a checkpoint's temporary file existed\n", WRITE_ATTEMPTS, name);
}

/* SIGTERM inside a checkpoint write: the write completes, then the stop (status 143, checkpoint of step N). */
static void test_sigterm_during_write(void **state)
{
    (void)state;
    stop_during_write(SIGTERM, "SIGTERM");
}

/* SIGINT inside a checkpoint write: the write completes, then the stop (status 130, checkpoint of step N). */
static void test_sigint_during_write(void **state)
{
    (void)state;
    stop_during_write(SIGINT, "SIGINT");
}

/* `elbo train --save X --save-every 1` rewrites X after every step and is killed with SIGKILL: KILLS times
 * at pseudo-random moments (fixed seed), then, until a kill has landed inside a write, up to AIMED_KILLS
 * times while a write is in progress (waiting a quarter as long after each miss). Each run resumes from the
 * X the last one left and must first remove the temporary file a kill left. After every kill X loads
 * completely, is as large as every other checkpoint of the run (give or take the header's digits) and its
 * step never goes back; a kill that left a temporary file landed inside a write, and X must then be the
 * previous checkpoint: the step before the one in the temporary file's header. Finally the run is resumed to
 * the end of its epoch and must give the bytes of an uninterrupted run. */
static void test_sigkill_during_checkpoint_writes(void **state)
{
    (void)state;
    char dir[MAX_PATH], ckpt[MAX_PATH], whole[MAX_PATH], log[MAX_PATH];
    scratch_real(dir);
    join(ckpt, dir, CKPT);
    join(whole, dir, "whole.safetensors");
    join(log, dir, "log");
    int log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(log_fd >= 0);
    test_rng rng = {20261123};
    long last_step = -1, epoch = 0, aimed_delay = 2000;
    size_t size0 = 0, in_write = 0;
    int k;
    for (k = 0; k < KILLS || (in_write == 0 && k < KILLS + AIMED_KILLS); k++) {
        const int aimed = k >= KILLS;
        const int fresh = access(ckpt, F_OK) != 0;
        const char *fresh_args[] = {"train", KILL_ARGS, "--epochs", KILL_EPOCHS, "--save", ckpt, "--save-every", "1",
                                    NULL};
        const char *resume_args[] = {"train", "--data", "synthetic:1200", "--threads", "1", "--epochs", KILL_EPOCHS,
                                     "--resume", ckpt, "--save", ckpt, "--save-every", "1", NULL};
        char stale[MAX_PATH] = "", open_path[MAX_PATH] = "", left[MAX_PATH] = "";
        temp_files(dir, CKPT, stale);
        pid_t pid = spawn(fresh ? fresh_args : resume_args, log_fd);
        if (fresh)
            await_file(pid, ckpt);
        if (stale[0])
            await_gone(pid, stale, "the run did not remove the temporary file of the killed write before it");
        long delay = aimed ? aimed_delay : 20000 + (long)test_rng_below(&rng, 180000);
        if (aimed)
            await_write(pid, dir, CKPT, open_path);
        sleep_us(delay);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int ws = reap(pid);
        if (!WIFSIGNALED(ws) || WTERMSIG(ws) != SIGKILL)
            test_failf("the run ended before its kill (status %d); see %s\n", WEXITSTATUS(ws), log);
        size_t temps = temp_files(dir, CKPT, left);
        long write_step = temps ? partial_step(left) : -1;
        char when[64];
        snprintf(when, sizeof when, "after kill %d", k + 1);
        elbo_train_state st;
        size_t bytes;
        load_complete(ckpt, when, &st, &bytes);
        print_message("    kill %2d %s %6ld us: checkpoint of step %ld loads%s", k + 1,
                      aimed ? "in a write after" : "after", delay, st.step, temps ? ", a write was interrupted" : "");
        if (write_step >= 0)
            print_message(" (of step %ld)", write_step);
        print_message("\n");
        assert_true(temps <= 1);
        /* the header's numbers change length with the step: the data region is what must not change */
        if (size0 == 0)
            size0 = bytes;
        if (bytes + 64 < size0 || bytes > size0 + 64)
            test_failf("checkpoint of %zu bytes after kill %d, %zu before: a partial file\n", bytes, k + 1, size0);
        if (st.step < last_step)
            test_failf("the checkpoint went back from step %ld to %ld\n", last_step, st.step);
        if (write_step >= 0 && st.step != write_step - 1)
            test_failf("kill %d interrupted the write of step %ld, yet the checkpoint holds step %ld, not %ld\n",
                       k + 1, write_step, st.step, write_step - 1);
        last_step = st.step;
        epoch = st.epoch;
        in_write += temps > 0;
        if (aimed && !temps)
            aimed_delay /= 4;
    }
    if (in_write == 0)
        test_failf("none of %d kills (%d aimed at writes in progress) left a temporary file: no kill landed inside"
                   " a checkpoint write\n", k, k - KILLS);
    print_message("    %zu of %d kills interrupted a write\n", in_write, k);
    close(log_fd);
    /* the rest of the epoch, then the same run without interruption: the same bytes */
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%ld", epoch + 1);
    const char *rest[] = {"train", "--data", "synthetic:1200", "--threads", "1", "--epochs", epochs, "--resume", ckpt,
                          "--save", ckpt, NULL};
    run_ok(rest);
    assert_int_equal(temp_files(dir, CKPT, NULL), 0);
    const char *uninterrupted[] = {"train", KILL_ARGS, "--epochs", epochs, "--save", whole, NULL};
    run_ok(uninterrupted);
    expect_same_bytes(ckpt, whole, "killed and resumed, then run to the epoch's end");
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_mid_epoch),
        cmocka_unit_test(test_sigint_mid_epoch),
        cmocka_unit_test(test_sigterm_during_write),
        cmocka_unit_test(test_sigint_during_write),
        cmocka_unit_test(test_sigkill_during_checkpoint_writes),
    };
    return cmocka_run_group_tests(tests, find_elbo, NULL);
}
