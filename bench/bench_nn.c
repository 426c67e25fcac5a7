/* bench_nn: OpenBLAS sgemm peak and sgemm at the conv layers' GEMM shapes,
 * against libcmir's 3x3 convolution (forward/backward, per layer) and a whole
 * CMIR-NET branch training step (PAN and MS), all measured in one run. */
#define _POSIX_C_SOURCE 200809L

#include "cmir/base.h"
#include "cmir/model.h"
#include "cmir/nn.h"
#include "base/internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Mirrors COL_BUDGET_BYTES in cmirtools/src/nn/conv.c: the im2col buffer of
 * one thread holds as many whole samples as fit in this many bytes. Used only
 * to print the GEMM shapes and to replay the GEMMs of conv.c's im2col+GEMM
 * path without im2col. (On CPUs with AVX-512F conv.c runs direct kernels
 * instead; the replay is then the GEMM floor of the path it replaced.) */
#define CONV_COL_BUDGET ((size_t)4 << 20)
#define MAX_THREADS 64
#define LRELU_SLOPE 0.01f

/* bench_nn_bf16.c */
double bench_bf16_peak(int threads, double seconds);
double bench_bf16_gemm(int threads, int n, double seconds);
int bench_bf16_ab(const char *name, int hw, int bands, int N, cmir_exec *ex, double seconds,
                  double bf16_peak, double ratio[2]);
int bench_bf16_layers(int N, cmir_exec *ex, double seconds, double bf16_peak);

/* ------------------------------------------------------------------------ */
/* Options, timing, errors                                                   */

typedef struct options {
    int threads;
    double seconds;
    int batch;
    const char *json;
    int do_pan, do_ms;
    int cnn_only; /* --cnn-only: the sgemm peak and the cmir_cnn steps only */
    int ab_only;  /* --ab: the peaks and the interleaved fp32/bf16 steps only */
    const char *profile; /* --profile P: only the cmir_cnn steps at precision P (for perf) */
} options;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int report(int rc, const char *what, int line)
{
    fprintf(stderr, "bench_nn: line %d: %s failed: %s: %s\n", line, what, cmir_strerror(rc),
            cmir_last_error());
    return rc;
}

/* Evaluates a libcmir call; on failure prints it and returns its code. */
#define CK(call)                                                                               \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        if (rc_)                                                                               \
            return report(rc_, #call, __LINE__);                                               \
    } while (0)

typedef struct timing {
    double best, mean; /* seconds per call */
    int reps;
} timing;

typedef int (*bench_fn)(void *ctx);

/* One untimed warm-up call (grows scratch, starts thread pools), then
 * timed calls until at least min_s seconds and min_reps calls. */
static int measure(bench_fn fn, void *ctx, void (*after_warmup)(void *), double min_s,
                   int min_reps, timing *out)
{
    int rc = fn(ctx);
    if (rc)
        return rc;
    if (after_warmup)
        after_warmup(ctx);
    double best = 1e300, total = 0.0, start = now_s();
    int reps = 0;
    while (reps < min_reps || now_s() - start < min_s) {
        double t0 = now_s();
        if ((rc = fn(ctx)))
            return rc;
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
        total += dt;
        reps++;
    }
    out->best = best;
    out->mean = total / reps;
    out->reps = reps;
    return 0;
}

static void fill_uniform(cmir_rng *r, float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * cmir_rng_uniform(r);
}

/* 64-byte aligned floats, zeroed; NULL after printing on failure. */
static float *alloc_floats(size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p)
        fprintf(stderr, "bench_nn: out of memory (%zu bytes)\n", bytes);
    else
        memset(p, 0, bytes);
    return p;
}

static double gflops(double flop, double sec) { return sec > 0 ? flop / sec * 1e-9 : 0.0; }

/* ------------------------------------------------------------------------ */
/* sgemm measurements                                                        */

typedef struct gemm_shape {
    int m, n, k;   /* C{m,n} = op(A){m,k} op(B){k,n}, row-major */
    int ta, tb;    /* transposes as the conv passes them */
    float beta;    /* 1 where the conv accumulates (bias, dW), else 0 */
} gemm_shape;

static size_t gemm_a_elems(const gemm_shape *s) { return (size_t)s->m * s->k; }
static size_t gemm_b_elems(const gemm_shape *s) { return (size_t)s->k * s->n; }
static size_t gemm_c_elems(const gemm_shape *s) { return (size_t)s->m * s->n; }
static double gemm_flop(const gemm_shape *s) { return 2.0 * s->m * s->n * (double)s->k; }

enum { GM_ONE = 0, GM_CONCURRENT = 1, GM_BLAS_T = 2 };

typedef struct gemm_ctx {
    gemm_shape s;
    int mode, threads, inner;
    float *A[MAX_THREADS], *C[MAX_THREADS], *B;
} gemm_ctx;

static void gemm_call(const gemm_ctx *g, int t, int blas_threads)
{
    const gemm_shape *s = &g->s;
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    if (blas_threads == 1) {
        cmir__sgemm(1, s->ta, s->tb, s->m, s->n, s->k, 1.0f, g->A[t], lda, g->B, ldb, s->beta,
                    g->C[t], s->n);
    } else {
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, g->A[t], lda,
                    g->B, ldb, s->beta, g->C[t], s->n);
    }
}

static int gemm_task(int t, int T, void *user)
{
    (void)T;
    const gemm_ctx *g = user;
    for (int i = 0; i < g->inner; i++)
        gemm_call(g, t, 1);
    return 0;
}

static int gemm_bench(void *ctx)
{
    gemm_ctx *g = ctx;
    switch (g->mode) {
    case GM_ONE:
        return gemm_task(0, 1, g);
    case GM_CONCURRENT:
        return cmir__parallel(g->threads, gemm_task, g);
    default:
        openblas_set_num_threads(g->threads);
        for (int i = 0; i < g->inner; i++)
            gemm_call(g, 0, g->threads);
        return 0;
    }
}

/* GFLOP/s of the shape in the given mode; one timed call runs `inner`
 * GEMMs (per thread), chosen so that it lasts about 20 ms. */
