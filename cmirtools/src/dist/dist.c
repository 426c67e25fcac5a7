/* The process group of an MPI job (cmir/dist.h): MPI started only under a
 * launcher, collectives in chunks that fit MPI's int counts, rank-ordered
 * sums, error agreement. Without MPI (CMIR_WITH_MPI undefined) every call
 * is the single-process case. */
#include "cmir/dist.h"
#include "../base/internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CMIR_WITH_MPI
#include <mpi.h>
#endif

#define CHUNK ((size_t)1 << 28) /* bytes per MPI call: int counts */
#define MSG 512                 /* bytes of a rank's message in cmir_dist_agree */

static int g_rank = 0, g_size = 1, g_started = 0;
static void ws_free(void); /* the sums' buffers, below */
static void watch_free(void); /* cmir_dist_watch's tables, at the end */
/* Set once this rank ends on purpose (an agreed failure, finalize, abort,
 * cmir_dist_ending): its SIGTERM then reports nothing, and the other ranks
 * of its host read in shared memory that its end is no death */
static volatile sig_atomic_t g_ending;
static void mark_ending(void);

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
    mark_ending();
    watch_free(); /* before MPI_Finalize: it frees a window */
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
    mark_ending(); /* every rank now ends with this failure */
    int r = -1, at = 0;
    if (sscanf(w.msg, "rank %d: %n", &r, &at) == 1 && at > 0) /* agreed before: passed on as it is */
        return cmir__error(w.rc, "%s", w.msg);
    return cmir__error(w.rc, "rank %d: %s", f, w.msg);
}

void cmir_dist_abort(int code, const char *msg)
{
    mark_ending();
    fprintf(stderr, "rank %d: %s\n", g_rank, msg ? msg : "aborted");
    fflush(stderr);
#ifdef CMIR_WITH_MPI
    if (g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

/* ---- The dead-rank line (cmir_dist_watch) ------------------------------
 * Everything the SIGTERM handler reads is gathered before: each rank's
 * process id, host and work. The handler uses only async-signal-safe
 * calls (open, read, write, sigaction, raise) and formats by hand. */
#define WHAT 256
#define HOST 64
static struct {
    char prog[64];
    int n;
    int64_t *pid;
    char (*host)[HOST];
    char (*what)[WHAT];
    volatile int **ends; /* per world rank of this host: its ending flag in
                            shared memory (NULL elsewhere) */
    volatile int *mine;
#ifdef CMIR_WITH_MPI
    MPI_Win win;
    MPI_Comm node;
    int have_win, have_node;
#endif
} g_watch;

static void mark_ending(void)
{
    g_ending = 1;
    if (g_watch.mine)
        *g_watch.mine = 1;
}

void cmir_dist_ending(void) { mark_ending(); }

/* The ranks of this host share one int each (MPI-3 shared memory): set
 * when the rank ends on purpose. */
static int share_flags(void)
{
#ifdef CMIR_WITH_MPI
    int e = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &g_watch.node);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, "MPI_Comm_split_type");
    g_watch.have_node = 1;
    int ln = 0, *world = NULL;
    volatile int *base = NULL;
    MPI_Comm_size(g_watch.node, &ln);
    e = MPI_Win_allocate_shared((MPI_Aint)sizeof(int), (int)sizeof(int), MPI_INFO_NULL, g_watch.node, (void *)&base,
                                &g_watch.win);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, "MPI_Win_allocate_shared");
    g_watch.have_win = 1;
    *base = 0;
    g_watch.mine = base;
    if (!(world = cmir__malloc(sizeof(int) * (size_t)ln)))
        return CMIR_ENOMEM;
    if ((e = MPI_Allgather(&g_rank, 1, MPI_INT, world, 1, MPI_INT, g_watch.node)) != MPI_SUCCESS) {
        cmir__free(world);
        return mpi_fail(e, "MPI_Allgather");
    }
    for (int i = 0; i < ln; i++) {
        MPI_Aint sz = 0;
        int du = 0;
        void *p = NULL;
        if ((e = MPI_Win_shared_query(g_watch.win, i, &sz, &du, &p)) != MPI_SUCCESS) {
            cmir__free(world);
            return mpi_fail(e, "MPI_Win_shared_query");
        }
        g_watch.ends[world[i]] = p;
    }
    cmir__free(world);
    return quiet_wait(); /* every flag zeroed before anyone reads one */
#else
    return 0;
#endif
}

static size_t put(char *b, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        b[at++] = *s++;
    b[at] = '\0';
    return at;
}

static size_t put_int(char *b, size_t at, size_t cap, int64_t v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0 && n < 23);
    while (n > 0 && at + 1 < cap)
        b[at++] = d[--n];
    b[at] = '\0';
    return at;
}

