/* Checkpoints: the save -> load round trip (bitwise), the file as plain safetensors (read back with cJSON
 * here, not with elbo's reader), atomic replacement and failed saves, and every malformed input.
 *
 * Broken files are written by hand: a good checkpoint of a small model is parsed into a cJSON tree, one
 * thing is changed, and the header is written back in front of the same data. Every error case checks the
 * return value, that the model is left zeroed, and that the one-line message names the file and the field. */
#include "test_scratch.h"

#include "vae_checkpoint.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ERRLEN 512

/* ---- scratch directory and files ---- */

typedef struct {
    char dir[MAX_PATH];
} scratch;

/* Path of `name` inside the scratch directory. */
static const char *in_dir(const scratch *s, const char *name, char *buf)
{
    return join(buf, s->dir, name);
}

/* Creates a fresh temporary directory. */
static void scratch_open(scratch *s)
{
    scratch_mkdtemp(s->dir, "elbo-ckpt");
}

/* Number of entries in dir (without . and ..); the names go to names (comma-separated) for messages. */
static size_t dir_entries(const char *dir, char *names, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, used = 0;
    names[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int w = snprintf(names + used, len - used, "%s%s", n ? ", " : "", e->d_name);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
        n++;
    }
    closedir(d);
    return n;
}

/* Fails unless dir holds exactly `want` entries (no temporary file left beside a checkpoint). */
static void expect_entries(const char *dir, size_t want)
{
    char names[4096];
    size_t n = dir_entries(dir, names, sizeof names);
    if (n != want)
        test_failf("%s holds %zu entries (%s), expected %zu\n", dir, n, names, want);
}

/* Writes len bytes to path. */
static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into a new buffer (NUL-terminated for convenience). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Writes a safetensors file by hand: the 8-byte little-endian length of header, header, then data. */
static void write_st(const char *path, const char *header, const void *data, size_t data_len)
{
    size_t hlen = strlen(header);
    uint8_t *buf = malloc(8 + hlen + data_len + 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (data_len)
        memcpy(buf + 8 + hlen, data, data_len);
    write_bytes(path, buf, 8 + hlen + data_len);
    free(buf);
}

/* Fails unless msg contains every one of the given substrings and is one line. */
static void expect_msg(const char *msg, const char *a, const char *b, const char *c)
{
    const char *want[] = {a, b, c};
    for (size_t i = 0; i < 3; i++)
        if (want[i] && !strstr(msg, want[i]))
            test_failf("message \"%s\" lacks \"%s\"\n", msg, want[i]);
    if (!*msg || strchr(msg, '\n'))
        test_failf("message \"%s\" is empty or not one line\n", msg);
}

/* ---- models ---- */

/* A config from its parts; enc and dec are zero-terminated width lists. */
static elbo_vae_config make_config(size_t input_dim, const size_t *enc, size_t latent, const size_t *dec,
                                   elbo_recon recon, double sigma0, double beta)
{
    elbo_vae_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    for (c.n_enc = 0; enc[c.n_enc]; c.n_enc++)
        c.enc_hidden[c.n_enc] = enc[c.n_enc];
    c.latent = latent;
    for (c.n_dec = 0; dec[c.n_dec]; c.n_dec++)
        c.dec_hidden[c.n_dec] = dec[c.n_dec];
    c.recon = recon;
    c.sigma0 = sigma0;
    c.beta = beta;
    char err[ERRLEN];
    if (elbo_vae_config_validate(&c, err, sizeof err))
        test_failf("config: %s\n", err);
    return c;
}

/* The small model the broken files are made from: 6-5-2-4-6. */
static elbo_vae_config small_config(void)
{
    const size_t enc[] = {5, 0}, dec[] = {4, 0};
    return make_config(6, enc, 2, dec, ELBO_RECON_MSE, 0.5, 1.0);
}

/* A model of cfg with every parameter distinct, plus values a text round trip would lose (-0, a denormal,
 * FLT_MAX, FLT_MIN, -FLT_MAX) in the first weight. (NaN and infinity are refused by the writer and the
 * loader: test_non_finite_values.) */
static void make_model(elbo_vae *m, const elbo_vae_config *cfg, uint64_t seed)
{
    char err[ERRLEN];
    if (elbo_vae_init(m, cfg, test_kernels(), err, sizeof err))
        test_failf("init: %s\n", err);
    elbo_params_init(m->params, &m->layout, seed);
    float special[6] = {-0.0f, FLT_MIN / 8, FLT_MAX, -FLT_MIN, -FLT_MAX, 1.0f / 3};
    memcpy(m->params + m->layout.tensor[0].offset, special, sizeof special);
    elbo_vae_pack_weights(m);
}

/* A training state whose every field is away from its default (seed above 2^63, lr not a short decimal). */
static elbo_train_state make_state(void)
{
    elbo_train_state st;
    memset(&st, 0, sizeof st);
    st.seed = 0xfedcba9876543210ULL;
    st.step = 123456789012L;
    st.epoch = 37;
    snprintf(st.optimizer, sizeof st.optimizer, "sgd");
    st.lr = 3.0000000000000004e-4;
    st.batch = 77;
    snprintf(st.dataset, sizeof st.dataset, "synthetic");
    snprintf(st.classes, sizeof st.classes, "1,4,9");
    return st;
}

/* Saves m and st to path, failing the test on error. */
static void save_ok(const char *path, const elbo_vae *m, const elbo_train_state *st)
{
    char err[ERRLEN] = "";
    if (elbo_checkpoint_save(path, m, st, err, sizeof err))
        test_failf("save: %s\n", err);
}

/* Saves m, st and the optimizer state to path, failing the test on error. */
static void save_ok_training(const char *path, const elbo_vae *m, const elbo_train_state *st,
                             const elbo_optimizer *opt)
{
    char err[ERRLEN] = "";
    if (elbo_checkpoint_save_training(path, m, st, opt, err, sizeof err))
        test_failf("save: %s\n", err);
}

/* Fails unless two configs are equal, the doubles bitwise. */
static void expect_config_equal(const elbo_vae_config *a, const elbo_vae_config *b)
{
    assert_int_equal(a->input_dim, b->input_dim);
    assert_int_equal(a->n_enc, b->n_enc);
    assert_memory_equal(a->enc_hidden, b->enc_hidden, a->n_enc * sizeof(size_t));
    assert_int_equal(a->latent, b->latent);
    assert_int_equal(a->n_dec, b->n_dec);
    assert_memory_equal(a->dec_hidden, b->dec_hidden, a->n_dec * sizeof(size_t));
    assert_int_equal(a->recon, b->recon);
    assert_memory_equal(&a->sigma0, &b->sigma0, sizeof(double));
    assert_memory_equal(&a->beta, &b->beta, sizeof(double));
}

/* Fails unless two training states are equal, lr bitwise. */
static void expect_state_equal(const elbo_train_state *a, const elbo_train_state *b)
{
    assert_true(a->seed == b->seed);
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->epoch, b->epoch);
    assert_string_equal(a->optimizer, b->optimizer);
    assert_memory_equal(&a->lr, &b->lr, sizeof(double));
    assert_int_equal(a->batch, b->batch);
    assert_string_equal(a->dataset, b->dataset);
    assert_string_equal(a->classes, b->classes);
}