static int gemm_rate(gemm_ctx *g, int mode, double min_s, double *gf)
{
    g->mode = mode;
    g->inner = 1;
    double t0 = now_s();
    int rc = gemm_bench(g);
    if (rc)
        return rc;
    double dt = now_s() - t0;
    int inner = dt > 0 ? (int)(0.02 / dt) + 1 : 1;
    g->inner = inner > 1000 ? 1000 : inner;
    timing tm;
    if ((rc = measure(gemm_bench, g, NULL, min_s, 3, &tm)))
        return rc;
    double calls = (double)g->inner * (mode == GM_CONCURRENT ? g->threads : 1);
    *gf = gflops(gemm_flop(&g->s) * calls, tm.best);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Branch model: conv -> lrelu -> batchnorm -> maxpool(s), then dense       */

typedef struct layer_def {
    const char *name;
    int H, W, Ci, Co;
    int npool, pool[2];
} layer_def;

enum { CAT_CONV_F, CAT_CONV_B, CAT_LRELU, CAT_BN, CAT_POOL, CAT_DENSE, CAT_ADAM, NCAT };
static const char *const cat_names[NCAT] = {"conv fwd", "conv bwd", "lrelu", "batchnorm",
                                            "maxpool", "dense", "adam"};

typedef struct layer {
    layer_def d;
    int first, group, threads;
    float *W, *b, *dW, *db;
    float *gamma, *beta, *rmean, *rvar, *smean, *sinv, *dgamma, *dbeta;
    cmir_tensor *in; /* the previous layer's pool output, or the branch input */
    cmir_tensor *dxprev; /* where the conv's input gradient goes; NULL first */
    cmir_tensor c, bn, dc; /* conv+lrelu output, BN output / its gradient, conv dy */
    cmir_tensor p[2], dp[2];
    int32_t *arg[2];
    /* results */
    double ffwd, fbwd; /* FLOPs */
    timing conv_f, conv_b, gemm_f, gemm_b;
    gemm_shape sh[3]; /* forward, backward-weights, backward-data */
    double sh_gf[3][3];
} layer;

typedef struct branch {
    const char *name;
    int nl;
    layer L[3];
    cmir_tensor x;
    float *fcW, *fcb, *dfcW, *dfcb;
    cmir_tensor feat, dfeat, out, dout;
    cmir_optim *opt;
    cmir_exec *ex;
    double acc[NCAT];
    int training;
    timing train, infer;
} branch;

static layer *last_layer(branch *br) { return &br->L[br->nl - 1]; }

/* Samples per GEMM in conv.c for this layer, batch N and T threads. */
static int conv_group(const layer_def *d, int N, int T)
{
    size_t per_sample = (size_t)d->H * d->W * 9 * d->Ci * sizeof(float);
    int group = (int)(CONV_COL_BUDGET / per_sample);
    if (group < 1)
        group = 1;
    if (T > N)
        T = N;
    int share = (N + T - 1) / T;
    return group > share ? share : group;
}

static int branch_init(branch *br, const char *name, int Hin, int Cin, const layer_def *defs,
                       int nl, int N, cmir_exec *ex, cmir_rng *rng)
{
    memset(br, 0, sizeof *br);
    br->name = name;
    br->nl = nl;
    br->ex = ex;
    float *xd = alloc_floats((size_t)N * Hin * Hin * Cin);
    if (!xd)
        return CMIR_ENOMEM;
    fill_uniform(rng, xd, (size_t)N * Hin * Hin * Cin, 0.0f, 1.0f);
    br->x = cmir_tensor_4d(xd, N, Hin, Hin, Cin);
    int T = cmir_exec_threads(ex);
    cmir_tensor *in = &br->x;
    for (int l = 0; l < nl; l++) {
        layer *L = &br->L[l];
        L->d = defs[l];
        L->first = l == 0;
        L->threads = T > N ? N : T;
        L->group = conv_group(&L->d, N, T);
        const int H = L->d.H, W = L->d.W, Ci = L->d.Ci, Co = L->d.Co, K = 9 * Ci;
        if (in->shape[1] != H || in->shape[2] != W || in->shape[3] != Ci) {
            fprintf(stderr, "bench_nn: %s %s: input shape mismatch\n", name, L->d.name);
            return CMIR_EINVAL;
        }
        L->in = in;
        L->dxprev = l == 0 ? NULL : &br->L[l - 1].dp[br->L[l - 1].d.npool - 1];
        size_t act = (size_t)N * H * W * Co;
        if (!(L->W = alloc_floats((size_t)K * Co)) || !(L->b = alloc_floats(Co)) ||
            !(L->dW = alloc_floats((size_t)K * Co)) || !(L->db = alloc_floats(Co)) ||
            !(L->gamma = alloc_floats(Co)) || !(L->beta = alloc_floats(Co)) ||
            !(L->rmean = alloc_floats(Co)) || !(L->rvar = alloc_floats(Co)) ||
            !(L->smean = alloc_floats(Co)) || !(L->sinv = alloc_floats(Co)) ||
            !(L->dgamma = alloc_floats(Co)) || !(L->dbeta = alloc_floats(Co)))
            return CMIR_ENOMEM;
        cmir_init_he(rng, L->W, (size_t)K * Co, K);
        cmir_fill(L->gamma, Co, 1.0f);
        cmir_fill(L->rvar, Co, 1.0f);
        float *cd = alloc_floats(act), *bd = alloc_floats(act), *dcd = alloc_floats(act);
        if (!cd || !bd || !dcd)
            return CMIR_ENOMEM;
        L->c = cmir_tensor_4d(cd, N, H, W, Co);
        L->bn = cmir_tensor_4d(bd, N, H, W, Co);
        L->dc = cmir_tensor_4d(dcd, N, H, W, Co);
        int h = H, w = W;
        for (int i = 0; i < L->d.npool; i++) {
            int k = L->d.pool[i];
            h /= k;
            w /= k;
            size_t n = (size_t)N * h * w * Co;
            float *pd = alloc_floats(n), *dpd = alloc_floats(n);
            L->arg[i] = (int32_t *)alloc_floats(n); /* same size as a float */
            if (!pd || !dpd || !L->arg[i])
                return CMIR_ENOMEM;
            L->p[i] = cmir_tensor_4d(pd, N, h, w, Co);
            L->dp[i] = cmir_tensor_4d(dpd, N, h, w, Co);
        }
        in = &L->p[L->d.npool - 1];
        /* FLOPs as the conv counts them; backward without dx is dW only. */
        L->ffwd = 2.0 * N * H * W * 9.0 * Ci * Co;
        L->fbwd = L->first ? L->ffwd : 2.0 * L->ffwd;
        int rows = L->group * H * W;
        L->sh[0] = (gemm_shape){rows, Co, K, 0, 0, 1.0f};
        L->sh[1] = (gemm_shape){K, Co, rows, 1, 0, 1.0f};
        L->sh[2] = (gemm_shape){rows, K, Co, 0, 1, 0.0f};
    }
    /* Dense 2048 -> 128 on the flattened last pool output. */
    layer *LL = last_layer(br);
    cmir_tensor *last = &LL->p[LL->d.npool - 1];
    int64_t D = last->shape[1] * last->shape[2] * last->shape[3];
    br->feat = cmir_tensor_2d(last->data, N, D);
    br->dfeat = cmir_tensor_2d(LL->dp[LL->d.npool - 1].data, N, D);
    float *od = alloc_floats((size_t)N * 128), *dod = alloc_floats((size_t)N * 128);
    if (!(br->fcW = alloc_floats((size_t)D * 128)) || !(br->fcb = alloc_floats(128)) ||
        !(br->dfcW = alloc_floats((size_t)D * 128)) || !(br->dfcb = alloc_floats(128)) || !od ||
        !dod)
        return CMIR_ENOMEM;
    cmir_init_xavier(rng, br->fcW, (size_t)D * 128, (int)D, 128);
    br->out = cmir_tensor_2d(od, N, 128);
    br->dout = cmir_tensor_2d(dod, N, 128);
    fill_uniform(rng, dod, (size_t)N * 128, -1e-2f, 1e-2f); /* a stand-in loss gradient */
    /* Adam over every parameter: moments are allocated here, not when timed. */
    br->opt = cmir_optim_new(cmir_optim_default_params());
    if (!br->opt)
        return report(CMIR_ENOMEM, "cmir_optim_new", __LINE__);
    for (int l = 0; l < nl; l++) {
        layer *L = &br->L[l];
        size_t kc = (size_t)9 * L->d.Ci * L->d.Co, co = (size_t)L->d.Co;
        CK(cmir_optim_add(br->opt, L->W, L->dW, kc));
        CK(cmir_optim_add(br->opt, L->b, L->db, co));
        CK(cmir_optim_add(br->opt, L->gamma, L->dgamma, co));
        CK(cmir_optim_add(br->opt, L->beta, L->dbeta, co));
    }
    CK(cmir_optim_add(br->opt, br->fcW, br->dfcW, (size_t)D * 128));
    CK(cmir_optim_add(br->opt, br->fcb, br->dfcb, 128));
    return 0;
}

/* Random activations for the isolated conv measurements: each layer's
 * input (the previous pool output) and its output gradient. */
static void branch_randomise(branch *br, cmir_rng *rng)
{
    for (int l = 0; l < br->nl; l++) {
        layer *L = &br->L[l];
        fill_uniform(rng, L->dc.data, (size_t)cmir_tensor_numel(&L->dc), -1.0f, 1.0f);
        for (int i = 0; i < L->d.npool; i++)
            fill_uniform(rng, L->p[i].data, (size_t)cmir_tensor_numel(&L->p[i]), 0.0f, 1.0f);
    }
}

/* Wraps a call in the per-category timer of the branch. */
#define OP(cat, call)                                                                          \
    do {                                                                                       \
        double t0_ = now_s();                                                                  \
        int rc_ = (call);                                                                      \
        br->acc[cat] += now_s() - t0_;                                                         \
        if (rc_)                                                                               \
            return report(rc_, #call, __LINE__);                                               \
    } while (0)

static int branch_forward(branch *br, int training)
{
    cmir_exec *ex = br->ex;
    cmir_bn_params bp = cmir_bn_default_params();
    for (int l = 0; l < br->nl; l++) {
        layer *L = &br->L[l];
        OP(CAT_CONV_F, cmir_conv3x3_forward(ex, L->in, L->W, L->b, &L->c));
        OP(CAT_LRELU, cmir_lrelu_forward(ex, LRELU_SLOPE, &L->c, &L->c));
        OP(CAT_BN, cmir_batchnorm_forward(ex, bp, training, &L->c, L->gamma, L->beta, L->rmean,
                                          L->rvar, L->smean, L->sinv, &L->bn));
        for (int i = 0; i < L->d.npool; i++)
            OP(CAT_POOL, cmir_maxpool_forward(ex, L->d.pool[i], i ? &L->p[i - 1] : &L->bn,
                                              &L->p[i], L->arg[i]));
    }
    OP(CAT_DENSE, cmir_dense_forward(ex, &br->feat, br->fcW, br->fcb, &br->out));
    return 0;
}

static int branch_backward(branch *br)
{
    cmir_exec *ex = br->ex;
    OP(CAT_DENSE, cmir_dense_backward(ex, &br->feat, br->fcW, &br->dout, &br->dfeat, br->dfcW,
                                      br->dfcb));
    for (int l = br->nl - 1; l >= 0; l--) {
        layer *L = &br->L[l];
        for (int i = L->d.npool - 1; i >= 0; i--)
            OP(CAT_POOL, cmir_maxpool_backward(ex, &L->dp[i], L->arg[i],
                                               i ? &L->dp[i - 1] : &L->bn));
        /* L->bn now holds the gradient of the BN output. */
        OP(CAT_BN, cmir_batchnorm_backward(ex, &L->c, L->gamma, L->smean, L->sinv, &L->bn,
                                           &L->dc, L->dgamma, L->dbeta));
        OP(CAT_LRELU, cmir_lrelu_backward(ex, LRELU_SLOPE, &L->c, &L->dc, &L->dc));
        OP(CAT_CONV_B, cmir_conv3x3_backward(ex, L->in, L->W, &L->dc, L->dxprev, L->dW, L->db));
    }
    OP(CAT_ADAM, cmir_optim_step(br->opt));
    return 0;
}

static int branch_train_step(void *ctx)
{
    branch *br = ctx;
    int rc = branch_forward(br, 1);
    return rc ? rc : branch_backward(br);
}

static int branch_infer_step(void *ctx) { return branch_forward(ctx, 0); }

static void branch_reset_acc(void *ctx)
{
    branch *br = ctx;
    memset(br->acc, 0, sizeof br->acc);
}

/* ------------------------------------------------------------------------ */
/* Isolated conv layer and its GEMM-only replay                              */

typedef struct conv_ctx {
    layer *L;
    cmir_exec *ex;
    int backward;
    /* replay */
    float **col, **dwp;
} conv_ctx;

static int conv_fwd_only(void *ctx)
{
    conv_ctx *c = ctx;
    layer *L = c->L;
    CK(cmir_conv3x3_forward(c->ex, L->in, L->W, L->b, &L->c));
    return 0;
}

static int conv_bwd_only(void *ctx)
{
    conv_ctx *c = ctx;
    layer *L = c->L;
    CK(cmir_conv3x3_backward(c->ex, L->in, L->W, &L->dc, L->dxprev, L->dW, L->db));
    return 0;
}

/* The sgemm calls conv.c's im2col+GEMM path makes for this layer, same shapes, same split
 * over threads, same buffers where it matters, but with no im2col, col2im,
 * bias copy, bias-gradient sums or reduction: the GEMM-only floor. */
static int replay_task(int t, int T, void *user)
{
    const conv_ctx *c = user;
    const layer *L = c->L;
    size_t lo, hi, N = (size_t)L->in->shape[0];
    cmir__split(N, T, t, &lo, &hi);
    const int K = 9 * L->d.Ci, Co = L->d.Co;
    const size_t hw = (size_t)L->d.H * L->d.W;
    float *col = c->col[t], *dW = c->dwp[t];
    for (size_t n = lo; n < hi; n += (size_t)L->group) {
        int g = (int)((hi - n) < (size_t)L->group ? (hi - n) : (size_t)L->group);
        int rows = (int)((size_t)g * hw);
        if (!c->backward) {
            cmir__sgemm(1, 0, 0, rows, Co, K, 1.0f, col, K, L->W, Co, 1.0f,
                        L->c.data + n * hw * Co, Co);
        } else {
            const float *dy = L->dc.data + n * hw * Co;
            cmir__sgemm(1, 1, 0, K, Co, rows, 1.0f, col, K, dy, Co, 1.0f, dW, Co);
            if (L->dxprev)
                cmir__sgemm(1, 0, 1, rows, K, Co, 1.0f, dy, Co, L->W, Co, 0.0f, col, K);
        }
    }
    return 0;
}

static int conv_replay(void *ctx)
{
    conv_ctx *c = ctx;
    return cmir__parallel(c->L->threads, replay_task, c);
}

/* ------------------------------------------------------------------------ */
/* The stage-1 network itself: cmir_cnn_forward + cmir_cnn_backward (+ Adam)  */
/* as training runs them.                                                    */

typedef struct cnn_bench {
    const char *name;
    cmir_cnn *c;
    cmir_exec *ex;
    cmir_rng *r;
    cmir_optim *o;
    float *x, *dl;
    int n;
    double fwd, bwd, adam; /* accumulated seconds */
    timing step;
} cnn_bench;

static int cnn_step(void *ctx)
{
    cnn_bench *b = ctx;
    double t0 = now_s();
    CK(cmir_cnn_forward(b->c, b->ex, b->x, b->n, 1, b->r));
    double t1 = now_s();
    CK(cmir_cnn_backward(b->c, b->ex, b->dl, NULL));
    double t2 = now_s();
    CK(cmir_optim_step(b->o));
    double t3 = now_s();
    b->fwd += t1 - t0;
    b->bwd += t2 - t1;
    b->adam += t3 - t2;
    return 0;
}

static void cnn_reset(void *ctx)
{
    cnn_bench *b = ctx;
    b->fwd = b->bwd = b->adam = 0.0;
}

/* Times one branch through cmir_cnn_*; prints one line. */
static int cnn_bench_run(const char *name, int hw, int bands, int N, cmir_exec *ex,
                         cmir_rng *rng, double min_s, double peak, double *img_s)
{
    cnn_bench b;
    memset(&b, 0, sizeof b);
    cmir_cnn_params p = cmir_cnn_default_params();
    p.h = p.w = hw;
    p.bands = bands;
    b.name = name;
    b.ex = ex;
    b.n = N;
    b.c = cmir_cnn_new(p, 7);
    b.r = cmir_rng_new(99);
    b.o = cmir_optim_new(cmir_optim_default_params());
    b.x = alloc_floats((size_t)N * hw * hw * bands);
    b.dl = alloc_floats((size_t)N * p.n_classes);
    if (!b.c || !b.r || !b.o || !b.x || !b.dl)
        return report(CMIR_ENOMEM, "cnn bench setup", __LINE__);
    CK(cmir_cnn_register(b.c, b.o));
    fill_uniform(rng, b.x, (size_t)N * hw * hw * bands, 0.0f, 1.0f);
    fill_uniform(rng, b.dl, (size_t)N * p.n_classes, -1e-2f, 1e-2f);
    int rc = measure(cnn_step, &b, cnn_reset, min_s, 3, &b.step);
    if (rc)
        return rc;
    double R = b.step.reps, flop = 3.0 * cmir_cnn_flops(b.c) * N;
    img_s[0] = N / b.step.mean;
    img_s[1] = gflops(flop, b.step.mean);
    printf("  %-4s cmir_cnn step %8.1f ms (best %.1f): fwd %.1f, bwd %.1f, adam %.1f ms  "
           "%7.1f img/s  %6.1f GFLOP/s (3x fwd)",
           name, 1e3 * b.step.mean, 1e3 * b.step.best, 1e3 * b.fwd / R, 1e3 * b.bwd / R,
           1e3 * b.adam / R, N / b.step.mean, gflops(flop, b.step.mean));
    if (peak > 0)
        printf(" = %.2f of peak", gflops(flop, b.step.mean) / peak);
    printf("\n");
    fflush(stdout);
    cmir_optim_free(b.o);
    cmir_rng_free(b.r);
    cmir_cnn_free(b.c);
    free(b.x);
    free(b.dl);
    return 0;
}

/* Stage 0 (cmir_train -pretrain): one step on N PAN/MS pairs is a training
 * forward and backward of both CNNs around the symmetric InfoNCE loss and
 * one Adam step over both. */
typedef struct s0_bench {
    cmir_cnn *c[2];
    cmir_exec *ex;
    cmir_rng *r;
    cmir_optim *o;
    float *x[2], *dl, *z0, *dz[2];
    int n;
} s0_bench;

static int s0_step(void *ctx)
{
    s0_bench *b = ctx;
    CK(cmir_cnn_forward(b->c[0], b->ex, b->x[0], b->n, 1, b->r));
    memcpy(b->z0, cmir_cnn_features(b->c[0]), sizeof(float) * (size_t)b->n * CMIR_FEAT_DIM);
    CK(cmir_cnn_forward(b->c[1], b->ex, b->x[1], b->n, 1, b->r));
    memset(b->dz[0], 0, sizeof(float) * (size_t)b->n * CMIR_FEAT_DIM);
    memset(b->dz[1], 0, sizeof(float) * (size_t)b->n * CMIR_FEAT_DIM);
    cmir_tensor ta = cmir_tensor_2d(b->z0, b->n, CMIR_FEAT_DIM);
    cmir_tensor tb = cmir_tensor_2d(cmir_cnn_features(b->c[1]), b->n, CMIR_FEAT_DIM);
    cmir_tensor da = cmir_tensor_2d(b->dz[0], b->n, CMIR_FEAT_DIM), db = cmir_tensor_2d(b->dz[1], b->n, CMIR_FEAT_DIM);
    CK(cmir_infonce(&ta, &tb, 0.1f, 1.0f, NULL, &da, &db));
    CK(cmir_cnn_backward(b->c[0], b->ex, b->dl, b->dz[0]));
    CK(cmir_cnn_backward(b->c[1], b->ex, b->dl, b->dz[1]));
    CK(cmir_optim_step(b->o));
    return 0;
}

/* Prints stage 0's pairs/s and its time per image against stage 1's (ips:
 * stage 1 PAN and MS images/s of this run). */
static int stage0_bench_run(int N, cmir_exec *ex, cmir_rng *rng, double min_s, const double ips[2])
{
    s0_bench b;
    memset(&b, 0, sizeof b);
    static const int hw[2] = {256, 64}, bands[2] = {1, 4};
    b.ex = ex;
    b.n = N;
    b.r = cmir_rng_new(98);
    b.o = cmir_optim_new(cmir_optim_default_params());
    for (int k = 0; k < 2; k++) {
        cmir_cnn_params p = cmir_cnn_default_params();
        p.h = p.w = hw[k];
        p.bands = bands[k];
        b.c[k] = cmir_cnn_new(p, 7 + (uint64_t)k);
        b.x[k] = alloc_floats((size_t)N * hw[k] * hw[k] * bands[k]);
        b.dz[k] = alloc_floats((size_t)N * CMIR_FEAT_DIM);
        if (!b.c[k] || !b.x[k] || !b.dz[k])
            return report(CMIR_ENOMEM, "stage 0 bench setup", __LINE__);
        fill_uniform(rng, b.x[k], (size_t)N * hw[k] * hw[k] * bands[k], 0.0f, 1.0f);
        CK(cmir_cnn_register(b.c[k], b.o));
    }
    b.z0 = alloc_floats((size_t)N * CMIR_FEAT_DIM);
    b.dl = alloc_floats((size_t)N * cmir_cnn_get_params(b.c[0]).n_classes);
    if (!b.r || !b.o || !b.z0 || !b.dl)
        return report(CMIR_ENOMEM, "stage 0 bench setup", __LINE__);
    memset(b.dl, 0, sizeof(float) * (size_t)N * cmir_cnn_get_params(b.c[0]).n_classes);
    timing t;
    int rc = measure(s0_step, &b, NULL, min_s, 3, &t);
    if (rc)
        return rc;
    double pairs = N / t.mean, s1_per_pair = 1.0 / ips[0] + 1.0 / ips[1];
    printf("  stage 0 (PAN+MS pair, InfoNCE) step %8.1f ms (best %.1f)  %7.1f pairs/s; time per pair %.2f x "
           "stage 1's (one PAN + one MS image)\n",
           1e3 * t.mean, 1e3 * t.best, pairs, (1.0 / pairs) / s1_per_pair);
    fflush(stdout);
    cmir_optim_free(b.o);
    cmir_rng_free(b.r);
    for (int k = 0; k < 2; k++) {
        cmir_cnn_free(b.c[k]);
        free(b.x[k]);
        free(b.dz[k]);
    }
    free(b.z0);
    free(b.dl);
    return 0;
}

/* The bf16 peak and GEMM, then the cmir_cnn steps at fp32 and at
 * -precision bf16 interleaved (bench_nn_bf16.c), and the ratios. */
static int bf16_section(const options *o, int N, cmir_exec *ex, double peak)
{
    int T = cmir_exec_threads(ex), rc;
    printf("\n== bf16 (AVX512_BF16 vdpbf16ps, fp32 accumulation), %d thread(s) ==\n", T);
    if (!cmir_nn_bf16_available()) {
        printf("  no AVX512_BF16 on this CPU (or CMIR_NO_BF16 set): bf16 runs fp32; skipped\n");
        return 0;
    }
    double bpk = bench_bf16_peak(T, o->seconds);
    double bg = bench_bf16_gemm(T, 2048, o->seconds);
    printf("  bf16 peak (register loop) %8.1f GFLOP/s = %.2fx the sgemm peak %.1f\n", bpk,
           bpk / peak, peak);
    printf("  cmir__bgemm n=2048        %8.1f GFLOP/s = %.2f of the bf16 peak\n", bg, bg / bpk);
    double r[2][2] = {{0}};
    if ((rc = bench_bf16_layers(N, ex, o->seconds, bpk)))
        return rc;
    printf("  cmir_cnn steps, fp32 and bf16 interleaved (one step each per round):\n");
    if (o->do_pan && (rc = bench_bf16_ab("PAN", 256, 1, N, ex, o->seconds, bpk, r[0])))
        return rc;
    if (o->do_ms && (rc = bench_bf16_ab("MS", 64, 4, N, ex, o->seconds, bpk, r[1])))
        return rc;
    double bpk_end = bench_bf16_peak(T, o->seconds); /* the machine drifts: say how much */
    printf("  bf16 peak re-measured %.1f GFLOP/s (start %.1f)\n", bpk_end, bpk);
    for (int b = 0; b < 2; b++)
        if (r[b][0] > 0)
            printf("  %-4s step bf16/fp32 %.2fx (median of rounds; target 1.70x)\n", b ? "MS" : "PAN", r[b][0]);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                               */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static const char *const sh_names[3] = {"fwd", "bwd_w", "bwd_x"};
static const char *const sh_modes[3] = {"gflops_1t", "gflops_concurrent", "gflops_blas_threads"};

typedef struct totals {
    double flop, sec, ratio;
} totals;

static totals conv_totals(const branch *br, double peak)
{
    totals t = {0, 0, 0};
    for (int l = 0; l < br->nl; l++) {
        t.flop += br->L[l].ffwd + br->L[l].fbwd;
        t.sec += br->L[l].conv_f.best + br->L[l].conv_b.best;
    }
    t.ratio = gflops(t.flop, t.sec) / peak;
    return t;
}

static int write_json(const char *path, const options *o, const double *sq_gf, const int *sq_n,
                      int nsq, double peak, double peak_end, branch *const *brs, int nb)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_nn: cannot write %s\n", path);
        return CMIR_EIO;
    }
    fprintf(f, "{\n  \"threads\": %d, \"batch\": %d, \"min_seconds\": %g,\n", o->threads,
            o->batch, o->seconds);
    fprintf(f, "  \"openblas_corename\": ");
    json_str(f, openblas_get_corename());
    fprintf(f, ", \"openblas_config\": ");
    json_str(f, openblas_get_config());
    fprintf(f, ",\n  \"sgemm_square\": [");
    for (int i = 0; i < nsq; i++)
        fprintf(f, "%s{\"n\": %d, \"gflops\": %.3f}", i ? ", " : "", sq_n[i], sq_gf[i]);
    fprintf(f, "],\n  \"sgemm_peak_gflops\": %.3f, \"sgemm_peak_end_gflops\": %.3f,\n"
               "  \"branches\": [\n",
            peak, peak_end);
    for (int b = 0; b < nb; b++) {
        branch *br = brs[b];
        fprintf(f, "    {\"name\": \"%s\", \"layers\": [\n", br->name);
        for (int l = 0; l < br->nl; l++) {
            layer *L = &br->L[l];
            fprintf(f,
                    "      {\"name\": \"%s\", \"H\": %d, \"W\": %d, \"Cin\": %d, \"Cout\": %d, "
                    "\"group\": %d, \"with_dx\": %s,\n"
                    "       \"fwd_flop\": %.6e, \"bwd_flop\": %.6e, \"fwd_s\": %.6e, "
                    "\"bwd_s\": %.6e, \"fwd_gflops\": %.3f, \"bwd_gflops\": %.3f,\n"
                    "       \"fwd_ratio\": %.4f, \"bwd_ratio\": %.4f, \"gemm_only_fwd_s\": %.6e, "
                    "\"gemm_only_bwd_s\": %.6e,\n       \"gemm_shapes\": [",
                    L->d.name, L->d.H, L->d.W, L->d.Ci, L->d.Co, L->group,
                    L->first ? "false" : "true", L->ffwd, L->fbwd, L->conv_f.best,
                    L->conv_b.best, gflops(L->ffwd, L->conv_f.best),
                    gflops(L->fbwd, L->conv_b.best), gflops(L->ffwd, L->conv_f.best) / peak,
                    gflops(L->fbwd, L->conv_b.best) / peak, L->gemm_f.best, L->gemm_b.best);
            int ns = L->first ? 2 : 3;
            for (int s = 0; s < ns; s++) {
                const gemm_shape *sh = &L->sh[s];
                fprintf(f, "%s{\"gemm\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"ta\": %d, "
                           "\"tb\": %d",
                        s ? ", " : "", sh_names[s], sh->m, sh->n, sh->k, sh->ta, sh->tb);
                for (int m = 0; m < 3; m++)
                    fprintf(f, ", \"%s\": %.3f", sh_modes[m], L->sh_gf[s][m]);
                fputc('}', f);
            }
            fprintf(f, "]}%s\n", l + 1 < br->nl ? "," : "");
        }
        totals t = conv_totals(br, peak);
        double B = (double)br->x.shape[0];
        fprintf(f,
                "    ], \"conv_flop\": %.6e, \"conv_s\": %.6e, \"conv_gflops\": %.3f, "
                "\"conv_ratio\": %.4f,\n     \"train_step_s_mean\": %.6e, "
                "\"train_step_s_best\": %.6e, \"train_img_per_s\": %.3f, "
                "\"infer_img_per_s\": %.3f,\n     \"train_breakdown_s\": {",
                t.flop, t.sec, gflops(t.flop, t.sec), t.ratio, br->train.mean, br->train.best,
                B / br->train.mean, B / br->infer.mean);
        for (int c = 0; c < NCAT; c++)
            fprintf(f, "%s\"%s\": %.6e", c ? ", " : "", cat_names[c],
                    br->acc[c] / br->train.reps);
        fprintf(f, "}}%s\n", b + 1 < nb ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f)) {
        fprintf(stderr, "bench_nn: error writing %s\n", path);
        return CMIR_EIO;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_nn [-t THREADS] [-s SECONDS] [-b BATCH] [--branch pan|ms|both]\n"
            "                [--json FILE] [--cnn-only | --ab] [--help]\n"
            "  -t N        threads for libcmir and for the sgemm peak (default 2)\n"
            "  -s SECONDS  minimum time per measurement (default 1; GEMM shapes get half)\n"
            "  -b BATCH    batch size of the branches (default 64)\n"
            "  --branch B  which CMIR-NET branch to run (default both)\n"
            "  --json FILE also write the results as JSON\n"
            "  --cnn-only  only the sgemm peak and the cmir_cnn training steps\n"
            "  --ab        only the peaks and the fp32/bf16 cmir_cnn steps, interleaved\n"
            "  --profile P only the cmir_cnn steps at precision P (fp32|bf16), for perf\n"
            "Times OpenBLAS sgemm (square peak and the conv layers' GEMM shapes), libcmir's\n"
            "3x3 conv forward/backward per layer against that peak, and a whole branch\n"
            "training step (conv, lrelu, batchnorm, maxpool, dense, Adam).\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){2, 1.0, 64, NULL, 1, 1, 0, 0, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-t") && v) {
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > MAX_THREADS)
                goto bad;
            o->threads = (int)t;
            i++;
        } else if (!strcmp(a, "-s") && v) {
            double s = strtod(v, &end);
            if (*end || !(s > 0) || s > 3600)
                goto bad;
            o->seconds = s;
            i++;
        } else if (!strcmp(a, "-b") && v) {
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 4096)
                goto bad;
            o->batch = (int)b;
            i++;
        } else if (!strcmp(a, "--cnn-only")) {
            o->cnn_only = 1;
        } else if (!strcmp(a, "--ab")) {
            o->ab_only = 1;
        } else if (!strcmp(a, "--profile") && v) {
            cmir_precision pp;
            if (cmir_precision_parse(v, &pp))
                goto bad;
            o->profile = v;
            i++;
        } else if (!strcmp(a, "--json") && v) {
            o->json = v;
            i++;
        } else if (!strcmp(a, "--branch") && v) {
            o->do_pan = !strcmp(v, "pan") || !strcmp(v, "both");
            o->do_ms = !strcmp(v, "ms") || !strcmp(v, "both");
            if (!o->do_pan && !o->do_ms)
                goto bad;
            i++;
        } else {
            goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "bench_nn: bad or incomplete option '%s'\n", a);
        usage(stderr);
        return -1;
    }
    return 0;
}

