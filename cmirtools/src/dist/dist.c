/* The process group of an MPI job (cmir/dist.h): MPI started only under a
 * launcher, collectives in chunks that fit MPI's int counts, rank-ordered
 * sums, error agreement. Without MPI (CMIR_WITH_MPI undefined) every call
 * is the single-process case. */
#include "cmir/dist.h"
#include "../base/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CMIR_WITH_MPI
#include <mpi.h>
#endif

#define CHUNK ((size_t)1 << 28) /* bytes per MPI call: int counts */
#define MSG 512                 /* bytes of a rank's message in cmir_dist_agree */

static int g_rank = 0, g_size = 1, g_started = 0;
static void ws_free(void); /* the sums' buffers, below */

int cmir_dist_built_with_mpi(void)
{
#ifdef CMIR_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

int cmir_dist_rank(void) { return g_rank; }
int cmir_dist_size(void) { return g_size; }
void cmir_dist_free(void *p) { cmir__free(p); }

#ifdef CMIR_WITH_MPI
/* Started by a launcher: Open MPI's mpirun, PMIx (srun --mpi=pmix, recent
 * mpirun), PMI-1/2 (srun --mpi=pmi2, MPICH's hydra). */
static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

static int mpi_fail(int e, const char *what)
{
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(e, s, &len);
    return cmir__error(CMIR_EIO, "rank %d: %s failed: %s", g_rank, what, s);
}
#define MPI_TRY(call, what)                                                                                       \
    do {                                                                                                          \
        int e_ = (call);                                                                                          \
        if (e_ != MPI_SUCCESS)                                                                                    \
            return mpi_fail(e_, what);                                                                            \
    } while (0)
#endif

int cmir_dist_init(int *argc, char ***argv)
{
#ifdef CMIR_WITH_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && launched()) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return cmir__error(CMIR_EIO, "MPI_Init_thread failed");
        g_started = 1;
        inited = 1;
    }
    if (inited) {
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    }
#else
    (void)argc, (void)argv;
    /* N copies of the whole program, all writing the same outputs, help nobody */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && strcmp(v, "1") != 0)
            return cmir__error(CMIR_EINVAL, "started as %s ranks, but built without MPI (CMIR_WITH_MPI off)", v);
    }
#endif
    return 0;
}

void cmir_dist_finalize(void)
{
#ifdef CMIR_WITH_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_started && !fin)
        MPI_Finalize();
#endif
    ws_free();
    g_started = 0;
    g_rank = 0;
    g_size = 1;
}


int cmir_dist_bcast(void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= g_size || (!buf && bytes))
        return cmir__error(CMIR_EINVAL, "cmir_dist_bcast: bad arguments");
