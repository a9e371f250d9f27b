/* The MPI layer of elbo-mpi (dist.h): start and end, the step's exchange, agreement on faults and signals.
 *
 * Design.
 * - Chunks. A step's batch (--batch, the same meaning as elbo's) is cut into chunks of C = 24 rows
 *   (ELBO_CHUNK_ROWS_DEFAULT), fixed whatever the number of ranks P: a multiple of every kernel table's MR (4, 6,
 *   12) so a chunk's rows are whole microkernel tiles, and small enough that the default batch of 128 has 6 chunks
 *   (P up to 6; batch 1024: 43). Ranks own contiguous chunk ranges whose sizes differ by at most one
 *   (elbo_team_rows), the last partial batch too (a rank may then own none); inside a rank its threads split its
 *   rows for the forward and backward passes as elbo's do. P greater than a full batch's chunks is refused.
 * - Gradients. Each chunk's weight gradient is its own GEMM over its rows (K = C) and its bias gradient its own
 *   column sum; the chunk gradients are summed in one binary tree over chunk indices that depends on the chunk
 *   count alone (grad_tree.h: node (k, j) is chunks [j 2^k, (j + 1) 2^k)). A rank sums the subtrees inside its
 *   range (its pieces, the maximal nodes there; its threads split them by output features); the nodes above
 *   them span ranks. Those are formed by slices: rank s receives slice s (1/P of the floats) of every rank's
 *   pieces (Alltoallv), forms every spanning node for its slice (the same additions in the same tree, hence the
 *   same bits whoever does them), and the root's slices go to every rank (Allgatherv). MPI moves bytes and adds
 *   nothing, so the root, and every parameter after it, is byte-identical for any P and any thread count.
 * - Cost. Bytes sent per rank and step, n floats of gradients: (pieces + 1) (P - 1) / P 4n, against a ring
 *   allreduce's 2 (P - 1) / P 4n (which promises no order). Equal when each rank's range is one tree node (P and
 *   chunks per rank powers of two: choose --batch = P 24 2^k); otherwise a range is a few pieces (about 2 log2 of its
 *   chunks at most) and the tree sends (pieces + 1) / 2 times the ring's bytes: 1.5x at batch 128 on 4 ranks,
 *   2x at batch 256 on 2 ranks (11 chunks: [5, 11) is 3 pieces). Latency: 2 (P - 1) messages pairwise like the ring's, or O(log P) with the algorithms
 *   MPI libraries pick for small messages: the ring wins on large gradients over slow links, the tree costs no more
 *   on small ones, and only it is reproducible.
 * - Against elbo. elbo sums each weight gradient in one GEMM over the whole batch; elbo-mpi sums chunk GEMMs in
 *   the tree: the same mathematics in another order, so its bits differ from elbo's (by float rounding, 1e-7 on
 *   the VAE's parameters after a few steps), while they are the same for every P.
 * - Loss sums, for reporting and the NaN check, are per chunk (the model's rows_loss) and summed in the same tree
 *   (Allgatherv of 5 doubles a chunk).
 * - Overlap. A layer's weight and bias buckets start their Ialltoallv as soon as every thread has formed that
 *   layer's pieces, while the next layers' pieces are formed; roots go out by Iallgatherv on a second
 *   communicator, each collective in bucket order on every rank.
 * - Faults. Every step starts with an Allgather of a record per rank: its NaN/Inf flags, a SIGINT/SIGTERM it
 *   caught, or that it left training (an error such as a bad --data, a failed checkpoint write): all ranks take
 *   the step or none; a signal is handed to every rank's trainer at the same step; a rank that left fails the
 *   others' step instead of hanging it. At exit the ranks exchange statuses and only the lowest rank that failed
 *   on its own prints its stderr (held until then), so the job ends with one line and that rank's status. A rank
 *   that dies ends the job through mpirun; checkpoints are written by rank 0 alone, atomically.
 * - Only the master thread calls MPI (MPI_THREAD_FUNNELED). */
#include "dist.h"

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "team.h"
#include "train_chunked.h"

/* A rank's record in a step's agreement: taking the step, or leaving training. */
enum { STATE_STEP = 1, STATE_LEAVING = 2 };
#define RECORD_INTS 4