/* ---- the file as plain safetensors ---- */

/* The tensors a config must produce, in PyTorch state_dict names and shapes (cols 0: a vector). Built from
 * the config alone, independently of elbo's layout code. */
typedef struct {
    char name[48];
    size_t rows, cols;
} expected_tensor;

/* Appends one expected tensor. */
static void expect_add(expected_tensor *t, size_t *n, const char *name, size_t rows, size_t cols)
{
    snprintf(t[*n].name, sizeof t[*n].name, "%s", name);
    t[*n].rows = rows;
    t[*n].cols = cols;
    (*n)++;
}

/* Fills t with the expected tensors of c; returns their number. */
static size_t expected_tensors(const elbo_vae_config *c, expected_tensor *t)
{
    size_t n = 0, in = c->input_dim;
    char name[48];
    for (size_t i = 0; i < c->n_enc; i++) {
        snprintf(name, sizeof name, "encoder.%zu.weight", i);
        expect_add(t, &n, name, c->enc_hidden[i], in);
        snprintf(name, sizeof name, "encoder.%zu.bias", i);
        expect_add(t, &n, name, c->enc_hidden[i], 0);
        in = c->enc_hidden[i];
    }
    expect_add(t, &n, "fc_mu.weight", c->latent, in);
    expect_add(t, &n, "fc_mu.bias", c->latent, 0);
    expect_add(t, &n, "fc_logvar.weight", c->latent, in);
    expect_add(t, &n, "fc_logvar.bias", c->latent, 0);
    in = c->latent;
    for (size_t i = 0; i < c->n_dec; i++) {
        snprintf(name, sizeof name, "decoder.%zu.weight", i);
        expect_add(t, &n, name, c->dec_hidden[i], in);
        snprintf(name, sizeof name, "decoder.%zu.bias", i);
        expect_add(t, &n, name, c->dec_hidden[i], 0);
        in = c->dec_hidden[i];
    }
    expect_add(t, &n, "fc_out.weight", c->input_dim, in);
    expect_add(t, &n, "fc_out.bias", c->input_dim, 0);
    return n;
}

/* Reads a JSON number that must be a non-negative integer. */
static size_t json_uint(const cJSON *j)
{
    assert_true(cJSON_IsNumber(j));
    assert_true(j->valuedouble >= 0 && j->valuedouble == (double)(size_t)j->valuedouble);
    return (size_t)j->valuedouble;
}

/* One tensor's byte range in the data region, for the contiguity check. */
typedef struct {
    size_t begin, end;
} byte_range;

/* Orders byte ranges by start. */
static int by_begin(const void *pa, const void *pb)
{
    const byte_range *a = pa, *b = pb;
    return (a->begin > b->begin) - (a->begin < b->begin);
}

/* The string value of __metadata__.key (fails when missing or not a string). */
static const char *meta_str(const cJSON *meta, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsString(v))
        test_failf("__metadata__.%s: missing or not a string\n", key);
    return v->valuestring;
}

/* Parses the file at path as safetensors with cJSON and checks it against m: 8-byte LE header length, a
 * JSON object of F32 tensors with the expected names and shapes, offsets that tile the data region exactly
 * in order, the data bytes equal to m's parameters, and __metadata__ holding only strings with the format
 * and the config. Catches: a big-endian or 4-byte length, other dtypes, transposed shapes, gaps or
 * overlaps, a header length that counts the length field, missing or renamed tensors, metadata numbers. */
static void check_safetensors_file(const char *path, const elbo_vae *m)
{
    size_t len;
    uint8_t *buf = slurp(path, &len);
    assert_true(len >= 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    assert_true(hlen >= 2 && hlen <= len - 8);
    assert_int_equal(buf[8], '{');
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root)
        test_failf("header is not JSON: %.200s\n", (const char *)buf + 8);
    assert_true(cJSON_IsObject(root));
    const uint8_t *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;

    expected_tensor want[ELBO_MAX_TENSORS];
    size_t n_want = expected_tensors(&m->cfg, want);
    byte_range ranges[ELBO_MAX_TENSORS];
    size_t n_seen = 0, prev_end = 0;
    for (size_t i = 0; i < n_want; i++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, want[i].name);
        if (!cJSON_IsObject(e))
            test_failf("tensor %s is missing\n", want[i].name);
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        assert_true(cJSON_IsString(dtype));
        assert_string_equal(dtype->valuestring, "F32");
        assert_true(cJSON_IsArray(shape));
        assert_int_equal(cJSON_GetArraySize(shape), want[i].cols ? 2 : 1);
        if (json_uint(cJSON_GetArrayItem(shape, 0)) != want[i].rows ||
            (want[i].cols && json_uint(cJSON_GetArrayItem(shape, 1)) != want[i].cols))
            test_failf("tensor %s: wrong shape\n", want[i].name);
        assert_true(cJSON_IsArray(offs));
        assert_int_equal(cJSON_GetArraySize(offs), 2);
        size_t begin = json_uint(cJSON_GetArrayItem(offs, 0)), end = json_uint(cJSON_GetArrayItem(offs, 1));
        size_t count = want[i].rows * (want[i].cols ? want[i].cols : 1);
        assert_int_equal(end - begin, count * sizeof(float));
        assert_true(end <= data_len);
        /* stored in state_dict order */
        assert_int_equal(begin, prev_end);
        prev_end = end;
        ranges[n_seen++] = (byte_range){begin, end};
        const elbo_tensor_view *v = elbo_param_layout_find(&m->layout, want[i].name);
        assert_non_null(v);
        if (memcmp(data + begin, m->params + v->offset, count * sizeof(float)) != 0)
            test_failf("tensor %s: data differ from the parameters\n", want[i].name);
    }
    qsort(ranges, n_seen, sizeof ranges[0], by_begin);
    for (size_t i = 0; i < n_seen; i++)
        assert_int_equal(ranges[i].begin, i ? ranges[i - 1].end : 0);
    assert_int_equal(prev_end, data_len); /* nothing after the last tensor */

    /* nothing else but __metadata__ */
    size_t entries = (size_t)cJSON_GetArraySize(root);
    assert_int_equal(entries, n_want + 1);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    assert_true(cJSON_IsObject(meta));
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta)
    {
        if (!cJSON_IsString(kv))
            test_failf("__metadata__.%s is not a string\n", kv->string);
    }
    assert_string_equal(meta_str(meta, "format"), "elbo-3"); /* the writer's version since the model kind */
    assert_string_equal(meta_str(meta, "model"), "vae");
    char widths[128], num[32];
    elbo_format_widths(widths, sizeof widths, m->cfg.enc_hidden, m->cfg.n_enc);
    assert_string_equal(meta_str(meta, "encoder_hidden"), widths);
    elbo_format_widths(widths, sizeof widths, m->cfg.dec_hidden, m->cfg.n_dec);
    assert_string_equal(meta_str(meta, "decoder_hidden"), widths);
    snprintf(num, sizeof num, "%zu", m->cfg.latent);
    assert_string_equal(meta_str(meta, "latent"), num);
    snprintf(num, sizeof num, "%zu", m->cfg.input_dim);
    assert_string_equal(meta_str(meta, "input_dim"), num);
    assert_string_equal(meta_str(meta, "recon"), elbo_recon_name(m->cfg.recon));
    cJSON_Delete(root);
    free(buf);
}

