/* Labelled plots (scatter with a legend, histograms) drawn by scripts/elbo_plot.py with matplotlib. */
#ifndef ELBO_PLOT_SCRIPT_H
#define ELBO_PLOT_SCRIPT_H

#include <stddef.h>

/* Finds the plot script: $ELBO_PLOT_SCRIPT, else scripts/elbo_plot.py beside the build directory of this
 * executable. Returns 0 with the path in out, or -1 after printing "elbo CMD: ..." when it is missing. */
int plot_script_find(const char *command, char *out, size_t outlen);

/* Runs /usr/bin/python3 SCRIPT args... (args NULL-terminated) and waits. Returns 0, or -1 after printing
 * "elbo CMD: plot script failed ..." (the script's own error line precedes it on stderr). */
int plot_script_run(const char *command, const char *script, const char *const *args);

#endif
