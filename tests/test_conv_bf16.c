/* Tests of the bf16 direct 3x3 convolution kernels (nn/conv_bf16.c): the
 * forward, dx and dW/db of every layer shape the stage-1 CNN uses and of
 * odd sizes against float64 loops within the bf16 error bound, the forced
 * fallback bit-equal to fp32, determinism, and a cmir_cnn training step at
 * bf16 (fused conv/batch-norm/pool kernels) near the fp32 one. */
#include <math.h>
#include <string.h>
#include "cmir/model.h"
#include "cmir/nn.h"
#include "nn/fused_internal.h" /* cmir__bf16_force_off, cmir__fused_generic, pairs */
#include "test_util.h"
#include "bf16_test.h"

static cmir_exec *ex;

typedef struct shape {
    int n, h, w, ci, co;
} shape;

typedef struct run {
    float *y, *dx, *dW, *db;
} run;

static const float *gx, *gW, *gb, *gdy;

static run conv(shape s)
{
    size_t ny = (size_t)s.n * s.h * s.w * s.co, nx = (size_t)s.n * s.h * s.w * s.ci;
    run r = {calloc(ny, 4), calloc(nx, 4), calloc((size_t)9 * s.ci * s.co, 4), calloc(s.co, 4)};
    cmir_tensor x = cmir_tensor_4d((float *)gx, s.n, s.h, s.w, s.ci);
    cmir_tensor y = cmir_tensor_4d(r.y, s.n, s.h, s.w, s.co);
    cmir_tensor dy = cmir_tensor_4d((float *)gdy, s.n, s.h, s.w, s.co);
    cmir_tensor dx = cmir_tensor_4d(r.dx, s.n, s.h, s.w, s.ci);
    ASSERT_OK(cmir_conv3x3_forward(ex, &x, gW, gb, &y));
    ASSERT_OK(cmir_conv3x3_backward(ex, &x, gW, &dy, &dx, r.dW, r.db));
    return r;
}

static void run_free(run *r) { free(r->y), free(r->dx), free(r->dW), free(r->db); }

static int run_same(const run *a, const run *b, shape s)
{
    size_t ny = (size_t)s.n * s.h * s.w * s.co, nx = (size_t)s.n * s.h * s.w * s.ci;
    return !memcmp(a->y, b->y, ny * 4) && !memcmp(a->dx, b->dx, nx * 4) &&
           !memcmp(a->dW, b->dW, (size_t)9 * s.ci * s.co * 4) && !memcmp(a->db, b->db, s.co * 4);
}

static double at(const float *t, shape s, int c, int n, int y, int x, int k)
{
    return (y < 0 || y >= s.h || x < 0 || x >= s.w) ? 0.0
                                                     : t[(((size_t)n * s.h + y) * s.w + x) * c + k];
}

/* Counts elements of v outside bound(k, sum |terms|) of the float64 value. */
static int bad_count(const char *what, shape s, float v, double ref, double ab, int k, int *bad)
{
    if (!(fabs(v - ref) <= bound(k, ab)) && (*bad)++ < 3)
        fprintf(stderr, "  %dx%dx%dx%d->%d %s: %g vs %g (tol %g)\n", s.n, s.h, s.w, s.ci, s.co,
                what, v, ref, bound(k, ab));
    return *bad;
}