/* ---- round trip ---- */

/* Saves a model of cfg, checks the file, loads it back and compares everything bitwise. Catches: text
 * formats that lose bits (%g for sigma0, beta or lr), a signed seed, tensors written from the wrong offset
 * (the logvar half of the heads), the decoder widths written as the mirrored encoder, padding read as data,
 * a temporary file left behind. */
static void round_trip(const elbo_vae_config *cfg)
{
    scratch s;
    scratch_open(&s);
    char path[MAX_PATH], err[ERRLEN] = "";
    elbo_vae m, back;
    make_model(&m, cfg, 99);
    elbo_train_state st = make_state(), st_back;
    save_ok(in_dir(&s, "model.safetensors", path), &m, &st);
    expect_entries(s.dir, 1);
    check_safetensors_file(path, &m);

    memset(&st_back, 0x5a, sizeof st_back);
    if (elbo_checkpoint_load(path, &back, test_kernels(), &st_back, err, sizeof err))
        test_failf("load: %s\n", err);
    expect_config_equal(&m.cfg, &back.cfg);
    expect_state_equal(&st, &st_back);
    assert_int_equal(back.layout.total, m.layout.total);
    assert_memory_equal(back.params, m.params, m.layout.total * sizeof(float));
    assert_ptr_equal(back.kern, test_kernels());
    elbo_vae_free(&back);
    /* the training state is optional */
    if (elbo_checkpoint_load(path, &back, test_kernels(), NULL, err, sizeof err))
        test_failf("load without state: %s\n", err);
    assert_memory_equal(back.params, m.params, m.layout.total * sizeof(float));
    elbo_vae_free(&back);
    elbo_vae_free(&m);
    remove_tree(s.dir);
}

static void test_round_trip_default(void **state)
{
    (void)state;
    elbo_vae_config c = elbo_vae_config_default(784);
    round_trip(&c);
}

static void test_round_trip_two_hidden_bce(void **state)
{
    (void)state;
    const size_t enc[] = {512, 256, 0}, dec[] = {128, 300, 0};
    elbo_vae_config c = make_config(784, enc, 2, dec, ELBO_RECON_BCE, 0.30000000000000004, 0.12345678901234568);
    round_trip(&c);
}

/* ---- replacing and failing ---- */

/* Saving over an existing checkpoint replaces it by rename: a reader holding the old file open still sees
 * the old bytes, the new file has the new model (mode 0644, not mkstemp's 0600), and no temporary file
 * stays. Catches: writing in place (truncate and rewrite), a temporary file left behind, a private mode. */
static void test_save_replaces_atomically(void **state)
{
    (void)state;
    scratch s;
    scratch_open(&s);
    char path[MAX_PATH], err[ERRLEN] = "";
    elbo_vae_config cfg = small_config();
    elbo_vae a, b, back;
    elbo_train_state st = make_state();
    make_model(&a, &cfg, 1);
    make_model(&b, &cfg, 2);
    save_ok(in_dir(&s, "ckpt.safetensors", path), &a, &st);
    size_t old_len;
    uint8_t *old = slurp(path, &old_len);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    st.step += 1;
    save_ok(path, &b, &st);
    expect_entries(s.dir, 1);
    /* the old inode is untouched */
    uint8_t *seen = malloc(old_len + 1);
    assert_non_null(seen);
    assert_int_equal(pread(fd, seen, old_len + 1, 0), (ssize_t)old_len);
    assert_memory_equal(seen, old, old_len);
    close(fd);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    elbo_train_state st_back;
    if (elbo_checkpoint_load(path, &back, test_kernels(), &st_back, err, sizeof err))
        test_failf("load: %s\n", err);
    assert_memory_equal(back.params, b.params, b.layout.total * sizeof(float));
    assert_int_equal(st_back.step, st.step);
    elbo_vae_free(&back);
    free(seen);
    free(old);
    elbo_vae_free(&a);
    elbo_vae_free(&b);
    remove_tree(s.dir);
}

/* Saves expecting failure; checks the message names path (and `what` when given) and is one line. */
static void expect_save_error(const char *path, const elbo_vae *m, const char *what)
{
    elbo_train_state st = make_state();
    char err[ERRLEN] = "";
    assert_int_equal(elbo_checkpoint_save(path, m, &st, err, sizeof err), -1);
    print_message("    %s\n", err);
    expect_msg(err, path, what, NULL);
}

/* Fails unless the file at path holds exactly len bytes equal to want. */
static void expect_file(const char *path, const uint8_t *want, size_t len)
{
    size_t got_len;
    uint8_t *got = slurp(path, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, want, len);
    free(got);
}

/* A save that cannot complete fails with a message and changes nothing: into a missing directory, onto a
 * path that is a directory, when the file size limit cuts the write short. Catches: errors ignored, the old file truncated before the new one is
 * complete, a temporary file left behind after a failed write or rename. */
static void test_save_failures_leave_old_file(void **state)
{
    (void)state;
    scratch s;
    scratch_open(&s);
    char path[MAX_PATH], sub[MAX_PATH], other[MAX_PATH];
    elbo_vae_config cfg = small_config();
    elbo_vae m, big;
    make_model(&m, &cfg, 3);
    elbo_vae_config big_cfg = elbo_vae_config_default(784);
    make_model(&big, &big_cfg, 4);
    elbo_train_state st = make_state();
    save_ok(in_dir(&s, "old.safetensors", path), &m, &st);
    size_t old_len;
    uint8_t *old = slurp(path, &old_len);

    /* a missing directory: nothing is created */
    in_dir(&s, "missing", sub);
    join(other, sub, "x.safetensors");
    expect_save_error(other, &m, "No such file");
    assert_int_equal(access(sub, F_OK), -1);
    expect_entries(s.dir, 1);

    /* the path is a directory: the rename fails and the temporary file goes */
    in_dir(&s, "adir", sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    expect_save_error(sub, &m, NULL);
    expect_entries(s.dir, 2);
    expect_entries(sub, 0);
    rmdir(sub);

    /* the write is cut short (file size limit): the old file stays whole */
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    elbo_train_state st2 = make_state();
    char err[ERRLEN] = "";
    int rc = elbo_checkpoint_save(path, &big, &st2, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -1);
    print_message("    %s\n", err);
    expect_msg(err, path, "write failed", NULL);
    expect_file(path, old, old_len);
    expect_entries(s.dir, 1);
    free(old);
    elbo_vae_free(&m);
    elbo_vae_free(&big);
    remove_tree(s.dir);
}

/* elbo_checkpoint_save of m to path in a child process, as user nobody when the test runs as root (root may
 * write anywhere); returns the save's return code (0 or -1) with its message in err (ERRLEN bytes). */
static int save_as_nobody(const char *path, const elbo_vae *m, char *err)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(126);
        elbo_train_state st = make_state();
        char msg[ERRLEN] = "";
        int rc = elbo_checkpoint_save(path, m, &st, msg, sizeof msg);
        ssize_t w = write(fds[1], msg, strlen(msg));
        _exit(w < 0 ? 125 : rc == 0 ? 0 : rc == -1 ? 1 : 2);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < ERRLEN - 1 && (n = read(fds[0], err + len, ERRLEN - 1 - len)) > 0)
        len += (size_t)n;
    err[len] = '\0';
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
        test_failf("the save as nobody did not finish (wait status %#x)\n", st);
    return WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* A save into a read-only directory fails with "Permission denied" and changes nothing: the old file stays
 * whole and no temporary file is left. As root the directory belongs to user nobody, who saves (root may write
 * anyway); it lies under /tmp, not $TMPDIR, so that nobody can reach it. Catches: a failed create ignored,
 * the old file truncated or replaced, a temporary file left behind. */
