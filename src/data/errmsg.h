/* One-line error messages for the model layer's loaders. */
#ifndef ELBO_ERRMSG_H
#define ELBO_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats a message into err (when err is non-NULL and errlen > 0), with newlines turned into spaces. */
static inline void elbo_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void elbo_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* Turns every control character of err (a newline quoted from a file's header, say) into a space, so that
 * a message stays one line whatever the file held. */
static inline void elbo_err_one_line(char *err, size_t errlen)
{
    if (!err || errlen == 0)
        return;
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

#endif
