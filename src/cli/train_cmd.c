/* `elbo train`: trains a model of any kind on the table in train_kinds.h (--model vae, the default) on a dataset,
 * reporting per epoch the train loss, the model's test metrics and throughput; checkpoints, --resume, --target
 * (time to quality) and stop signals for every kind alike. */
#include <errno.h>
#include <signal.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "classes.h"
#include "cli.h"
#include "cli_common.h"
#include "finite.h"
#include "optim.h"
#include "safetensors.h"
#include "train.h"
#include "train_kinds.h"
#include "train_progress.h"
#ifdef ELBO_MPI
#include "dist.h"
#endif

/* Seconds on the monotonic clock when `elbo train` started (the time-to-quality clock includes data loading). */
static double process_start;

/* Rows per forward pass of the test-set evaluation. */
#define EVAL_BATCH 1024

/* Exit status of a run stopped because the loss, the gradients or the parameters became NaN or infinite. */
#define EXIT_DIVERGED 3

/* Where the run's checkpoints go and what the file on disk holds. */
typedef struct {
    const char *dataset;    /* the data's name, recorded in the checkpoint */
    long saved_step;        /* step of the last checkpoint written by this run (-1: none yet) */
    int failed;             /* a save failed (message printed) */
    int diverged;           /* the parameters became non-finite before a save (message printed) */
} checkpoint_sink;

static int save_checkpoint(const train_args *a, const elbo_trainer *tr, long epoch, size_t epoch_pos,
                           checkpoint_sink *sink);

/* Time to quality: the test -ELBO checked every eval_every steps until it reaches the target. */
typedef struct {
    train_progress *progress;
    const train_args *args;
    const elbo_model *model;
    const train_kind *kind;
    void *eval_act;             /* the model's activations for EVAL_BATCH rows */
    elbo_team *team;
    const elbo_images_view *test;
    checkpoint_sink *sink;
    int reached;
    double seconds, neg_elbo;   /* when reached: seconds since start and the test metric (the -ELBO, ...) then */
} quality_watch;

/* Step callback: progress and stop signals, a checkpoint every save_every steps, then, every eval_every
 * steps, the test -ELBO against --target. */
static int watch_step(void *ctx, const elbo_trainer *tr, size_t done, size_t total, const elbo_loss_means *run)
{
    quality_watch *q = ctx;
    if (train_progress_step(q->progress, tr, done, total, run))
        return 1;
    if (q->args->save_every > 0 && tr->step % q->args->save_every == 0 && done < total &&
        save_checkpoint(q->args, tr, tr->epoch, done, q->sink))
        return 1;
    if (q->args->target <= 0 || tr->step % q->args->eval_every != 0)
        return 0;
    elbo_loss_means te = elbo_evaluate(q->model, q->eval_act, EVAL_BATCH, q->team, q->test, q->args->seed);
    if (te.loss > q->args->target)
        return 0;
    q->reached = 1;
    q->seconds = cli_now() - process_start;
    q->neg_elbo = te.loss;
    return 1;
}

/* Reports the time to quality (after training stopped with --target). */
static void report_quality(const train_args *a, const quality_watch *q, const elbo_trainer *tr)
{
    const char *name = q->kind->target_metric;
    if (a->json) {
        const char *keys[] = {q->kind->target_keys[0], "reached", "steps", q->kind->target_keys[1],
                              "seconds_to_target"};
        double vals[] = {a->target, q->reached, (double)tr->step, q->reached ? q->neg_elbo : 0,
                         q->reached ? q->seconds : 0};
        cli_print_json_numbers(keys, vals, 5, NULL, NULL);
    } else if (q->reached) {
        printf("target reached: %s %.4f <= %g after %ld steps, %.2f s since start (data loading included)\n", name,
               q->neg_elbo, a->target, tr->step, q->seconds);
    } else {
        printf("target not reached: %s stayed above %g for %ld steps\n", name, a->target, tr->step);
    }
}

static const char *describe_saved(const train_args *a, const checkpoint_sink *sink, char *buf, size_t len);

/* Saves a checkpoint if --save was given, of a run that has completed `epoch` epochs and epoch_pos samples of
 * the next; refuses non-finite parameters (the file keeps the last good checkpoint). Prints the error and
 * returns -1 on failure (sink->failed or sink->diverged set). */
