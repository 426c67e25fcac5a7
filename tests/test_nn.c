/* Tests of the nn layers: finite-difference gradient checks of every layer
 * (dense, conv 3x3, max-pool, leaky ReLU, batch norm, dropout), and the
 * GEMM/conv paths against naive loops on odd shapes, for 1 to 3 threads. */
#include <string.h>
#include <math.h>
#include "cmir/nn.h"
#include "nn/nn_internal.h" /* cmir__fused_generic: the portable loops of fused.c */
#include "test_util.h"

#include <stdint.h>

/* Central differences in float32 with h = 1e-2 on inputs of order 1: the
 * truncation error is O(h^2) ~ 1e-4 relative, and rounding of the float
 * forward pass adds ~ 1e-7 * |L| / h ~ 1e-5 |L|. A relative tolerance of
 * 2e-2 (with an absolute floor for near-zero gradients) is well above
 * both, and far below the O(1) errors a wrong gradient gives. */
#define FD_H 1e-2f
#define FD_TOL 2e-2

static cmir_exec *ex;
static cmir_rng *rng;

static float *randv(size_t n, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = (2.0f * cmir_rng_uniform(rng) - 1.0f) * scale;
    return v;
}

/* A forward function returns L = sum(y .* R) for a fixed random R. */
typedef double (*loss_fn)(void *ctx);

/* Checks `nprobe` random entries of param[] against analytic[]. Returns
 * the largest relative error seen. */
static double fd_check(const char *what, float *param, const float *analytic, size_t n,
                       loss_fn f, void *ctx, int nprobe)
{
    double worst = 0.0;
    for (int p = 0; p < nprobe && n; p++) {
        size_t i = nprobe >= (int)n ? (size_t)p : (size_t)cmir_rng_below(rng, n);
        if (i >= n)
            break;
        float keep = param[i];
        param[i] = keep + FD_H;
        double lp = f(ctx);
        param[i] = keep - FD_H;
        double lm = f(ctx);
        param[i] = keep;
        double num = (lp - lm) / (2.0 * FD_H);
        double err = fabs(num - analytic[i]) / fmax(1e-2, fabs(num) + fabs(analytic[i]));
        if (err > worst)
            worst = err;
    }
    printf("  grad %-28s max rel err %.2e\n", what, worst);
    ASSERT_LE(worst, FD_TOL);
    return worst;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---------------- dense ---------------- */
typedef struct {
    cmir_tensor x, y;
    float *W, *b, *R;
} dense_ctx;

static double dense_loss(void *c)
{
    dense_ctx *d = c;
    cmir_dense_forward(ex, &d->x, d->W, d->b, &d->y);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_dense_grad(void)
{
    const int B = 5, In = 7, Out = 3;
    dense_ctx d;
    d.x = cmir_tensor_2d(randv(B * In, 1), B, In);
    d.y = cmir_tensor_2d(randv(B * Out, 1), B, Out);
    d.W = randv(In * Out, 1);
    d.b = randv(Out, 1);
    d.R = randv(B * Out, 1);
    float *dW = randv(In * Out, 1), *db = randv(Out, 1);
    cmir_tensor dx = cmir_tensor_2d(randv(B * In, 1), B, In);
    cmir_tensor dy = cmir_tensor_2d(d.R, B, Out);
    ASSERT_OK(cmir_dense_forward(ex, &d.x, d.W, d.b, &d.y));
    ASSERT_OK(cmir_dense_backward(ex, &d.x, d.W, &dy, &dx, dW, db));
    fd_check("dense dx", d.x.data, dx.data, B * In, dense_loss, &d, 35);
    fd_check("dense dW", d.W, dW, In * Out, dense_loss, &d, 21);
    fd_check("dense db", d.b, db, Out, dense_loss, &d, 3);
    /* Against a naive loop (recompute: the probes left y at a perturbed W). */
    ASSERT_OK(cmir_dense_forward(ex, &d.x, d.W, d.b, &d.y));
    for (int i = 0; i < B; i++)
        for (int o = 0; o < Out; o++) {
            double s = d.b[o];
            for (int k = 0; k < In; k++)
                s += (double)d.x.data[i * In + k] * d.W[k * Out + o];
            ASSERT_NEAR(d.y.data[i * Out + o], s, 1e-5);
        }
    free(d.x.data); free(d.y.data); free(d.W); free(d.b); free(d.R); free(dW); free(db);
    free(dx.data);
}

/* ---------------- conv ---------------- */
static void naive_conv(const float *x, const float *W, const float *b, float *y, int N, int H,
                       int Wd, int Ci, int Co)
{
    for (int n = 0; n < N; n++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < Wd; j++)
                for (int o = 0; o < Co; o++) {
                    double s = b ? b[o] : 0.0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int yy = i + ky - 1, xx = j + kx - 1;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= Wd)
                                continue;
                            for (int c = 0; c < Ci; c++)
                                s += (double)x[(((size_t)n * H + yy) * Wd + xx) * Ci + c] *
                                     W[((ky * 3 + kx) * Ci + c) * Co + o];
                        }
                    y[(((size_t)n * H + i) * Wd + j) * Co + o] = (float)s;
                }
}

