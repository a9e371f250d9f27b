/* The MPI layer of elbo-mpi (dist.h): start and end, the step's exchange, agreement on faults and signals. */
#include "dist.h"

#include <mpi.h>
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

typedef struct {
    int rank, size;
    int node_size;              /* ranks on this node */
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
    if (t->n_pieces > D.piece_ptr_cap) {
        free(D.piece_ptr);
        D.piece_ptr = malloc(t->n_pieces * sizeof *D.piece_ptr);
        if (!D.piece_ptr)
            MPI_Abort(MPI_COMM_WORLD, 1);
        D.piece_ptr_cap = t->n_pieces;
    }
    for (size_t i = 0; i < t->n_pieces; i++)
        D.piece_ptr[i] = recv + i * len;
    if (len > D.scratch_len || t->levels + 1 > D.scratch_levels) {
        for (size_t i = 0; i < D.scratch_levels; i++)
            free(D.scratch[i]);
        D.scratch_len = len > D.scratch_len ? len : D.scratch_len;
        D.scratch_levels = t->levels + 1 > D.scratch_levels ? t->levels + 1 : D.scratch_levels;
        for (size_t i = 0; i < D.scratch_levels; i++)
            if (!(D.scratch[i] = malloc((D.scratch_len ? D.scratch_len : 1) * sizeof(float))))
                MPI_Abort(MPI_COMM_WORLD, 1);
    }
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

int elbo_dist_attach(elbo_trainer *tr, size_t threads, char *err, size_t errlen)
{
    int node_size = D.node_size;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (!D.oversubscribe && cores > 0 && (long)node_size * (long)threads > cores) {
        snprintf(err, errlen, "%d ranks x %zu thread%s on this node but it has %ld cores: use fewer (--threads) or "
                 "pass --oversubscribe", node_size, threads, threads == 1 ? "" : "s", cores);
        return -1;
    }
    D.exchange = (elbo_grad_exchange){NULL, ex_agree, ex_losses, ex_grads};
    elbo_chunked_config cfg = {ELBO_CHUNK_ROWS_DEFAULT, (size_t)D.size, (size_t)D.rank, &D.exchange};
    if (elbo_trainer_use_chunks(tr, &cfg, err, errlen) != 0)
        return -1;
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
    MPI_Finalize();
    return agreed;
}