static void check(shape s, const run *r)
{
    int bad = 0;
    for (int n = 0; n < s.n; n++)
        for (int y = 0; y < s.h; y++)
            for (int x = 0; x < s.w; x++) {
                for (int o = 0; o < s.co; o++) { /* y = conv(x, W) + b */
                    double v = gb[o], a = fabs(gb[o]);
                    for (int t = 0; t < 9; t++)
                        for (int c = 0; c < s.ci; c++) {
                            double p = at(gx, s, s.ci, n, y + t / 3 - 1, x + t % 3 - 1, c) *
                                       gW[(t * s.ci + c) * s.co + o];
                            v += p, a += fabs(p);
                        }
                    bad_count("y", s, r->y[(((size_t)n * s.h + y) * s.w + x) * s.co + o], v, a,
                              9 * s.ci + 1, &bad);
                }
                for (int c = 0; c < s.ci; c++) { /* dx = conv^T(dy, W) */
                    double v = 0, a = 0;
                    for (int t = 0; t < 9; t++)
                        for (int o = 0; o < s.co; o++) {
                            double p = at(gdy, s, s.co, n, y - t / 3 + 1, x - t % 3 + 1, o) *
                                       gW[(t * s.ci + c) * s.co + o];
                            v += p, a += fabs(p);
                        }
                    bad_count("dx", s, r->dx[(((size_t)n * s.h + y) * s.w + x) * s.ci + c], v, a,
                              9 * s.co, &bad);
                }
            }
    for (int t = 0; t < 9; t++) /* dW = x^T dy over pixels */
        for (int c = 0; c < s.ci; c++)
            for (int o = 0; o < s.co; o++) {
                double v = 0, a = 0;
                for (int n = 0; n < s.n; n++)
                    for (int y = 0; y < s.h; y++)
                        for (int x = 0; x < s.w; x++) {
                            double p = at(gx, s, s.ci, n, y + t / 3 - 1, x + t % 3 - 1, c) *
                                       at(gdy, s, s.co, n, y, x, o);
                            v += p, a += fabs(p);
                        }
                bad_count("dW", s, r->dW[(t * s.ci + c) * s.co + o], v, a, s.n * s.h * s.w,
                          &bad);
            }
    for (int o = 0; o < s.co; o++) { /* db: float32 sums */
        double v = 0, a = 0;
        for (size_t i = 0; i < (size_t)s.n * s.h * s.w; i++)
            v += gdy[i * s.co + o], a += fabs(gdy[i * s.co + o]);
        bad_count("db", s, r->db[o], v, a, 0, &bad);
    }
    ASSERT_EQ_INT(bad, 0);
}

/* The CNN's layers (PAN 1->32, MS 4->32, 32->64, 64->128; small images)
 * and odd sizes (odd widths leave half a pixel pair, odd channel counts
 * half a channel pair, > 64 output channels a second register block). */
static const shape shapes[] = {
    {2, 8, 8, 1, 32},  {2, 8, 8, 4, 32},   {2, 6, 10, 32, 64}, {2, 5, 6, 64, 128},
    {3, 7, 9, 3, 5},   {3, 9, 11, 17, 21}, {1, 5, 13, 2, 67},  {2, 1, 1, 6, 16},
    {2, 3, 2, 33, 17}, {1, 4, 27, 8, 24},  {1, 7, 64, 3, 64}, /* dW bands of 4 rows, then 3 */
};

static void with_inputs(shape s, void (*fn)(shape))
{
    size_t nx = (size_t)s.n * s.h * s.w * s.ci, ny = (size_t)s.n * s.h * s.w * s.co;
    float *x = rnd(nx, 1.0f), *W = rnd((size_t)9 * s.ci * s.co, 0.5f), *b = rnd(s.co, 0.5f),
          *dy = rnd(ny, 1.0f);
    gx = x, gW = W, gb = b, gdy = dy;
    fn(s);
    free(x), free(W), free(b), free(dy);
}

static void kernels_case(shape s)
{
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_BF16));
    run r = conv(s), r2 = conv(s);
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    run f = conv(s);
    check(s, &r);
    ASSERT_TRUE(run_same(&r, &r2, s)); /* deterministic */
    size_t ny = (size_t)s.n * s.h * s.w * s.co;
    if (s.ci >= CMIR__BF16_MIN_CI) /* the bf16 kernels really ran */
        ASSERT_TRUE(memcmp(r.y, f.y, ny * 4) != 0);
    ASSERT_TRUE(memcmp(r.dW, f.dW, (size_t)9 * s.ci * s.co * 4) != 0);
    run_free(&r), run_free(&r2), run_free(&f);
}

static void test_kernels_vs_naive(void)
{
    if (!cmir_nn_bf16_available())
        SKIP("no AVX512_BF16 on this CPU (or CMIR_NO_BF16 set)");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        with_inputs(shapes[i], kernels_case);
}

static void fallback_case(shape s)
{
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    run f = conv(s);
    cmir__bf16_force_off = 1;
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_BF16));
    run g = conv(s);
    cmir__bf16_force_off = 0;
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    ASSERT_TRUE(run_same(&f, &g, s));
    run_free(&f), run_free(&g);
}

/* bf16 requested, hardware switched off: the float32 kernels, bit for bit. */
static void test_fallback_exact(void)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        with_inputs(shapes[i], fallback_case);
}