/* Naive backward: dW, db, dx by the definition (scatter form). */
static void naive_conv_bwd(const float *x, const float *W, const float *dy, float *dx,
                           float *dW, float *db, int N, int H, int Wd, int Ci, int Co)
{
    memset(dx, 0, sizeof(float) * N * H * Wd * Ci);
    memset(dW, 0, sizeof(float) * 9 * Ci * Co);
    memset(db, 0, sizeof(float) * Co);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < Wd; j++)
                for (int o = 0; o < Co; o++) {
                    float g = dy[(((size_t)n * H + i) * Wd + j) * Co + o];
                    db[o] += g;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int yy = i + ky - 1, xx = j + kx - 1;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= Wd)
                                continue;
                            for (int c = 0; c < Ci; c++) {
                                size_t xi = (((size_t)n * H + yy) * Wd + xx) * Ci + c;
                                size_t wi = ((ky * 3 + kx) * Ci + c) * Co + o;
                                dW[wi] += x[xi] * g;
                                dx[xi] += W[wi] * g;
                            }
                        }
                }
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void conv_vs_naive(int N, int H, int Wd, int Ci, int Co, int threads)
{
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = threads;
    cmir_exec *e = cmir_exec_new(ep);
    size_t nx = (size_t)N * H * Wd * Ci, ny = (size_t)N * H * Wd * Co, nw = 9 * Ci * Co;
    float *x = randv(nx, 1), *W = randv(nw, 1), *b = randv(Co, 1), *dy = randv(ny, 1);
    float *y = randv(ny, 1), *yr = randv(ny, 1);
    float *dx = randv(nx, 1), *dxr = randv(nx, 1), *dW = randv(nw, 1), *dWr = randv(nw, 1);
    float *db = randv(Co, 1), *dbr = randv(Co, 1);
    cmir_tensor tx = cmir_tensor_4d(x, N, H, Wd, Ci), ty = cmir_tensor_4d(y, N, H, Wd, Co);
    cmir_tensor tdy = cmir_tensor_4d(dy, N, H, Wd, Co), tdx = cmir_tensor_4d(dx, N, H, Wd, Ci);
    ASSERT_OK(cmir_conv3x3_forward(e, &tx, W, b, &ty));
    naive_conv(x, W, b, yr, N, H, Wd, Ci, Co);
    ASSERT_OK(cmir_conv3x3_backward(e, &tx, W, &tdy, &tdx, dW, db));
    naive_conv_bwd(x, W, dy, dxr, dWr, dbr, N, H, Wd, Ci, Co);
    double ey = max_abs_diff(y, yr, ny), edx = max_abs_diff(dx, dxr, nx);
    double edw = max_abs_diff(dW, dWr, nw), edb = max_abs_diff(db, dbr, Co);
    printf("  conv N%d H%d W%d Ci%d Co%d T%d: |dy| %.1e |dx| %.1e |dW| %.1e |db| %.1e\n", N, H,
           Wd, Ci, Co, threads, ey, edx, edw, edb);
    /* float32 sums of up to 9*Ci (forward) or N*H*W (dW) products of
     * values in [-1,1]: tolerances scale with the sum length. */
    ASSERT_LE(ey, 1e-5 * 9 * Ci);
    ASSERT_LE(edx, 1e-5 * 9 * Co);
    ASSERT_LE(edw, 1e-6 * N * H * Wd + 1e-5);
    ASSERT_LE(edb, 1e-6 * N * H * Wd + 1e-5);
    /* dx NULL gives the same weight gradient. */
    float *dW2 = randv(nw, 1);
    ASSERT_OK(cmir_conv3x3_backward(e, &tx, W, &tdy, NULL, dW2, NULL));
    ASSERT_LE(max_abs_diff(dW2, dW, nw), 0.0);
    free(x); free(W); free(b); free(dy); free(y); free(yr); free(dx); free(dxr); free(dW);
    free(dWr); free(db); free(dbr); free(dW2);
    cmir_exec_free(e);
}

static void test_conv_vs_naive(void)
{
    conv_vs_naive(3, 5, 7, 3, 5, 1);
    conv_vs_naive(3, 5, 7, 3, 5, 2);
    conv_vs_naive(5, 9, 4, 1, 2, 3);   /* Cin = 1 path, odd batch over 3 threads */
    conv_vs_naive(2, 1, 1, 4, 3, 2);   /* 1x1 image: only the centre tap */
    conv_vs_naive(1, 2, 3, 7, 1, 2);   /* more threads than samples */
    conv_vs_naive(40, 12, 12, 6, 8, 2); /* several samples per GEMM group */
    conv_vs_naive(2, 9, 14, 20, 80, 2);  /* a 64-channel block plus a masked block */
    conv_vs_naive(3, 6, 13, 33, 40, 2);  /* 3-vector tiles and dW tail tiles */
    conv_vs_naive(2, 256, 256, 1, 64, 2); /* 32 MiB output: the streaming-store path */
}

typedef struct {
    cmir_tensor x, y;
    float *W, *b, *R;
} conv_ctx;

