/* Class label sets and class filtering of a split. */
#include "classes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

int elbo_class_set_parse(elbo_class_set *s, const char *text, size_t num_classes, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        char *end = NULL;
        errno = 0;
        unsigned long v = (len > 0 && p[0] >= '0' && p[0] <= '9') ? strtoul(p, &end, 10) : 0;
        if (len == 0 || !end || end != p + len || errno) {
            elbo_errf(err, errlen, "'%.*s' is not a class index (a list like 0,1,4)", (int)len, p);
            return -1;
        }
        if (v >= num_classes) {
            elbo_errf(err, errlen, "class %lu does not exist (the data has classes 0..%zu)", v, num_classes - 1);
            return -1;
        }
        if (s->member[v]) {
            elbo_errf(err, errlen, "class %lu is listed twice", v);
            return -1;
        }
        s->member[v] = 1;
        s->count++;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

void elbo_class_set_format(const elbo_class_set *s, char *out, size_t outlen)
{
    size_t used = 0;
    if (outlen)
        out[0] = '\0';
    for (size_t c = 0; c < 256; c++) {
        if (!s->member[c])
            continue;
        int w = snprintf(out + used, outlen > used ? outlen - used : 0, "%s%zu", used ? "," : "", c);
        if (w < 0 || used + (size_t)w >= outlen)
            return;
        used += (size_t)w;
    }
}

size_t elbo_split_keep_classes(elbo_split *sp, const elbo_class_set *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < sp->n; i++) {
        if (!s->member[sp->labels[i]])
            continue;
        if (kept != i) {
            memmove(sp->pixels + kept * sp->dim, sp->pixels + i * sp->dim, sp->dim);
            sp->labels[kept] = sp->labels[i];
        }
        kept++;
    }
    sp->n = kept;
    return kept;
}
