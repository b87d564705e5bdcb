/* dist: the ranks of a data-parallel job (docs/mpi.md), over OpenMPI when sattn is built
 * with it (-DSATTN_MPI, `make` finds mpicc) and a launcher started it (mpirun sets
 * OMPI_COMM_WORLD_SIZE; PMI_SIZE / PMIX_RANK for other launchers). Without either, a dist
 * is one rank and every collective below is the identity, so single-process code paths
 * call them unconditionally.
 *
 * Only the main thread calls MPI (MPI_THREAD_FUNNELED): OpenMP runs inside each rank.
 * Every collective must be reached by every rank in the same order; the training loops
 * keep that by deciding everything that steers control flow (divergence, saving) from
 * values that are already global. */
#ifndef SATTN_DIST_H
#define SATTN_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/core.h"

typedef struct {
    int rank, size;
    int mpi;          /* MPI_Init was called (a launched job of a MPI build) */
    FILE *captured;   /* ranks > 0: their stdout/stderr go here (dist_quiet) */
    double bytes_reduced; /* payload bytes this rank sent into collectives, for the docs' volume */
} dist_ctx;

/* Whether this binary was built with MPI. */
int dist_has_mpi(void);
/* Whether a launcher (mpirun, srun) started this process as one of several ranks; *size
 * gets the job's size from the launcher's environment (1 if none). */
int dist_launched(int *size);

/* Joins the job: MPI_Init_thread when launched under a MPI build; rank 0 of 1 otherwise.
 * -1 with e when launched with several ranks by a build without MPI (each would train
 * alone and write the same files). */
int dist_init(dist_ctx *d, sattn_err *e);
/* Leaves the job (MPI_Finalize; closes the capture). */
void dist_finalize(dist_ctx *d);

/* Ranks > 0 stop printing: their stdout and stderr go to a temporary file that
 * dist_agree reads an error back from (rank 0 alone prints progress and errors). */
void dist_quiet(dist_ctx *d);

/* Every rank passes its status rc (0 ok, else an exit status): returns the largest on
 * every rank. When a rank failed but rank 0 did not, rank 0 prints that rank's last
 * captured line as "sattn CMD: rank R: ...". Rank 0's own error is already printed. */
int dist_agree(dist_ctx *d, int rc, const char *cmd);

/* In place, over all ranks: x = sum over ranks of x. */
void dist_sum_f32(dist_ctx *d, float *x, size_t n);
void dist_sum_f64(dist_ctx *d, double *x, size_t n);
/* In place: x = the mean over ranks of x (every rank weighing the same). */
void dist_mean_f32(dist_ctx *d, float *x, size_t n);
void dist_mean_f64(dist_ctx *d, double *x, size_t n);
void dist_max_i32(dist_ctx *d, int *x, size_t n);
void dist_min_i32(dist_ctx *d, int *x, size_t n);
/* Collective: the lowest rank whose x differs from rank 0's, or -1 when all agree. */
int dist_differs(dist_ctx *d, uint64_t x);
/* rank 0's n bytes at p to every rank. */
void dist_bcast(dist_ctx *d, void *p, size_t n);

/* The shards of a vector of n floats over the ranks: rank r owns [off[r], off[r] + cnt[r]),
 * contiguous, sizes differing by at most one (fits MPI's int counts: n < 2^31 * size). */
void dist_shards(const dist_ctx *d, size_t n, size_t *off, size_t *cnt);
/* ZeRO-1's two halves: shard = this rank's part of the sum over ranks of x (x unchanged
 * elsewhere, may be clobbered), then x = every rank's shard gathered (in place). */
void dist_reduce_scatter_f32(dist_ctx *d, float *x, float *shard, const size_t *off, const size_t *cnt);
void dist_allgather_f32(dist_ctx *d, float *x, const size_t *off, const size_t *cnt);
/* Rank 0 gets every rank's shard in x (the whole vector; its own shard already in place);
 * the other ranks pass x = their shard alone: for a checkpoint. */
void dist_gather_f32(dist_ctx *d, float *x, const size_t *off, const size_t *cnt);

#endif
