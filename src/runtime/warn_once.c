/* Warnings printed at most once per process. */
#include "warn_once.h"

#include <stdarg.h>

int elbo_warn_once(elbo_warn_flag *flag, FILE *f, const char *fmt, ...)
{
    if (atomic_flag_test_and_set(&flag->fired))
        return 0;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(f, "%s\n", line); /* one call, so concurrent output does not split the line */
    fflush(f);
    return 1;
}
