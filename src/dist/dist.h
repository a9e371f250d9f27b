/* Data-parallel training over MPI (the `elbo-mpi` build, `make MPI=1`): P ranks share each step's batch in chunks
 * and sum their gradients in the fixed tree of grad_tree.h, so a checkpoint after N steps has the same bytes for
 * any P and any thread count (train_chunked.h). Nothing outside src/dist includes mpi.h.
 *
 * The exchange of a step (dist_mpi.c), every rank in the same order:
 *  1. agreement: MPI_Allgather of a 4-int record per rank (taking a step or leaving; its NaN/Inf flags; a pending
 *     SIGINT/SIGTERM); every rank ORs the same records, so all take the step or none does, a rank that left
 *     (an error, a bad --data) fails everyone's step instead of hanging it, and a signal stops all ranks after the
 *     same step;
 *  2. loss sums: MPI_Allgatherv of each rank's per-chunk sums (5 doubles a chunk), then every rank sums them all
 *     in the tree;
 *  3. gradients: the n floats are cut into P slices; MPI_Alltoallv sends slice s of each of a rank's pieces to
 *     rank s, which forms the tree's nodes above the pieces for its slice (the same additions whoever does them);
 *     MPI_Allgatherv gives every rank every slice of the root. MPI only moves bytes: it adds nothing.
 *
 * Bytes sent per rank and step for n floats of gradients (4 n bytes): (pieces + 1) (P - 1) / P 4n, pieces being
 * the rank's maximal tree nodes (1 when P and the chunk count are powers of two, at most about 2 log2(chunks / P)
 * otherwise), against a ring allreduce's 2 (P - 1) / P 4n: equal when every rank's range is one tree node, up to
 * (pieces + 1) / 2 times the ring's otherwise (batch 128 on 4 ranks: 6 chunks, a range [1, 3) of 2 pieces,
 * 1.5x; batch 256 on 2 ranks: 11 chunks, [5, 11) is 3 pieces, 2x). Messages: the
 * pairwise alltoall and allgather are 2 (P - 1) each way like the ring's; log-depth algorithms (Bruck, recursive
 * doubling) that MPI libraries pick for small messages make both O(log P) in latency. The ring wins on bandwidth
 * at large n when ranges are not aligned; the price buys bits that do not depend on P. */
#ifndef ELBO_DIST_H
#define ELBO_DIST_H

#include <stddef.h>

#include "train.h"

/* Starts MPI (MPI_Init_thread, FUNNELED: only the master thread calls MPI), takes elbo-mpi's own flag
 * --oversubscribe out of argv, silences stdout on ranks other than 0 and, with several ranks, holds every rank's
 * stderr until elbo_dist_finish. Returns 0, or an exit status when MPI cannot start. */
int elbo_dist_init(int *argc, char ***argv);

/* This process's rank and the number of ranks. */
int elbo_dist_rank(void);
int elbo_dist_size(void);

/* 1 on the rank that writes files (checkpoints, PNGs): rank 0. */
int elbo_dist_writes_files(void);

/* Runs fn(argc, argv) on every rank with its stdout captured, then rank 0 prints each rank's, headed "rank r of P"
 * (`elbo-mpi info --topology`: every rank's binding and thread placement). Returns fn's status. */
int elbo_dist_run_gathered(int (*fn)(int, char **), int argc, char **argv);

/* Switches tr to chunked steps over the ranks, with `threads` threads per rank: refuses (message in err, -1) more
 * ranks than a full batch's chunks, and more ranks x threads on this node than its cores unless --oversubscribe.
 * Catches SIGINT/SIGTERM so that the ranks agree on them (after train_catch_stop_signals). */
int elbo_dist_attach(elbo_trainer *tr, size_t threads, char *err, size_t errlen);

/* Agrees with every rank on how the job ends, prints the stderr of the lowest rank that failed on its own (else
 * rank 0's) and the exchange's time per step (rank 0), ends MPI; returns the exit status every rank returns: that
 * rank's. */
int elbo_dist_finish(int status);

#endif
