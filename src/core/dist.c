/* dist: ranks of a data-parallel job over OpenMPI (dist.h). The only file that includes
 * mpi.h: without -DSATTN_MPI every collective is the identity of a job of one rank. */
#define _POSIX_C_SOURCE 200809L /* fileno, dup2 */
#include "sattn/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SATTN_MPI
#include <mpi.h>
#endif

int dist_has_mpi(void) {
#ifdef SATTN_MPI
    return 1;
#else
    return 0;
#endif
}

/* OpenMPI's mpirun, then PMI (MPICH, Slurm's srun), then PMIx. */
int dist_launched(int *size) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    *size = 1;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) >= 1) return *size = atoi(v), 1;
    }
    return 0;
}

int dist_init(dist_ctx *d, sattn_err *e) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    int n;
    if (!dist_launched(&n)) return 0;
#ifdef SATTN_MPI
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return err_set(e, "MPI_Init_thread failed");
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return 0;
#else
    if (n > 1)
        return err_set(e, "started by a launcher as one of %d ranks, but this sattn was built without MPI "
                          "(expected a build with OpenMPI: `make` where mpicc is installed, or `make mpi`)", n);
    return 0;
#endif
}

void dist_quiet(dist_ctx *d) {
    if (d->rank == 0 || d->captured) return;
    fflush(stdout), fflush(stderr);
    d->captured = tmpfile();
    if (!d->captured) return; /* then it prints: noisy, not wrong */
    dup2(fileno(d->captured), 1);
    dup2(fileno(d->captured), 2);
}

void dist_finalize(dist_ctx *d) {
#ifdef SATTN_MPI
    if (d->mpi) MPI_Finalize();
#endif
    if (d->captured) fclose(d->captured);
    d->captured = NULL;
    d->mpi = 0;
}

#ifdef SATTN_MPI
/* This rank's last captured line (a failed command's one-line error). */
static void last_line(dist_ctx *d, char *buf, size_t n) {
    buf[0] = 0;
    if (!d->captured) return;
    fflush(stderr), fflush(stdout);
    rewind(d->captured);
    char line[SATTN_ERR_LEN + 64];
    while (fgets(line, sizeof line, d->captured))
        if (line[0] && line[0] != '\n') snprintf(buf, n, "%s", line);
    buf[strcspn(buf, "\n")] = 0;
    fseek(d->captured, 0, SEEK_END);
}
#endif

int dist_agree(dist_ctx *d, int rc, const char *cmd) {
    if (d->size == 1) return rc;
#ifdef SATTN_MPI
    int v[2] = {rc, rc ? d->size - d->rank : 0}; /* the largest status; the lowest failing rank */
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (!v[0]) return 0;
    int bad = d->size - v[1];
    if (bad == 0) return v[0];
    char msg[SATTN_ERR_LEN + 64];
    if (d->rank == bad) {
        last_line(d, msg, sizeof msg);
        MPI_Send(msg, sizeof msg, MPI_CHAR, 0, 7, MPI_COMM_WORLD);
    } else if (d->rank == 0) {
        MPI_Recv(msg, sizeof msg, MPI_CHAR, bad, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        const char *m = msg;
        size_t pre = strlen("sattn ") + strlen(cmd) + 2; /* the rank's own "sattn CMD: " */
        if (!strncmp(m, "sattn ", 6) && strlen(m) > pre && !strncmp(m + 6, cmd, strlen(cmd))) m += pre;
        fprintf(stderr, "sattn %s: rank %d: %s\n", cmd, bad, m[0] ? m : "failed (no message)");
    }
    return v[0];
#else
    return rc;
#endif
}

/* MPI counts are ints: big vectors go in pieces. */
enum { DIST_CHUNK = 1 << 28 };

#ifdef SATTN_MPI
static void sum_chunks(dist_ctx *d, void *x, size_t n, size_t width, MPI_Datatype t, MPI_Op op) {
    for (size_t o = 0; o < n; o += DIST_CHUNK) {
        int c = (int)(n - o < DIST_CHUNK ? n - o : DIST_CHUNK);
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + o * width, c, t, op, MPI_COMM_WORLD);
    }
    d->bytes_reduced += (double)n * width;
}
#define DIST_REDUCE(d, x, n, t, op) \
    do { if ((d)->size > 1) sum_chunks((d), (x), (n), sizeof *(x), (t), (op)); } while (0)
#else
#define DIST_REDUCE(d, x, n, t, op) ((void)(d), (void)(x), (void)(n))
#endif

