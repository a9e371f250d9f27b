/* The CPU's brand string as a file-name slug, the <cpu> of the results' file names (elbo_bench, elbo zoo). */
#include "cpu_features.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void elbo_cpu_slug(char *out, size_t outlen)
{
    char model[64];
    snprintf(model, sizeof model, "%s", elbo_cpu_features_get()->model);
    char *at = strstr(model, " @ "); /* "Intel(R) Xeon(R) ... CPU @ 2.90GHz": the clock is not the CPU */
    if (at)
        *at = '\0';
    size_t n = 0;
    for (const char *p = model; *p && n + 1 < outlen; p++) {
        if (*p == '(' && (strncasecmp(p, "(r)", 3) == 0 || strncasecmp(p, "(tm)", 4) == 0)) {
            p = strchr(p, ')');
            continue;
        }
        if (isalnum((unsigned char)*p))
            out[n++] = (char)tolower((unsigned char)*p);
        else if (n > 0 && out[n - 1] != '-')
            out[n++] = '-';
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "unknown-cpu");
}
