/* One family in one precision for `elbo zoo`: four children (train, eval of its own metric, eval --classifier,
 * sample), their JSON gathered into one object. */
#include "zoo_runs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zoo_child.h"
#include "zoo_model.h"

/* Step counts: about two minutes of training per family, fp32 and bf16 together, on 2 idle cores of this project's
 * reference machine (AMD EPYC Zen 4; from its 2-thread batch-128 rates, samples/s: VAE 51k, GAN 14k, flow 2.1k,
 * diffusion 2.8k, and bf16 1.5-1.7x faster); --quick: a few seconds each. */
const zoo_family zoo_families[] = {
    {"vae", "VAE", 20000, 600},
    {"gan", "GAN", 7000, 300},
    {"flow", "flow", 1200, 40},
    {"diffusion", "diffusion", 1600, 60},
};
const size_t zoo_n_families = sizeof zoo_families / sizeof zoo_families[0];

#define DDIM_STEPS "50"

/* Number `key` of object o, or NaN when absent. */
static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The first JSON object line of a child's stdout (NULL when there is none). */
static cJSON *first_object(const char *out)
{
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (*line == '{')
            return cJSON_Parse(line);
    return NULL;
}

/* The training's figures from train --json's epoch lines: samples and seconds summed over the epochs, their ratio,
 * the epochs and the last epoch's object; NULL when there is no epoch line. */
static cJSON *train_summary(const char *out)
{
    double samples = 0, seconds = 0;
    int epochs = 0;
    cJSON *last = NULL;
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line != '{')
            continue;
        cJSON *j = cJSON_Parse(line);
        if (!j || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "epoch"))) {
            cJSON_Delete(j);
            continue;
        }
        samples += num(j, "samples");
        seconds += num(j, "seconds");
        epochs++;
        cJSON_Delete(last);
        last = j;
    }
    if (!last)
        return NULL;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "samples", samples);
    cJSON_AddNumberToObject(t, "seconds", seconds);
    cJSON_AddNumberToObject(t, "samples_per_s", seconds > 0 ? samples / seconds : 0);
    cJSON_AddNumberToObject(t, "epochs", epochs);
    cJSON_AddNumberToObject(t, "batch", num(last, "batch"));
    cJSON_AddItemToObject(t, "last_epoch", last);
    return t;
}

/* The family's own test metric in its own unit from its eval --json object e (NULL for the GAN). */
static cJSON *own_metric(const char *family, const cJSON *e)
{
    cJSON *m = cJSON_CreateObject();
    if (strcmp(family, "vae") == 0) { /* nats per image of the normalized (continuous) likelihood */
        cJSON_AddNumberToObject(m, "neg_elbo_nats", -num(e, "test_elbo"));
        cJSON_AddNumberToObject(m, "log_px_iw_nats", num(e, "test_log_px_iw"));
        cJSON_AddNumberToObject(m, "iw_k", num(e, "iw_k"));
        cJSON_AddNumberToObject(m, "images", num(e, "samples"));
    } else if (strcmp(family, "flow") == 0) {
        cJSON_AddNumberToObject(m, "bits_per_dim", num(e, "test_bits_per_dim"));
        cJSON_AddNumberToObject(m, "images", num(e, "samples"));
    } else if (strcmp(family, "diffusion") == 0) {
        cJSON_AddNumberToObject(m, "bound_bits_per_dim", num(e, "test_bpd"));
        cJSON_AddNumberToObject(m, "eval_steps", num(e, "eval_steps"));
        cJSON_AddNumberToObject(m, "images", num(e, "images"));
    }
    cJSON_AddItemToObject(m, "eval", cJSON_Duplicate(e, 1));
    return m;
}

/* Runs one child, records its command line under commands[what] and its wall time under child_seconds[what],
 * prints a progress line; returns the child's status (0 ok) with the line in err otherwise. */