static void test_save_into_read_only_dir(void **state)
{
    (void)state;
    scratch s;
    snprintf(s.dir, sizeof s.dir, "/tmp/elbo-ckpt-ro-XXXXXX");
    assert_non_null(mkdtemp(s.dir));
    char path[MAX_PATH], err[ERRLEN] = "";
    elbo_vae_config cfg = small_config();
    elbo_vae m;
    make_model(&m, &cfg, 3);
    elbo_train_state st = make_state();
    save_ok(in_dir(&s, "old.safetensors", path), &m, &st);
    size_t old_len;
    uint8_t *old = slurp(path, &old_len);
    elbo_vae_free(&m);
    make_model(&m, &cfg, 4);
    if (geteuid() == 0)
        assert_int_equal(chown(s.dir, 65534, 65534), 0);
    assert_int_equal(chmod(s.dir, 0555), 0);
    int rc = save_as_nobody(path, &m, err);
    assert_int_equal(chmod(s.dir, 0700), 0);
    print_message("    %s\n", err);
    assert_int_equal(rc, -1);
    expect_msg(err, path, "Permission denied", NULL);
    expect_file(path, old, old_len);
    expect_entries(s.dir, 1);
    free(old);
    elbo_vae_free(&m);
    remove_tree(s.dir);
}

/* ---- malformed checkpoints ---- */

/* A checkpoint opened for editing: its header as a cJSON tree and its data region. */
typedef struct {
    cJSON *hdr;
    uint8_t *data;
    size_t data_len;
} st_doc;

/* Parses the good checkpoint at path into d. */
static void doc_open(st_doc *d, const char *path)
{
    size_t len;
    uint8_t *buf = slurp(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    d->hdr = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    assert_non_null(d->hdr);
    d->data_len = len - 8 - (size_t)hlen;
    d->data = malloc(d->data_len + 64);
    assert_non_null(d->data);
    memcpy(d->data, buf + 8 + hlen, d->data_len);
    free(buf);
}

/* Releases d. */
static void doc_free(st_doc *d)
{
    cJSON_Delete(d->hdr);
    free(d->data);
    memset(d, 0, sizeof *d);
}

/* Writes d to path (header printed by cJSON) and releases it. */
static void doc_write(st_doc *d, const char *path)
{
    char *json = cJSON_PrintUnformatted(d->hdr);
    assert_non_null(json);
    write_st(path, json, d->data, d->data_len);
    free(json);
    doc_free(d);
}

/* The header entry called name. */
static cJSON *doc_entry(st_doc *d, const char *name)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(d->hdr, name);
    assert_non_null(e);
    return e;
}

/* Replaces field (dtype, shape, data_offsets) of tensor name with item. */
static void doc_set(st_doc *d, const char *name, const char *field, cJSON *item)
{
    assert_non_null(item);
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(doc_entry(d, name), field, item));
}

/* Replaces a tensor's shape with the n numbers dims (doubles, so huge values print exactly). */
static void doc_shape(st_doc *d, const char *name, const double *dims, int n)
{
    doc_set(d, name, "shape", cJSON_CreateDoubleArray(dims, n));
}

/* Replaces a tensor's data_offsets with [begin, end]. */
static void doc_offsets(st_doc *d, const char *name, double begin, double end)
{
    const double o[2] = {begin, end};
    doc_set(d, name, "data_offsets", cJSON_CreateDoubleArray(o, 2));
}

/* Sets __metadata__.key to value (a string), or removes it when value is NULL. */
static void doc_meta(st_doc *d, const char *key, const char *value)
{
    cJSON *meta = doc_entry(d, "__metadata__");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
    if (value)
        assert_non_null(cJSON_AddStringToObject(meta, key, value));
}

/* Loads path expecting failure; checks the model is zeroed and the message names path, a and b. */
static void expect_load_error(const char *path, const char *a, const char *b)
{
    elbo_vae m;
    elbo_train_state st;
    memset(&m, 0x5a, sizeof m);
    char err[ERRLEN] = "";
    assert_int_equal(elbo_checkpoint_load(path, &m, test_kernels(), &st, err, sizeof err), -1);
    assert_null(m.params);
    assert_null(m.grads);
    assert_int_equal(m.layout.n_tensors, 0);
    print_message("    %s\n", err);
    expect_msg(err, path, a, b);
}

/* Scratch directory with a good checkpoint of the small model ("good") and a name for broken copies. */
typedef struct {
    scratch s;
    char good[MAX_PATH], bad[MAX_PATH];
} fixture;

/* Writes the good checkpoint of the small model and checks that it loads. */
static void fixture_open(fixture *fx)
{
    scratch_open(&fx->s);
    elbo_vae m;
    elbo_vae_config cfg = small_config();
    make_model(&m, &cfg, 5);
    elbo_train_state st = make_state();
    save_ok(in_dir(&fx->s, "good.safetensors", fx->good), &m, &st);
    elbo_vae_free(&m);
    in_dir(&fx->s, "bad.safetensors", fx->bad);
    char err[ERRLEN] = "";
    if (elbo_checkpoint_load(fx->good, &m, test_kernels(), NULL, err, sizeof err))
        test_failf("good checkpoint: %s\n", err);
    elbo_vae_free(&m);
    /* the data region of 6-5-2-4-6: one f32 per parameter, in x out + out per layer (6-5, 5-2 mu, 5-2 logvar,
     * 2-4, 4-6: 35 + 12 + 12 + 12 + 30 = 101 floats, 404 bytes); rewritten unchanged through cJSON it still loads */
    st_doc d;
    doc_open(&d, fx->good);
    assert_int_equal(d.data_len, ((6 * 5 + 5) + 2 * (5 * 2 + 2) + (2 * 4 + 4) + (4 * 6 + 6)) * sizeof(float));
    doc_write(&d, fx->bad);
    if (elbo_checkpoint_load(fx->bad, &m, test_kernels(), NULL, err, sizeof err))
        test_failf("rewritten good checkpoint: %s\n", err);
    elbo_vae_free(&m);
}

/* Files that are not safetensors at all. Catches: a missing file or an empty file read as an empty model,
 * a header length trusted beyond the end of the file, a header that is not a JSON object accepted. */