static int run(const options *o)
{
    static const layer_def pan_defs[3] = {
        {"conv1", 256, 256, 1, 32, 1, {4, 0}},
        {"conv2", 64, 64, 32, 64, 1, {4, 0}},
        {"conv3", 16, 16, 64, 128, 1, {4, 0}},
    };
    static const layer_def ms_defs[3] = {
        {"conv1", 64, 64, 4, 32, 1, {2, 0}},
        {"conv2", 32, 32, 32, 64, 1, {2, 0}},
        {"conv3", 16, 16, 64, 128, 2, {2, 2}},
    };
    const int T = o->threads, N = o->batch;
    static branch pan, ms;
    branch *brs[2];
    int nb = 0;
    int rc;

    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = T;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_rng *rng = cmir_rng_new(12345);
    if (!ex || !rng)
        return report(CMIR_ENOMEM, "cmir_exec_new/cmir_rng_new", __LINE__);

    printf("bench_nn: libcmir %s, OpenBLAS %s (%s)\n", cmir_version(), openblas_get_corename(),
           openblas_get_config());
    printf("threads %d, batch %d, >= %.2f s per measurement (GEMM shapes %.2f s)\n\n", T, N,
           o->seconds, o->seconds / 2);
    fflush(stdout);
    if (o->profile) { /* the steps alone, for perf record (bench/perf_phases.sh) */
        double st[2];
        cmir_precision pp = CMIR_PRECISION_FP32;
        cmir_precision_parse(o->profile, &pp);
        cmir_nn_set_precision(pp);
        printf("== cmir_cnn training step at %s ==\n", o->profile);
        if ((o->do_pan && (rc = cnn_bench_run("PAN", 256, 1, N, ex, rng, o->seconds, 0.0, st))) ||
            (o->do_ms && (rc = cnn_bench_run("MS", 64, 4, N, ex, rng, o->seconds, 0.0, st))))
            return rc;
        cmir_nn_set_precision(CMIR_PRECISION_FP32);
        return 0;
    }

    /* ---- allocate everything up front ---- */
    if (o->do_pan && !o->cnn_only) {
        if ((rc = branch_init(&pan, "PAN", 256, 1, pan_defs, 3, N, ex, rng)))
            return rc;
        brs[nb++] = &pan;
    }
    if (o->do_ms && !o->cnn_only) {
        if ((rc = branch_init(&ms, "MS", 64, 4, ms_defs, 3, N, ex, rng)))
            return rc;
        brs[nb++] = &ms;
    }
    static const int sq_n[2] = {1024, 2048};
    /* GEMM operands, per thread: large enough for the square peak and every
     * conv shape; the GEMM-only replay uses A as im2col buffer, C as dW. */
    size_t maxA = (size_t)2048 * 2048, maxB = maxA, maxC = maxA;
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < brs[b]->nl; l++)
            for (int s = 0; s < 3; s++) {
                const gemm_shape *sh = &brs[b]->L[l].sh[s];
                if (gemm_a_elems(sh) > maxA)
                    maxA = gemm_a_elems(sh);
                if (gemm_b_elems(sh) > maxB)
                    maxB = gemm_b_elems(sh);
                if (gemm_c_elems(sh) > maxC)
                    maxC = gemm_c_elems(sh);
            }
    gemm_ctx *g = calloc(1, sizeof *g);
    if (!g || !(g->B = alloc_floats(maxB)))
        return CMIR_ENOMEM;
    g->threads = T;
    fill_uniform(rng, g->B, maxB, -0.5f, 0.5f);
    for (int t = 0; t < T; t++) {
        if (!(g->A[t] = alloc_floats(maxA)) || !(g->C[t] = alloc_floats(maxC)))
            return CMIR_ENOMEM;
        fill_uniform(rng, g->A[t], maxA, -0.5f, 0.5f);
    }

    /* ---- 1a. sgemm peak, T OpenBLAS threads ---- */
    double sq_gf[2], peak = 0.0;
    printf("== OpenBLAS sgemm, square, %d thread(s) ==\n", T);
    for (int i = 0; i < 2; i++) {
        int n = sq_n[i];
        g->s = (gemm_shape){n, n, n, 0, 0, 0.0f};
        if ((rc = gemm_rate(g, GM_BLAS_T, o->seconds, &sq_gf[i])))
            return rc;
        if (sq_gf[i] > peak)
            peak = sq_gf[i];
        printf("  n=%-5d %8.1f GFLOP/s\n", n, sq_gf[i]);
        fflush(stdout);
    }
    printf("  peak    %8.1f GFLOP/s  (the reference for every ratio below)\n\n", peak);
    if (o->ab_only) {
        if ((rc = bf16_section(o, N, ex, peak)))
            return rc;
        goto peak_end;
    }
    if (o->cnn_only)
        goto cnn_section;

    /* ---- 1b. sgemm at the conv GEMM shapes ---- */
    printf("== OpenBLAS sgemm at the conv layers' GEMM shapes (row-major) ==\n"
           "   fwd: rows x Cout, inner 9Cin; bwd_w: 9Cin x Cout, inner rows (A^T); bwd_x: rows x 9Cin,\n"
           "   inner Cout (B^T); rows = group*H*W. 1t: one thread; xT: %d concurrent 1-thread calls\n"
           "   (how conv.c runs them), aggregate; blasT: one call on %d OpenBLAS threads.\n",
           T, T);
    printf("  %-10s %-5s %6s %5s %6s %2s %3s %8s %8s %8s %7s\n", "layer", "gemm", "M", "N", "K",
           "op", "grp", "1t GF/s", "xT GF/s", "blasT", "xT/peak");
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < brs[b]->nl; l++) {
            layer *L = &brs[b]->L[l];
            int ns = L->first ? 2 : 3;
            for (int s = 0; s < ns; s++) {
                /* Reuse an identical shape measured already (MS conv3 = PAN conv3). */
                const double *prev = NULL;
                for (int b2 = 0; b2 <= b && !prev; b2++)
                    for (int l2 = 0; l2 < brs[b2]->nl && !prev; l2++) {
                        layer *P = &brs[b2]->L[l2];
                        if (P == L)
                            break;
                        for (int s2 = 0; s2 < 3; s2++)
                            if (!memcmp(&P->sh[s2], &L->sh[s], sizeof(gemm_shape)) &&
                                P->sh_gf[s2][0] > 0)
                                prev = P->sh_gf[s2];
                    }
                if (prev) {
                    memcpy(L->sh_gf[s], prev, sizeof L->sh_gf[s]);
                } else {
                    g->s = L->sh[s];
                    for (int m = 0; m < 3; m++)
                        if ((rc = gemm_rate(g, m, o->seconds / 2, &L->sh_gf[s][m])))
                            return rc;
                }
                const gemm_shape *sh = &L->sh[s];
                char nm[32];
                snprintf(nm, sizeof nm, "%s %s", brs[b]->name, L->d.name);
                printf("  %-10s %-5s %6d %5d %6d %c%c %3d %8.1f %8.1f %8.1f %7.2f%s\n", nm,
                       sh_names[s], sh->m, sh->n, sh->k, sh->ta ? 'T' : 'N', sh->tb ? 'T' : 'N',
                       L->group, L->sh_gf[s][0], L->sh_gf[s][1], L->sh_gf[s][2],
                       L->sh_gf[s][1] / peak, prev ? "  (same shape as above)" : "");
                fflush(stdout);
            }
        }
    printf("\n");

    /* ---- 2. conv layers: library vs its own GEMMs ---- */
    printf("== libcmir conv3x3, batch %d, %d thread(s); ratio = GFLOP/s / sgemm peak %.1f ==\n"
           "   gemm-only = the sgemm calls of conv.c's im2col+GEMM path (same shapes, split,\n"
           "   threads) without im2col/col2im/bias/reductions; other = conv time - gemm-only time\n"
           "   (negative where conv.c's direct AVX-512 kernels beat that GEMM floor).\n",
           N, T, peak);
    printf("  %-10s %-12s %3s %8s %7s %5s | %8s %7s %5s | %8s %8s | %6s %6s\n", "layer",
           "input", "grp", "fwd ms", "GF/s", "ratio", "bwd ms", "GF/s", "ratio", "gemm fwd",
           "gemm bwd", "oth f%", "oth b%");
    float *col[MAX_THREADS], *dwp[MAX_THREADS];
    for (int t = 0; t < T; t++) {
        col[t] = g->A[t];
        dwp[t] = g->C[t];
    }
    for (int b = 0; b < nb; b++) {
        branch *br = brs[b];
        branch_randomise(br, rng);
        for (int l = 0; l < br->nl; l++) {
            layer *L = &br->L[l];
            conv_ctx cc = {L, ex, 0, col, dwp};
            if ((rc = measure(conv_fwd_only, &cc, NULL, o->seconds, 3, &L->conv_f)) ||
                (rc = measure(conv_bwd_only, &cc, NULL, o->seconds, 3, &L->conv_b)) ||
                (rc = measure(conv_replay, &cc, NULL, o->seconds / 2, 3, &L->gemm_f)))
                return rc;
            cc.backward = 1;
            if ((rc = measure(conv_replay, &cc, NULL, o->seconds / 2, 3, &L->gemm_b)))
                return rc;
            char nm[32], in[32];
            snprintf(nm, sizeof nm, "%s %s", br->name, L->d.name);
            snprintf(in, sizeof in, "%dx%dx%d>%d", L->d.H, L->d.W, L->d.Ci, L->d.Co);
            double gf_f = gflops(L->ffwd, L->conv_f.best), gf_b = gflops(L->fbwd, L->conv_b.best);
            printf("  %-10s %-12s %3d %8.2f %7.1f %5.2f | %8.2f %7.1f %5.2f | %8.2f %8.2f | "
                   "%5.0f%% %5.0f%%%s\n",
                   nm, in, L->group, 1e3 * L->conv_f.best, gf_f, gf_f / peak,
                   1e3 * L->conv_b.best, gf_b, gf_b / peak, 1e3 * L->gemm_f.best,
                   1e3 * L->gemm_b.best, 100.0 * (1.0 - L->gemm_f.best / L->conv_f.best),
                   100.0 * (1.0 - L->gemm_b.best / L->conv_b.best),
                   L->first ? "  (bwd: no dx)" : "");
            fflush(stdout);
        }
        totals t = conv_totals(br, peak);
        double gsec = 0;
        for (int l = 0; l < br->nl; l++)
            gsec += br->L[l].gemm_f.best + br->L[l].gemm_b.best;
        printf("  %-10s conv fwd+bwd %.1f GFLOP in %.1f ms = %.1f GFLOP/s, ratio %.2f "
               "(gemm-only %.1f ms = %.1f GFLOP/s, ratio %.2f)\n",
               br->name, t.flop * 1e-9, t.sec * 1e3, gflops(t.flop, t.sec), t.ratio, gsec * 1e3,
               gflops(t.flop, gsec), gflops(t.flop, gsec) / peak);
    }
    printf("\n");

    /* ---- 3. whole branch through the separate kernels (reference) ---- */
    printf("== branch training step through the separate kernels (conv+lrelu+bn+maxpool, dense\n"
           "   2048>128, Adam), batch %d; cmir_cnn (section below, what training runs) uses the\n"
           "   fused block kernels instead ==\n",
           N);
    for (int b = 0; b < nb; b++) {
        branch *br = brs[b];
        if ((rc = measure(branch_infer_step, br, NULL, o->seconds / 2, 3, &br->infer)) ||
            (rc = measure(branch_train_step, br, branch_reset_acc, o->seconds, 3, &br->train)))
            return rc;
        totals t = conv_totals(br, peak);
        double dense = 3 * 2.0 * N * br->feat.shape[1] * 128;
        printf("  %-4s train %8.1f ms/step (best %.1f)  %7.1f img/s  %6.1f GFLOP/s  | infer "
               "%7.1f img/s\n",
               br->name, 1e3 * br->train.mean, 1e3 * br->train.best, N / br->train.mean,
               gflops(t.flop + dense, br->train.mean), N / br->infer.mean);
        printf("       per step:");
        for (int c = 0; c < NCAT; c++)
            printf(" %s %.1f ms%s", cat_names[c], 1e3 * br->acc[c] / br->train.reps,
                   c + 1 < NCAT ? "," : "\n");
        fflush(stdout);
    }

    /* ---- 4. the stage-1 network through cmir_cnn_* (what training runs) ---- */
