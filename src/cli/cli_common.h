/* Helpers shared by the elbo subcommands: clocks, dataset loading with model-shape checks, JSON lines. */
#ifndef ELBO_CLI_COMMON_H
#define ELBO_CLI_COMMON_H

#include <stddef.h>

#include "dataset.h"
#include "kernels.h"
#include "topology.h"
#include "train.h"

/* This machine's topology (hwloc), or NULL after one warning line when it cannot be discovered. */
elbo_topology *cli_open_topology(const char *command);

/* Default thread count: OMP_NUM_THREADS when set, else one per physical core (of topo; OpenMP's count without). */
size_t cli_default_threads(const elbo_topology *topo);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* Loads the dataset named by spec (NULL: the default) or prints "elbo CMD: <reason>" and returns -1. */
int cli_load_dataset(const char *command, const char *spec, elbo_dataset *ds);

/* The kernel table for this CPU (ELBO_ISA respected) or prints why not and returns NULL. */
const elbo_kernels *cli_kernels(const char *command);

/* The precision s names ("fp32" or "bf16") into *p; -1 after "elbo CMD: --precision: 's' is not fp32 or bf16". */
int cli_parse_precision(const char *command, const char *s, elbo_precision *p);

/* The precision the checkpoint at path was trained in (its __metadata__.precision; fp32 without it, or when the file
 * cannot be read: its loader then says why). */
elbo_precision cli_checkpoint_precision(const char *path);

/* k's twin in precision p, or NULL after one line naming the CPU feature the bf16 GEMM lacks here ("elbo CMD:
 * --precision bf16: this CPU lacks avx512_bf16 ..."; exit 2): ELBO_ISA=scalar chooses its scalar emulation. */
const elbo_kernels *cli_kernels_in(const char *command, const elbo_kernels *k, elbo_precision p);

/* The kernel table of a command on the checkpoint at path: cli_kernels in the precision `flag` names (NULL: the
 * checkpoint's), or NULL after one line. */
const elbo_kernels *cli_kernels_for(const char *command, const char *flag, const char *path);

/* A view of a split's pixels. */
elbo_images_view cli_view(const elbo_split *s);

/* Prints one JSON object on one line to stdout from alternating key, value pairs: keys are strings,
 * values are doubles (numbers) — n pairs. */
void cli_print_json_numbers(const char *const *keys, const double *values, size_t n, const char *str_key,
                            const char *str_value);

#endif