static void test_bad_files(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    char path[MAX_PATH];
    expect_load_error(in_dir(&fx.s, "absent.safetensors", path), "cannot open", "No such file");
    expect_load_error(fx.s.dir, "not a regular file", NULL);
    write_bytes(fx.bad, "", 0);
    expect_load_error(fx.bad, "header length", NULL);
    write_bytes(fx.bad, "\x02\0\0\0", 4);
    expect_load_error(fx.bad, "header length", NULL);
    /* a header length beyond the file, and one with the high byte set */
    uint8_t hdr[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    write_bytes(fx.bad, hdr, sizeof hdr);
    expect_load_error(fx.bad, "header length", "200");
    hdr[0] = 8;
    hdr[7] = 0x80;
    write_bytes(fx.bad, hdr, sizeof hdr);
    expect_load_error(fx.bad, "header length", NULL);
    /* headers that are not a JSON object */
    write_st(fx.bad, "{\"fc_mu.weight\": {\"dtype\": \"F32\", ", "", 0);
    expect_load_error(fx.bad, "header", "JSON");
    write_st(fx.bad, "[1, 2, 3]", "", 0);
    expect_load_error(fx.bad, "header", "JSON object");
    write_st(fx.bad, "\"elbo\"", "", 0);
    expect_load_error(fx.bad, "header", "JSON object");
    /* a header length that cuts the JSON short */
    size_t len;
    uint8_t *good = slurp(fx.good, &len);
    good[0] = (uint8_t)(good[0] - 10);
    good[1] = (uint8_t)(good[1] - (good[0] > 245));
    write_bytes(fx.bad, good, len);
    expect_load_error(fx.bad, "header", "JSON");
    free(good);
    /* a valid safetensors file that is not a checkpoint */
    write_st(fx.bad, "{}", "", 0);
    expect_load_error(fx.bad, "__metadata__.format", "missing");
    remove_tree(fx.s.dir);
}

/* Tensor entries that break the safetensors rules. Catches: other dtypes read as F32, a shape that
 * disagrees with the model accepted (transposed, flattened), offsets past the data, reversed, not integers,
 * overlapping another tensor, or not matching the shape's byte count, element counts that wrap around. */
static void test_bad_tensor_entries(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_doc d;
    const double transposed[] = {4, 6}, flat[] = {24}, three[] = {6, 4, 1}, five[] = {1, 1, 1, 6, 4};

    doc_open(&d, fx.good);
    doc_set(&d, "fc_mu.weight", "dtype", cJSON_CreateString("F16"));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_mu.weight", "dtype");

    doc_open(&d, fx.good);
    doc_set(&d, "fc_out.bias", "dtype", cJSON_CreateString("F64"));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "dtype");

    doc_open(&d, fx.good);
    doc_set(&d, "encoder.0.bias", "dtype", cJSON_CreateNumber(32));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "encoder.0.bias", "dtype");

    doc_open(&d, fx.good);
    cJSON_DeleteItemFromObjectCaseSensitive(doc_entry(&d, "fc_mu.bias"), "dtype");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_mu.bias", "dtype");

    /* shapes with the right byte count that do not match the config */
    doc_open(&d, fx.good);
    doc_shape(&d, "fc_out.weight", transposed, 2);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    doc_open(&d, fx.good);
    doc_shape(&d, "fc_out.weight", flat, 1);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    doc_open(&d, fx.good);
    doc_shape(&d, "fc_out.weight", three, 3);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    doc_open(&d, fx.good);
    doc_shape(&d, "fc_out.weight", five, 5);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    doc_open(&d, fx.good);
    doc_set(&d, "fc_out.weight", "shape", cJSON_CreateString("6x4"));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    doc_open(&d, fx.good);
    const double negative[] = {-6, -4};
    doc_shape(&d, "fc_out.weight", negative, 2);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.weight", "shape");

    /* data_offsets outside the 404-byte data region, reversed, not integers, not a pair */
    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", 384, 408);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", 1e12, 1e12 + 24);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", 404, 380);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", -4, 20);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", 380.5, 404.5);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_set(&d, "fc_out.bias", "data_offsets", cJSON_CreateIntArray((const int[]){380}, 1));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    cJSON_DeleteItemFromObjectCaseSensitive(doc_entry(&d, "fc_out.bias"), "data_offsets");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    /* offsets inside the data whose length does not match the shape */
    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_out.bias", 380, 400);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "data_offsets");

    doc_open(&d, fx.good);
    doc_offsets(&d, "encoder.0.weight", 0, 124);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "encoder.0.weight", "data_offsets");

    /* overlapping tensors: the same bytes twice, and a shift into the neighbour */
    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_logvar.bias", 180, 188); /* fc_mu.bias's bytes */
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "overlaps", NULL);

    doc_open(&d, fx.good);
    doc_offsets(&d, "decoder.0.bias", 264, 280); /* 4 bytes into decoder.0.weight */
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "data_offsets", "overlaps");

    doc_open(&d, fx.good);
    doc_offsets(&d, "fc_mu.bias", 0, 8); /* inside encoder.0.weight */
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "data_offsets", "overlaps");

    /* element counts that overflow: with wrap-around they would come to 0 bytes at [404, 404] */
    const double wrap64[] = {4294967296.0, 4294967296.0}, wrap_bytes[] = {2147483648.0, 2147483648.0},
                 wrap3[] = {2097152.0, 2097152.0, 2097152.0}, huge[] = {4503599627370496.0, 4503599627370496.0};
    const double *overflowing[] = {wrap64, wrap_bytes, wrap3, huge};
    const int ndims[] = {2, 2, 3, 2};
    for (size_t i = 0; i < 4; i++) {
        doc_open(&d, fx.good);
        doc_shape(&d, "fc_out.bias", overflowing[i], ndims[i]);
        doc_offsets(&d, "fc_out.bias", 404, 404);
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, "fc_out.bias", "overflow");
    }
    /* a dimension beyond 2^53 is not an exact JSON integer */
    const double beyond[] = {1e30};
    doc_open(&d, fx.good);
    doc_shape(&d, "fc_out.bias", beyond, 1);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "shape");

    /* an entry that is not an object */
    doc_open(&d, fx.good);
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(d.hdr, "decoder.0.bias", cJSON_CreateString("F32")));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "decoder.0.bias", "not an object");
    remove_tree(fx.s.dir);
}

/* Tensors missing, extra or named twice. Catches: a missing tensor left at zero, an unknown tensor ignored
 * (a checkpoint of a bigger model loaded into a smaller one), duplicate names resolved silently. */
static void test_missing_extra_duplicate_tensors(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_doc d;
    const char *names[] = {"encoder.0.weight", "encoder.0.bias", "fc_mu.weight", "fc_mu.bias", "fc_logvar.weight",
                           "fc_logvar.bias", "decoder.0.weight", "decoder.0.bias", "fc_out.weight", "fc_out.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        doc_open(&d, fx.good);
        cJSON_DeleteItemFromObjectCaseSensitive(d.hdr, names[i]);
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, names[i], "missing");
    }
    /* an extra tensor, with its own bytes after the others */
    const char *extra[] = {"decoder.1.weight", "fc_sigma.bias", "encoder.0.weight.extra"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        doc_open(&d, fx.good);
        cJSON *e = cJSON_Duplicate(doc_entry(&d, "fc_mu.bias"), 1);
        assert_non_null(e);
        cJSON_AddItemToObject(d.hdr, extra[i], e);
        doc_offsets(&d, extra[i], 404, 412);
        memset(d.data + 404, 0, 8);
        d.data_len = 412;
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, extra[i], "not part of this model");
    }
    /* a renamed tensor: one missing and one extra */
    doc_open(&d, fx.good);
    cJSON *e = cJSON_DetachItemFromObjectCaseSensitive(d.hdr, "fc_logvar.weight");
    cJSON_AddItemToObject(d.hdr, "fc_log_var.weight", e);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_logvar.weight", "missing");
    /* the same name twice, with different bytes; and __metadata__ twice */
    doc_open(&d, fx.good);
    e = cJSON_Duplicate(doc_entry(&d, "fc_out.bias"), 1);
    cJSON_AddItemToObject(d.hdr, "fc_out.bias", e);
    doc_offsets(&d, "fc_out.bias", 404, 428); /* the first of the two */
    memset(d.data + 404, 0, 24);
    d.data_len = 428;
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "fc_out.bias", "twice");
    doc_open(&d, fx.good);
    cJSON_AddItemToObject(d.hdr, "__metadata__", cJSON_Duplicate(doc_entry(&d, "__metadata__"), 1));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__", "twice");
    /* a name longer than the reader keeps */
    char long_name[200];
    memset(long_name, 'w', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    doc_open(&d, fx.good);
    e = cJSON_Duplicate(doc_entry(&d, "fc_mu.bias"), 1);
    cJSON_AddItemToObject(d.hdr, long_name, e);
    doc_offsets(&d, long_name, 404, 412);
    d.data_len = 412;
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "tensor name", "longer");
    remove_tree(fx.s.dir);
}