void dist_sum_f32(dist_ctx *d, float *x, size_t n) { DIST_REDUCE(d, x, n, MPI_FLOAT, MPI_SUM); }
void dist_sum_f64(dist_ctx *d, double *x, size_t n) { DIST_REDUCE(d, x, n, MPI_DOUBLE, MPI_SUM); }
void dist_max_i32(dist_ctx *d, int *x, size_t n) { DIST_REDUCE(d, x, n, MPI_INT, MPI_MAX); }
void dist_min_i32(dist_ctx *d, int *x, size_t n) { DIST_REDUCE(d, x, n, MPI_INT, MPI_MIN); }

/* Scaled before the sum (as the gradients are), so a mean of equal values is exact. */
void dist_mean_f32(dist_ctx *d, float *x, size_t n) {
    if (d->size == 1) return;
    float w = 1.0f / (float)d->size;
    for (size_t i = 0; i < n; i++) x[i] *= w;
    dist_sum_f32(d, x, n);
}

void dist_mean_f64(dist_ctx *d, double *x, size_t n) {
    if (d->size == 1) return;
    double w = 1.0 / d->size;
    for (size_t i = 0; i < n; i++) x[i] *= w;
    dist_sum_f64(d, x, n);
}

void dist_bcast(dist_ctx *d, void *p, size_t n) {
#ifdef SATTN_MPI
    if (d->size == 1) return;
    for (size_t o = 0; o < n; o += DIST_CHUNK) {
        int c = (int)(n - o < DIST_CHUNK ? n - o : DIST_CHUNK);
        MPI_Bcast((char *)p + o, c, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
#else
    (void)d, (void)p, (void)n;
#endif
}

int dist_differs(dist_ctx *d, uint64_t x) {
    if (d->size == 1) return -1;
    uint64_t x0 = x;
    dist_bcast(d, &x0, sizeof x0);
    int r = x == x0 ? INT_MAX : d->rank;
    dist_min_i32(d, &r, 1);
    return r == INT_MAX ? -1 : r;
}

void dist_shards(const dist_ctx *d, size_t n, size_t *off, size_t *cnt) {
    size_t q = n / (size_t)d->size, r = n % (size_t)d->size, o = 0;
    for (int i = 0; i < d->size; i++) {
        cnt[i] = q + ((size_t)i < r);
        off[i] = o;
        o += cnt[i];
    }
    if (cnt[0] > (size_t)INT_MAX) die_at(__FILE__, __LINE__, "a shard of %zu floats is over MPI's int count", cnt[0]);
}

#ifdef SATTN_MPI
/* int counts and displacements of the shards (freed by the caller). */
static void int_counts(const dist_ctx *d, const size_t *off, const size_t *cnt, int **ic, int **io) {
    *ic = xmalloc((size_t)d->size * sizeof(int));
    *io = xmalloc((size_t)d->size * sizeof(int));
    for (int i = 0; i < d->size; i++) {
        if (off[i] > (size_t)INT_MAX) die_at(__FILE__, __LINE__, "vector over MPI's int displacements");
        (*ic)[i] = (int)cnt[i], (*io)[i] = (int)off[i];
    }
}
#endif

void dist_reduce_scatter_f32(dist_ctx *d, float *x, float *shard, const size_t *off, const size_t *cnt) {
#ifdef SATTN_MPI
    if (d->size > 1) {
        int *ic, *io;
        int_counts(d, off, cnt, &ic, &io);
        MPI_Reduce_scatter(x, shard, ic, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        d->bytes_reduced += (double)(off[d->size - 1] + cnt[d->size - 1]) * sizeof(float) / 2;
        free(ic), free(io);
        return;
    }
#endif
    memcpy(shard, x + off[d->rank], cnt[d->rank] * sizeof(float));
}

void dist_allgather_f32(dist_ctx *d, float *x, const size_t *off, const size_t *cnt) {
#ifdef SATTN_MPI
    if (d->size == 1) return;
    int *ic, *io;
    int_counts(d, off, cnt, &ic, &io);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, ic, io, MPI_FLOAT, MPI_COMM_WORLD);
    d->bytes_reduced += (double)(off[d->size - 1] + cnt[d->size - 1]) * sizeof(float) / 2;
    free(ic), free(io);
#else
    (void)d, (void)x, (void)off, (void)cnt;
#endif
}

void dist_gather_f32(dist_ctx *d, float *x, const size_t *off, const size_t *cnt) {
#ifdef SATTN_MPI
    if (d->size == 1) return;
    int *ic, *io;
    int_counts(d, off, cnt, &ic, &io);
    if (d->rank == 0)
        MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, ic, io, MPI_FLOAT, 0, MPI_COMM_WORLD);
    else
        MPI_Gatherv(x, ic[d->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, 0, MPI_COMM_WORLD);
    free(ic), free(io);
#else
    (void)d, (void)x, (void)off, (void)cnt;
#endif
}