cnn_section:
    printf("\n== cmir_cnn training step (forward, backward, Adam), batch %d, %d thread(s) ==\n",
           N, T);
    double st[2][2][2] = {{{0}}}; /* [fp32, bf16][PAN, MS][img/s, GFLOP/s] */
    if (o->do_pan && (rc = cnn_bench_run("PAN", 256, 1, N, ex, rng, o->seconds, peak, st[0][0])))
        return rc;
    if (o->do_ms && (rc = cnn_bench_run("MS", 64, 4, N, ex, rng, o->seconds, peak, st[0][1])))
        return rc;
    const double ips[2] = {st[0][0][0], st[0][1][0]};
    if (o->do_pan && o->do_ms && (rc = stage0_bench_run(N, ex, rng, o->seconds, ips)))
        return rc;
    if ((rc = bf16_section(o, N, ex, peak)))
        return rc;

    /* ---- the peak again: these machines drift; say how much ---- */
peak_end:;
    double peak_end = 0.0;
    for (int i = 0; i < 2; i++) {
        double gf;
        g->s = (gemm_shape){sq_n[i], sq_n[i], sq_n[i], 0, 0, 0.0f};
        if ((rc = gemm_rate(g, GM_BLAS_T, o->seconds / 2, &gf)))
            return rc;
        if (gf > peak_end)
            peak_end = gf;
    }
    double drift = peak_end / peak - 1.0;
    printf("sgemm peak re-measured at the end: %.1f GFLOP/s (start %.1f, %+.0f%%)%s\n\n",
           peak_end, peak, 100.0 * drift,
           drift < -0.15 || drift > 0.15 ? "  WARNING: machine speed drifted, rerun" : "");

    if (!o->ab_only) {
        printf("conv fwd+bwd / sgemm peak:");
        for (int b = 0; b < nb; b++)
            printf("%s %s %.2f", b ? "," : "", brs[b]->name, conv_totals(brs[b], peak).ratio);
        printf(" (target >= 0.60)\n");
    }
    fflush(stdout);

    if (o->json && (rc = write_json(o->json, o, sq_gf, sq_n, 2, peak, peak_end, brs, nb)))
        return rc;

    cmir_rng_free(rng);
    cmir_exec_free(ex);
    /* Buffers and optimisers are released at exit. */
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return 2;
    return run(&o) ? 1 : 0;
}
