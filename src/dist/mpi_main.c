/* The `elbo-mpi` command: MPI around the `elbo` command (main.c, built as elbo_cli_main here). `train` runs on every
 * rank, data-parallel (dist.h); `info` on every rank, rank 0 printing each one's (its binding and threads); any
 * other command runs on rank 0 alone. */
#include <string.h>

#include "dist.h"

int elbo_cli_main(int argc, char **argv);

int main(int argc, char **argv)
{
    int status = elbo_dist_init(&argc, &argv);
    if (status != 0)
        return status;
    if (argc > 1 && strcmp(argv[1], "info") == 0)
        status = elbo_dist_run_gathered(elbo_cli_main, argc, argv);
    else if (elbo_dist_rank() == 0 || (argc > 1 && strcmp(argv[1], "train") == 0))
        status = elbo_cli_main(argc, argv);
    return elbo_dist_finish(status);
}