/* Whether process pid of this host has ended (gone, or a zombie). */
static int ended(int64_t pid)
{
    char path[48];
    put_int(path, put(path, 0, sizeof path, "/proc/"), sizeof path, pid);
    put(path, strlen(path), sizeof path, "/stat");
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 1;
    char st[256];
    ssize_t n = read(fd, st, sizeof st - 1);
    close(fd);
    if (n <= 0)
        return 1;
    st[n] = '\0';
    const char *p = strrchr(st, ')'); /* "pid (comm) S ..." */
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void on_term(int sig)
{
    if (!g_watch.ends) /* not watching (yet, or any more) */
        goto end;
    /* a rank of this host that ended without saying it would */
    int dead = -1;
    for (int r = 0; !g_ending && r < g_watch.n && dead < 0; r++)
        if (r != g_rank && g_watch.ends[r] && !*g_watch.ends[r] && ended(g_watch.pid[r]))
            dead = r;
    int first_alive = g_rank; /* the lowest living rank of this host speaks */
    for (int r = 0; dead >= 0 && r < g_rank; r++)
        if (g_watch.ends[r] && !*g_watch.ends[r] && !ended(g_watch.pid[r])) {
            first_alive = r;
            break;
        }
    if (dead >= 0 && first_alive == g_rank) {
        char b[1024];
        size_t at = put(b, 0, sizeof b, g_watch.prog);
        at = put(b, at, sizeof b, ": rank ");
        at = put_int(b, at, sizeof b, dead);
        at = put(b, at, sizeof b, " (pid ");
        at = put_int(b, at, sizeof b, g_watch.pid[dead]);
        at = put(b, at, sizeof b, " on ");
        at = put(b, at, sizeof b, g_watch.host[dead]);
        at = put(b, at, sizeof b, ") ended while ");
        at = put(b, at, sizeof b, g_watch.what[dead][0] ? g_watch.what[dead] : "working");
        at = put(b, at, sizeof b, "; the job stopped, and nothing it wrote was put in place\n");
        ssize_t w = write(2, b, at);
        (void)w;
    }
    /* stay a moment, so that the other ranks' handlers (the launcher
     * signals them all at once) still find this one alive, not dead */
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
end:;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    raise(sig);
}

int cmir_dist_watch(const char *prog)
{
    if (g_size == 1 || g_watch.n)
        return 0;
    struct {
        int64_t pid;
        char host[HOST];
    } mine, *all = cmir__calloc((size_t)g_size, sizeof mine);
    g_watch.pid = cmir__calloc((size_t)g_size, sizeof *g_watch.pid);
    g_watch.host = cmir__calloc((size_t)g_size, sizeof *g_watch.host);
    g_watch.what = cmir__calloc((size_t)g_size, sizeof *g_watch.what);
    g_watch.ends = cmir__calloc((size_t)g_size, sizeof *g_watch.ends);
    int rc = cmir_dist_agree(all && g_watch.pid && g_watch.host && g_watch.what && g_watch.ends ? 0 : CMIR_ENOMEM);
    memset(&mine, 0, sizeof mine);
    mine.pid = (int64_t)getpid();
    if (gethostname(mine.host, sizeof mine.host - 1) != 0)
        snprintf(mine.host, sizeof mine.host, "?");
    if (!rc)
        rc = cmir_dist_allgather(&mine, sizeof mine, all);
    for (int r = 0; !rc && r < g_size; r++) {
        g_watch.pid[r] = all[r].pid;
        memcpy(g_watch.host[r], all[r].host, HOST);
    }
    cmir__free(all);
    if (!rc)
        rc = cmir_dist_agree(share_flags());
    if (rc) {
        g_watch.n = g_size; /* so that watch_free releases what there is */
        watch_free();
        return rc;
    }
    snprintf(g_watch.prog, sizeof g_watch.prog, "%s", prog ? prog : "cmir");
    g_watch.n = g_size;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

int cmir_dist_doing(const char *what)
{
    if (!g_watch.n)
        return 0;
    char mine[WHAT];
    memset(mine, 0, sizeof mine);
    snprintf(mine, sizeof mine, "%s", what ? what : "");
    /* gathered aside, then copied, so that the handler never reads a half-written table */
    char (*all)[WHAT] = cmir__malloc(sizeof *all * (size_t)g_watch.n);
    int rc = cmir_dist_agree(all ? 0 : CMIR_ENOMEM);
    if (!rc)
        rc = cmir_dist_allgather(mine, sizeof mine, all);
    for (int r = 0; !rc && r < g_watch.n; r++)
        memcpy(g_watch.what[r], all[r], WHAT);
    cmir__free(all);
    return rc;
}

/* At cmir_dist_finalize (collective there: every rank frees the window). */
static void watch_free(void)
{
    if (!g_watch.n)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
#ifdef CMIR_WITH_MPI
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_watch.have_win && !fin)
        MPI_Win_free(&g_watch.win);
    if (g_watch.have_node && !fin)
        MPI_Comm_free(&g_watch.node);
#endif
    cmir__free(g_watch.pid);
    cmir__free(g_watch.host);
    cmir__free(g_watch.what);
    cmir__free((void *)g_watch.ends);
    memset(&g_watch, 0, sizeof g_watch);
}