/* The fused block backward at bf16 (conv -> leaky ReLU -> batch norm ->
 * max-pool, dy made row by row): with dy written straight into the bf16
 * kernels' pairs (fused_bf16.c, channel counts of 32s, even window and
 * width) dW and dx are bit-identical to the path through float rows
 * (cmir__fused_generic), db equal within float rounding (other order). */
typedef struct blk {
    int n, h, w, ci, co, k, withdx;
} blk;

static void block_backward(blk s, int generic, float *dW, float *db, float *dx)
{
    const int Ho = s.h / s.k, Wo = s.w / s.k;
    size_t nx = (size_t)s.n * s.h * s.w * s.ci, np = (size_t)s.n * Ho * Wo * s.co;
    cmir_rng *r = cmir_rng_new(7);
    cmir_rng *saved = rng;
    rng = r;
    float *x = rnd(nx, 1.0f), *W = rnd((size_t)9 * s.ci * s.co, 0.5f), *b = rnd(s.co, 0.1f);
    float *gamma = rnd(s.co, 1.0f), *beta = rnd(s.co, 0.5f), *dp = rnd(np, 1.0f);
    rng = saved;
    float *rm = calloc(s.co, 4), *rv = calloc(s.co, 4), *sm = calloc(s.co, 4),
          *si = calloc(s.co, 4), *p = calloc(np, 4), *xw = calloc(np, 4), *dg = calloc(s.co, 4),
          *dbt = calloc(s.co, 4);
    int32_t *arg = calloc(np, 4);
    cmir_tensor tx = cmir_tensor_4d(x, s.n, s.h, s.w, s.ci), tp = cmir_tensor_4d(p, s.n, Ho, Wo, s.co);
    cmir_tensor tdp = cmir_tensor_4d(dp, s.n, Ho, Wo, s.co), tdx = cmir_tensor_4d(dx, s.n, s.h, s.w, s.ci);
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_BF16));
    ASSERT_OK(cmir__conv3x3_bn_maxpool_forward(ex, &tx, W, b, 0.01f, cmir_bn_default_params(), 1,
                                              s.k, gamma, beta, rm, rv, sm, si, NULL, &tp, arg, xw));
    cmir__fused_generic = generic;
    ASSERT_OK(cmir__conv3x3_bn_maxpool_backward(ex, 0.01f, s.k, NULL, gamma, sm, si, &tdp, arg, xw,
                                               &tx, W, b, s.withdx ? &tdx : NULL, dW, db, dg, dbt));
    cmir__fused_generic = 0;
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    free(x), free(W), free(b), free(gamma), free(beta), free(dp), free(rm), free(rv), free(sm);
    free(si), free(p), free(xw), free(dg), free(dbt), free(arg);
    cmir_rng_free(r);
}

static void test_block_pairs(void)
{
    if (!cmir_nn_bf16_available())
        SKIP("no AVX512_BF16 on this CPU (or CMIR_NO_BF16 set)");
    static const blk shapes_b[] = {
        {2, 16, 32, 1, 32, 4, 0}, /* PAN block 1: one channel, remade rows */
        {2, 12, 16, 4, 32, 2, 1}, /* MS block 1 */
        {3, 8, 8, 32, 64, 4, 1},  /* block 2: dx from dy's channel pairs */
        {2, 6, 10, 64, 128, 2, 1}, /* block 3: two register blocks */
        {2, 9, 14, 3, 64, 4, 1},  /* windows leave a last row and columns */
        {2, 8, 10, 3, 48, 2, 1},  /* 48 channels: the float rows (no pairs) */
    };
    for (size_t i = 0; i < sizeof shapes_b / sizeof *shapes_b; i++) {
        blk s = shapes_b[i];
        size_t kc = (size_t)9 * s.ci * s.co, nx = (size_t)s.n * s.h * s.w * s.ci;
        float *dW0 = calloc(kc, 4), *dW1 = calloc(kc, 4), *db0 = calloc(s.co, 4),
              *db1 = calloc(s.co, 4), *dx0 = calloc(nx, 4), *dx1 = calloc(nx, 4);
        fjob j = {.C = s.co, .k = s.k, .W = s.w};
        ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_BF16));
        ASSERT_EQ_INT(cmir__bn_dy_pairs_ok(&j), s.co % 32 == 0); /* the path under test ran */
        ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
        block_backward(s, 0, dW0, db0, dx0);
        block_backward(s, 1, dW1, db1, dx1);
        ASSERT_TRUE(memcmp(dW0, dW1, kc * 4) == 0);
        ASSERT_TRUE(memcmp(dx0, dx1, nx * 4) == 0);
        double dmax = 0;
        for (int c = 0; c < s.co; c++)
            dmax = fmax(dmax, fabs(db1[c]));
        for (int c = 0; c < s.co; c++)
            ASSERT_NEAR(db0[c], db1[c], 1e-5 * (dmax + 1.0));
        free(dW0), free(dW1), free(db0), free(db1), free(dx0), free(dx1);
    }
}

