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
