/* Data-parallel batch norm without MPI: a batch cut into shares, each share
 * run by its own thread and execution context whose reducer
 * (cmir__exec_set_reduce) adds the shares' sums at a barrier, as the MPI
 * ranks of cmir_train do. The fused conv -> leaky ReLU -> batch norm ->
 * max-pool block, forward and backward, with and without the stored conv
 * output, must give each share the rows of the whole batch's output and
 * input gradient, its statistics and running statistics, and parameter
 * gradients whose sum over the shares is the whole batch's. */
#include "cmir/nn.h"
#include "base/internal.h" /* cmir__exec_set_reduce */
#include "nn/nn_export.h"
#include "test_util.h"

#include <pthread.h>
#include <stdint.h>

enum { N = 5, H = 8, W = 10, CI = 3, C = 20, K = 2, P = 3 };

typedef struct shared {
    pthread_barrier_t bar;
    double *slot[P];
    int calls[P];
} shared;

typedef struct share {
    shared *s;
    int id, n0, n; /* samples [n0, n0 + n) */
    int stored;    /* pass the conv's output a, or NULL (the conv runs twice) */
    const float *x, *Wt, *b, *gamma, *beta, *dy;
    float rm[C], rv[C], sm[C], si[C], dW[9 * CI * C], db[C], dg[C], dbt[C];
    float *y, *dx, *a, *xw;
    int32_t *arg;
    int rc;
} share;

/* The reducer: every share's v, added in share order, back into each v. */
static int add_shares(double *v, size_t n, void *user)
{
    share *me = user;
    shared *s = me->s;
    s->slot[me->id] = v;
    s->calls[me->id]++;
    pthread_barrier_wait(&s->bar);
    double *sum = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) {
        sum[i] = 0.0;
        for (int r = 0; r < P; r++)
            sum[i] += s->slot[r][i];
    }
    pthread_barrier_wait(&s->bar);
    memcpy(v, sum, sizeof(double) * n);
    free(sum);
    return 0;
}

static void *run_share(void *user)
{
    share *d = user;
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 1;
    cmir_exec *e = cmir_exec_new(ep);
    if (d->s)
        cmir__exec_set_reduce(e, add_shares, d);
    const int n = d->n;
    cmir_tensor tx = cmir_tensor_4d((float *)d->x + (size_t)d->n0 * H * W * CI, n, H, W, CI);
    cmir_tensor ta = cmir_tensor_4d(d->a, n, H, W, C);
    cmir_tensor ty = cmir_tensor_4d(d->y, n, H / K, W / K, C);
    cmir_tensor tdy = cmir_tensor_4d((float *)d->dy + (size_t)d->n0 * (H / K) * (W / K) * C, n, H / K, W / K, C);
    cmir_tensor tdx = cmir_tensor_4d(d->dx, n, H, W, CI);
    d->rc = cmir__conv3x3_bn_maxpool_forward(e, &tx, d->Wt, d->b, 0.1f, cmir_bn_default_params(), 1, K, d->gamma,
                                             d->beta, d->rm, d->rv, d->sm, d->si, d->stored ? &ta : NULL, &ty,
                                             d->arg, d->xw);
    if (!d->rc)
        d->rc = cmir__conv3x3_bn_maxpool_backward(e, 0.1f, K, d->stored ? &ta : NULL, d->gamma, d->sm, d->si, &tdy,
                                                  d->arg, d->xw, &tx, d->Wt, d->b, &tdx, d->dW, d->db, d->dg,
                                                  d->dbt);
    cmir_exec_free(e);
    return NULL;
}

static void share_alloc(share *d, int n0, int n)
{
    d->n0 = n0;
    d->n = n;
    d->y = malloc(sizeof(float) * (size_t)n * (H / K) * (W / K) * C);
    d->xw = malloc(sizeof(float) * (size_t)n * (H / K) * (W / K) * C);
    d->arg = malloc(sizeof(int32_t) * (size_t)n * (H / K) * (W / K) * C);
    d->dx = malloc(sizeof(float) * (size_t)n * H * W * CI);
    d->a = malloc(sizeof(float) * (size_t)n * H * W * C);
    for (int c = 0; c < C; c++) {
        d->rm[c] = 0.0f;
        d->rv[c] = 1.0f;
    }
}