/* The block's stored conv output held in bf16 (forward_bf / backward_bf):
 * against the same block with a stored as floats at the same precision,
 *  - the statistics are bit-identical (those of the float values) and a
 *    holds the round-to-nearest-even bf16 of the float output;
 *  - y, argmax, xhat are batch norm + max-pool of the bf16 values, by a
 *    scalar loop (first maximum wins);
 *  - the backward from the bf16 a is bit-identical to the float path given
 *    a tensor of those values widened (dx, dW, db, dgamma, dbeta);
 * and where the path may not run (no AVX512_BF16, fp32, a width or window
 * not even, channels not in 32s) *a_bf16 comes back 0 and a holds floats. */
static void abf_case(blk s)
{
    const int Ho = s.h / s.k, Wo = s.w / s.k;
    size_t nx = (size_t)s.n * s.h * s.w * s.ci, na = (size_t)s.n * s.h * s.w * s.co,
           np = (size_t)s.n * Ho * Wo * s.co, kc = (size_t)9 * s.ci * s.co;
    float *x = rnd(nx, 1.0f), *W = rnd(kc, 0.5f), *b = rnd(s.co, 0.1f), *ga = rnd(s.co, 1.0f),
          *be = rnd(s.co, 0.5f), *dp = rnd(np, 1.0f);
    float *a[2], *y[2], *xw[2], *sm[2], *si[2], *rm[2], *rv[2], *dx[3], *dW[3], *db[3], *dg[3],
        *dbt[3];
    int32_t *arg[2];
    unsigned used[2] = {CMIR__BF_A, 0};
    cmir_tensor tx = cmir_tensor_4d(x, s.n, s.h, s.w, s.ci);
    cmir_tensor tdp = cmir_tensor_4d(dp, s.n, Ho, Wo, s.co);
    for (int v = 0; v < 2; v++) { /* v 0: bf16 a allowed, 1: floats */
        a[v] = calloc(na, 4), y[v] = calloc(np, 4), xw[v] = calloc(np, 4);
        sm[v] = calloc(s.co, 4), si[v] = calloc(s.co, 4), rm[v] = calloc(s.co, 4);
        rv[v] = calloc(s.co, 4), arg[v] = calloc(np, 4);
        cmir_tensor ta = cmir_tensor_4d(a[v], s.n, s.h, s.w, s.co);
        cmir_tensor ty = cmir_tensor_4d(y[v], s.n, Ho, Wo, s.co);
        ASSERT_OK(cmir__conv3x3_bn_maxpool_forward_bf(
            ex, &tx, W, b, 0.01f, cmir_bn_default_params(), 1, s.k, ga, be, rm[v], rv[v], sm[v],
            si[v], &ta, &ty, arg[v], xw[v], &used[v]));
    }
    const int expect = cmir__bn_abf_ok(s.co, s.k, s.w);
    ASSERT_EQ_INT((int)used[0], expect ? (int)CMIR__BF_A : 0);
    ASSERT_EQ_INT((int)used[1], 0);
    ASSERT_TRUE(memcmp(sm[0], sm[1], s.co * 4) == 0 && memcmp(si[0], si[1], s.co * 4) == 0);
    float *aw = calloc(na, 4); /* the values a[0] holds, as floats */
    for (size_t i = 0; i < na; i++)
        aw[i] = expect ? cmir__bf2f(((const uint16_t *)a[0])[i]) : a[0][i];
    size_t bad = 0;
    for (size_t i = 0; i < na; i++)
        bad += aw[i] != (expect ? cmir__bf2f(cmir__f2bf(a[1][i])) : a[1][i]);
    ASSERT_EQ_INT((int)bad, 0);
    for (size_t o = 0; o < np; o++) { /* the pooling of aw, in the kernels' operations */
        const int c = (int)(o % s.co);
        const size_t win = o / s.co, n = win / ((size_t)Ho * Wo);
        const int oy = (int)(win / Wo % Ho), ox = (int)(win % Wo);
        float best = 0, bxh = 0;
        int32_t barg = 0;
        for (int d = 0; d < s.k * s.k; d++) {
            size_t px = ((size_t)oy * s.k + d / s.k) * s.w + (size_t)ox * s.k + d % s.k;
            int32_t off = (int32_t)(px * s.co + c);
            float xh = (aw[n * s.h * s.w * s.co + off] - sm[0][c]) * si[0][c];
            float t = xh * ga[c], val = t + be[c];
            if (d == 0 || val > best)
                best = val, bxh = xh, barg = off;
        }
        bad += y[0][o] != best || xw[0][o] != bxh || arg[0][o] != barg;
    }
    ASSERT_EQ_INT((int)bad, 0);
    cmir_tensor taw = cmir_tensor_4d(aw, s.n, s.h, s.w, s.co);
    for (int v = 0; v < 2; v++) { /* v 0: a[0] as stored; 1: aw as floats */
        dx[v] = calloc(nx, 4), dW[v] = calloc(kc, 4), db[v] = calloc(s.co, 4);
        dg[v] = calloc(s.co, 4), dbt[v] = calloc(s.co, 4);
        cmir_tensor ta0 = cmir_tensor_4d(a[0], s.n, s.h, s.w, s.co);
        cmir_tensor tdx = cmir_tensor_4d(dx[v], s.n, s.h, s.w, s.ci);
        ASSERT_OK(cmir__conv3x3_bn_maxpool_backward_bf(
            ex, 0.01f, s.k, v ? &taw : &ta0, ga, sm[0], si[0], &tdp, arg[0], xw[0], &tx, W, b,
            &tdx, dW[v], db[v], dg[v], dbt[v], v ? 0 : used[0]));
    }
    ASSERT_TRUE(memcmp(dx[0], dx[1], nx * 4) == 0 && memcmp(dW[0], dW[1], kc * 4) == 0);
    ASSERT_TRUE(memcmp(db[0], db[1], s.co * 4) == 0 && memcmp(dg[0], dg[1], s.co * 4) == 0 &&
                memcmp(dbt[0], dbt[1], s.co * 4) == 0);
    free(x), free(W), free(b), free(ga), free(be), free(dp), free(aw);
    for (int v = 0; v < 2; v++) {
        free(a[v]), free(y[v]), free(xw[v]), free(sm[v]), free(si[v]), free(rm[v]), free(rv[v]);
        free(arg[v]), free(dx[v]), free(dW[v]), free(db[v]), free(dg[v]), free(dbt[v]);
    }
}