static int save_checkpoint(const train_args *a, const elbo_trainer *tr, long epoch, size_t epoch_pos,
                           checkpoint_sink *sink)
{
    char err[512], saved[1024];
    if (!a->save)
        return 0;
#ifdef ELBO_MPI
    if (!elbo_dist_writes_files()) /* every rank holds the same parameters: rank 0 writes them */
        return 0;
#endif
    if (!elbo_floats_finite(tr->model.params, tr->model.layout->total)) {
        fprintf(stderr, "elbo train: step %ld: the parameters became NaN or infinite; try a lower --lr (%s)\n",
                tr->step, describe_saved(a, sink, saved, sizeof saved));
        sink->diverged = 1;
        return -1;
    }
    elbo_train_state st;
    memset(&st, 0, sizeof st);
    st.seed = a->seed;
    st.step = tr->step;
    st.epoch = epoch;
    st.epoch_step = (long)(epoch_pos / a->batch);
    snprintf(st.optimizer, sizeof st.optimizer, "%s", a->optimizer);
    st.lr = a->lr;
    st.momentum = a->momentum;
    st.batch = a->batch;
    snprintf(st.dataset, sizeof st.dataset, "%s", sink->dataset);
    snprintf(st.classes, sizeof st.classes, "%s", a->classes ? a->classes : "");
    if (elbo_checkpoint_write(a->save, &tr->model, &st, &tr->opt, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s\n", err);
        sink->failed = 1;
        return -1;
    }
    sink->saved_step = tr->step;
    return 0;
}

/* Writes into buf what the --save file holds now: this run's last checkpoint, or nothing of this run. */
static const char *describe_saved(const train_args *a, const checkpoint_sink *sink, char *buf, size_t len)
{
    if (sink->saved_step >= 0)
        snprintf(buf, len, "%s keeps the checkpoint of step %ld", a->save, sink->saved_step);
    else
        snprintf(buf, len, "%s was not written", a->save);
    return buf;
}

/* Exit status after a failed save: divergence or a write error. */
static int save_failure_status(const checkpoint_sink *sink)
{
    return sink->diverged ? EXIT_DIVERGED : 1;
}

/* Checks before training that --save names a file in a writable directory; prints the error and returns -1. */
static int check_save_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "elbo train: --save: '%s' is a directory\n", path);
        return -1;
    }
    char *copy = strdup(path);
    if (!copy)
        return -1;
    const char *dir = dirname(copy);
    int rc = access(dir, W_OK | X_OK);
    if (rc != 0)
        fprintf(stderr, "elbo train: --save: cannot write %s: directory '%s': %s\n", path, dir, strerror(errno));
    free(copy);
    return rc ? -1 : 0;
}