static double conv_loss(void *c)
{
    conv_ctx *d = c;
    cmir_conv3x3_forward(ex, &d->x, d->W, d->b, &d->y);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_conv_grad(void)
{
    const int N = 2, H = 5, W = 4, Ci = 3, Co = 4;
    conv_ctx d;
    size_t nx = N * H * W * Ci, ny = N * H * W * Co;
    d.x = cmir_tensor_4d(randv(nx, 1), N, H, W, Ci);
    d.y = cmir_tensor_4d(randv(ny, 1), N, H, W, Co);
    d.W = randv(9 * Ci * Co, 1);
    d.b = randv(Co, 1);
    d.R = randv(ny, 1);
    float *dW = randv(9 * Ci * Co, 1), *db = randv(Co, 1);
    cmir_tensor dx = cmir_tensor_4d(randv(nx, 1), N, H, W, Ci), dy = cmir_tensor_4d(d.R, N, H, W, Co);
    ASSERT_OK(cmir_conv3x3_backward(ex, &d.x, d.W, &dy, &dx, dW, db));
    fd_check("conv3x3 dx", d.x.data, dx.data, nx, conv_loss, &d, 40);
    fd_check("conv3x3 dW", d.W, dW, 9 * Ci * Co, conv_loss, &d, 40);
    fd_check("conv3x3 db", d.b, db, Co, conv_loss, &d, Co);
    free(d.x.data); free(d.y.data); free(d.W); free(d.b); free(d.R); free(dW); free(db);
    free(dx.data);
}

/* ---------------- max-pool ---------------- */
typedef struct {
    cmir_tensor x, y;
    int32_t *arg;
    float *R;
    int k;
} pool_ctx;

static double pool_loss(void *c)
{
    pool_ctx *d = c;
    cmir_maxpool_forward(ex, d->k, &d->x, &d->y, d->arg);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_pool(int k)
{
    const int N = 3, H = 4 * k + (k > 1 ? 1 : 0), W = 2 * k, C = 3; /* H not a multiple */
    int Ho = H / k, Wo = W / k;
    size_t nx = (size_t)N * H * W * C, ny = (size_t)N * Ho * Wo * C;
    pool_ctx d;
    /* Distinct values 0.05 apart: a step of h = 0.01 never changes the
     * winner, so finite differences see a smooth function. */
    float *x = malloc(sizeof(float) * nx);
    for (size_t i = 0; i < nx; i++)
        x[i] = 0.05f * (float)i;
    for (size_t i = nx - 1; i > 0; i--) { /* shuffle */
        size_t j = (size_t)cmir_rng_below(rng, i + 1);
        float t = x[i]; x[i] = x[j]; x[j] = t;
    }
    d.x = cmir_tensor_4d(x, N, H, W, C);
    d.y = cmir_tensor_4d(randv(ny, 1), N, Ho, Wo, C);
    d.arg = malloc(sizeof(int32_t) * ny);
    d.R = randv(ny, 1);
    d.k = k;
    ASSERT_OK(cmir_maxpool_forward(ex, k, &d.x, &d.y, d.arg));
    /* Naive maximum. */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++)
                for (int c = 0; c < C; c++) {
                    float m = -1e30f;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                            m = fmaxf(m, x[(((size_t)n * H + i * k + a) * W + j * k + b) * C + c]);
                    ASSERT_NEAR(d.y.data[(((size_t)n * Ho + i) * Wo + j) * C + c], m, 0);
                }
    cmir_tensor dy = cmir_tensor_4d(d.R, N, Ho, Wo, C);
    cmir_tensor dx = cmir_tensor_4d(randv(nx, 1), N, H, W, C);
    ASSERT_OK(cmir_maxpool_backward(ex, &dy, d.arg, &dx));
    char name[32];
    snprintf(name, sizeof name, "maxpool k=%d dx", k);
    fd_check(name, d.x.data, dx.data, nx, pool_loss, &d, 60);
    /* Ties: the first maximum of a window (row-major) wins. */
    for (size_t i = 0; i < nx; i++)
        x[i] = (i / C) % 2 ? 1.0f : 2.0f; /* every other pixel; 2 at a window's first */
    ASSERT_OK(cmir_maxpool_forward(ex, k, &d.x, &d.y, d.arg));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++)
                for (int c = 0; c < C; c++) {
                    size_t o = (((size_t)n * Ho + i) * Wo + j) * C + c;
                    ASSERT_EQ_INT(d.arg[o], (int)((((size_t)i * k) * W + (size_t)j * k) * C + c));
                }
    /* Wrong output shape is refused. */
    cmir_tensor bad = cmir_tensor_4d(d.y.data, N, Ho + 1, Wo, C);
    ASSERT_EQ_INT(cmir_maxpool_forward(ex, k, &d.x, &bad, d.arg), CMIR_EINVAL);
    free(x); free(d.y.data); free(d.arg); free(d.R); free(dx.data);
}

static void test_pool2(void) { test_pool(2); }
static void test_pool4(void) { test_pool(4); }

/* ---------------- leaky ReLU ---------------- */
typedef struct {
    cmir_tensor x, y;
    float *R, slope;
} act_ctx;