static void test_stored_bf16(void)
{
    static const blk shapes_a[] = {
        {2, 12, 16, 4, 32, 2, 1},  /* MS block 1 */
        {3, 8, 8, 32, 64, 4, 1},   /* block 2 */
        {2, 6, 10, 64, 128, 2, 1}, /* block 3: two register blocks */
        {2, 9, 14, 3, 64, 4, 1},   /* windows leave a last row and columns */
        {2, 8, 10, 3, 48, 2, 1},   /* 48 channels: floats */
        {2, 8, 9, 3, 32, 2, 1},    /* odd width: floats */
    };
    const int hw = cmir_nn_bf16_available();
    for (int pass = 0; pass < 2 + hw; pass++) { /* fp32; bf16 forced off; bf16 */
        ASSERT_OK(cmir_nn_set_precision(pass ? CMIR_PRECISION_BF16 : CMIR_PRECISION_FP32));
        cmir__bf16_force_off = pass == 1;
        for (size_t i = 0; i < sizeof shapes_a / sizeof *shapes_a; i++)
            abf_case(shapes_a[i]);
        cmir__bf16_force_off = 0;
    }
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    if (!hw)
        SKIP("no AVX512_BF16 on this CPU (or CMIR_NO_BF16 set): only the fallback ran");
}

