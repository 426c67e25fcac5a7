/* Every MPI call of data-parallel training (cmir_train under mpirun or
 * srun): rank and size, sums over the ranks in a fixed order, broadcasts.
 * Built against MPI with CMIR_WITH_MPI; without it (or when the program
 * was not started by an MPI launcher) a single process of rank 0. */
#include "train_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CMIR_WITH_MPI
#include <mpi.h>

static int g_rank = 0, g_size = 1, g_inited = 0;

#define SMALL_SUM 65536 /* elements of all ranks' copies together: one MPI_Allgather */

/* Started by mpirun/mpiexec (Open MPI, MPICH) or srun (PMI, PMIx)? A plain
 * run does not initialise MPI at all: it is then the non-MPI program. */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int cmir_train_mpi_init(int *argc, char ***argv)
{
    int already = 0;
    MPI_Initialized(&already);
    if (!already && !launched())
        return 0;
    if (!already) {
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return cmir__error(CMIR_EIO, "MPI_Init failed");
        g_inited = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void cmir_train_mpi_finalize(int failed)
{
    /* a failed rank leaves without MPI_Finalize: the launcher then ends the
     * ranks still waiting in a collective instead of leaving them hanging */
    if (g_inited && !failed)
        MPI_Finalize();
    g_inited = 0;
}

int cmir__train_dist_rank(void) { return g_rank; }
int cmir__train_dist_size(void) { return g_size; }

/* Sums v[0..n) (floats or doubles) over the ranks, the same bits on every
 * rank and for every run at this size: each rank owns one slice, receives
 * that slice from all ranks (MPI_Alltoall), adds them in rank order, and
 * the summed slices are gathered back (MPI_Allgather). MPI_Allreduce is not
 * used because its reduction order is the library's choice. */
/* Small buffers (batch-norm sums): every rank gathers all ranks' copies in
 * one collective and adds them in the same rank order (the same bits as
 * sum_ordered's slices). */
static int sum_small(void *v, size_t n, int dbl)
{
    const size_t es = dbl ? sizeof(double) : sizeof(float), P = (size_t)g_size;
    char *all = cmir__malloc(es * n * P);
    if (!all)
        return cmir__error(CMIR_ENOMEM, "MPI sum: out of memory");
    MPI_Datatype T = dbl ? MPI_DOUBLE : MPI_FLOAT;
    int rc = MPI_Allgather(v, (int)n, T, all, (int)n, T, MPI_COMM_WORLD) == MPI_SUCCESS
                 ? 0
                 : cmir__error(CMIR_EIO, "rank %d: MPI_Allgather failed", g_rank);
    for (size_t i = 0; !rc && i < n; i++) {
        double acc = 0.0;
        for (size_t r = 0; r < P; r++)
            acc += dbl ? ((double *)all)[r * n + i] : (double)((float *)all)[r * n + i];
        if (dbl)
            ((double *)v)[i] = acc;
        else
            ((float *)v)[i] = (float)acc;
    }
    cmir__free(all);
    return rc;
}

static int sum_ordered(void *v, size_t n, int dbl)
{
    if (n * (size_t)g_size <= SMALL_SUM)
        return sum_small(v, n, dbl);
    const size_t es = dbl ? sizeof(double) : sizeof(float), P = (size_t)g_size;
    const size_t seg_max = P << 22; /* slices of at most 4 Mi elements (int counts) */
    size_t cap = n < seg_max ? n : seg_max, chunk_cap = (cap + P - 1) / P;
    char *send = cmir__malloc(es * chunk_cap * P), *recv = cmir__malloc(es * chunk_cap * P);
    double *acc = cmir__malloc(sizeof(double) * (chunk_cap ? chunk_cap : 1));
    int rc = send && recv && acc ? 0 : cmir__error(CMIR_ENOMEM, "MPI sum: out of memory");
    MPI_Datatype T = dbl ? MPI_DOUBLE : MPI_FLOAT;
    for (size_t off = 0; !rc && off < n; off += cap) {
        size_t seg = n - off < cap ? n - off : cap, chunk = (seg + P - 1) / P;
        memset(send, 0, es * chunk * P);
        memcpy(send, (char *)v + es * off, es * seg);
        if (MPI_Alltoall(send, (int)chunk, T, recv, (int)chunk, T, MPI_COMM_WORLD) != MPI_SUCCESS) {
            rc = cmir__error(CMIR_EIO, "rank %d: MPI_Alltoall failed", g_rank);
            break;
        }
        for (size_t i = 0; i < chunk; i++)
            acc[i] = 0.0;
        for (size_t r = 0; r < P; r++)
            for (size_t i = 0; i < chunk; i++)
                acc[i] += dbl ? ((double *)recv)[r * chunk + i] : (double)((float *)recv)[r * chunk + i];
        for (size_t i = 0; i < chunk; i++) {
            if (dbl)
                ((double *)recv)[i] = acc[i];
            else
                ((float *)recv)[i] = (float)acc[i];
        }
        if (MPI_Allgather(recv, (int)chunk, T, send, (int)chunk, T, MPI_COMM_WORLD) != MPI_SUCCESS) {
            rc = cmir__error(CMIR_EIO, "rank %d: MPI_Allgather failed", g_rank);
            break;
        }
        memcpy((char *)v + es * off, send, es * seg);
    }
    cmir__free(send);
    cmir__free(recv);
    cmir__free(acc);
    return rc;
}

int cmir__train_dist_allreduce_sum_f32(float *v, size_t n) { return g_size > 1 ? sum_ordered(v, n, 0) : 0; }
int cmir__train_dist_allreduce_sum_f64(double *v, size_t n) { return g_size > 1 ? sum_ordered(v, n, 1) : 0; }

int cmir__train_dist_bcast(void *buf, size_t bytes, int root)
{
    for (size_t off = 0; g_size > 1 && off < bytes; off += (size_t)1 << 30) {
        size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        if (MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return cmir__error(CMIR_EIO, "rank %d: MPI_Bcast failed", g_rank);
    }
    return 0;
}

int cmir__train_dist_max_i64(int64_t *v, size_t n)
{
    if (g_size > 1 && MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return cmir__error(CMIR_EIO, "rank %d: MPI_Allreduce failed", g_rank);
    return 0;
}

#else /* one process */

int cmir_train_mpi_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* N copies of the whole run, all writing the same model, help nobody */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1)
            return cmir__error(CMIR_EINVAL, "started as %s ranks, but built without MPI (CMIR_WITH_MPI off)", v);
    }
    return 0;
}
void cmir_train_mpi_finalize(int failed) { (void)failed; }
int cmir__train_dist_rank(void) { return 0; }
int cmir__train_dist_size(void) { return 1; }
int cmir__train_dist_allreduce_sum_f32(float *v, size_t n)
{
    (void)v;
    (void)n;
    return 0;
}
int cmir__train_dist_allreduce_sum_f64(double *v, size_t n)
{
    (void)v;
    (void)n;
    return 0;
}
int cmir__train_dist_bcast(void *buf, size_t bytes, int root)
{
    (void)buf;
    (void)bytes;
    (void)root;
    return 0;
}
int cmir__train_dist_max_i64(int64_t *v, size_t n)
{
    (void)v;
    (void)n;
    return 0;
}

#endif

int cmir_train_mpi_rank(void) { return cmir__train_dist_rank(); }
int cmir_train_mpi_size(void) { return cmir__train_dist_size(); }