static void share_free(share *d)
{
    free(d->y); free(d->xw); free(d->arg); free(d->dx); free(d->a);
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void split_batch(int stored)
{
    cmir_rng *r = cmir_rng_new(7);
    float *x = malloc(sizeof(float) * N * H * W * CI), *Wt = malloc(sizeof(float) * 9 * CI * C);
    float *b = malloc(sizeof(float) * C), *gamma = malloc(sizeof(float) * C), *beta = malloc(sizeof(float) * C);
    float *dy = malloc(sizeof(float) * N * (H / K) * (W / K) * C);
    for (int i = 0; i < N * H * W * CI; i++) x[i] = cmir_rng_normal(r);
    for (int i = 0; i < 9 * CI * C; i++) Wt[i] = 0.3f * cmir_rng_normal(r);
    for (int i = 0; i < C; i++) {
        b[i] = 0.1f * cmir_rng_normal(r);
        gamma[i] = 1.0f + 0.2f * cmir_rng_normal(r);
        beta[i] = 0.1f * cmir_rng_normal(r);
    }
    for (int i = 0; i < N * (H / K) * (W / K) * C; i++) dy[i] = cmir_rng_normal(r);
    share whole, part[P];
    memset(&whole, 0, sizeof whole);
    memset(part, 0, sizeof part);
    shared s;
    memset(&s, 0, sizeof s);
    pthread_barrier_init(&s.bar, NULL, P);
    const int at[P + 1] = {0, 2, 4, 5}; /* shares of 2, 2, 1 samples */
    share *all[P + 1] = {&whole, &part[0], &part[1], &part[2]};
    for (int i = 0; i <= P; i++) {
        share *d = all[i];
        d->x = x; d->Wt = Wt; d->b = b; d->gamma = gamma; d->beta = beta; d->dy = dy;
        d->stored = stored;
        d->id = i - 1;
        d->s = i ? &s : NULL;
        share_alloc(d, i ? at[i - 1] : 0, i ? at[i] - at[i - 1] : N);
    }
    run_share(&whole);
    REQUIRE(whole.rc == 0);
    pthread_t th[P];
    for (int i = 0; i < P; i++)
        pthread_create(&th[i], NULL, run_share, &part[i]);
    for (int i = 0; i < P; i++)
        pthread_join(th[i], NULL);
    const size_t py = (size_t)(H / K) * (W / K) * C, px = (size_t)H * W * CI;
    double ey = 0, ex = 0, es = 0, eg = 0;
    float dW[9 * CI * C] = {0}, db[C] = {0}, dg[C] = {0}, dbt[C] = {0};
    for (int i = 0; i < P; i++) {
        share *d = &part[i];
        ASSERT_EQ_INT(d->rc, 0);
        ASSERT_EQ_INT(s.calls[i], 2); /* one sum forward, one backward */
        ey = fmax(ey, maxdiff(d->y, whole.y + d->n0 * py, d->n * py));
        ex = fmax(ex, maxdiff(d->dx, whole.dx + d->n0 * px, d->n * px));
        es = fmax(es, fmax(maxdiff(d->sm, whole.sm, C), maxdiff(d->si, whole.si, C)));
        es = fmax(es, fmax(maxdiff(d->rm, whole.rm, C), maxdiff(d->rv, whole.rv, C)));
        for (int j = 0; j < 9 * CI * C; j++) dW[j] += d->dW[j];
        for (int c = 0; c < C; c++) {
            db[c] += d->db[c];
            dg[c] += d->dg[c];
            dbt[c] += d->dbt[c];
        }
    }
    eg = fmax(maxdiff(dW, whole.dW, 9 * CI * C), maxdiff(db, whole.db, C));
    eg = fmax(eg, fmax(maxdiff(dg, whole.dg, C), maxdiff(dbt, whole.dbt, C)));
    printf("  shares 2+2+1 of %d (%s): max |diff| y %.1e, dx %.1e, statistics %.1e, parameter gradients %.1e\n", N,
           stored ? "conv output stored" : "conv run twice", ey, ex, es, eg);
    ASSERT_LE(ey, 1e-5);
    ASSERT_LE(ex, 1e-5);
    ASSERT_LE(es, 1e-5);
    ASSERT_LE(eg, 1e-4);
    for (int i = 0; i <= P; i++)
        share_free(all[i]);
    pthread_barrier_destroy(&s.bar);
    free(x); free(Wt); free(b); free(gamma); free(beta); free(dy);
    cmir_rng_free(r);
}

static void test_split_batch_stored(void) { split_batch(1); }
static void test_split_batch_twice(void) { split_batch(0); }

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    RUN(test_split_batch_stored);
    RUN(test_split_batch_twice);
    TEST_MAIN_END();
}