/* One bucket of a step's bucketed gradient exchange: elements [lo, hi) of the arena. Stage 0: its pieces' slices
 * travel (Ialltoallv); 1: its root's slices travel (Iallgatherv); 2: done. */
typedef struct {
    size_t lo, hi;
    int stage;
    MPI_Request req;
    float *send, *recv;
    size_t send_cap, recv_cap;
    int *counts; /* (4 size): send counts and displacements, receive counts and displacements */
    float *grads;
    const elbo_grad_tree *tree;
} bucket;

#define MAX_BUCKETS (2 * ELBO_MAX_LAYERS)

typedef struct {
    int rank, size;
    int node_size;              /* ranks on this node */
    int bound_cpus;             /* CPUs mpirun bound this rank to (before the trainer binds its threads) */
    int oversubscribe;
    int saved_stderr;           /* the real stderr while ours is held in held_stderr (-1: not held) */
    FILE *held_stderr;
    int peer_failed;            /* a step of this rank failed because another rank left */
    int *records;               /* (size RECORD_INTS) */
    int *counts, *displs, *counts2, *displs2; /* (size) each */
    float *send, *recv;
    size_t send_cap, recv_cap;
    const float **piece_ptr;
    size_t piece_ptr_cap;
    float *scratch[64];
    size_t scratch_len, scratch_levels;
    void (*train_handler)(int); /* the trainer's stop handler, called on every rank once the ranks agree */
    double comm_s;              /* seconds in the exchange */
    double agree_s;             /* of which in the agreement (it also absorbs the ranks' skew: the wait for the
                                 * slowest rank's rows) */
    long steps;
    double first_step_t, last_step_t; /* the first agreement's start, the last exchange's end */
    elbo_grad_exchange exchange;
    MPI_Comm pieces_comm, roots_comm; /* the buckets' Ialltoallv and Iallgatherv: each in bucket order on every rank
                                       * on its own communicator, however their completions interleave */
    bucket bucket[MAX_BUCKETS];
    size_t n_buckets, next_combine; /* buckets begun this step; the first whose pieces' exchange is not yet done */
} dist_state;

static dist_state D = {.saved_stderr = -1};

/* The signal this rank caught and has not yet told the others about. */
static volatile sig_atomic_t pending_signal;

/* SIGINT/SIGTERM handler while training over MPI: remembered until the next step's agreement. */
static void on_signal(int sig)
{
    pending_signal = sig;
}

int elbo_dist_rank(void)
{
    return D.rank;
}

int elbo_dist_size(void)
{
    return D.size;
}

int elbo_dist_writes_files(void)
{
    return D.rank == 0;
}

int elbo_dist_init(int *argc, char ***argv)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "elbo-mpi: MPI_Init_thread failed\n");
        return 1;
    }
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "elbo-mpi: the MPI library does not provide MPI_THREAD_FUNNELED\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.size);
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp((*argv)[i], "--oversubscribe") == 0) {
            D.oversubscribe = 1;
            continue;
        }
        (*argv)[w++] = (*argv)[i];
    }
    *argc = w;
    (*argv)[w] = NULL;
    /* ranks on this node, for the oversubscription check (a collective: here, where every rank comes) */
    MPI_Comm node;
    D.node_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &D.node_size);
        MPI_Comm_free(&node);
    }
    cpu_set_t bound;
    D.bound_cpus = sched_getaffinity(0, sizeof bound, &bound) == 0 ? CPU_COUNT(&bound) : 0;
    MPI_Comm_dup(MPI_COMM_WORLD, &D.pieces_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &D.roots_comm);
    size_t n = (size_t)D.size;
    D.records = malloc(n * RECORD_INTS * sizeof *D.records);
    D.counts = malloc(n * sizeof(int));
    D.displs = malloc(n * sizeof(int));
    D.counts2 = malloc(n * sizeof(int));
    D.displs2 = malloc(n * sizeof(int));
    if (!D.records || !D.counts || !D.displs || !D.counts2 || !D.displs2) {
        fprintf(stderr, "elbo-mpi: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    fflush(stdout);
    fflush(stderr);
    if (D.rank != 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            dup2(fileno(null), STDOUT_FILENO);
            fclose(null);
        }
    }
    if (D.size > 1) {
        D.held_stderr = tmpfile();
        D.saved_stderr = D.held_stderr ? dup(STDERR_FILENO) : -1;
        if (D.saved_stderr >= 0)
            dup2(fileno(D.held_stderr), STDERR_FILENO);
    }
    return 0;
}

