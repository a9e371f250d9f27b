/* safetensors reader (validating) and atomic writer, F32 only. */
#include "safetensors.h"

#include "atomic_file.h"
#include "errmsg.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

/* Largest header accepted (the format's own reference limit is 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* Largest file read into memory. */
#define ST_MAX_FILE ((uint64_t)16 << 30)

/* Reads the whole file at path into a new buffer; returns 0 or -1 with a message. */
static int slurp(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        fclose(fp);
        return -1;
    }
    if ((uint64_t)st.st_size > ST_MAX_FILE) {
        snprintf(err, errlen, "%s: file size %lld exceeds the %llu-byte limit", path, (long long)st.st_size,
                 (unsigned long long)ST_MAX_FILE);
        fclose(fp);
        return -1;
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    if (!*buf) {
        snprintf(err, errlen, "%s: out of memory reading %zu bytes", path, *len);
        fclose(fp);
        return -1;
    }
    size_t got = fread(*buf, 1, *len, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || got != *len) {
        snprintf(err, errlen, "%s: read error after %zu of %zu bytes", path, got, *len);
        free(*buf);
        *buf = NULL;
        return -1;
    }
    return 0;
}

/* Reads a JSON number that must be a non-negative integer below 2^53 into *v; returns 0 or -1. */
static int json_size(const cJSON *j, size_t *v)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return -1;
    *v = (size_t)d;
    return 0;
}

/* Orders tensors by data start, for the overlap check. */
static int by_data(const void *pa, const void *pb)
{
    const elbo_st_tensor *a = pa, *b = pb;
    return (a->data > b->data) - (a->data < b->data);
}

/* Fills t from one header entry; data_begin/len describe the data region. Returns 0 or -1 with a message. */
static int parse_tensor(const cJSON *e, elbo_st_tensor *t, const unsigned char *data, size_t data_len,
                        const char *path, char *err, size_t errlen)
{
    const char *name = e->string;
    if (strlen(name) >= ELBO_ST_NAME_MAX) {
        snprintf(err, errlen, "%s: tensor name '%.40s...' is longer than %d bytes", path, name, ELBO_ST_NAME_MAX - 1);
        return -1;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!cJSON_IsObject(e)) {
        snprintf(err, errlen, "%s: tensor '%s': entry is not an object", path, name);
        return -1;
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dtype)) {
        snprintf(err, errlen, "%s: tensor '%s': dtype: missing or not a string", path, name);
        return -1;
    }
    if (strcmp(dtype->valuestring, "F32") != 0) {
        snprintf(err, errlen, "%s: tensor '%s': dtype: '%.16s' is not supported (expected F32)", path, name,
                 dtype->valuestring);
        return -1;
    }
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ELBO_ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': shape: missing, not an array, or more than %d dims", path, name,
                 ELBO_ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (size_t)cJSON_GetArraySize(shape);
    t->count = 1;
    for (size_t i = 0; i < t->ndim; i++) {
        if (json_size(cJSON_GetArrayItem(shape, (int)i), &t->shape[i]) != 0) {
            snprintf(err, errlen, "%s: tensor '%s': shape[%zu]: not a non-negative integer", path, name, i);
            return -1;
        }
        if (t->shape[i] && t->count > SIZE_MAX / 4 / t->shape[i]) {
            snprintf(err, errlen, "%s: tensor '%s': shape: element count overflows", path, name);
            return -1;
        }
        t->count *= t->shape[i];
    }
    size_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_size(cJSON_GetArrayItem(offs, 0), &begin) ||
        json_size(cJSON_GetArrayItem(offs, 1), &end)) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets: expected [begin, end] of non-negative integers", path,
                 name);
        return -1;
    }
    if (begin > end || end > data_len) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets: [%zu, %zu] outside the %zu-byte data region", path,
                 name, begin, end, data_len);
        return -1;
    }
    if (end - begin != t->count * sizeof(float)) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets: %zu bytes, but the shape needs %zu", path, name,
                 end - begin, t->count * sizeof(float));
        return -1;
    }
    t->data = (const float *)(const void *)(data + begin);
    return 0;
}

/* Copies the string map __metadata__ into f; returns 0 or -1 with a message. */
static int parse_metadata(const cJSON *m, elbo_st_file *f, const char *path, char *err, size_t errlen)
{
    if (!cJSON_IsObject(m)) {
        snprintf(err, errlen, "%s: __metadata__: not an object", path);
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(m);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, m)
    {
        if (!cJSON_IsString(e) || strlen(e->string) >= sizeof f->meta[0].key) {
            snprintf(err, errlen, "%s: __metadata__.%.40s: not a string, or key too long", path, e->string);
            return -1;
        }
        elbo_st_meta *kv = &f->meta[f->n_meta];
        snprintf(kv->key, sizeof kv->key, "%s", e->string);
        kv->value = strdup(e->valuestring);
        if (!kv->value) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        f->n_meta++;
    }
    return 0;
}