#ifdef CMIR_WITH_MPI
    for (size_t at = 0; g_size > 1 && at < bytes; at += CHUNK) {
        size_t n = bytes - at < CHUNK ? bytes - at : CHUNK;
        MPI_TRY(MPI_Bcast((char *)buf + at, (int)n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
#endif
    return 0;
}

int cmir_dist_allgather(const void *send, size_t bytes, void *recv)
{
    if ((!send || !recv) && bytes)
        return cmir__error(CMIR_EINVAL, "cmir_dist_allgather: bad arguments");
    if (g_size == 1) {
        if (bytes)
            memmove(recv, send, bytes);
        return 0;
    }
#ifdef CMIR_WITH_MPI
    if (bytes > CHUNK)
        return cmir__error(CMIR_EINVAL, "cmir_dist_allgather: %zu bytes per rank (at most %zu)", bytes, CHUNK);
    MPI_TRY(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgather");
#endif
    return 0;
}

int cmir_dist_gatherv(const void *send, size_t bytes, void **recv, size_t *counts, int root)
{
    if (!recv || (!send && bytes) || root < 0 || root >= g_size || (g_rank == root && !counts))
        return cmir__error(CMIR_EINVAL, "cmir_dist_gatherv: bad arguments");
    *recv = NULL;
    if (bytes > CHUNK)
        return cmir__error(CMIR_EINVAL, "cmir_dist_gatherv: %zu bytes from one rank (at most %zu)", bytes, CHUNK);
    if (g_size == 1) {
        counts[0] = bytes;
        if (!(*recv = cmir__malloc(bytes ? bytes : 1)))
            return CMIR_ENOMEM;
        if (bytes)
            memcpy(*recv, send, bytes);
        return 0;
    }
#ifdef CMIR_WITH_MPI
    int mine = (int)bytes, *cnt = NULL, *disp = NULL;
    if (g_rank == root) {
        cnt = cmir__malloc(sizeof(int) * (size_t)g_size);
        disp = cmir__malloc(sizeof(int) * (size_t)g_size);
    }
    /* every rank takes part in the count gather even if root lacks memory */
    int e = MPI_Gather(&mine, 1, MPI_INT, cnt ? cnt : &mine, 1, MPI_INT, root, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) {
        cmir__free(cnt);
        cmir__free(disp);
        return mpi_fail(e, "MPI_Gather");
    }
    size_t total = 0;
    for (int r = 0; cnt && r < g_size; r++) {
        disp[r] = (int)total;
        counts[r] = (size_t)cnt[r];
        total += (size_t)cnt[r];
    }
    char *all = g_rank == root ? cmir__malloc(total ? total : 1) : NULL;
    /* the root says whether it can receive, so that no rank is left waiting */
    int ok = g_rank != root || (cnt && disp && all && total <= (size_t)0x7fffffff);
    if ((e = MPI_Bcast(&ok, 1, MPI_INT, root, MPI_COMM_WORLD)) != MPI_SUCCESS || !ok) {
        cmir__free(cnt);
        cmir__free(disp);
        cmir__free(all);
        return e != MPI_SUCCESS ? mpi_fail(e, "MPI_Bcast")
                                : cmir__error(CMIR_ENOMEM, "cmir_dist_gatherv: the root cannot hold %zu bytes", total);
    }
    e = MPI_Gatherv(send, mine, MPI_BYTE, all, cnt, disp, MPI_BYTE, root, MPI_COMM_WORLD);
    cmir__free(cnt);
    cmir__free(disp);
    if (e != MPI_SUCCESS) {
        cmir__free(all);
        return mpi_fail(e, "MPI_Gatherv");
    }
    *recv = all;
#endif
    return 0;
}

/* Rank-ordered sums (for gradients and batch-norm statistics): the buffer
 * goes in segments of at most 4 Mi elements per rank; each rank owns one
 * slice of a segment, receives that slice from every rank (MPI_Alltoall),
 * adds the copies in rank order in double, and the summed slices are
 * gathered back (MPI_Allgather). The order of the additions is fixed, so
 * the bits do not depend on MPI's reduction algorithm (MPI_Allreduce's),
 * and each rank moves about 2 x its buffer whatever the number of ranks. */
/* The sums' buffers, kept for the job (gradient sums come every step).
 * Every rank calls a sum with the same n, so every rank grows them at the
 * same call, and only then do the ranks agree on the allocation. */
static struct {
    char *send, *recv;
    double *acc;
    size_t bytes, n_acc; /* of send and recv each, of acc */
} g_ws;

static void ws_free(void)
{
    cmir__free(g_ws.send);
    cmir__free(g_ws.recv);
    cmir__free(g_ws.acc);
    memset(&g_ws, 0, sizeof g_ws);
}

#ifdef CMIR_WITH_MPI
static int ws_reserve(size_t bytes, size_t n_acc)
{
    if (bytes <= g_ws.bytes && n_acc <= g_ws.n_acc)
        return 0;
    bytes = bytes > g_ws.bytes ? bytes : g_ws.bytes;
    n_acc = n_acc > g_ws.n_acc ? n_acc : g_ws.n_acc;
    ws_free();
    g_ws.send = cmir__malloc(bytes);
    g_ws.recv = cmir__malloc(bytes);
    g_ws.acc = cmir__malloc(sizeof(double) * n_acc);
    int ok = g_ws.send && g_ws.recv && g_ws.acc;
    if (ok) {
        g_ws.bytes = bytes;
        g_ws.n_acc = n_acc;
    }
    int rc = cmir_dist_agree(ok ? 0 : CMIR_ENOMEM); /* no rank left waiting */
    if (rc)
        ws_free(); /* on every rank: the next sum grows them again everywhere */
    return rc;
}
#endif

static int sum_ordered(void *v, int64_t n, int dbl)
{
#ifdef CMIR_WITH_MPI
    const size_t es = dbl ? sizeof(double) : sizeof(float), P = (size_t)g_size;
    const size_t cap = (size_t)n < (P << 22) ? (size_t)n : (P << 22), chunk_cap = (cap + P - 1) / P;
    int rc = ws_reserve(es * chunk_cap * P, chunk_cap);
    char *send = g_ws.send, *recv = g_ws.recv;
    double *acc = g_ws.acc;
    MPI_Datatype T = dbl ? MPI_DOUBLE : MPI_FLOAT;
    for (size_t off = 0; !rc && off < (size_t)n; off += cap) {
        size_t seg = (size_t)n - off < cap ? (size_t)n - off : cap, chunk = (seg + P - 1) / P;
        memset(send, 0, es * chunk * P);
        memcpy(send, (char *)v + es * off, es * seg);
        int e = MPI_Alltoall(send, (int)chunk, T, recv, (int)chunk, T, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) {
            rc = mpi_fail(e, "MPI_Alltoall");
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
        if ((e = MPI_Allgather(recv, (int)chunk, T, send, (int)chunk, T, MPI_COMM_WORLD)) != MPI_SUCCESS) {
            rc = mpi_fail(e, "MPI_Allgather");
            break;
        }
        memcpy((char *)v + es * off, send, es * seg);
    }
    return rc;
#else
    (void)v, (void)n, (void)dbl;
    return 0;
#endif
}

int cmir_dist_sum_float(float *x, int64_t n)
{
    if ((!x && n) || n < 0)
        return cmir__error(CMIR_EINVAL, "cmir_dist_sum_float: bad arguments");
    return g_size == 1 || n == 0 ? 0 : sum_ordered(x, n, 0);
}

int cmir_dist_sum_double(double *x, int64_t n)
{
    if ((!x && n) || n < 0)
        return cmir__error(CMIR_EINVAL, "cmir_dist_sum_double: bad arguments");
    return g_size == 1 || n == 0 ? 0 : sum_ordered(x, n, 1);
}

int cmir_dist_max_i64(int64_t *x, int n)
{
    if ((!x && n) || n < 0)
        return cmir__error(CMIR_EINVAL, "cmir_dist_max_i64: bad arguments");
#ifdef CMIR_WITH_MPI
    if (g_size > 1 && n)
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
    return 0;
}

int cmir_dist_max_int(int *x, int n)
{
    if ((!x && n) || n < 0)
        return cmir__error(CMIR_EINVAL, "cmir_dist_max_int: bad arguments");
#ifdef CMIR_WITH_MPI
    if (g_size > 1 && n)
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
    return 0;
}

/* Waits until every rank has arrived, sleeping rather than spinning (Open
 * MPI's blocking calls poll at full speed: a rank that finishes first
 * would burn the CPU its neighbours on the same cores need). */
static int quiet_wait(void)
{
#ifdef CMIR_WITH_MPI
    MPI_Request req;
    MPI_TRY(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
    for (int done = 0, n = 0;; n++) {
        MPI_TRY(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done)
            break;
        if (n > 100) { /* about 100 polls at full speed, then 0.2 ms naps */
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
#endif
    return 0;
}

int cmir_dist_barrier(void) { return g_size > 1 ? quiet_wait() : 0; }

int cmir_dist_agree(int rc)
{
    if (g_size == 1)
        return rc;
    int e = quiet_wait();
    if (e)
        return e;
    /* the lowest failing rank, without allocating: max of size - rank */
    int f = rc ? g_size - g_rank : 0;
    e = cmir_dist_max_int(&f, 1);
    if (e || f == 0)
        return e;
    struct {
        int rc;
        char msg[MSG];
    } w;
    memset(&w, 0, sizeof w);
    f = g_size - f;
    if (f == g_rank) {
        w.rc = rc;
        snprintf(w.msg, sizeof w.msg, "%s", cmir_last_error());
    }
    if ((e = cmir_dist_bcast(&w, sizeof w, f)) != 0)
        return e;
    int r = -1, at = 0;
    if (sscanf(w.msg, "rank %d: %n", &r, &at) == 1 && at > 0) /* agreed before: passed on as it is */
        return cmir__error(w.rc, "%s", w.msg);
    return cmir__error(w.rc, "rank %d: %s", f, w.msg);
}

void cmir_dist_abort(int code, const char *msg)
{
    fprintf(stderr, "rank %d: %s\n", g_rank, msg ? msg : "aborted");
    fflush(stderr);
#ifdef CMIR_WITH_MPI
    if (g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