/* Two blocks as cmir_cnn chains them, with the first block's pooled y
 * held in bf16 (CMIR__BF_Y) and taken so by the second (CMIR__BF_X), or
 * both in float32: y holds the bf16 of the float y, and everything of the
 * second block, forward and backward, is bit-identical (its bf16 kernels
 * round x so anyway). Blocks 1: remade (one channel) or stored. */
typedef struct chain {
    float *y1, *a2, *y2, *xw2, *sm2, *si2, *dx, *dW, *db, *dg, *dbt;
    int32_t *arg2;
} chain;

static void chain_run(blk s, int ci1, unsigned want, chain *o, unsigned *got)
{
    const int H2 = s.h / s.k, Wd2 = s.w / s.k, Ho = H2 / s.k, Wo = Wd2 / s.k;
    size_t nx = (size_t)s.n * s.h * s.w * ci1, n1 = (size_t)s.n * H2 * Wd2 * s.ci,
           na = (size_t)s.n * H2 * Wd2 * s.co, np = (size_t)s.n * Ho * Wo * s.co;
    size_t k1 = (size_t)9 * ci1 * s.ci, k2 = (size_t)9 * s.ci * s.co;
    cmir_rng *r = cmir_rng_new(11), *saved = rng;
    rng = r;
    float *x = rnd(nx, 1.0f), *W1 = rnd(k1, 0.5f), *b1 = rnd(s.ci, 0.1f), *g1 = rnd(s.ci, 1.0f),
          *be1 = rnd(s.ci, 0.5f), *W2 = rnd(k2, 0.3f), *b2 = rnd(s.co, 0.1f),
          *g2 = rnd(s.co, 1.0f), *be2 = rnd(s.co, 0.5f), *dp = rnd(np, 1.0f);
    rng = saved;
    cmir_rng_free(r);
    float *a1 = ci1 > 2 ? calloc((size_t)s.n * s.h * s.w * s.ci, 4) : NULL;
    float *st = calloc(4 * (size_t)s.co, 4), *xw1 = calloc(n1, 4);
    int32_t *arg1 = calloc(n1, 4);
    o->y1 = calloc(n1, 4), o->a2 = calloc(na, 4), o->y2 = calloc(np, 4), o->xw2 = calloc(np, 4);
    o->sm2 = calloc(s.co, 4), o->si2 = calloc(s.co, 4), o->arg2 = calloc(np, 4);
    o->dx = calloc(n1, 4), o->dW = calloc(k2, 4), o->db = calloc(s.co, 4);
    o->dg = calloc(s.co, 4), o->dbt = calloc(s.co, 4);
    cmir_tensor tx = cmir_tensor_4d(x, s.n, s.h, s.w, ci1);
    cmir_tensor ta1 = cmir_tensor_4d(a1, s.n, s.h, s.w, s.ci);
    cmir_tensor ty1 = cmir_tensor_4d(o->y1, s.n, H2, Wd2, s.ci);
    cmir_tensor ta2 = cmir_tensor_4d(o->a2, s.n, H2, Wd2, s.co);
    cmir_tensor ty2 = cmir_tensor_4d(o->y2, s.n, Ho, Wo, s.co);
    cmir_tensor tdp = cmir_tensor_4d(dp, s.n, Ho, Wo, s.co);
    cmir_tensor tdx = cmir_tensor_4d(o->dx, s.n, H2, Wd2, s.ci);
    got[0] = want & (CMIR__BF_A | CMIR__BF_Y);
    ASSERT_OK(cmir__conv3x3_bn_maxpool_forward_bf(
        ex, &tx, W1, b1, 0.01f, cmir_bn_default_params(), 1, s.k, g1, be1, st, st + s.co,
        st + 2 * s.co, st + 3 * s.co, a1 ? &ta1 : NULL, &ty1, arg1, xw1, &got[0]));
    got[1] = CMIR__BF_A | (got[0] & CMIR__BF_Y ? CMIR__BF_X : 0);
    memset(st, 0, 4 * (size_t)s.co * 4);
    ASSERT_OK(cmir__conv3x3_bn_maxpool_forward_bf(
        ex, &ty1, W2, b2, 0.01f, cmir_bn_default_params(), 1, s.k, g2, be2, st, st + s.co,
        o->sm2, o->si2, &ta2, &ty2, o->arg2, o->xw2, &got[1]));
    ASSERT_OK(cmir__conv3x3_bn_maxpool_backward_bf(ex, 0.01f, s.k, &ta2, g2, o->sm2, o->si2, &tdp,
                                                  o->arg2, o->xw2, &ty1, W2, b2, &tdx, o->dW,
                                                  o->db, o->dg, o->dbt, got[1]));
    free(x), free(W1), free(b1), free(g1), free(be1), free(W2), free(b2), free(g2), free(be2);
    free(dp), free(a1), free(st), free(xw1), free(arg1);
}