static int run_child(const zoo_setup *s, const char *label, const char *what, const zoo_argv *a, cJSON *run,
                     zoo_child *c, char *err, size_t errlen)
{
    char line[4096];
    zoo_argv_format("elbo", a, line, sizeof line);
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(run, "commands"), what, line);
    printf("zoo: %s: %s ...\n", label, what);
    fflush(stdout);
    int status = zoo_child_run(s->exe, a, c);
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(run, "child_seconds"), what, c->seconds);
    if (status < 0)
        snprintf(err, errlen, "%s: %s: %s", label, what, c->err_line);
    else if (status != 0)
        snprintf(err, errlen, "%s: %s: exit status %d%s%s", label, what, status, c->err_line[0] ? ": " : "",
                 c->err_line);
    return status;
}

/* Adds --data (when given) and --threads to a. */
static void add_common(const zoo_setup *s, zoo_argv *a)
{
    if (s->data)
        zoo_argv_add(a, "--data", s->data, NULL);
    zoo_argv_add(a, "--threads", s->threads, NULL);
}

/* Trains the family into ckpt and adds "train" to run. */
static int train(const zoo_setup *s, const zoo_family *f, const char *label, const char *precision,
                 const char *steps, const char *ckpt, cJSON *run, char *err, size_t errlen)
{
    zoo_argv a = {0};
    zoo_argv_add(&a, "train", "--model", f->name, "--steps", steps, "--epochs", "1000000", "--seed", s->seed,
                 "--precision", precision, "--save", ckpt, "--json", NULL);
    add_common(s, &a);
    zoo_child c;
    int status = run_child(s, label, "train", &a, run, &c, err, errlen);
    if (status == 0) {
        cJSON *t = train_summary(c.out);
        if (!t) {
            snprintf(err, errlen, "%s: train: no epoch in its JSON output", label);
            status = 1;
        } else {
            cJSON_AddItemToObject(run, "train", t);
            printf("zoo: %s: trained %s steps in %.1f s, %.0f samples/s\n", label, steps,
                   num(t, "seconds"), num(t, "samples_per_s"));
        }
    }
    zoo_child_free(&c);
    return status;
}

/* Evaluates the family's own test metric (none for the GAN) into run's "metric". */
static int metric(const zoo_setup *s, const zoo_family *f, const char *label, const char *ckpt, cJSON *run,
                  char *err, size_t errlen)
{
    if (strcmp(f->name, "gan") == 0) {
        cJSON_AddNullToObject(run, "metric");
        return 0;
    }
    zoo_argv a = {0};
    zoo_argv_add(&a, "eval", "--load", ckpt, "--seed", s->seed, "--json", NULL);
    if (strcmp(f->name, "vae") == 0)
        zoo_argv_add(&a, "--iw", s->iw_k, NULL);
    if (strcmp(f->name, "diffusion") == 0)
        zoo_argv_add(&a, "--count", s->bound_images, NULL);
    add_common(s, &a);
    zoo_child c;
    int status = run_child(s, label, "eval", &a, run, &c, err, errlen);
    cJSON *e = status == 0 ? first_object(c.out) : NULL;
    if (status == 0 && !e) {
        snprintf(err, errlen, "%s: eval: no JSON object in its output", label);
        status = 1;
    }
    if (e)
        cJSON_AddItemToObject(run, "metric", own_metric(f->name, e));
    cJSON_Delete(e);
    zoo_child_free(&c);
    return status;
}