static double act_loss(void *c)
{
    act_ctx *d = c;
    cmir_lrelu_forward(ex, d->slope, &d->x, &d->y);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_lrelu_slope(float slope)
{
    const int n = 300;
    act_ctx d;
    float *x = randv(n, 1);
    for (int i = 0; i < n; i++) /* keep |x| > 2h: no kink inside the step */
        x[i] = x[i] >= 0 ? x[i] + 0.05f : x[i] - 0.05f;
    d.x = cmir_tensor_2d(x, 30, 10);
    d.y = cmir_tensor_2d(randv(n, 1), 30, 10);
    d.R = randv(n, 1);
    d.slope = slope;
    ASSERT_OK(cmir_lrelu_forward(ex, slope, &d.x, &d.y));
    cmir_tensor dy = cmir_tensor_2d(d.R, 30, 10), dx = cmir_tensor_2d(randv(n, 1), 30, 10);
    ASSERT_OK(cmir_lrelu_backward(ex, slope, &d.y, &dy, &dx));
    fd_check(slope > 0 ? "leaky relu dx" : "relu dx", x, dx.data, n, act_loss, &d, n);
    free(x); free(d.y.data); free(d.R); free(dx.data);
}

static void test_lrelu(void)
{
    test_lrelu_slope(0.01f);
    test_lrelu_slope(0.0f);
    /* In place, large enough to take the threaded path. */
    size_t n = (size_t)1 << 19;
    float *v = randv(n, 1), *ref = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        ref[i] = v[i] > 0 ? v[i] : 0.01f * v[i];
    cmir_tensor t = cmir_tensor_2d(v, 1, (int64_t)n);
    ASSERT_OK(cmir_lrelu_forward(ex, 0.01f, &t, &t));
    ASSERT_LE(max_abs_diff(v, ref, n), 0.0);
    free(v); free(ref);
}

/* ---------------- batch norm ---------------- */
typedef struct {
    cmir_tensor x, y;
    float *gamma, *beta, *rm, *rv, *sm, *si, *R;
} bn_ctx;

static double bn_loss(void *c)
{
    bn_ctx *d = c;
    cmir_batchnorm_forward(ex, cmir_bn_default_params(), 1, &d->x, d->gamma, d->beta, d->rm,
                           d->rv, d->sm, d->si, &d->y);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_batchnorm(void)
{
    const int N = 4, H = 3, W = 2, C = 5;
    size_t n = (size_t)N * H * W * C;
    bn_ctx d;
    d.x = cmir_tensor_4d(randv(n, 2), N, H, W, C);
    for (size_t i = 0; i < n; i++)
        d.x.data[i] += (float)(i % C); /* per-channel offsets */
    d.y = cmir_tensor_4d(randv(n, 1), N, H, W, C);
    d.gamma = randv(C, 1);
    d.beta = randv(C, 1);
    d.rm = calloc(C, sizeof(float));
    d.rv = malloc(sizeof(float) * C);
    cmir_fill(d.rv, C, 1.0f);
    d.sm = malloc(sizeof(float) * C);
    d.si = malloc(sizeof(float) * C);
    d.R = randv(n, 1);
    ASSERT_OK(cmir_batchnorm_forward(ex, cmir_bn_default_params(), 1, &d.x, d.gamma, d.beta,
                                     d.rm, d.rv, d.sm, d.si, &d.y));
    /* Batch statistics by hand. */
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (size_t r = 0; r < n / C; r++)
            m += d.x.data[r * C + c];
        m /= (double)(n / C);
        for (size_t r = 0; r < n / C; r++)
            v += (d.x.data[r * C + c] - m) * (d.x.data[r * C + c] - m);
        v /= (double)(n / C);
        ASSERT_NEAR(d.sm[c], m, 1e-5);
        ASSERT_NEAR(d.si[c], 1.0 / sqrt(v + 1e-3), 1e-4);
        ASSERT_NEAR(d.rm[c], 0.01 * m, 1e-6);
    }
    cmir_tensor dy = cmir_tensor_4d(d.R, N, H, W, C), dx = cmir_tensor_4d(randv(n, 1), N, H, W, C);
    float *dg = randv(C, 1), *dbt = randv(C, 1);
    ASSERT_OK(cmir_batchnorm_backward(ex, &d.x, d.gamma, d.sm, d.si, &dy, &dx, dg, dbt));
    fd_check("batchnorm dx", d.x.data, dx.data, n, bn_loss, &d, 60);
    fd_check("batchnorm dgamma", d.gamma, dg, C, bn_loss, &d, C);
    fd_check("batchnorm dbeta", d.beta, dbt, C, bn_loss, &d, C);
    /* Inference mode uses the running statistics. */
    cmir_fill(d.rm, C, 0.5f);
    cmir_fill(d.rv, C, 4.0f);
    ASSERT_OK(cmir_batchnorm_forward(ex, cmir_bn_default_params(), 0, &d.x, d.gamma, d.beta,
                                     d.rm, d.rv, NULL, NULL, &d.y));
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % C);
        double want = (d.x.data[i] - 0.5) / sqrt(4.0 + 1e-3) * d.gamma[c] + d.beta[c];
        ASSERT_NEAR(d.y.data[i], want, 1e-5);
    }
    free(d.x.data); free(d.y.data); free(d.gamma); free(d.beta); free(d.rm); free(d.rv);
    free(d.sm); free(d.si); free(d.R); free(dx.data); free(dg); free(dbt);
}

/* ---------------- fused block kernels ----------------
 * cmir__conv3x3_lrelu_forward, cmir__bn_maxpool_forward and
 * cmir__bn_maxpool_backward against the unfused sequence conv -> lrelu ->
 * batchnorm -> maxpool (forward) and maxpool -> batchnorm -> lrelu
 * (backward), on shapes with channel tails (C % 16), trailing rows and
 * columns the pooling drops, several windows and 1 to 3 threads; the
 * portable loops against the AVX-512 ones (bit-identical); and a
 * finite-difference check of the fused backward. */