/* One metadata change and the field its message must name. */
typedef struct {
    const char *key, *value; /* value NULL: removed */
    const char *field;       /* expected in the message */
} meta_case;

/* Missing or garbled __metadata__ fields, for the config and the training state, in the current format
 * (elbo-vae-2: every key required). Catches: fields defaulted when missing (also epoch_step, momentum and
 * classes, which only elbo-vae-1 files may lack), an unknown format version accepted, numbers parsed leniently ("2x", "-1" wrapping to 2^64 - 1, a step beyond LONG_MAX turning
 * negative, inf or nan accepted), an unknown likelihood accepted, a config that fails validation
 * (latent 0, sigma0 <= 0) accepted, metadata values that are not strings. */
static void test_bad_metadata(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_doc d;
    const meta_case cases[] = {
        {"format", NULL, "__metadata__.format"},
        {"format", "elbo-vae-9", "__metadata__.format"},
        {"format", "elbo-vae-", "__metadata__.format"},
        {"format", "", "__metadata__.format"},
        {"input_dim", NULL, "__metadata__.input_dim"},
        {"input_dim", "six", "__metadata__.input_dim"},
        {"input_dim", "0", "input_dim"},
        {"latent", NULL, "__metadata__.latent"},
        {"latent", "", "__metadata__.latent"},
        {"latent", "2x", "__metadata__.latent"},
        {"latent", "-2", "__metadata__.latent"},
        {"latent", " -2", "__metadata__.latent"},
        {"latent", "0", "latent"},
        {"latent", "99999999999999999999999", "__metadata__.latent"},
        {"encoder_hidden", NULL, "__metadata__.encoder_hidden"},
        {"encoder_hidden", "", "__metadata__.encoder_hidden"},
        {"encoder_hidden", "5,x", "__metadata__.encoder_hidden"},
        {"encoder_hidden", "5,,4", "__metadata__.encoder_hidden"},
        {"encoder_hidden", "0", "__metadata__.encoder_hidden"},
        {"decoder_hidden", NULL, "__metadata__.decoder_hidden"},
        {"decoder_hidden", "4;4", "__metadata__.decoder_hidden"},
        {"recon", NULL, "__metadata__.recon"},
        {"recon", "foo", "__metadata__.recon"},
        {"recon", "MSE", "__metadata__.recon"},
        {"sigma0", NULL, "__metadata__.sigma0"},
        {"sigma0", "abc", "__metadata__.sigma0"},
        {"sigma0", "0.5s", "__metadata__.sigma0"},
        {"sigma0", "nan", "__metadata__.sigma0"},
        {"sigma0", "inf", "__metadata__.sigma0"},
        {"sigma0", "-1", "sigma0"},
        {"sigma0", "0", "sigma0"},
        {"beta", NULL, "__metadata__.beta"},
        {"beta", "-0.5", "beta"},
        {"seed", NULL, "__metadata__.seed"},
        {"seed", "-1", "__metadata__.seed"},
        {"seed", "18446744073709551616", "__metadata__.seed"},
        {"step", NULL, "__metadata__.step"},
        {"step", "-1", "__metadata__.step"},
        {"step", " -1", "__metadata__.step"},
        {"step", "9223372036854775808", "__metadata__.step"},
        {"epoch", "1.5", "__metadata__.epoch"},
        {"batch", "", "__metadata__.batch"},
        {"lr", NULL, "__metadata__.lr"},
        {"lr", "fast", "__metadata__.lr"},
        {"lr", "inf", "__metadata__.lr"},
        {"lr", "nan", "__metadata__.lr"},
        {"optimizer", NULL, "__metadata__.optimizer"},
        {"dataset", NULL, "__metadata__.dataset"},
        {"epoch_step", NULL, "__metadata__.epoch_step"},
        {"momentum", NULL, "__metadata__.momentum"},
        {"classes", NULL, "__metadata__.classes"},
        {"classes", "", "__metadata__.classes"},
        {"classes", "1;4", "__metadata__.classes"},
        {"classes", "some", "__metadata__.classes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        doc_open(&d, fx.good);
        doc_meta(&d, cases[i].key, cases[i].value);
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, cases[i].field, NULL);
    }
    /* an unknown version is named with the versions this build reads; a missing key with the file's version */
    doc_open(&d, fx.good);
    doc_meta(&d, "format", "elbo-vae-9");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "'elbo-vae-9' is not a format this build reads", "(elbo-vae-1, elbo-vae-2, elbo-3)");
    doc_open(&d, fx.good);
    doc_meta(&d, "classes", NULL);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.classes: missing", "(format elbo-3)");
    /* the model kind: required from elbo-3 on; another kind is refused by the VAE's loader, naming both */
    doc_open(&d, fx.good);
    doc_meta(&d, "model", NULL);
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.model: missing", "(format elbo-3)");
    doc_open(&d, fx.good);
    doc_meta(&d, "model", "classifier");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.model: 'classifier' is not a vae checkpoint", NULL);
    /* no __metadata__, __metadata__ not an object, a value that is not a string */
    doc_open(&d, fx.good);
    cJSON_DeleteItemFromObjectCaseSensitive(d.hdr, "__metadata__");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.format", "missing");
    doc_open(&d, fx.good);
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(d.hdr, "__metadata__", cJSON_CreateArray()));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__", NULL);
    doc_open(&d, fx.good);
    cJSON *meta = doc_entry(&d, "__metadata__");
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(meta, "latent", cJSON_CreateNumber(2)));
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.latent", NULL);
    remove_tree(fx.s.dir);
}

/* The metadata of another model in front of this model's tensors: every size disagreement is named by the
 * first tensor it affects. Catches: tensors copied by byte count without their shapes checked (latent 2
 * vs 3 and input 6 vs 7 would read past or short of the data), layers missing or extra in the metadata. */