int elbo_dist_run_gathered(int (*fn)(int, char **), int argc, char **argv)
{
    fflush(stdout);
    FILE *cap = tmpfile();
    int saved = dup(STDOUT_FILENO);
    if (cap && saved >= 0)
        dup2(fileno(cap), STDOUT_FILENO);
    int status = fn(argc, argv);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    long len = cap ? ftell(cap) : 0;
    char *text = malloc((size_t)(len > 0 ? len : 1));
    if (!text)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (cap) {
        rewind(cap);
        len = (long)fread(text, 1, (size_t)len, cap);
        fclose(cap);
    }
    int mine = (int)len, *lens = NULL, *displs = NULL, total = 0;
    char *all = NULL;
    if (D.rank == 0) {
        lens = malloc((size_t)D.size * sizeof *lens);
        displs = malloc((size_t)D.size * sizeof *displs);
        if (!lens || !displs)
            MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Gather(&mine, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (D.rank == 0) {
        for (int q = 0; q < D.size; q++) {
            displs[q] = total;
            total += lens[q];
        }
        if (!(all = malloc((size_t)(total ? total : 1))))
            MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Gatherv(text, mine, MPI_CHAR, all, lens, displs, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (D.rank == 0) {
        for (int q = 0; q < D.size; q++) {
            printf("== rank %d of %d ==\n", q, D.size);
            fwrite(all + displs[q], 1, (size_t)lens[q], stdout);
        }
        fflush(stdout);
    }
    free(all);
    free(lens);
    free(displs);
    free(text);
    return status;
}

/* Grows *buf to at least n floats; aborts the job when out of memory. */
static float *grow(float **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        *buf = malloc((n ? n : 1) * sizeof **buf);
        if (!*buf) {
            fprintf(stderr, "elbo-mpi: out of memory in the gradient exchange (%zu floats)\n", n);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        *cap = n;
    }
    return *buf;
}

/* Exchanges every rank's record; returns 1 when every rank is leaving. */
static int exchange_records(const int *mine)
{
    MPI_Allgather(mine, RECORD_INTS, MPI_INT, D.records, RECORD_INTS, MPI_INT, MPI_COMM_WORLD);
    for (int q = 0; q < D.size; q++)
        if (D.records[q * RECORD_INTS] != STATE_LEAVING)
            return 0;
    return 1;
}

/* elbo_grad_exchange.agree: ORs the ranks' flags; a rank leaving fails the step; a signal any rank caught is
 * delivered to the trainer of every rank now, so all stop after this step. */
static unsigned ex_agree(void *ctx, unsigned flags)
{
    (void)ctx;
    double t0 = MPI_Wtime();
    if (D.steps == 0 && D.first_step_t == 0)
        D.first_step_t = t0;
    int mine[RECORD_INTS] = {STATE_STEP, (int)flags, (int)pending_signal, 0};
    exchange_records(mine);
    unsigned out = 0;
    int sig = 0;
    for (int q = 0; q < D.size; q++) {
        const int *r = D.records + q * RECORD_INTS;
        if (r[0] == STATE_LEAVING) {
            out |= ELBO_STEP_PEER_FAILED;
            continue;
        }
        out |= (unsigned)r[1];
        if (!sig && r[2])
            sig = r[2];
    }
    if (out & ELBO_STEP_PEER_FAILED)
        D.peer_failed = 1;
    if (sig) {
        pending_signal = 0;
        if (D.train_handler)
            D.train_handler(sig);
    }
    D.comm_s += MPI_Wtime() - t0;
    D.agree_s += MPI_Wtime() - t0;
    return out;
}

/* elbo_grad_exchange.losses: every rank's chunk sums from their owners. */
static void ex_losses(void *ctx, const elbo_grad_tree *t, double *chunk, size_t width)
{
    (void)ctx;
    double t0 = MPI_Wtime();
    for (int q = 0; q < D.size; q++) {
        D.counts[q] = (int)((t->range[q + 1] - t->range[q]) * width);
        D.displs[q] = (int)(t->range[q] * width);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, chunk, D.counts, D.displs, MPI_DOUBLE, MPI_COMM_WORLD);
    D.comm_s += MPI_Wtime() - t0;
}

static void combine_buffers(const elbo_grad_tree *t, size_t len);

/* elbo_grad_exchange.grads: slice s of every piece to rank s (MPI_Alltoallv), the tree's nodes above the pieces
 * over this rank's slice, then every slice of the root to every rank (MPI_Allgatherv). */
static void ex_grads(void *ctx, const elbo_grad_tree *t, float *const *mine, float *grads, size_t n)
{
    (void)ctx;
    double t0 = MPI_Wtime();
    size_t p = (size_t)D.size, r = (size_t)D.rank;
    size_t my_pieces = t->piece_first[r + 1] - t->piece_first[r];
    size_t s0, s1;
    elbo_team_rows(n, r, p, &s0, &s1);
    size_t len = s1 - s0;
    float *send = grow(&D.send, &D.send_cap, my_pieces * n);
    float *recv = grow(&D.recv, &D.recv_cap, t->n_pieces * len);
    size_t at = 0;
    for (size_t s = 0; s < p; s++) {
        size_t lo, hi;
        elbo_team_rows(n, s, p, &lo, &hi);
        D.counts[s] = (int)(my_pieces * (hi - lo));
        D.displs[s] = (int)at;
        for (size_t i = 0; i < my_pieces; i++, at += hi - lo)
            memcpy(send + at, mine[i] + lo, (hi - lo) * sizeof *send);
    }
    for (size_t q = 0; q < p; q++) {
        D.counts2[q] = (int)((t->piece_first[q + 1] - t->piece_first[q]) * len);
        D.displs2[q] = (int)(t->piece_first[q] * len);
    }
    MPI_Alltoallv(send, D.counts, D.displs, MPI_FLOAT, recv, D.counts2, D.displs2, MPI_FLOAT, MPI_COMM_WORLD);
    combine_buffers(t, len);
    for (size_t i = 0; i < t->n_pieces; i++)
        D.piece_ptr[i] = recv + i * len;
    elbo_grad_tree_combine(t, D.piece_ptr, len, D.scratch, grads + s0);
    for (size_t q = 0; q < p; q++) {
        size_t lo, hi;
        elbo_team_rows(n, q, p, &lo, &hi);
        D.counts[q] = (int)(hi - lo);
        D.displs[q] = (int)lo;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, grads, D.counts, D.displs, MPI_FLOAT, MPI_COMM_WORLD);
    D.last_step_t = MPI_Wtime();
    D.comm_s += D.last_step_t - t0;
    D.steps++;
}

/* Grows the piece-pointer table and the combine's scratch for slices of len floats of tree t. */
static void combine_buffers(const elbo_grad_tree *t, size_t len)
{
    if (t->n_pieces > D.piece_ptr_cap) {
        free(D.piece_ptr);
        D.piece_ptr = malloc(t->n_pieces * sizeof *D.piece_ptr);
        if (!D.piece_ptr)
            MPI_Abort(MPI_COMM_WORLD, 1);
        D.piece_ptr_cap = t->n_pieces;
    }
    if (len > D.scratch_len || t->levels + 1 > D.scratch_levels) {
        for (size_t i = 0; i < D.scratch_levels; i++)
            free(D.scratch[i]);
        D.scratch_len = len > D.scratch_len ? len : D.scratch_len;
        D.scratch_levels = t->levels + 1 > D.scratch_levels ? t->levels + 1 : D.scratch_levels;
        for (size_t i = 0; i < D.scratch_levels; i++)
            if (!(D.scratch[i] = malloc((D.scratch_len ? D.scratch_len : 1) * sizeof(float))))
                MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* Bucket k's pieces have arrived: forms the tree's nodes above them over this rank's slice into the root, then
 * starts sending the root's slices to every rank. */
static void bucket_combine(bucket *k)
{
    size_t p = (size_t)D.size, n = k->hi - k->lo, s0, s1;
    elbo_team_rows(n, (size_t)D.rank, p, &s0, &s1);
    combine_buffers(k->tree, s1 - s0);
    for (size_t i = 0; i < k->tree->n_pieces; i++)
        D.piece_ptr[i] = k->recv + i * (s1 - s0);
    elbo_grad_tree_combine(k->tree, D.piece_ptr, s1 - s0, D.scratch, k->grads + k->lo + s0);
    int *cnt = k->counts, *dsp = k->counts + p;
    for (size_t q = 0; q < p; q++) {
        size_t lo, hi;
        elbo_team_rows(n, q, p, &lo, &hi);
        cnt[q] = (int)(hi - lo);
        dsp[q] = (int)lo;
    }
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, k->grads + k->lo, cnt, dsp, MPI_FLOAT, D.roots_comm, &k->req);
    k->stage = 1;
}

/* Moves the buckets on without waiting: in bucket order (so every rank starts the same collectives in the same
 * order), each whose pieces have arrived is combined and its root sent; wait: block until all are done. */
static void buckets_progress(int wait)
{
    while (D.next_combine < D.n_buckets) {
        bucket *k = &D.bucket[D.next_combine];
        int done = 0;
        if (wait)
            MPI_Wait(&k->req, MPI_STATUS_IGNORE);
        else
            MPI_Test(&k->req, &done, MPI_STATUS_IGNORE);
        if (!wait && !done)
            return;
        bucket_combine(k);
        D.next_combine++;
    }
    if (wait)
        for (size_t i = 0; i < D.n_buckets; i++) {
            MPI_Wait(&D.bucket[i].req, MPI_STATUS_IGNORE);
            D.bucket[i].stage = 2;
        }
}

/* elbo_grad_exchange.grads_begin: slice s of every piece's elements [lo, hi) to rank s (MPI_Ialltoallv). */
static void ex_grads_begin(void *ctx, const elbo_grad_tree *t, float *const *mine, float *grads, size_t lo, size_t hi)
{
    (void)ctx;
    double t0 = MPI_Wtime();
    if (D.n_buckets == MAX_BUCKETS) {
        fprintf(stderr, "elbo-mpi: more than %d gradient buckets in a step\n", MAX_BUCKETS);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    bucket *k = &D.bucket[D.n_buckets++];
    size_t p = (size_t)D.size, r = (size_t)D.rank, n = hi - lo;
    size_t my_pieces = t->piece_first[r + 1] - t->piece_first[r], s0, s1;
    elbo_team_rows(n, r, p, &s0, &s1);
    k->lo = lo;
    k->hi = hi;
    k->tree = t;
    k->grads = grads;
    if (!k->counts && !(k->counts = malloc(4 * p * sizeof *k->counts)))
        MPI_Abort(MPI_COMM_WORLD, 1);
    float *send = grow(&k->send, &k->send_cap, my_pieces * n);
    float *recv = grow(&k->recv, &k->recv_cap, t->n_pieces * (s1 - s0));
    int *scnt = k->counts, *sdsp = k->counts + p, *rcnt = k->counts + 2 * p, *rdsp = k->counts + 3 * p;
    size_t at = 0;
    for (size_t s = 0; s < p; s++) {
        size_t a, e;
        elbo_team_rows(n, s, p, &a, &e);
        scnt[s] = (int)(my_pieces * (e - a));
        sdsp[s] = (int)at;
        for (size_t i = 0; i < my_pieces; i++, at += e - a)
            memcpy(send + at, mine[i] + lo + a, (e - a) * sizeof *send);
    }
    for (size_t q = 0; q < p; q++) {
        rcnt[q] = (int)((t->piece_first[q + 1] - t->piece_first[q]) * (s1 - s0));
        rdsp[q] = (int)(t->piece_first[q] * (s1 - s0));
    }
    MPI_Ialltoallv(send, scnt, sdsp, MPI_FLOAT, recv, rcnt, rdsp, MPI_FLOAT, D.pieces_comm, &k->req);
    k->stage = 0;
    buckets_progress(0);
    D.comm_s += MPI_Wtime() - t0;
}

/* elbo_grad_exchange.grads_finish: every bucket of the step combined and gathered. */
static void ex_grads_finish(void *ctx)
{
    (void)ctx;
    double t0 = MPI_Wtime();
    buckets_progress(1);
    D.n_buckets = D.next_combine = 0;
    D.last_step_t = MPI_Wtime();
    D.comm_s += D.last_step_t - t0;
    D.steps++;
}

int elbo_dist_attach(elbo_trainer *tr, size_t threads, char *err, size_t errlen)
{
    int node_size = D.node_size;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int bound_cpus = D.bound_cpus;
    if (!D.oversubscribe && cores > 0 && (long)node_size * (long)threads > cores) {
        snprintf(err, errlen, "%d ranks x %zu thread%s on this node but it has %ld cores: use fewer (--threads) or "
                 "pass --oversubscribe", node_size, threads, threads == 1 ? "" : "s", cores);
        return -1;
    }
    if (!D.oversubscribe && bound_cpus > 0 && (size_t)bound_cpus < threads) {
        snprintf(err, errlen, "rank %d is bound to %d CPU%s (mpirun --bind-to, --map-by) but --threads is %zu: bind "
                 "it to more (e.g. mpirun --bind-to none or --map-by slot:PE=%zu), use fewer threads, or pass "
                 "--oversubscribe", D.rank, bound_cpus, bound_cpus == 1 ? "" : "s", threads, threads);
        return -1;
    }
    D.exchange = (elbo_grad_exchange){NULL, ex_agree, ex_losses, ex_grads, NULL, NULL};
    if (!getenv("ELBO_DIST_NO_BUCKETS")) { /* per-layer buckets overlapping the weight gradients (default) */
        D.exchange.grads_begin = ex_grads_begin;
        D.exchange.grads_finish = ex_grads_finish;
    }
    /* one rank: the same chunked step with nothing to exchange (no copies, signals as elbo's) */
    elbo_chunked_config cfg = {ELBO_CHUNK_ROWS_DEFAULT, (size_t)D.size, (size_t)D.rank,
                               D.size > 1 ? &D.exchange : NULL};
    if (elbo_trainer_use_chunks(tr, &cfg, err, errlen) != 0)
        return -1;
    if (D.size == 1)
        return 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    D.train_handler = old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN ? old.sa_handler : NULL;
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

/* Copies what this rank wrote to its held stderr to the real one. */
static void release_stderr(int print)
{
    if (D.saved_stderr < 0)
        return;
    fflush(stderr);
    if (print) {
        char buf[4096];
        size_t got;
        rewind(D.held_stderr);
        while ((got = fread(buf, 1, sizeof buf, D.held_stderr)) > 0)
            if (write(D.saved_stderr, buf, got) < 0)
                break;
    }
    dup2(D.saved_stderr, STDERR_FILENO);
    close(D.saved_stderr);
    fclose(D.held_stderr);
    D.saved_stderr = -1;
}

int elbo_dist_finish(int status)
{
    /* a rank that left (an error) or finished: records of "leaving" until every rank has left; a rank still in a
     * step sees them, fails that step and comes here */
    int mine[RECORD_INTS] = {STATE_LEAVING, 0, status, D.peer_failed};
    while (!exchange_records(mine)) {
    }
    int chosen = -1;
    for (int q = 0; q < D.size && chosen < 0; q++)
        if (D.records[q * RECORD_INTS + 2] != 0 && !D.records[q * RECORD_INTS + 3])
            chosen = q;
    for (int q = 0; q < D.size && chosen < 0; q++)
        if (D.records[q * RECORD_INTS + 2] != 0)
            chosen = q;
    if (chosen < 0)
        chosen = 0;
    int agreed = D.records[chosen * RECORD_INTS + 2];
    if (D.rank == 0 && D.steps > 0 && getenv("ELBO_DIST_STATS")) {
        double total = D.last_step_t - D.first_step_t; /* the steps but the first one's rows */
        fprintf(stderr, "elbo-mpi: %d ranks, %ld steps, %.3f ms/step, exchange %.3f ms/step exposed (agreement and "
                "waiting for the slowest rank %.3f, losses and gradients %.3f)\n", D.size, D.steps,
                1e3 * total / (double)D.steps, 1e3 * D.comm_s / (double)D.steps, 1e3 * D.agree_s / (double)D.steps,
                1e3 * (D.comm_s - D.agree_s) / (double)D.steps);
    }
    release_stderr(D.rank == chosen);
    MPI_Comm_free(&D.pieces_comm);
    MPI_Comm_free(&D.roots_comm);
    MPI_Finalize();
    return agreed;
}