/* Parses and validates the JSON header of a file already in f->buf; returns 0 or -1 with a message. */
static int parse_header(elbo_st_file *f, size_t len, const char *path, char *err, size_t errlen)
{
    if (len < 8) {
        snprintf(err, errlen, "%s: header length: file is %zu bytes, shorter than the 8-byte length field", path, len);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->buf[i];
    if (hlen > ST_MAX_HEADER || hlen > len - 8) {
        snprintf(err, errlen, "%s: header length: %llu bytes does not fit the %zu-byte file", path,
                 (unsigned long long)hlen, len);
        return -1;
    }
    const unsigned char *data = f->buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)f->buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: header: not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    int rc = f->tensors ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "%s: out of memory", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (rc)
            break;
        if (strcmp(e->string, "__metadata__") == 0) {
            if (f->meta) {
                snprintf(err, errlen, "%s: __metadata__: appears twice", path);
                rc = -1;
            } else {
                rc = parse_metadata(e, f, path, err, errlen);
            }
            continue;
        }
        if (elbo_st_find(f, e->string)) {
            snprintf(err, errlen, "%s: tensor '%.60s': appears twice in the header", path, e->string);
            rc = -1;
            break;
        }
        rc = parse_tensor(e, &f->tensors[f->n_tensors], data, data_len, path, err, errlen);
        if (rc == 0)
            f->n_tensors++;
    }
    cJSON_Delete(root);
    if (rc)
        return -1;
    elbo_st_tensor *sorted = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *sorted);
    if (!sorted) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(sorted, f->tensors, f->n_tensors * sizeof *sorted);
    qsort(sorted, f->n_tensors, sizeof *sorted, by_data);
    /* Empty tensors take no bytes; every other one must start at or after the end of the non-empty ones
     * before it (comparing only neighbours would miss an overlap with an empty tensor sorted in between). */
    const elbo_st_tensor *last = NULL;
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        if (!sorted[i].count)
            continue;
        if (last && sorted[i].data < last->data + last->count) {
            snprintf(err, errlen, "%s: tensor '%s': data_offsets: overlaps tensor '%s'", path, sorted[i].name,
                     last->name);
            rc = -1;
        } else {
            last = &sorted[i];
        }
    }
    free(sorted);
    return rc;
}

int elbo_st_read(const char *path, elbo_st_file *f, char *err, size_t errlen)
{
    size_t len = 0;
    memset(f, 0, sizeof *f);
    if (slurp(path, &f->buf, &len, err, errlen) != 0) {
        elbo_err_one_line(err, errlen);
        return -1;
    }
    if (parse_header(f, len, path, err, errlen) != 0) {
        elbo_err_one_line(err, errlen);
        elbo_st_free(f);
        return -1;
    }
    return 0;
}

void elbo_st_free(elbo_st_file *f)
{
    for (size_t i = 0; i < f->n_meta; i++)
        free(f->meta[i].value);
    free(f->meta);
    free(f->tensors);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const elbo_st_tensor *elbo_st_find(const elbo_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *elbo_st_meta_get(const elbo_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

/* Elements of an output tensor. */
static size_t out_count(const elbo_st_out_tensor *t)
{
    size_t c = 1;
    for (size_t i = 0; i < t->ndim; i++)
        c *= t->shape[i];
    return c;
}

/* Builds the JSON header (padded with spaces to a multiple of 8 bytes); NULL on out-of-memory. */
static char *build_header(const elbo_st_out_tensor *t, size_t n, const char *const *meta_kv, size_t n_meta,
                          size_t *hlen)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]) != NULL;
    }
    size_t off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", "F32");
        for (size_t d = 0; ok && d < t[i].ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        size_t bytes = out_count(&t[i]) * sizeof(float);
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return NULL;
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    char *out = realloc(json, padded + 1);
    if (!out) {
        free(json);
        return NULL;
    }
    memset(out + len, ' ', padded - len);
    out[padded] = '\0';
    *hlen = padded;
    return out;
}

int elbo_st_write(const char *path, const elbo_st_out_tensor *t, size_t n, const char *const *meta_kv,
                  size_t n_meta, char *err, size_t errlen)
{
    size_t hlen = 0;
    char *header = build_header(t, n, meta_kv, n_meta, &hlen);
    if (!header) {
        snprintf(err, errlen, "%s: out of memory building the header", path);
        return -1;
    }
    elbo_atomic_file f;
    if (elbo_atomic_open(&f, path, err, errlen) != 0) {
        free(header);
        return -1;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    elbo_atomic_write(&f, lenbuf, 8);
    elbo_atomic_write(&f, header, hlen);
    for (size_t i = 0; i < n; i++)
        elbo_atomic_write(&f, t[i].data, out_count(&t[i]) * sizeof(float));
    free(header);
    return elbo_atomic_commit(&f, err, errlen);
}

size_t elbo_st_remove_stale_temps(const char *path)
{
    char *dcopy = strdup(path), *bcopy = strdup(path);
    size_t removed = 0;
    DIR *d = dcopy && bcopy ? opendir(dirname(dcopy)) : NULL;
    if (d) {
        const char *dir = dcopy, *base = basename(bcopy);
        size_t blen = strlen(base), slen = strlen(ELBO_ATOMIC_TMP_SUFFIX);
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *n = e->d_name;
            if (strlen(n) != blen + slen + 6 || strncmp(n, base, blen) != 0 ||
                strncmp(n + blen, ELBO_ATOMIC_TMP_SUFFIX, slen) != 0)
                continue;
            size_t plen = strlen(dir) + strlen(n) + 2;
            char *full = malloc(plen);
            if (!full)
                break;
            snprintf(full, plen, "%s/%s", dir, n);
            struct stat st;
            if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && unlink(full) == 0)
                removed++;
            free(full);
        }
        closedir(d);
    }
    free(dcopy);
    free(bcopy);
    return removed;
}