static void test_other_config(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    st_doc d;
    const meta_case cases[] = {
        {"latent", "3", "fc_mu.weight"},
        {"latent", "1", "fc_mu.weight"},
        {"input_dim", "7", "encoder.0.weight"},
        {"input_dim", "784", "encoder.0.weight"},
        {"encoder_hidden", "6", "encoder.0.weight"},
        {"encoder_hidden", "5,5", "encoder.1.weight"},
        {"decoder_hidden", "3", "decoder.0.weight"},
        {"decoder_hidden", "4,4", "decoder.1.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        doc_open(&d, fx.good);
        doc_meta(&d, cases[i].key, cases[i].value);
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, cases[i].field, NULL);
    }
    /* a whole checkpoint of a different model loads as that model, not as the small one */
    char path[MAX_PATH], err[ERRLEN] = "";
    elbo_vae big, back;
    const size_t enc[] = {7, 3, 0}, dec[] = {3, 0};
    elbo_vae_config cfg = make_config(6, enc, 2, dec, ELBO_RECON_BCE, 0.25, 2.0);
    make_model(&big, &cfg, 6);
    elbo_train_state st = make_state();
    save_ok(in_dir(&fx.s, "other.safetensors", path), &big, &st);
    if (elbo_checkpoint_load(path, &back, test_kernels(), NULL, err, sizeof err))
        test_failf("load: %s\n", err);
    expect_config_equal(&cfg, &back.cfg);
    elbo_vae_free(&back);
    /* its tensors under the small model's metadata */
    st_doc other, small;
    doc_open(&other, path);
    doc_open(&small, fx.good);
    cJSON_ReplaceItemInObjectCaseSensitive(other.hdr, "__metadata__",
                                           cJSON_Duplicate(doc_entry(&small, "__metadata__"), 1));
    doc_write(&other, fx.bad);
    doc_free(&small);
    expect_load_error(fx.bad, "encoder.0.weight", "shape");
    elbo_vae_free(&big);
    remove_tree(fx.s.dir);
}

/* The safetensors reader alone, on files no checkpoint writer makes. Catches: an overlap hidden behind an
 * empty tensor that sorts between the two overlapping ones, more than 4 dimensions accepted. */
static void test_reader_edge_cases(void **state)
{
    (void)state;
    scratch s;
    scratch_open(&s);
    char path[MAX_PATH], err[ERRLEN] = "";
    float data[100];
    memset(data, 0, sizeof data);
    elbo_st_file f;
    in_dir(&s, "edge.safetensors", path);

    /* empty tensors are fine anywhere, and a file without __metadata__ is fine for the reader */
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[400,400]}}",
             data, sizeof data);
    if (elbo_st_read(path, &f, err, sizeof err))
        test_failf("read: %s\n", err);
    assert_int_equal(f.n_tensors, 2);
    assert_int_equal(f.n_meta, 0);
    assert_int_equal(elbo_st_find(&f, "e")->count, 0);
    assert_null(elbo_st_meta_get(&f, "format"));
    elbo_st_free(&f);

    /* a overlaps c; the empty e sorts between them */
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[40,40]},"
             "\"c\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[200,240]}}",
             data, sizeof data);
    memset(&f, 0x5a, sizeof f);
    assert_int_equal(elbo_st_read(path, &f, err, sizeof err), -1);
    print_message("    %s\n", err);
    expect_msg(err, path, "overlaps", NULL);
    assert_null(f.buf);
    assert_null(f.tensors);
    assert_int_equal(f.n_tensors, 0);

    /* a overlaps c, which starts inside a and ends after b */
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[50],\"data_offsets\":[0,200]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[8,48]},"
             "\"c\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[360,400]}}",
             data, sizeof data);
    assert_int_equal(elbo_st_read(path, &f, err, sizeof err), -1);
    expect_msg(err, path, "overlaps", NULL);

    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,100],\"data_offsets\":[0,400]}}", data, sizeof data);
    assert_int_equal(elbo_st_read(path, &f, err, sizeof err), -1);
    expect_msg(err, path, "'a'", "shape");
    remove_tree(s.dir);
}

/* Non-finite values, a header claiming a huge model, and control characters in a header. Catches: NaN or
 * infinite parameters loaded (eval would report NaN, training would start from garbage), a negative Adam
 * exp_avg_sq accepted, the model allocated from the metadata before its tensors are checked (this 404-byte
 * file claims 2^41 parameters: the old loader tried to allocate them and failed with "out of memory"), a
 * checkpoint with NaN written over a good one, a newline quoted from the header splitting the message. */
static void test_non_finite_and_huge(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    const float bad_values[] = {NAN, INFINITY, -INFINITY};
    for (size_t v = 0; v < 3; v++) {
        st_doc d;
        doc_open(&d, fx.good);
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(doc_entry(&d, "fc_out.bias"), "data_offsets");
        size_t begin = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
        memcpy(d.data + begin + 2 * sizeof(float), &bad_values[v], sizeof(float));
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, "'fc_out.bias'", "element 2");
    }
    st_doc d;
    doc_open(&d, fx.good);
    doc_meta(&d, "input_dim", "1048576");
    doc_meta(&d, "encoder_hidden", "1048576,1048576");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "'encoder.0.weight'", "shape does not match");

    doc_open(&d, fx.good);
    doc_meta(&d, "recon", "mse\nsecond line");
    doc_write(&d, fx.bad);
    expect_load_error(fx.bad, "__metadata__.recon", "second line");

    /* the writer refuses NaN: the good file stays as it was, no temporary file is left */
    size_t len0, len1;
    uint8_t *before = slurp(fx.good, &len0);
    elbo_vae m;
    elbo_vae_config cfg = small_config();
    make_model(&m, &cfg, 6);
    m.params[m.layout.tensor[3].offset + 1] = NAN;
    elbo_train_state st = make_state();
    char err[ERRLEN] = "";
    assert_int_equal(elbo_checkpoint_save(fx.good, &m, &st, err, sizeof err), -1);
    expect_msg(err, fx.good, "not written", m.layout.tensor[3].name);
    uint8_t *after = slurp(fx.good, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    expect_entries(fx.s.dir, 2);

    /* Adam's second moment must be >= 0 */
    m.params[m.layout.tensor[3].offset + 1] = 0.5f;
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_optimizer opt;
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    opt.v[m.layout.tensor[0].offset + 4] = -1.0f;
    save_ok_training(fx.bad, &m, &st, &opt);
    err[0] = '\0';
    assert_int_equal(elbo_checkpoint_load_optimizer(fx.bad, &m.layout, &opt, err, sizeof err), -1);
    print_message("    %s\n", err);
    expect_msg(err, fx.bad, "optimizer.exp_avg_sq.encoder.0.weight", "element 4");
    elbo_optimizer_free(&opt);
    elbo_vae_free(&m);
    remove_tree(fx.s.dir);
}

/* ---- earlier format versions ---- */

/* What loading one of tests/fixtures/ must give (its metadata, as the commands in tests/fixtures/README.md
 * wrote it), and whether --resume may continue it. */
typedef struct {
    const char *path;
    long step, epoch, epoch_step;
    const char *optimizer;
    double lr, momentum;
    size_t batch;
    const char *classes;
    const char *resume_key; /* NULL: the optimizer state loads; else the key the refusal names */
} old_file;

/* Loads the optimizer state of path (kind from st) into a fresh optimizer for m; returns the load's result
 * with its message in err, and (on success) the largest |state| in *max_abs. */