static void test_bf16_chain(void)
{
    if (!cmir_nn_bf16_available())
        SKIP("no AVX512_BF16 on this CPU (or CMIR_NO_BF16 set)");
    static const struct {
        blk s;
        int ci1;
    } cases[] = {
        {{2, 16, 32, 32, 64, 2, 1}, 1}, /* PAN-like: block 1 remade */
        {{2, 16, 16, 32, 64, 2, 1}, 4}, /* MS-like: block 1 stored */
    };
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_BF16));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        blk s = cases[i].s;
        chain c[2];
        unsigned got[2][2];
        chain_run(s, cases[i].ci1, CMIR__BF_A | CMIR__BF_Y, &c[0], got[0]);
        chain_run(s, cases[i].ci1, CMIR__BF_A, &c[1], got[1]);
        ASSERT_TRUE((got[0][0] & CMIR__BF_Y) && (got[0][1] & CMIR__BF_X));
        ASSERT_TRUE(!(got[1][0] & CMIR__BF_Y) && !(got[1][1] & CMIR__BF_X));
        const size_t n1 = (size_t)s.n * (s.h / s.k) * (s.w / s.k) * s.ci;
        const size_t na = (size_t)s.n * (s.h / s.k) * (s.w / s.k) * s.co;
        const size_t np = na / ((size_t)s.k * s.k), k2 = (size_t)9 * s.ci * s.co;
        size_t bad = 0;
        for (size_t e = 0; e < n1; e++)
            bad += ((const uint16_t *)c[0].y1)[e] != cmir__f2bf(c[1].y1[e]);
        ASSERT_EQ_INT((int)bad, 0);
        ASSERT_TRUE(!memcmp(c[0].a2, c[1].a2, na * 2) && !memcmp(c[0].y2, c[1].y2, np * 4));
        ASSERT_TRUE(!memcmp(c[0].xw2, c[1].xw2, np * 4) && !memcmp(c[0].arg2, c[1].arg2, np * 4));
        ASSERT_TRUE(!memcmp(c[0].sm2, c[1].sm2, s.co * 4) && !memcmp(c[0].si2, c[1].si2, s.co * 4));
        ASSERT_TRUE(!memcmp(c[0].dx, c[1].dx, n1 * 4) && !memcmp(c[0].dW, c[1].dW, k2 * 4));
        ASSERT_TRUE(!memcmp(c[0].db, c[1].db, s.co * 4) && !memcmp(c[0].dg, c[1].dg, s.co * 4) &&
                    !memcmp(c[0].dbt, c[1].dbt, s.co * 4));
        for (int v = 0; v < 2; v++) {
            free(c[v].y1), free(c[v].a2), free(c[v].y2), free(c[v].xw2), free(c[v].sm2);
            free(c[v].si2), free(c[v].arg2), free(c[v].dx), free(c[v].dW), free(c[v].db);
            free(c[v].dg), free(c[v].dbt);
        }
    }
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
}

/* One cmir_cnn training forward and backward (fused conv + leaky ReLU +
 * batch norm + max-pool, the backward with dy made row by row and the
 * conv's output remade) from a fixed seed: all gradients, concatenated.
 * round_x: the input rounded to bf16 first. */
static double rel_err(const float *a, const float *ref, size_t n)
{
    double d = 0, nr = 0;
    for (size_t i = 0; i < n; i++)
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]), nr += (double)ref[i] * ref[i];
    return nr > 0 ? sqrt(d / nr) : INFINITY;
}