/* Runs the epochs; returns the exit status. */
static int run_training(const train_args *a, const elbo_dataset *ds, const train_model *tmod,
                        const elbo_optimizer_config *oc, const elbo_topology *topo, const elbo_train_state *resume)
{
    char err[512];
    elbo_trainer tr;
    elbo_model mm = tmod->model;
    if (elbo_trainer_init(&tr, &mm, oc, a->batch, a->seed, ds->train.n, a->threads, topo, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s\n", err);
        return 1;
    }
#ifdef ELBO_MPI
    if (elbo_dist_attach(&tr, a->threads, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s\n", err);
        elbo_trainer_free(&tr);
        return 2;
    }
#endif
    if (resume) {
        if (elbo_checkpoint_load_optimizer(a->resume, mm.layout, &tr.opt, err, sizeof err)) {
            fprintf(stderr, "elbo train: %s\n", err);
            elbo_trainer_free(&tr);
            return 2;
        }
        tr.step = tr.opt.step = resume->step;
        tr.epoch = resume->epoch;
        tr.epoch_pos = (size_t)resume->epoch_step * a->batch;
    }
    void *eval_act = mm.ops->act_new(mm.impl, EVAL_BATCH);
    if (!eval_act) {
        fprintf(stderr, "elbo train: out of memory allocating evaluation buffers\n");
        elbo_trainer_free(&tr);
        return 1;
    }
    elbo_images_view train = cli_view(&ds->train), test = cli_view(&ds->test);
    train_progress p = {0};
    p.epochs = a->epochs;
    checkpoint_sink sink = {ds->name, -1, 0, 0};
    quality_watch q = {&p, a, &mm, tmod->kind, eval_act, &tr.team, &test, &sink, 0, 0, 0};
    int status = 0;
    if ((size_t)tr.epoch >= a->epochs || (a->steps > 0 && tr.step >= a->steps))
        fprintf(stderr, "elbo train: %s already has %ld epochs and %ld steps; nothing to do for --epochs %zu%s\n",
                a->resume ? a->resume : "the model", tr.epoch, tr.step, a->epochs, a->steps > 0 ? " --steps" : "");
    for (size_t e = (size_t)tr.epoch + 1; e <= a->epochs; e++) {
        elbo_loss_means tm = {0, {0, 0}, 0};
        train_progress_begin(&p, e, tr.epoch_pos);
        int rc = elbo_trainer_epoch(&tr, &train, a->steps, watch_step, &q, &tm, err, sizeof err);
        double train_s = cli_now() - p.start;
        if (sink.failed || sink.diverged) {
            status = save_failure_status(&sink);
            break;
        }
        if (rc < 0) {
            if (p.tty)
                fprintf(stderr, "\n");
            char saved[1024];
            if (a->save)
                fprintf(stderr, "elbo train: %s (%s)\n", err, describe_saved(a, &sink, saved, sizeof saved));
            else
                fprintf(stderr, "elbo train: %s\n", err);
            status = EXIT_DIVERGED;
            break;
        }
        if (train_stop_signal()) {
            if (p.tty)
                fprintf(stderr, "\n");
            int sig = train_stop_signal();
            status = save_checkpoint(a, &tr, tr.epoch, tr.epoch_pos, &sink) ? save_failure_status(&sink) : 128 + sig;
            fprintf(stderr, "elbo train: stopped by %s after step %ld%s%s\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    tr.step, a->save && status >= 128 ? "; checkpoint written to " : "", a->save && status >= 128 ? a->save : "");
            break;
        }
        if (tm.samples == 0)
            break;
        double t0 = cli_now();
        elbo_loss_means te = {0, {0, 0}, 0};
        if (tmod->kind->evaluates) /* else the epoch line reports the training means alone (the GAN) */
            te = elbo_evaluate(&mm, eval_act, EVAL_BATCH, &tr.team, &test, a->seed);
        train_progress_clear(&p);
        train_epoch ep = {e, tr.step, &tm, &te, train_s > 0 ? (double)tm.samples / train_s : 0, train_s,
                          cli_now() - t0, mm.input_dim};
        tmod->kind->report_epoch(a, &ep);
        if (a->target > 0 && !q.reached && te.loss <= a->target) { /* the epoch's own evaluation counts too */
            q.reached = 1;
            q.seconds = cli_now() - process_start;
            q.neg_elbo = te.loss;
        }
        if (save_checkpoint(a, &tr, tr.epoch, tr.epoch_pos, &sink)) {
            status = save_failure_status(&sink);
            break;
        }
        if (rc == 1 || q.reached)
            break;
    }
    if (a->target > 0 && status == 0)
        report_quality(a, &q, &tr);
    mm.ops->act_free(eval_act);
    elbo_trainer_free(&tr);
    return status;
}

static int train_with_topology(train_args *ap, elbo_optimizer_kind kind, const elbo_topology *topo);

int cli_train(int argc, char **argv)
{
    process_start = cli_now();
    train_args a = {.model = "vae", .recon = "mse", .optimizer = "adam", .epochs = 10, .batch = 128, .eval_every = 100,
                    .latent = 20, .lr = 1e-3, .momentum = 0.9, .beta = 1.0, .seed = 1, .adam_beta1 = 0.9,
                    .adam_beta2 = 0.999, .real_label = 1.0, .d_lr_scale = 1.0, .d_steps = 1,
                    .spectral_norm = 1, .ema = 0.999};
    cli_option opts[] = {
        {"model", ARG_STRING, &a.model, "vae|classifier|gan|flow|diffusion",
         "what to train: the VAE, an MLP classifier of the labels (softmax cross-entropy), an MLP GAN, a RealNVP "
         "flow, or a DDPM", 0, 0, NULL,
         0, 0},
        {"data", ARG_STRING, &a.data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"epochs", ARG_SIZE, &a.epochs, "N", "passes over the training set", 1, 1e6, NULL, 0, 0},
        {"steps", ARG_LONG, &a.steps, "N", "stop after N optimizer steps in total (0: no limit)", 0, 1e15, NULL, 0, 0},
        {"batch", ARG_SIZE, &a.batch, "N", "minibatch size (the last partial batch is used)", 1, 1 << 20, NULL, 0, 0},
        {"lr", ARG_DOUBLE, &a.lr, "X", "learning rate", 1e-12, 1e6, "0.001; gan: 0.0002", 0, 0},
        {"adam-beta1", ARG_DOUBLE, &a.adam_beta1, "X", "gan: Adam's beta1 (both networks)", 0, 0.999999, "0.5", 0, 0},
        {"adam-beta2", ARG_DOUBLE, &a.adam_beta2, "X", "gan: Adam's beta2 (both networks)", 0, 0.999999, "0.999", 0,
         0},
        {"real-label", ARG_DOUBLE, &a.real_label, "X",
         "gan: D's target for real images (below 1: one-sided label smoothing)", 0.5, 1, NULL, 0, 0},
        {"d-lr-scale", ARG_DOUBLE, &a.d_lr_scale, "X", "gan: the discriminator's learning rate over the generator's",
         1e-3, 100, NULL, 0, 0},
        {"spectral-norm", ARG_SIZE, &a.spectral_norm, "0|1",
         "gan: 1 normalizes D's weights by their largest singular value (one power iteration per D forward)", 0, 1,
         "1", 0, 0},
        {"d-steps", ARG_SIZE, &a.d_steps, "N", "gan: D steps (each on the next real batch) per G step", 1, 100, NULL, 0,
         0},
        {"schedule", ARG_STRING, &a.schedule, "linear|cosine",
         "diffusion: the noise schedule (linear beta 1e-4 .. 0.02 over 1000 steps, or cosine)", 0, 0, "linear", 0, 0},
        {"ema", ARG_DOUBLE, &a.ema, "X", "diffusion: the decay of the weights' moving average (sampling, eval)", 0,
         0.999999, NULL, 0, 0},
        {"optimizer", ARG_STRING, &a.optimizer, "adam|sgd", "Adam (betas 0.9, 0.999, eps 1e-8) or SGD", 0, 0, NULL, 0, 0},
        {"momentum", ARG_DOUBLE, &a.momentum, "X", "SGD momentum", 0, 1, NULL, 0, 0},
        {"hidden", ARG_STRING, &a.hidden, "W[,W...]",
         "hidden widths, input side first (the VAE's encoder; the GAN's generator, latent side first; the diffusion "
         "model's residual stream, one width)", 0, 0, "400; classifier: 256,256; gan: 256,512; diffusion: 1024", 0, 0},
        {"d-hidden", ARG_STRING, &a.d_hidden, "W[,W...]", "gan: the discriminator's hidden widths, input side first", 0,
         0, "512,256", 0, 0},
        {"decoder-hidden", ARG_STRING, &a.decoder_hidden, "W[,W...]", "decoder hidden widths", 0, 0,
         "the encoder's, mirrored", 0, 0},
        {"couplings", ARG_SIZE, &a.couplings, "K", "flow: affine couplings", 0, 1 << 20, "8", 0, 0},
        {"mask", ARG_STRING, &a.mask, "checkerboard|half",
         "flow: the couplings' masks (alternating with their complements)", 0, 0, "checkerboard", 0, 0},
        {"latent", ARG_SIZE, &a.latent, "Z", "latent dimensions", 1, 4096, "20; gan: 64", 0, 0},
        {"recon", ARG_STRING, &a.recon, "mse|bce", "reconstruction likelihood: Gaussian (MSE) or Bernoulli (BCE)",
         0, 0, NULL, 0, 0},
        {"sigma0", ARG_DOUBLE, &a.sigma0, "X", "MSE: recon = sum (x - x')^2 / (2 sigma0^2)", 1e-6, 1e6,
         "0.7071 (sum of squares)", 0, 0},
        {"beta", ARG_DOUBLE, &a.beta, "X", "weight of the KL term", 0, 1e6, NULL, 0, 0},
        {"seed", ARG_U64, &a.seed, "N", "seed of the initialization, the noise and the data order", 0, 0, NULL, 0, 0},
        {"classes", ARG_STRING, &a.classes, "C[,C...]",
         "train only on the training images of these classes (the test split stays whole)", 0, 0, "all", 0, 0},
        {"threads", ARG_SIZE, &a.threads, "N", "OpenMP threads; results are bitwise the same for any N", 1, 4096,
         "one per physical core, or OMP_NUM_THREADS", 0, 0},
        {"target", ARG_DOUBLE, &a.target, "X",
         "stop when the test -ELBO reaches X and report the time since start (time to quality); 0: off", 0, 1e9, NULL, 0, 0},
        {"eval-every", ARG_LONG, &a.eval_every, "N", "with --target: evaluate every N steps", 1, 1e9, NULL, 0, 0},
        {"resume", ARG_STRING, &a.resume, "PATH",
         "continue a run from its checkpoint, bitwise as if uninterrupted (--epochs, --steps count from its start)",
         0, 0, "none", 0, 0},
        {"save", ARG_STRING, &a.save, "PATH", "write a safetensors checkpoint after every epoch", 0, 0, NULL, 0, 0},
        {"save-every", ARG_LONG, &a.save_every, "N", "with --save: also write it every N steps (0: only per epoch)", 0,
         1e15, NULL, 0, 0},
        {"json", ARG_FLAG, &a.json, "", "one JSON object per epoch on stdout", 0, 0, NULL, 0, 0},
        {"precision", ARG_STRING, &a.precision, "fp32|bf16",
         "the linear layers' GEMMs: fp32, or bf16 operands with fp32 accumulation (weights, gradients, optimizer and "
         "losses stay fp32; needs AVX512_BF16 or FEAT_BF16, or ELBO_ISA=scalar's emulation)", 0, 0,
         "fp32; with --resume: the checkpoint's", 0, 0},
    };
    cli_parse_result pr = cli_parse("train", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Trains a model; each epoch reports the train loss, the test metrics and samples/s.\n"
                                    "--model vae (default): the test -ELBO per sample with its reconstruction and KL "
                                    "parts; the objective\nis the minibatch sum of recon + beta * KL. --model "
                                    "classifier: the test accuracy and cross-entropy;\nthe objective is the "
                                    "minibatch sum of cross-entropies.\n--model gan: the D and G losses and D's mean outputs on real and "
                                    "generated images (training means);\nD minimizes BCE(D(x), 1) + BCE(D(G(z)), 0), "
                                    "then G the non-saturating BCE(D(G(z)), 1) on the same z, each with its own Adam "
                                    "update.\n--model flow: the train and test bits per dimension of the discrete "
                                    "pixels; the objective is the minibatch mean\nof -log p(x) in nats (exact, with "
                                    "uniform dequantization).\n--model diffusion: the train and test simple loss (the "
                                    "mean squared error of the predicted noise).");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    elbo_optimizer_kind kind = ELBO_OPT_ADAM;
    if (strcmp(a.optimizer, "sgd") == 0)
        kind = ELBO_OPT_SGD;
    else if (strcmp(a.optimizer, "adam") != 0) {
        fprintf(stderr, "elbo train: --optimizer: '%s' is not adam or sgd\n", a.optimizer);
        return 2;
    }
    size_t n_opts = sizeof opts / sizeof opts[0];
    const train_kind *model_kind = train_kind_find(a.model);
    if (!model_kind) {
        char names[128];
        fprintf(stderr, "elbo train: --model: '%s' is not %s\n", a.model, train_kind_names(names, sizeof names, " or "));
        return 2;
    }
    if (a.resume) { /* the checkpoint's kind decides; its config and training options are fixed */
        static const char *const fixed[] = {"model", "seed", "batch", "lr", "optimizer", "momentum", "classes"};
        for (size_t i = 0; i < n_opts; i++) {
            int is_fixed = train_kind_is_model_flag(opts[i].name);
            for (size_t f = 0; f < sizeof fixed / sizeof fixed[0]; f++)
                is_fixed |= strcmp(opts[i].name, fixed[f]) == 0;
            if (opts[i].seen && is_fixed) {
                fprintf(stderr, "elbo train: --%s: not allowed with --resume (the checkpoint sets it)\n", opts[i].name);
                return 2;
            }
        }
    } else {
        if (train_kind_check_flags(model_kind, opts, n_opts))
            return 2;
        if (model_kind->set_defaults)
            model_kind->set_defaults(&a, opts, n_opts);
    }
    if (a.save_every > 0 && !a.save) {
        fprintf(stderr, "elbo train: --save-every: needs --save PATH\n");
        return 2;
    }
    if (a.save && check_save_path(a.save))
        return 2;
    /* a run killed while writing its checkpoint leaves a temporary file beside it (the checkpoint itself is
     * whole: the old one until the rename) */
    if (a.save && elbo_st_remove_stale_temps(a.save) > 0)
        fprintf(stderr, "elbo train: removed the temporary file(s) of an interrupted write of %s\n", a.save);
    elbo_topology *topo = cli_open_topology("train");
    if (!cli_find(opts, sizeof opts / sizeof opts[0], "threads")->seen)
        a.threads = cli_default_threads(topo);
    int status = train_with_topology(&a, kind, topo);
    if (topo)
        elbo_topology_close(topo);
    return status;
}

/* Keeps only the training images of the classes listed in text (where names the source for errors) and
 * writes the canonical list into canon. Prints the error and returns -1 when the list is bad or keeps nothing. */
static int keep_classes(const char *src, const char *field, const char *text, elbo_dataset *ds, char *canon,
                        size_t canon_len)
{
    char err[256];
    elbo_class_set set;
    if (elbo_class_set_parse(&set, text, ds->num_classes, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s%s%s: %s\n", src, *src ? ": " : "", field, err);
        return -1;
    }
    if (elbo_split_keep_classes(&ds->train, &set) == 0) {
        fprintf(stderr, "elbo train: %s%s%s: %s has no training images of classes %s\n", src, *src ? ": " : "",
                field, ds->name, text);
        return -1;
    }
    elbo_class_set_format(&set, canon, canon_len);
    return 0;
}

/* Loads the model of --resume, whatever its kind, into tm. Prints the error and returns -1. */
static int load_resume_model(const train_args *a, const elbo_kernels *k, train_model *tm, elbo_train_state *st)
{
    char err[512], kind[32], names[128];
    memset(tm, 0, sizeof *tm);
    if (elbo_checkpoint_model_kind(a->resume, kind, sizeof kind, err, sizeof err))
        return train_kind_fail(err);
    tm->kind = train_kind_find(kind);
    if (!tm->kind) {
        fprintf(stderr, "elbo train: %s: __metadata__.model: '%.32s' is not %s\n", a->resume, kind,
                train_kind_names(names, sizeof names, " or "));
        return -1;
    }
    if (tm->kind->load(a->resume, k, tm, st, err, sizeof err)) {
        tm->kind = NULL;
        return train_kind_fail(err);
    }
    return 0;
}

/* Frees the model of tm (if any). */
static void train_model_free(train_model *tm)
{
    if (tm->kind)
        tm->kind->free(tm);
}

/* Loads the model and training state of --resume into tm, st and the options it fixes (seed, batch, lr,
 * optimizer); checks that the data are the run's. Prints the error and returns -1 on failure. */
static int load_resume(train_args *a, elbo_dataset *ds, const elbo_kernels *k, train_model *tm,
                       elbo_train_state *st, elbo_optimizer_kind *kind)
{
    if (load_resume_model(a, k, tm, st))
        return -1;
    const char *why = NULL;
    if (st->classes[0] && keep_classes(a->resume, "__metadata__.classes", st->classes, ds, st->classes,
                                       sizeof st->classes)) {
        train_model_free(tm);
        return -1;
    }
    a->classes = st->classes[0] ? st->classes : NULL; /* "": trained on all classes */
    if (strcmp(st->dataset, ds->name) != 0)
        why = "dataset";
    else if (tm->model.input_dim != ds->train.dim)
        why = "input_dim";
    else if (tm->kind->mismatch && (why = tm->kind->mismatch(tm, ds)) != NULL)
        ;
    else if (strcmp(st->optimizer, "adam") != 0 && strcmp(st->optimizer, "sgd") != 0)
        why = "optimizer";
    else if (st->batch == 0 || st->batch > ((size_t)1 << 20) || (size_t)st->epoch_step * st->batch >= ds->train.n)
        why = "batch";
    if (why) {
        fprintf(stderr, "elbo train: %s: __metadata__.%s: does not match this run (data %s, %zu pixels)\n", a->resume,
                why, ds->name, ds->train.dim);
        train_model_free(tm);
        return -1;
    }
    a->seed = st->seed;
    a->batch = st->batch;
    a->lr = st->lr;
    a->momentum = st->momentum;
    a->optimizer = strcmp(st->optimizer, "sgd") == 0 ? "sgd" : "adam";
    a->model = tm->kind->name;
    if (tm->kind->resumed)
        tm->kind->resumed(tm, a);
    *kind = strcmp(st->optimizer, "sgd") == 0 ? ELBO_OPT_SGD : ELBO_OPT_ADAM;
    return 0;
}

/* A fresh model of --model's kind for the data, initialized from --seed and packed into tm. Prints the error and
 * returns the exit status (0 when done). */
static int new_model(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    memset(tm, 0, sizeof *tm);
    const train_kind *kind = train_kind_find(a->model);
    int rc = kind->create(a, ds, k, tm);
    if (rc == 0)
        tm->kind = kind;
    return rc;
}

/* The kernels of the run in its precision: --precision, or with --resume the checkpoint's (a different --precision
 * refused); NULL after one line. */
static const elbo_kernels *train_kernels(const train_args *a)
{
    elbo_precision p = ELBO_PRECISION_FP32, given = ELBO_PRECISION_FP32;
    if (a->precision && cli_parse_precision("train", a->precision, &given))
        return NULL;
    p = a->resume ? cli_checkpoint_precision(a->resume) : given;
    if (a->resume && a->precision && given != p) {
        fprintf(stderr, "elbo train: --precision %s: not allowed with --resume of %s (trained in %s)\n", a->precision,
                a->resume, p == ELBO_PRECISION_BF16 ? "bf16" : "fp32");
        return NULL;
    }
    const elbo_kernels *k = cli_kernels("train");
    return k ? cli_kernels_in("train", k, p) : NULL;
}

/* Everything after option parsing: kernels, data, model, training; returns the exit status. */
static int train_with_topology(train_args *ap, elbo_optimizer_kind kind, const elbo_topology *topo)
{
    train_args a = *ap;
    const elbo_kernels *k = train_kernels(&a);
    if (!k)
        return 2;
    elbo_dataset ds;
    if (cli_load_dataset("train", a.data, &ds))
        return 2;
    train_model tm;
    elbo_train_state st;
    char desc[256], classes[1024];
    if (a.classes) {
        if (keep_classes("", "--classes", a.classes, &ds, classes, sizeof classes)) {
            elbo_dataset_free(&ds);
            return 2;
        }
        a.classes = classes;
    }
    if (a.resume) {
        if (load_resume(&a, &ds, k, &tm, &st, &kind)) {
            elbo_dataset_free(&ds);
            return 2;
        }
    } else {
        int rc = new_model(&a, &ds, k, &tm);
        if (rc) {
            elbo_dataset_free(&ds);
            return rc;
        }
    }
    elbo_optimizer_config oc = elbo_optimizer_config_default(kind, a.lr);
    oc.sgd.momentum = a.momentum;
    if (tm.kind->tune_optimizer)
        tm.kind->tune_optimizer(&tm, &a, &oc);
    if (a.target > 0 && !tm.kind->target_metric) {
        fprintf(stderr, "elbo train: --target: not for --model %s (it has no test metric; score its samples with "
                        "elbo eval --classifier)\n", tm.kind->name);
        train_model_free(&tm);
        elbo_dataset_free(&ds);
        return 2;
    }
    tm.kind->describe(&tm, desc, sizeof desc);
    fprintf(a.json ? stderr : stdout,
            "elbo train: %s, %zu train%s%s / %zu test images (%s), batch %zu, %s lr %g, %s kernels%s, %zu thread%s\n",
            desc, ds.train.n, a.classes ? " of classes " : "", a.classes ? a.classes : "", ds.test.n, ds.name, a.batch,
            a.optimizer, a.lr, k->isa, k->precision == ELBO_PRECISION_BF16 ? " in bf16" : "", a.threads,
            a.threads == 1 ? "" : "s");
    fflush(stdout);
    train_catch_stop_signals();
    int status = run_training(&a, &ds, &tm, &oc, topo, a.resume ? &st : NULL);
    train_model_free(&tm);
    elbo_dataset_free(&ds);
    return status;
}