static int load_opt(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err, float *max_abs)
{
    elbo_optimizer_kind kind = strcmp(st->optimizer, "sgd") == 0 ? ELBO_OPT_SGD : ELBO_OPT_ADAM;
    elbo_optimizer_config oc = elbo_optimizer_config_default(kind, st->lr);
    elbo_optimizer opt;
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m->layout), 0);
    int rc = elbo_checkpoint_load_optimizer(path, &m->layout, &opt, err, ERRLEN);
    *max_abs = 0;
    for (size_t i = 0; rc == 0 && i < m->layout.total; i++)
        *max_abs = fmaxf(*max_abs, fabsf(opt.m[i]));
    elbo_optimizer_free(&opt);
    return rc;
}

/* Every checkpoint layout elbo has written as elbo-vae-1, as real files of the commits that wrote them:
 * each loads with its own values and the stated stand-ins for what it lacks (epoch_step 0 and momentum 0.9
 * before ad74efc, all classes before 524adbb), its parameters bit for bit as stored; the optimizer state
 * loads where the file has it, and the file without a training position is refused for resuming in one line
 * naming the key and the format. Catches: a stand-in dropped (the early file refused by eval and info), a
 * stand-in taken for the file's own value when resuming, a later key required of early files, the elbo-vae-1
 * tag refused. */
static void test_old_formats(void **state)
{
    (void)state;
    const old_file files[] = {
        {"tests/fixtures/checkpoint-ad34a58.safetensors", 4, 1, 0, "adam", 1e-3, 0.9, 64, "", "epoch_step"},
        {"tests/fixtures/checkpoint-ad74efc.safetensors", 3, 0, 3, "sgd", 0.01, 0.5, 64, "", NULL},
        {"tests/fixtures/checkpoint-524adbb.safetensors", 3, 1, 0, "adam", 1e-3, 0.9, 32, "0,1,4", NULL},
    };
    const size_t enc[] = {4, 0}, dec[] = {4, 0};
    /* sigma0 '0.70710678118654757' in the files: the default sqrt(1/2), printed with %.17g */
    elbo_vae_config want = make_config(784, enc, 2, dec, ELBO_RECON_MSE, sqrt(0.5), 1.0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const old_file *o = &files[i];
        print_message("    %s\n", o->path);
        elbo_vae m;
        elbo_train_state st;
        char err[ERRLEN] = "";
        if (elbo_checkpoint_load(o->path, &m, test_kernels(), &st, err, sizeof err))
            test_failf("%s\n", err);
        expect_config_equal(&m.cfg, &want);
        /* 784-4-2-4-784: 784*4+4 + 2*(4*2+2) + 2*4+4 + 4*784+784 = 7092 parameters */
        assert_int_equal(elbo_param_layout_count(&m.layout), 7092);
        assert_true(st.seed == 7);
        assert_int_equal(st.step, o->step);
        assert_int_equal(st.epoch, o->epoch);
        assert_int_equal(st.epoch_step, o->epoch_step);
        assert_string_equal(st.optimizer, o->optimizer);
        assert_true(st.lr == o->lr);
        assert_true(st.momentum == o->momentum);
        assert_int_equal(st.batch, o->batch);
        assert_string_equal(st.dataset, "synthetic");
        assert_string_equal(st.classes, o->classes);
        elbo_st_file f;
        if (elbo_st_read(o->path, &f, err, sizeof err))
            test_failf("%s\n", err);
        assert_string_equal(elbo_st_meta_get(&f, "format"), "elbo-vae-1");
        for (size_t t = 0; t < m.layout.n_tensors; t++) {
            const elbo_tensor_view *tv = &m.layout.tensor[t];
            const elbo_st_tensor *ft = elbo_st_find(&f, tv->name);
            assert_non_null(ft);
            assert_memory_equal(m.params + tv->offset, ft->data, elbo_tensor_view_size(tv) * sizeof(float));
        }
        elbo_st_free(&f);
        float max_abs;
        int rc = load_opt(o->path, &m, &st, err, &max_abs);
        print_message("      resume: %s\n", rc ? err : "optimizer state loaded");
        if (!o->resume_key) {
            if (rc)
                test_failf("optimizer state: %s\n", err);
            assert_true(max_abs > 0); /* after 3 steps the state is not the fresh optimizer's zeros */
        } else {
            assert_int_equal(rc, -1);
            char key[64];
            snprintf(key, sizeof key, "__metadata__.%s: missing", o->resume_key);
            expect_msg(err, o->path, key, "format elbo-vae-1");
        }
        elbo_vae_free(&m);
    }
}

/* The stand-ins key by key, on elbo-vae-1 copies of a current file: a file lacking only momentum (or only
 * epoch_step) loads with the stand-in and is refused for resuming naming that key; the same file tagged
 * elbo-vae-2 is refused outright naming the key and the version. Catches: a stand-in applied to the current
 * version, the resume refusal keyed on one field only. */
static void test_old_format_keys(void **state)
{
    (void)state;
    fixture fx;
    fixture_open(&fx);
    elbo_vae m;
    elbo_vae_config cfg = small_config();
    make_model(&m, &cfg, 5);
    elbo_train_state st = make_state();
    snprintf(st.optimizer, sizeof st.optimizer, "adam");
    st.epoch_step = 2;
    st.momentum = 0.25;
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, st.lr);
    elbo_optimizer opt;
    assert_int_equal(elbo_optimizer_init(&opt, &oc, &m.layout), 0);
    save_ok_training(fx.good, &m, &st, &opt);
    elbo_optimizer_free(&opt);
    elbo_vae_free(&m);
    const char *keys[] = {"epoch_step", "momentum"};
    for (size_t k = 0; k < 2; k++) {
        st_doc d;
        doc_open(&d, fx.good);
        doc_meta(&d, keys[k], NULL);
        doc_meta(&d, "format", "elbo-vae-1");
        doc_write(&d, fx.bad);
        elbo_train_state got;
        char err[ERRLEN] = "";
        if (elbo_checkpoint_load(fx.bad, &m, test_kernels(), &got, err, sizeof err))
            test_failf("elbo-vae-1 without %s: %s\n", keys[k], err);
        assert_int_equal(got.epoch_step, k == 0 ? 0 : 2);
        assert_true(got.momentum == (k == 1 ? 0.9 : 0.25));
        float max_abs;
        assert_int_equal(load_opt(fx.bad, &m, &got, err, &max_abs), -1);
        print_message("    %s\n", err);
        expect_msg(err, fx.bad, keys[k], "format elbo-vae-1");
        elbo_vae_free(&m);
        doc_open(&d, fx.bad);
        doc_meta(&d, "format", "elbo-vae-2");
        doc_write(&d, fx.bad);
        expect_load_error(fx.bad, keys[k], "missing (format elbo-vae-2)");
    }
    remove_tree(fx.s.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_default),
        cmocka_unit_test(test_round_trip_two_hidden_bce),
        cmocka_unit_test(test_save_replaces_atomically),
        cmocka_unit_test(test_save_failures_leave_old_file),
        cmocka_unit_test(test_save_into_read_only_dir),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_tensor_entries),
        cmocka_unit_test(test_missing_extra_duplicate_tensors),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_other_config),
        cmocka_unit_test(test_reader_edge_cases),
        cmocka_unit_test(test_non_finite_and_huge),
        cmocka_unit_test(test_old_formats),
        cmocka_unit_test(test_old_format_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
