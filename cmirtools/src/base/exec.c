/* Execution context (thread count, reusable scratch), the fork-join
 * parallel loop on pthreads, and the OpenBLAS GEMM wrapper. */
#include "internal.h"

#include <cblas.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

struct cmir_exec {
    int threads;
    void *scratch;
    size_t scratch_size;
    cmir__exec_reduce_fn reduce; /* data-parallel training: sums over the processes */
    void *reduce_user;
};

cmir_exec_params cmir_exec_default_params(void)
{
    cmir_exec_params p = {0};
    return p;
}

int cmir_exec_check_params(cmir_exec_params p)
{
    if (p.threads < 0 || p.threads > 1024)
        return cmir__error(CMIR_EINVAL, "cmir_exec_params.threads: must be in [0, 1024], got %d", p.threads);
    return 0;
}

cmir_exec *cmir_exec_new(cmir_exec_params p)
{
    cmir_exec *ex;
    if (cmir_exec_check_params(p))
        return NULL;
    ex = cmir__calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    if (p.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p.threads = n > 0 ? (int)n : 1;
    }
    ex->threads = p.threads;
    return ex;
}

void cmir_exec_free(cmir_exec *ex)
{
    if (!ex)
        return;
    cmir__free_aligned(ex->scratch);
    cmir__free(ex);
}

int cmir_exec_threads(const cmir_exec *ex) { return ex ? ex->threads : 1; }

void *cmir__exec_scratch(cmir_exec *ex, size_t bytes)
{
    if (bytes <= ex->scratch_size)
        return ex->scratch;
    void *p = cmir__malloc_aligned(bytes);
    if (!p)
        return NULL;
    cmir__free_aligned(ex->scratch);
    ex->scratch = p;
    ex->scratch_size = bytes;
    return p;
}

void cmir__exec_set_reduce(cmir_exec *ex, cmir__exec_reduce_fn fn, void *user)
{
    ex->reduce = fn;
    ex->reduce_user = user;
}

int cmir__exec_reduce(cmir_exec *ex, double *v, size_t n)
{
    return ex && ex->reduce ? ex->reduce(v, n, ex->reduce_user) : 0;
}

int cmir__exec_has_reduce(const cmir_exec *ex) { return ex && ex->reduce; }

int cmir__exec_reduce_sums(cmir_exec *ex, double *sum, size_t n, size_t *count)
{
    if (!cmir__exec_has_reduce(ex))
        return 0;
    double *v = cmir__malloc(sizeof(double) * (n + 1));
    if (!v)
        return CMIR_ENOMEM;
    memcpy(v, sum, sizeof(double) * n);
    v[n] = (double)*count;
    int rc = cmir__exec_reduce(ex, v, n + 1);
    if (!rc) {
        memcpy(sum, v, sizeof(double) * n);
        *count = (size_t)v[n];
    }
    cmir__free(v);
    return rc;
}

void cmir__split(size_t total, int n, int i, size_t *lo, size_t *hi)
{
    size_t base = total / (size_t)n, rem = total % (size_t)n;
    size_t ii = (size_t)i;
    *lo = ii * base + (ii < rem ? ii : rem);
    *hi = *lo + base + (ii < rem ? 1 : 0);
}

typedef struct task {
    cmir__task_fn fn;
    void *user;
    int i, n, rc;
} task;

static void *task_main(void *arg)
{
    task *t = arg;
    t->rc = t->fn(t->i, t->n, t->user);
    return NULL;
}

int cmir__parallel(int n, cmir__task_fn fn, void *user)
{
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    task tk[MAXT];
    int started[MAXT] = {0};
    int rc = 0;
    if (n > MAXT)
        n = MAXT;
    if (n <= 1)
        return fn(0, 1, user);
    /* Inside our own threads OpenBLAS runs single-threaded: set it once,
     * before the workers start, so no worker races on the setting. */
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
    for (int i = 0; i < n; i++) {
        tk[i].fn = fn;
        tk[i].user = user;
        tk[i].i = i;
        tk[i].n = n;
        tk[i].rc = 0;
    }
    for (int i = 1; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, task_main, &tk[i]) == 0;
    /* Parts whose thread could not start run here, so the result never
     * depends on whether a thread was available. */
    tk[0].rc = fn(0, n, user);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            tk[i].rc = fn(i, n, user);
    }
    for (int i = 0; i < n && !rc; i++)
        rc = tk[i].rc;
    return rc;
}

typedef struct gemm_job {
    int transa, transb, m, n, k, lda, ldb, ldc, by_rows;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

/* Part i of n: a block of C's rows (or columns) through one single-threaded
 * OpenBLAS call. */
static int gemm_task(int i, int n, void *user)
{
    const gemm_job *g = user;
    size_t lo, hi;
    cmir__split((size_t)(g->by_rows ? g->m : g->n), n, i, &lo, &hi);
    if (hi == lo)
        return 0;
    const float *a = g->a, *b = g->b;
    float *c = g->c;
    int m = g->m, nn = g->n;
    if (g->by_rows) { /* rows lo..hi of op(A) and of C */
        a += g->transa ? lo : lo * (size_t)g->lda;
        c += lo * (size_t)g->ldc;
        m = (int)(hi - lo);
    } else { /* columns lo..hi of op(B) and of C */
        b += g->transb ? lo * (size_t)g->ldb : lo;
        c += lo;
        nn = (int)(hi - lo);
    }
    cblas_sgemm(CblasRowMajor, g->transa ? CblasTrans : CblasNoTrans,
                g->transb ? CblasTrans : CblasNoTrans, m, nn, g->k, g->alpha, a, g->lda, b,
                g->ldb, g->beta, c, g->ldc);
    return 0;
}

void cmir__sgemm(int threads, int transa, int transb, int m, int n, int k,
                 float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    /* OpenBLAS always runs single-threaded: its own worker threads spin
     * (sched_yield) for a while after each threaded call and took a core
     * from the conv threads that ran next (the float32 training step ran
     * up to 1.9x slower). Parallel calls split C among our threads. */
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
    gemm_job g = {transa, transb, m, n, k, lda, ldb, ldc, m >= n, alpha, beta, a, b, c};
    int parts = g.by_rows ? m / 32 : n / 32; /* at least 32 rows or columns a part */
    if (threads > parts)
        threads = parts;
    if ((double)m * n * k < (double)(1 << 24)) /* a thread costs tens of microseconds */
        threads = 1;
    if (threads <= 1) {
        gemm_task(0, 1, &g);
        return;
    }
    cmir__parallel(threads, gemm_task, &g);
}
