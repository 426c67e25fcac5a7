/* bench_nn's bf16 part: the AVX512_BF16 multiply-add peak (a register-only
 * vdpbf16ps loop on T threads, as the sgemm peak is a square GEMM) and
 * libcmir's bf16 GEMM (cmir__bgemm) on square matrices. The bf16 against
 * fp32 training steps are timed in bench_nn.c with the same code as fp32. */
#include "cmir/nn.h"
#include "base/internal.h"
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <time.h>

double bench_bf16_peak(int threads, double seconds);
double bench_bf16_gemm(int threads, int n, double seconds);

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

/* 24 independent accumulators (the GEMM tile's), `iters` x 24 vdpbf16ps;
 * each is 16 lanes x 2 multiply-adds = 64 FLOP. */
__attribute__((target("avx512f,avx512bf16"), noinline)) static float dot_loop(long iters)
{
    __m512 acc[24];
    for (int i = 0; i < 24; i++)
        acc[i] = _mm512_set1_ps((float)i);
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = a;
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a)); /* keep the loop */
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

typedef struct pk {
    long iters;
    volatile float sink[64];
} pk;

static int peak_task(int t, int T, void *user)
{
    pk *p = user;
    (void)T;
    p->sink[t % 64] = dot_loop(p->iters);
    return 0;
}
#endif

/* GFLOP/s of the loop above on `threads` threads (0 without AVX512_BF16). */
double bench_bf16_peak(int threads, double seconds)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (!cmir_nn_bf16_available())
        return 0.0;
    pk p;
    p.iters = 1000;
    double best = 0.0, start = now_s();
    while (now_s() - start < seconds) {
        double t0 = now_s();
        cmir__parallel(threads, peak_task, &p);
        double dt = now_s() - t0;
        if (dt < 0.05) {
            p.iters *= 2;
            continue;
        }
        double gf = 64.0 * 24.0 * (double)p.iters * threads / dt * 1e-9;
        if (gf > best)
            best = gf;
    }
    return best;
#else
    (void)threads, (void)seconds;
    return 0.0;
#endif
}

/* GFLOP/s of cmir__bgemm, C{n,n} = A B, on `threads` threads (best call). */
double bench_bf16_gemm(int threads, int n, double seconds)
{
    if (!cmir_nn_bf16_available())
        return 0.0;
    size_t nn = (size_t)n * n;
    float *a = malloc(sizeof(float) * nn), *b = malloc(sizeof(float) * nn);
    float *c = malloc(sizeof(float) * nn);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0.0;
    }
    for (size_t i = 0; i < nn; i++)
        a[i] = (float)(i % 17) * 0.01f, b[i] = (float)(i % 13) * 0.02f;
    double best = 0.0, start = now_s();
    int reps = 0;
    while (reps < 3 || now_s() - start < seconds) {
        double t0 = now_s();
        if (cmir__bgemm(threads, 0, 0, n, n, n, a, n, b, n, 0.0f, c, n, NULL))
            break;
        double gf = 2.0 * n * (double)nn / (now_s() - t0) * 1e-9;
        if (gf > best && reps > 0)
            best = gf;
        reps++;
    }
    free(a), free(b), free(c);
    return best;
}

/* ---- fp32 against bf16, interleaved ---------------------------------------
 * Two copies of one branch (same seeds and inputs), one trained at fp32 and
 * one at bf16, one step each per round, the order alternating, so both see
 * the same machine (shared machines drift within seconds). */
#include "cmir/model.h"

#include <stdio.h>
#include <string.h>

int bench_bf16_ab(const char *name, int hw, int bands, int N, cmir_exec *ex, double seconds,
                  double bf16_peak, double ratio[2]);

typedef struct ab_side {
    cmir_cnn *c;
    cmir_optim *o;
    cmir_rng *r;
    double t[3], best, last; /* forward, backward, Adam (sums); best, last step */
} ab_side;

#define AB_MAX_ROUNDS 4096

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int ab_step(ab_side *s, cmir_exec *ex, const float *x, const float *dl, int N)
{
    int rc;
    double t0 = now_s();
    if ((rc = cmir_cnn_forward(s->c, ex, x, N, 1, s->r)))
        return rc;
    double t1 = now_s();
    if ((rc = cmir_cnn_backward(s->c, ex, dl, NULL)))
        return rc;
    double t2 = now_s();
    if ((rc = cmir_optim_step(s->o)))
        return rc;
    double t3 = now_s();
    s->t[0] += t1 - t0;
    s->t[1] += t2 - t1;
    s->t[2] += t3 - t2;
    if (t3 - t0 < s->best)
        s->best = t3 - t0;
    s->last = t3 - t0;
    return 0;
}