static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static void fused_vs_unfused(int N, int H, int W, int Ci, int C, int k, int threads)
{
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = threads;
    cmir_exec *e = cmir_exec_new(ep);
    const float slope = 0.01f;
    const int Ho = H / k, Wo = W / k;
    size_t nx = (size_t)N * H * W * Ci, na = (size_t)N * H * W * C, np = (size_t)N * Ho * Wo * C;
    float *x = randv(nx, 1), *Wt = randv((size_t)9 * Ci * C, 0.5f), *b = randv(C, 0.5f);
    for (int c = 0; c < C; c++)
        b[c] += 0.2f * (float)(c % 3); /* per-channel offsets */
    float *gamma = randv(C, 1), *beta = randv(C, 1);
    float *z = malloc(sizeof(float) * na), *aref = malloc(sizeof(float) * na);
    float *a = malloc(sizeof(float) * na), *bn = malloc(sizeof(float) * na);
    float *pref = malloc(sizeof(float) * np), *p = malloc(sizeof(float) * np);
    float *xw = malloc(sizeof(float) * np), *p2 = malloc(sizeof(float) * np);
    int32_t *argref = malloc(sizeof(int32_t) * np), *arg = malloc(sizeof(int32_t) * np);
    int32_t *arg2 = malloc(sizeof(int32_t) * np);
    float rm0[128], rv0[128], rm1[128], rv1[128], sm0[128], si0[128], sm1[128], si1[128];
    double sums[256];
    cmir_bn_params bp = cmir_bn_default_params();
    for (int c = 0; c < C; c++) {
        rm0[c] = rm1[c] = 0.1f * (float)c;
        rv0[c] = rv1[c] = 1.0f + 0.05f * (float)c;
    }
    cmir_tensor tx = cmir_tensor_4d(x, N, H, W, Ci), tz = cmir_tensor_4d(z, N, H, W, C);
    cmir_tensor tar = cmir_tensor_4d(aref, N, H, W, C), ta = cmir_tensor_4d(a, N, H, W, C);
    cmir_tensor tbn = cmir_tensor_4d(bn, N, H, W, C);
    cmir_tensor tpr = cmir_tensor_4d(pref, N, Ho, Wo, C), tp = cmir_tensor_4d(p, N, Ho, Wo, C);
    cmir_tensor tp2 = cmir_tensor_4d(p2, N, Ho, Wo, C);
    /* forward, unfused */
    ASSERT_OK(cmir_conv3x3_forward(e, &tx, Wt, b, &tz));
    ASSERT_OK(cmir_lrelu_forward(e, slope, &tz, &tar));
    ASSERT_OK(cmir_batchnorm_forward(e, bp, 1, &tar, gamma, beta, rm0, rv0, sm0, si0, &tbn));
    ASSERT_OK(cmir_maxpool_forward(e, k, &tbn, &tpr, argref));
    /* conv + lrelu: the same values; sums of y and y^2 */
    ASSERT_OK(cmir__conv3x3_lrelu_forward(e, &tx, Wt, b, slope, &ta, sums));
    ASSERT_TRUE(memcmp(a, aref, sizeof(float) * na) == 0);
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (size_t r = 0; r < na / C; r++) {
            s += aref[r * C + c];
            q += (double)aref[r * C + c] * aref[r * C + c];
        }
        ASSERT_NEAR(sums[c], s, 1e-5 * (fabs(s) + 1.0) + 1e-6 * q);
        ASSERT_NEAR(sums[C + c], q, 1e-5 * q + 1e-6);
    }
    /* bn + maxpool with the conv's sums: the statistics within rounding */
    ASSERT_OK(cmir__bn_maxpool_forward(e, bp, 1, k, &ta, gamma, beta, rm1, rv1, sm1, si1, sums,
                                      &tp, arg, xw));
    for (int c = 0; c < C; c++) {
        ASSERT_NEAR(sm1[c], sm0[c], 1e-5 * (fabs(sm0[c]) + 1.0 / si0[c]));
        ASSERT_NEAR(si1[c], si0[c], 1e-5 * si0[c]);
        ASSERT_NEAR(rm1[c], rm0[c], 1e-6 * (fabs(rm0[c]) + 1.0));
        ASSERT_NEAR(rv1[c], rv0[c], 1e-6 * rv0[c]);
    }
    /* pooled values within rounding; a winner may differ only on a near tie */
    double ys = max_abs(pref, np) + 1.0;
    int moved = 0;
    for (size_t i = 0; i < np; i++) {
        ASSERT_NEAR(p[i], pref[i], 1e-5 * ys);
        if (arg[i] != argref[i]) {
            size_t s0 = i / ((size_t)Ho * Wo * C) * ((size_t)H * W * C);
            ASSERT_NEAR(bn[s0 + arg[i]], bn[s0 + argref[i]], 1e-5 * ys);
            moved++;
        }
        /* xhat of the winner */
        int c = (int)(i % C);
        size_t s0 = i / ((size_t)Ho * Wo * C) * ((size_t)H * W * C);
        ASSERT_NEAR(xw[i], (a[s0 + arg[i]] - sm1[c]) * si1[c], 1e-6 * (fabs(xw[i]) + 1.0));
    }
    /* without sums (one read of x), and the portable loops: bit-identical */
    memcpy(rm1, rm0, sizeof rm1); /* any values; only compared between the two runs */
    memcpy(rv1, rv0, sizeof rv1);
    float rm2[128], rv2[128], sm2[128], si2[128];
    memcpy(rm2, rm1, sizeof rm2);
    memcpy(rv2, rv1, sizeof rv2);
    float *xw2 = malloc(sizeof(float) * np);
    ASSERT_OK(cmir__bn_maxpool_forward(e, bp, 1, k, &ta, gamma, beta, rm1, rv1, sm1, si1, NULL,
                                      &tp, arg, xw));
    for (int c = 0; c < C; c++) {
        ASSERT_NEAR(sm1[c], sm0[c], 1e-6 * (fabs(sm0[c]) + 1.0 / si0[c]));
        ASSERT_NEAR(si1[c], si0[c], 1e-6 * si0[c]);
    }
    cmir__fused_generic = 1;
    ASSERT_OK(cmir__bn_maxpool_forward(e, bp, 1, k, &ta, gamma, beta, rm2, rv2, sm2, si2, NULL,
                                      &tp2, arg2, xw2));
    cmir__fused_generic = 0;
    ASSERT_TRUE(memcmp(sm1, sm2, sizeof(float) * C) == 0 && memcmp(si1, si2, sizeof(float) * C) == 0);
    ASSERT_TRUE(memcmp(rm1, rm2, sizeof(float) * C) == 0 && memcmp(rv1, rv2, sizeof(float) * C) == 0);
    ASSERT_TRUE(memcmp(p, p2, sizeof(float) * np) == 0);
    ASSERT_TRUE(memcmp(arg, arg2, sizeof(int32_t) * np) == 0);
    ASSERT_TRUE(memcmp(xw, xw2, sizeof(float) * np) == 0);
    /* inference: the running statistics; exactly batchnorm + maxpool */
    ASSERT_OK(cmir_batchnorm_forward(e, bp, 0, &tar, gamma, beta, rm0, rv0, NULL, NULL, &tbn));
    ASSERT_OK(cmir_maxpool_forward(e, k, &tbn, &tpr, argref));
    ASSERT_OK(cmir__bn_maxpool_forward(e, bp, 0, k, &ta, gamma, beta, rm0, rv0, NULL, NULL, NULL,
                                      &tp, arg, NULL));
    ASSERT_TRUE(memcmp(p, pref, sizeof(float) * np) == 0);
    ASSERT_TRUE(memcmp(arg, argref, sizeof(int32_t) * np) == 0);

    /* backward against maxpool -> batchnorm -> lrelu, same statistics and winners */
    ASSERT_OK(cmir_batchnorm_forward(e, bp, 1, &tar, gamma, beta, rm0, rv0, sm0, si0, &tbn));
    ASSERT_OK(cmir_maxpool_forward(e, k, &tbn, &tpr, argref));
    float *dp = randv(np, 1), *daref = malloc(sizeof(float) * na), *da = malloc(sizeof(float) * na);
    float *da2 = malloc(sizeof(float) * na);
    float dgr[128], dbr[128], dg[128], dbt[128], dg2[128], dbt2[128];
    cmir_tensor tdp = cmir_tensor_4d(dp, N, Ho, Wo, C), tdar = cmir_tensor_4d(daref, N, H, W, C);
    cmir_tensor tda = cmir_tensor_4d(da, N, H, W, C), tda2 = cmir_tensor_4d(da2, N, H, W, C);
    ASSERT_OK(cmir_maxpool_backward(e, &tdp, argref, &tdar));
    ASSERT_OK(cmir_batchnorm_backward(e, &tar, gamma, sm0, si0, &tdar, &tdar, dgr, dbr));
    ASSERT_OK(cmir_lrelu_backward(e, slope, &tar, &tdar, &tdar));
    double ds = max_abs(daref, na) + 1e-3, bworst = 0.0;
    /* xhat recomputed from x (NULL), then as the forward stored it */
    for (int pass = 0; pass < 2; pass++) {
        float *xh = NULL;
        if (pass) {
            ASSERT_OK(cmir__bn_maxpool_forward(e, bp, 1, k, &ta, gamma, beta, rm1, rv1, sm1, si1,
                                              NULL, &tp, arg, xw));
            ASSERT_TRUE(memcmp(arg, argref, sizeof(int32_t) * np) == 0);
            xh = xw;
        }
        ASSERT_OK(cmir__bn_maxpool_backward(e, slope, k, &ta, gamma, pass ? sm1 : sm0,
                                           pass ? si1 : si0, &tdp, argref, xh, &tda, dg, dbt));
        for (size_t i = 0; i < na; i++)
            bworst = fmax(bworst, fabs(da[i] - daref[i]));
        ASSERT_LE(bworst, 2e-5 * ds);
        for (int c = 0; c < C; c++) {
            ASSERT_NEAR(dg[c], dgr[c], 1e-5 * (fabs(dgr[c]) + 1.0));
            ASSERT_NEAR(dbt[c], dbr[c], 1e-5 * (fabs(dbr[c]) + 1.0));
        }
        cmir__fused_generic = 1;
        ASSERT_OK(cmir__bn_maxpool_backward(e, slope, k, &ta, gamma, pass ? sm1 : sm0,
                                           pass ? si1 : si0, &tdp, argref, xh, &tda2, dg2, dbt2));
        cmir__fused_generic = 0;
        ASSERT_TRUE(memcmp(da, da2, sizeof(float) * na) == 0);
        ASSERT_TRUE(memcmp(dg, dg2, sizeof(float) * C) == 0 && memcmp(dbt, dbt2, sizeof(float) * C) == 0);
    }
    /* parameter gradients only */
    ASSERT_OK(cmir__bn_maxpool_backward(e, slope, k, &ta, gamma, sm0, si0, &tdp, argref, NULL,
                                       NULL, dg2, dbt2));
    /* the whole block's backward (dy made row by row inside the conv) is
     * bit-identical to cmir__bn_maxpool_backward followed by the conv's */
    {
        size_t kc = (size_t)9 * Ci * C;
        float *dW0 = malloc(sizeof(float) * kc), *dW1 = malloc(sizeof(float) * kc);
        float *db0 = malloc(sizeof(float) * C), *db1 = malloc(sizeof(float) * C);
        float *dx0 = malloc(sizeof(float) * nx), *dx1 = malloc(sizeof(float) * nx);
        cmir_tensor tdx0 = cmir_tensor_4d(dx0, N, H, W, Ci), tdx1 = cmir_tensor_4d(dx1, N, H, W, Ci);
        for (int withdx = 0; withdx < 2; withdx++) {
            ASSERT_OK(cmir__bn_maxpool_backward(e, slope, k, &ta, gamma, sm1, si1, &tdp, argref, xw,
                                               &tda, dg, dbt));
            ASSERT_OK(cmir_conv3x3_backward(e, &tx, Wt, &tda, withdx ? &tdx0 : NULL, dW0, db0));
            ASSERT_OK(cmir__conv3x3_bn_maxpool_backward(e, slope, k, &ta, gamma, sm1, si1, &tdp,
                                                       argref, xw, &tx, Wt, b,
                                                       withdx ? &tdx1 : NULL, dW1, db1, dg2,
                                                       dbt2));
            ASSERT_TRUE(memcmp(dW0, dW1, sizeof(float) * kc) == 0);
            ASSERT_TRUE(memcmp(db0, db1, sizeof(float) * C) == 0);
            ASSERT_TRUE(memcmp(dg, dg2, sizeof(float) * C) == 0 &&
                        memcmp(dbt, dbt2, sizeof(float) * C) == 0);
            if (withdx)
                ASSERT_TRUE(memcmp(dx0, dx1, sizeof(float) * nx) == 0);
        }
        /* the whole block, forward and backward, with a stored and without
         * (conv run twice, a remade in the backward): bit-identical */
        float rm3[128], rv3[128], sm3[128], si3[128], rm4[128], rv4[128], sm4[128], si4[128];
        memcpy(rm3, rm0, sizeof rm3);
        memcpy(rv3, rv0, sizeof rv3);
        memcpy(rm4, rm0, sizeof rm4);
        memcpy(rv4, rv0, sizeof rv4);
        float *xw3 = malloc(sizeof(float) * np), *xw4 = malloc(sizeof(float) * np);
        for (int training = 1; training >= 0; training--) {
            ASSERT_OK(cmir__conv3x3_bn_maxpool_forward(e, &tx, Wt, b, slope, bp, training, k, gamma,
                                                      beta, rm3, rv3, sm3, si3, &ta, &tp, arg,
                                                      training ? xw3 : NULL));
            ASSERT_OK(cmir__conv3x3_bn_maxpool_forward(e, &tx, Wt, b, slope, bp, training, k, gamma,
                                                      beta, rm4, rv4, sm4, si4, NULL, &tp2, arg2,
                                                      training ? xw4 : NULL));
            ASSERT_TRUE(memcmp(a, aref, sizeof(float) * na) == 0);
            ASSERT_TRUE(memcmp(sm3, sm4, sizeof(float) * C) == 0 &&
                        memcmp(si3, si4, sizeof(float) * C) == 0);
            ASSERT_TRUE(memcmp(rm3, rm4, sizeof(float) * C) == 0 &&
                        memcmp(rv3, rv4, sizeof(float) * C) == 0);
            ASSERT_TRUE(memcmp(p, p2, sizeof(float) * np) == 0);
            ASSERT_TRUE(memcmp(arg, arg2, sizeof(int32_t) * np) == 0);
            if (training)
                ASSERT_TRUE(memcmp(xw3, xw4, sizeof(float) * np) == 0);
        }
        ASSERT_OK(cmir__conv3x3_bn_maxpool_forward(e, &tx, Wt, b, slope, bp, 1, k, gamma, beta, rm3,
                                                  rv3, sm3, si3, NULL, &tp, arg, xw3));
        ASSERT_OK(cmir__conv3x3_bn_maxpool_backward(e, slope, k, &ta, gamma, sm3, si3, &tdp, arg,
                                                   xw3, &tx, Wt, b, &tdx0, dW0, db0, dg, dbt));
        ASSERT_OK(cmir__conv3x3_bn_maxpool_backward(e, slope, k, NULL, gamma, sm3, si3, &tdp, arg,
                                                   xw3, &tx, Wt, b, &tdx1, dW1, db1, dg2, dbt2));
        ASSERT_TRUE(memcmp(dW0, dW1, sizeof(float) * kc) == 0);
        ASSERT_TRUE(memcmp(db0, db1, sizeof(float) * C) == 0);
        ASSERT_TRUE(memcmp(dx0, dx1, sizeof(float) * nx) == 0);
        ASSERT_TRUE(memcmp(dg, dg2, sizeof(float) * C) == 0 && memcmp(dbt, dbt2, sizeof(float) * C) == 0);
        free(xw3); free(xw4);
        free(dW0); free(dW1); free(db0); free(db1); free(dx0); free(dx1);
    }
    printf("  fused %dx%dx%dx%d<-%d k=%d T=%d: conv+lrelu exact, pool moved %d, "
           "backward max err %.1e of %.1e\n",
           N, H, W, C, Ci, k, threads, moved, bworst, ds);
    free(x); free(Wt); free(b); free(gamma); free(beta); free(z); free(aref); free(a); free(bn);
    free(pref); free(p); free(xw); free(p2); free(xw2); free(argref); free(arg); free(arg2);
    free(dp); free(daref); free(da); free(da2);
    cmir_exec_free(e);
}