/* FD, class coverage and sampling images/s of the family's samples into run's "score". */
static int score(const zoo_setup *s, const zoo_family *f, const char *label, const char *ckpt, cJSON *run,
                 char *err, size_t errlen)
{
    zoo_argv a = {0};
    zoo_argv_add(&a, "eval", "--load", ckpt, "--classifier", s->classifier, "--count", s->count, "--seed", s->seed,
                 "--json", NULL);
    if (strcmp(f->name, "diffusion") == 0)
        zoo_argv_add(&a, "--sampler", "ddim", "--sample-steps", DDIM_STEPS, NULL);
    add_common(s, &a);
    zoo_child c;
    int status = run_child(s, label, "score", &a, run, &c, err, errlen);
    cJSON *e = status == 0 ? first_object(c.out) : NULL;
    if (status == 0 && !e) {
        snprintf(err, errlen, "%s: score: no JSON object in its output", label);
        status = 1;
    }
    if (e) {
        cJSON_AddStringToObject(e, "sampler", strcmp(f->name, "diffusion") == 0 ? "ddim-" DDIM_STEPS : "direct");
        printf("zoo: %s: FD %.2f, coverage %.2f bits, %.1f images/s\n", label, num(e, "fd"),
               num(e, "coverage_entropy_bits"), num(e, "sample_images_per_s"));
        cJSON_AddItemToObject(run, "score", e);
    }
    zoo_child_free(&c);
    return status;
}

/* The sample grid PNG grid_dir/<family>-<precision>.png, named in run's "grid" relative to the JSON. */
static int grid(const zoo_setup *s, const zoo_family *f, const char *label, const char *precision, const char *ckpt,
                cJSON *run, char *err, size_t errlen)
{
    char path[4096], rel[512];
    snprintf(path, sizeof path, "%s/%s-%s.png", s->grid_dir, f->name, precision);
    snprintf(rel, sizeof rel, "%s/%s-%s.png", s->grid_prefix, f->name, precision);
    zoo_argv a = {0};
    zoo_argv_add(&a, "sample", "--load", ckpt, "-o", path, "--count", s->grid_side, "--seed", s->seed, NULL);
    if (s->data)
        zoo_argv_add(&a, "--data", s->data, NULL);
    if (strcmp(f->name, "diffusion") == 0)
        zoo_argv_add(&a, "--sampler", "ddim", "--sample-steps", DDIM_STEPS, "--threads", s->threads, NULL);
    zoo_child c;
    int status = run_child(s, label, "sample", &a, run, &c, err, errlen);
    if (status == 0)
        cJSON_AddStringToObject(run, "grid", rel);
    zoo_child_free(&c);
    return status;
}

int zoo_run_family(const zoo_setup *s, const zoo_family *f, const char *precision, long steps, cJSON **out,
                   char *err, size_t errlen)
{
    char label[64], steps_text[24], ckpt[4096];
    snprintf(label, sizeof label, "%s %s", f->name, precision);
    snprintf(steps_text, sizeof steps_text, "%ld", steps);
    snprintf(ckpt, sizeof ckpt, "%s/%s-%s.safetensors", s->work_dir, f->name, precision);
    cJSON *run = cJSON_CreateObject();
    *out = run;
    cJSON_AddStringToObject(run, "family", f->name);
    cJSON_AddStringToObject(run, "title", f->title);
    cJSON_AddStringToObject(run, "precision", precision);
    cJSON_AddNumberToObject(run, "steps", (double)steps);
    cJSON_AddItemToObject(run, "commands", cJSON_CreateObject());
    cJSON_AddItemToObject(run, "child_seconds", cJSON_CreateObject());
    int status = train(s, f, label, precision, steps_text, ckpt, run, err, errlen);
    if (status == 0) {
        zoo_model_facts facts;
        if (zoo_model_read(ckpt, &facts, err, errlen)) {
            char why[512];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "%s: %s", label, why);
            remove(ckpt);
            return 1;
        }
        cJSON_AddStringToObject(run, "model", facts.describe);
        cJSON_AddNumberToObject(run, "parameters", (double)facts.parameters);
        cJSON_AddNumberToObject(run, "train_flops_per_sample", facts.train_flops);
    }
    if (status == 0)
        status = metric(s, f, label, ckpt, run, err, errlen);
    if (status == 0)
        status = score(s, f, label, ckpt, run, err, errlen);
    if (status == 0)
        status = grid(s, f, label, precision, ckpt, run, err, errlen);
    remove(ckpt); /* the checkpoints are the run's scratch: a diffusion model's is 100 MB */
    return status;
}