static float *cnn_grads(int hw, int bands, cmir_precision prec, int round_x, size_t *ng)
{
    const int n = 4;
    cmir_cnn_params p = cmir_cnn_default_params();
    p.h = p.w = hw;
    p.bands = bands;
    p.dropout = 0.0f;
    cmir_cnn *c = cmir_cnn_new(p, 11);
    cmir_rng *r = cmir_rng_new(5);
    ASSERT_TRUE(c && r && p.n_classes <= 8);
    if (!c || !r || p.n_classes > 8)
        exit(1);
    float *x = malloc(sizeof(float) * (size_t)n * hw * hw * bands);
    for (size_t i = 0; i < (size_t)n * hw * hw * bands; i++)
        x[i] = round_x ? cmir__bf2f(cmir__f2bf(cmir_rng_uniform(r))) : cmir_rng_uniform(r);
    float dl[4 * 8];
    for (int i = 0; i < n * p.n_classes; i++)
        dl[i] = (float)(i % 3 - 1) * 0.1f;
    ASSERT_OK(cmir_nn_set_precision(prec));
    ASSERT_OK(cmir_cnn_forward(c, ex, x, n, 1, r));
    ASSERT_OK(cmir_cnn_backward(c, ex, dl, NULL));
    ASSERT_OK(cmir_nn_set_precision(CMIR_PRECISION_FP32));
    size_t tot = 0;
    for (int i = 0; i < cmir_cnn_n_params(c); i++) {
        const char *name;
        float *w, *g;
        size_t k;
        ASSERT_OK(cmir_cnn_param(c, i, &name, &w, &g, &k));
        tot += k;
    }
    float *out = malloc(sizeof(float) * tot);
    *ng = 0;
    for (int i = 0; i < cmir_cnn_n_params(c); i++) {
        const char *name;
        float *w, *g;
        size_t k;
        ASSERT_OK(cmir_cnn_param(c, i, &name, &w, &g, &k));
        memcpy(out + *ng, g, sizeof(float) * k);
        *ng += k;
    }
    cmir_cnn_free(c), cmir_rng_free(r), free(x);
    return out;
}

/* PAN-like (1 band) and MS-like (4 bands) networks: bit-equal to fp32 with
 * the hardware switched off; at bf16, bit-equal twice, and as near the fp32
 * gradients as the network's sensitivity allows: batch norm over 4 images
 * and max-pool winners make an fp32 step from the input rounded to bf16
 * alone differ by ~10%; the whole bf16 step may differ by at most 3x that
 * (a wrong kernel gives ~100%). */
static void test_cnn_step(void)
{
    static const int hw[2] = {32, 16}, bands[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        size_t n1, n2, n3;
        float *f = cnn_grads(hw[k], bands[k], CMIR_PRECISION_FP32, 0, &n1);
        cmir__bf16_force_off = 1;
        float *g = cnn_grads(hw[k], bands[k], CMIR_PRECISION_BF16, 0, &n2);
        cmir__bf16_force_off = 0;
        ASSERT_TRUE(n1 == n2 && !memcmp(f, g, n1 * 4));
        free(g);
        if (!cmir_nn_bf16_available()) {
            free(f);
            continue;
        }
        float *b = cnn_grads(hw[k], bands[k], CMIR_PRECISION_BF16, 0, &n2);
        float *b2 = cnn_grads(hw[k], bands[k], CMIR_PRECISION_BF16, 0, &n3);
        float *rx = cnn_grads(hw[k], bands[k], CMIR_PRECISION_FP32, 1, &n3);
        ASSERT_TRUE(n1 == n2 && n2 == n3 && !memcmp(b, b2, n2 * 4));
        double eb = rel_err(b, f, n1), ex_ = rel_err(rx, f, n1);
        printf("  %s-like step: gradient relative error bf16 %.3f, fp32 from a bf16 input "
               "%.3f\n", k ? "MS" : "PAN", eb, ex_);
        ASSERT_TRUE(eb > 0 && eb < 3.0 * ex_ + 1e-3);
        free(f), free(b), free(b2), free(rx);
    }
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    ex = cmir_exec_new(ep);
    rng = cmir_rng_new(42);
    if (!ex || !rng)
        return 1;
    RUN(test_kernels_vs_naive);
    RUN(test_fallback_exact);
    RUN(test_block_pairs);
    RUN(test_stored_bf16);
    RUN(test_bf16_chain);
    RUN(test_cnn_step);
    cmir_exec_free(ex);
    cmir_rng_free(rng);
    TEST_MAIN_END();
}