static void test_fused_vs_unfused(void)
{
    fused_vs_unfused(2, 9, 11, 3, 5, 2, 1);   /* C < 16, odd sizes, leftovers */
    fused_vs_unfused(3, 10, 9, 2, 20, 4, 2);  /* 16 + 4 channels */
    fused_vs_unfused(2, 8, 12, 4, 32, 3, 3);  /* window 3 */
    fused_vs_unfused(1, 6, 7, 5, 70, 2, 2);   /* 64 + 6 channels */
    fused_vs_unfused(2, 11, 29, 2, 20, 5, 2); /* windows split between conv tiles */
    for (int t = 1; t <= 3; t++)              /* > 2^18 elements: threaded passes */
        fused_vs_unfused(4, 66, 64, 1, 32, 4, t);
}

typedef struct {
    cmir_tensor z, a, y;
    float *gamma, *beta, *rm, *rv, *sm, *si, *R, *xw;
    int32_t *arg;
    int k;
    float slope;
} fused_ctx;

static double fused_loss(void *c)
{
    fused_ctx *d = c;
    cmir_lrelu_forward(ex, d->slope, &d->z, &d->a);
    cmir__bn_maxpool_forward(ex, cmir_bn_default_params(), 1, d->k, &d->a, d->gamma, d->beta,
                            d->rm, d->rv, d->sm, d->si, NULL, &d->y, d->arg, d->xw);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_fused_grad(void)
{
    const int N = 2, H = 7, W = 6, C = 5, k = 2;
    size_t n = (size_t)N * H * W * C, np = (size_t)N * (H / k) * (W / k) * C;
    fused_ctx d;
    d.k = k;
    d.slope = 0.1f;
    /* Distinct values 0.1 apart and at least 0.05 from the ReLU's kink
     * (0.01 apart after it): a step of h = 0.01 changes no pool winner and
     * crosses no kink, so finite differences see a smooth function. */
    float *z = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        z[i] = 0.1f * ((float)i - (float)(n / 2)) + 0.05f;
    for (size_t i = n - 1; i > 0; i--) { /* shuffle */
        size_t j = (size_t)cmir_rng_below(rng, i + 1);
        float t = z[i]; z[i] = z[j]; z[j] = t;
    }
    d.z = cmir_tensor_4d(z, N, H, W, C);
    d.a = cmir_tensor_4d(malloc(sizeof(float) * n), N, H, W, C);
    d.y = cmir_tensor_4d(malloc(sizeof(float) * np), N, H / k, W / k, C);
    d.gamma = randv(C, 1);
    d.beta = randv(C, 1);
    d.rm = calloc(C, sizeof(float));
    d.rv = malloc(sizeof(float) * C);
    cmir_fill(d.rv, C, 1.0f);
    d.sm = malloc(sizeof(float) * C);
    d.si = malloc(sizeof(float) * C);
    d.R = randv(np, 1);
    d.xw = malloc(sizeof(float) * np);
    d.arg = malloc(sizeof(int32_t) * np);
    fused_loss(&d);
    cmir_tensor dy = cmir_tensor_4d(d.R, N, H / k, W / k, C);
    cmir_tensor dz = cmir_tensor_4d(malloc(sizeof(float) * n), N, H, W, C);
    float *dg = randv(C, 1), *dbt = randv(C, 1);
    ASSERT_OK(cmir__bn_maxpool_backward(ex, d.slope, k, &d.a, d.gamma, d.sm, d.si, &dy, d.arg,
                                       d.xw, &dz, dg, dbt));
    fd_check("fused lrelu+bn+pool dz", d.z.data, dz.data, n, fused_loss, &d, 80);
    fd_check("fused lrelu+bn+pool dgamma", d.gamma, dg, C, fused_loss, &d, C);
    fd_check("fused lrelu+bn+pool dbeta", d.beta, dbt, C, fused_loss, &d, C);
    free(d.z.data); free(d.a.data); free(d.y.data); free(d.gamma); free(d.beta); free(d.rm);
    free(d.rv); free(d.sm); free(d.si); free(d.R); free(d.xw); free(d.arg); free(dz.data);
    free(dg); free(dbt);
}

/* ---------------- dropout ---------------- */
typedef struct {
    cmir_tensor x, y;
    uint8_t *mask;
    float *R, rate;
} drop_ctx;

static double drop_loss(void *c)
{
    drop_ctx *d = c;
    cmir_rng *r = cmir_rng_new(99); /* same mask every evaluation */
    cmir_dropout_forward(r, d->rate, &d->x, d->mask, &d->y);
    cmir_rng_free(r);
    return dot(d->y.data, d->R, (size_t)cmir_tensor_numel(&d->y));
}

static void test_dropout(void)
{
    const int n = 4000;
    drop_ctx d;
    d.x = cmir_tensor_2d(randv(n, 1), 40, 100);
    d.y = cmir_tensor_2d(randv(n, 1), 40, 100);
    d.mask = malloc(n);
    d.R = randv(n, 1);
    d.rate = 0.5f;
    drop_loss(&d);
    int kept = 0;
    for (int i = 0; i < n; i++)
        kept += d.mask[i];
    printf("  dropout rate 0.5 kept %d of %d\n", kept, n);
    ASSERT_TRUE(kept > n * 0.45 && kept < n * 0.55);
    cmir_tensor dy = cmir_tensor_2d(d.R, 40, 100), dx = cmir_tensor_2d(randv(n, 1), 40, 100);
    ASSERT_OK(cmir_dropout_backward(d.rate, d.mask, &dy, &dx));
    fd_check("dropout dx", d.x.data, dx.data, n, drop_loss, &d, 50);
    ASSERT_EQ_INT(cmir_dropout_forward(rng, 1.0f, &d.x, d.mask, &d.y), CMIR_EINVAL);
    free(d.x.data); free(d.y.data); free(d.mask); free(d.R); free(dx.data);
}

static void test_shape_errors(void)
{
    float buf[64] = {0};
    cmir_tensor x = cmir_tensor_4d(buf, 1, 2, 2, 2), y = cmir_tensor_4d(buf, 1, 2, 3, 2);
    ASSERT_EQ_INT(cmir_conv3x3_forward(ex, &x, buf, NULL, &y), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "cmir_conv3x3_forward") != NULL);
    cmir_tensor s = x;
    s.stride[3] = 2; /* not contiguous */
    ASSERT_EQ_INT(cmir_conv3x3_forward(ex, &s, buf, NULL, &x), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "contiguous") != NULL);
    ASSERT_EQ_INT(cmir_dense_forward(ex, &x, buf, NULL, &y), CMIR_EINVAL);
}

static void test_bn_check_params(void)
{
    cmir_bn_params p = cmir_bn_default_params();
    ASSERT_OK(cmir_bn_check_params(p));
    p.eps = 0.0f;
    REFUSES(cmir_bn_check_params(p), "cmir_bn_params.eps: must be > 0, got 0");
    p = cmir_bn_default_params();
    p.momentum = NAN;
    REFUSES(cmir_bn_check_params(p), "cmir_bn_params.momentum");
    p.momentum = 1.5f;
    REFUSES(cmir_bn_check_params(p), "cmir_bn_params.momentum");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    ex = cmir_exec_new(ep);
    rng = cmir_rng_new(12345);
    RUN(test_dense_grad);
    RUN(test_conv_vs_naive);
    RUN(test_conv_grad);
    RUN(test_pool2);
    RUN(test_pool4);
    RUN(test_lrelu);
    RUN(test_batchnorm);
    RUN(test_fused_vs_unfused);
    RUN(test_fused_grad);
    RUN(test_dropout);
    RUN(test_shape_errors);
    cmir_rng_free(rng);
    cmir_exec_free(ex);
    RUN(test_bn_check_params);
    TEST_MAIN_END();
}