/* Prints both sides' step times and bf16/fp32 (images/s); ratio: the
 * median over rounds of the round's fp32 step time / its bf16 step time
 * (robust to the other jobs of a shared machine), and of the best steps. */
int bench_bf16_ab(const char *name, int hw, int bands, int N, cmir_exec *ex, double seconds,
                  double bf16_peak, double ratio[2])
{
    cmir_cnn_params p = cmir_cnn_default_params();
    p.h = p.w = hw;
    p.bands = bands;
    size_t nx = (size_t)N * hw * hw * bands, nl = (size_t)N * p.n_classes;
    float *x = malloc(sizeof(float) * nx), *dl = malloc(sizeof(float) * nl);
    ab_side s[2];
    memset(s, 0, sizeof s);
    int rc = x && dl ? 0 : CMIR_ENOMEM;
    uint64_t st = 12345;
    for (size_t i = 0; i < nx; i++) /* same inputs for both sides */
        x[i] = (float)((st = st * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f;
    for (size_t i = 0; x && i < nl; i++)
        dl[i] = 1e-2f * ((float)(i % 7) - 3.0f) / 3.0f;
    for (int k = 0; !rc && k < 2; k++) {
        s[k].c = cmir_cnn_new(p, 7);
        s[k].o = cmir_optim_new(cmir_optim_default_params());
        s[k].r = cmir_rng_new(99);
        s[k].best = 1e300;
        rc = !s[k].c || !s[k].o || !s[k].r ? CMIR_ENOMEM : cmir_cnn_register(s[k].c, s[k].o);
    }
    int rounds = 0;
    static double rr[AB_MAX_ROUNDS];
    for (int k = 0; !rc && k < 2; k++) { /* warm-up: buffers, thread pools */
        cmir_nn_set_precision(k ? CMIR_PRECISION_BF16 : CMIR_PRECISION_FP32);
        rc = ab_step(&s[k], ex, x, dl, N);
        memset(s[k].t, 0, sizeof s[k].t);
        s[k].best = 1e300;
    }
    double start = now_s();
    while (!rc && rounds < AB_MAX_ROUNDS && (rounds < 6 || now_s() - start < 2.0 * seconds)) {
        for (int i = 0; !rc && i < 2; i++) {
            int k = (rounds + i) & 1;
            cmir_nn_set_precision(k ? CMIR_PRECISION_BF16 : CMIR_PRECISION_FP32);
            rc = ab_step(&s[k], ex, x, dl, N);
        }
        rr[rounds++] = s[0].last / s[1].last;
    }
    cmir_nn_set_precision(CMIR_PRECISION_FP32);
    if (!rc) {
        double m[2], flop = 3.0 * cmir_cnn_flops(s[0].c) * N;
        for (int k = 0; k < 2; k++) {
            m[k] = (s[k].t[0] + s[k].t[1] + s[k].t[2]) / rounds;
            printf("  %-4s %s step %7.1f ms (best %.1f): fwd %.1f, bwd %.1f, adam %.1f ms  "
                   "%7.1f img/s\n",
                   name, k ? "bf16" : "fp32", 1e3 * m[k], 1e3 * s[k].best,
                   1e3 * s[k].t[0] / rounds, 1e3 * s[k].t[1] / rounds, 1e3 * s[k].t[2] / rounds,
                   N / m[k]);
        }
        qsort(rr, (size_t)rounds, sizeof *rr, cmp_double);
        ratio[0] = rounds & 1 ? rr[rounds / 2] : 0.5 * (rr[rounds / 2 - 1] + rr[rounds / 2]);
        ratio[1] = s[0].best / s[1].best;
        printf("  %-4s bf16/fp32 img/s: median of %d interleaved rounds %.2fx (quartiles %.2f, "
               "%.2f), of the means %.2fx, of the best steps %.2fx; bf16 step %.1f GFLOP/s "
               "(3x fwd) = %.2f of the bf16 peak\n",
               name, rounds, ratio[0], rr[rounds / 4], rr[(3 * rounds) / 4], m[0] / m[1],
               ratio[1], flop / m[1] * 1e-9, flop / m[1] * 1e-9 / bf16_peak);
        fflush(stdout);
    }
    for (int k = 0; k < 2; k++) {
        cmir_optim_free(s[k].o);
        cmir_cnn_free(s[k].c);
        cmir_rng_free(s[k].r);
    }
    free(x);
    free(dl);
    return rc;
}

/* The conv layers alone (cmir_conv3x3_forward / _backward on batch N, as
 * the CNN's shapes), fp32 and bf16 interleaved round by round: GFLOP/s and
 * bf16/fp32 of the summed times. */
int bench_bf16_layers(int N, cmir_exec *ex, double seconds, double bf16_peak);

int bench_bf16_layers(int N, cmir_exec *ex, double seconds, double bf16_peak)
{
    static const int L[6][4] = {{256, 1, 32, 0}, {128, 32, 64, 1}, {64, 64, 128, 1},
                                {64, 4, 32, 0},  {32, 32, 64, 1},  {16, 64, 128, 1}};
    static const char *const names[6] = {"PAN conv1", "PAN conv2", "PAN conv3",
                                          "MS conv1",  "MS conv2",  "MS conv3"};
    int rc = 0;
    printf("  conv layers alone, batch %d (fwd: forward; bwd: dW, db and, but for the first "
           "layer, dx):\n", N);
    for (int l = 0; l < 6 && !rc; l++) {
        const int hw = L[l][0], ci = L[l][1], co = L[l][2];
        size_t nx = (size_t)N * hw * hw * ci, ny = (size_t)N * hw * hw * co, nw = (size_t)9 * ci * co;
        float *x = malloc(nx * 4), *dx = malloc(nx * 4), *y = malloc(ny * 4), *dy = malloc(ny * 4);
        float *W = malloc(nw * 4), *dW = malloc(nw * 4), *b = calloc((size_t)co, 4),
              *db = malloc((size_t)co * 4);
        if (!x || !dx || !y || !dy || !W || !dW || !b || !db)
            rc = CMIR_ENOMEM;
        for (size_t i = 0; !rc && i < nx; i++)
            x[i] = (float)(i % 13) * 0.1f;
        for (size_t i = 0; !rc && i < ny; i++)
            dy[i] = (float)(i % 7) * 0.1f - 0.3f;
        for (size_t i = 0; !rc && i < nw; i++)
            W[i] = (float)(i % 5) * 0.01f - 0.02f;
        cmir_tensor tx = cmir_tensor_4d(x, N, hw, hw, ci), ty = cmir_tensor_4d(y, N, hw, hw, co);
        cmir_tensor tdy = cmir_tensor_4d(dy, N, hw, hw, co), tdx = cmir_tensor_4d(dx, N, hw, hw, ci);
        double tf[2] = {0, 0}, tb[2] = {0, 0}, start = now_s();
        int r = 0;
        for (; !rc && (r < 4 || now_s() - start < seconds); r++)
            for (int i = 0; !rc && i < 2; i++) {
                int k = (r + i) & 1;
                cmir_nn_set_precision(k ? CMIR_PRECISION_BF16 : CMIR_PRECISION_FP32);
                double t0 = now_s();
                rc = cmir_conv3x3_forward(ex, &tx, W, b, &ty);
                double t1 = now_s();
                if (!rc)
                    rc = cmir_conv3x3_backward(ex, &tx, W, &tdy, L[l][3] ? &tdx : NULL, dW, db);
                double t2 = now_s();
                if (r) { /* round 0 warms up */
                    tf[k] += t1 - t0;
                    tb[k] += t2 - t1;
                }
            }
        cmir_nn_set_precision(CMIR_PRECISION_FP32);
        if (!rc) {
            double ff = 2.0 * N * hw * hw * 9.0 * ci * co * (r - 1), fb = ff * (1 + L[l][3]);
            printf("  %-9s %3dx%-3d %2d->%-3d fwd fp32 %6.1f bf16 %6.1f GFLOP/s %.2fx (%.2f of "
                   "bf16 peak)  bwd fp32 %6.1f bf16 %6.1f %.2fx (%.2f)\n",
                   names[l], hw, hw, ci, co, ff / tf[0] * 1e-9, ff / tf[1] * 1e-9, tf[0] / tf[1],
                   ff / tf[1] * 1e-9 / bf16_peak, fb / tb[0] * 1e-9, fb / tb[1] * 1e-9,
                   tb[0] / tb[1], fb / tb[1] * 1e-9 / bf16_peak);
            fflush(stdout);
        }
        free(x), free(dx), free(y), free(dy), free(W), free(dW), free(b), free(db);
    }
    return rc;
}
