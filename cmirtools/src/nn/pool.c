/* Max-pooling with a k x k window and stride k (NHWC), parallel over the
 * batch; the winners' offsets are kept for the backward pass. */
#include "nn_internal.h"

#include <string.h>

typedef struct pool_job {
    const float *x, *dy;
    float *y, *dx;
    int32_t *arg;
    const int32_t *carg;
    int N, H, W, C, k, Ho, Wo;
} pool_job;

/* yo[c], ao[c] = xp[c], off + c where xp[c] > yo[c] (strict: the first
 * maximum stays), c < C: 16 channels a step where the CPU has AVX-512F. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static void max_into_avx512(const float *xp, int32_t off, int C,
                                                              float *yo, int32_t *ao)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = (__mmask16)(C - c >= 16 ? 0xFFFFu : (1u << (C - c)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, xp + c);
        __mmask16 gt = _mm512_mask_cmp_ps_mask(m, v, _mm512_maskz_loadu_ps(m, yo + c), _CMP_GT_OQ);
        _mm512_mask_storeu_ps(yo + c, gt, v);
        _mm512_mask_storeu_epi32(ao + c, gt, _mm512_add_epi32(iota, _mm512_set1_epi32(off + c)));
    }
}
#define MAX_INTO_AVX512 1
#endif

/* simd: the caller found AVX-512F (once per task, not per window) */
static void max_into(const float *xp, int32_t off, int C, float *yo, int32_t *ao, int simd)
{
#ifdef MAX_INTO_AVX512
    if (simd) {
        max_into_avx512(xp, off, C, yo, ao);
        return;
    }
#else
    (void)simd;
#endif
    for (int c = 0; c < C; c++)
        if (xp[c] > yo[c]) {
            yo[c] = xp[c];
            ao[c] = off + c;
        }
}

static int pool_fwd_task(int t, int T, void *user)
{
    const pool_job *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    const int H = j->H, W = j->W, C = j->C, k = j->k, Ho = j->Ho, Wo = j->Wo;
#ifdef MAX_INTO_AVX512
    const int simd = __builtin_cpu_supports("avx512f");
#else
    const int simd = 0;
#endif
    for (size_t n = lo; n < hi; n++) {
        const float *xs = j->x + n * H * W * C;
        float *ys = j->y + n * Ho * Wo * C;
        int32_t *as = j->arg + n * Ho * Wo * C;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float *yo = ys + ((size_t)oy * Wo + ox) * C;
                int32_t *ao = as + ((size_t)oy * Wo + ox) * C;
                int32_t first = (int32_t)(((size_t)oy * k * W + (size_t)ox * k) * C);
                for (int c = 0; c < C; c++) {
                    yo[c] = xs[first + c];
                    ao[c] = first + c;
                }
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        int32_t off = (int32_t)((((size_t)oy * k + dy) * W + (size_t)ox * k + dx) * C);
                        max_into(xs + off, off, C, yo, ao, simd);
                    }
            }
    }
    return 0;
}

static int pool_bwd_task(int t, int T, void *user)
{
    const pool_job *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    size_t in_s = (size_t)j->H * j->W * j->C, out_s = (size_t)j->Ho * j->Wo * j->C;
    memset(j->dx + lo * in_s, 0, sizeof(float) * (hi - lo) * in_s);
    for (size_t n = lo; n < hi; n++) {
        float *dxs = j->dx + n * in_s;
        const float *dys = j->dy + n * out_s;
        const int32_t *as = j->carg + n * out_s;
        for (size_t i = 0; i < out_s; i++)
            dxs[as[i]] += dys[i];
    }
    return 0;
}

static int pool_threads(const cmir_exec *ex, int N)
{
    int T = cmir_exec_threads(ex);
    return T > N ? (N > 0 ? N : 1) : T;
}

int cmir_maxpool_forward(cmir_exec *ex, int k, const cmir_tensor *x, cmir_tensor *y,
                         int32_t *argmax)
{
    const char *fn = "cmir_maxpool_forward";
    int rc;
    if ((rc = cmir__check_tensor(x, 4, fn, "x")) || (rc = cmir__check_tensor(y, 4, fn, "y")))
        return rc;
    if (k < 1 || !argmax)
        return cmir__error(CMIR_EINVAL, "%s: bad window %d or NULL argmax", fn, k);
    pool_job j = {.x = x->data, .y = y->data, .arg = argmax, .N = (int)x->shape[0],
                  .H = (int)x->shape[1], .W = (int)x->shape[2], .C = (int)x->shape[3], .k = k};
    j.Ho = j.H / k;
    j.Wo = j.W / k;
    if (y->shape[0] != j.N || y->shape[1] != j.Ho || y->shape[2] != j.Wo || y->shape[3] != j.C)
        return cmir__error(CMIR_EINVAL, "%s: y must be %dx%dx%dx%d for window %d", fn, j.N,
                           j.Ho, j.Wo, j.C, k);
    if ((int64_t)j.H * j.W * j.C > INT32_MAX)
        return cmir__error(CMIR_EINVAL, "%s: sample too large", fn);
    return cmir__parallel(pool_threads(ex, j.N), pool_fwd_task, &j);
}

int cmir_maxpool_backward(cmir_exec *ex, const cmir_tensor *dy, const int32_t *argmax,
                          cmir_tensor *dx)
{
    const char *fn = "cmir_maxpool_backward";
    int rc;
    if ((rc = cmir__check_tensor(dy, 4, fn, "dy")) || (rc = cmir__check_tensor(dx, 4, fn, "dx")))
        return rc;
    if (!argmax)
        return cmir__error(CMIR_EINVAL, "%s: NULL argmax", fn);
    if (dy->shape[0] != dx->shape[0] || dy->shape[3] != dx->shape[3] ||
        dy->shape[1] > dx->shape[1] || dy->shape[2] > dx->shape[2])
        return cmir__error(CMIR_EINVAL, "%s: dy does not fit dx", fn);
    pool_job j = {.dy = dy->data, .dx = dx->data, .carg = argmax, .N = (int)dx->shape[0],
                  .H = (int)dx->shape[1], .W = (int)dx->shape[2], .C = (int)dx->shape[3],
                  .Ho = (int)dy->shape[1], .Wo = (int)dy->shape[2]};
    return cmir__parallel(pool_threads(ex, j.N), pool_bwd_task, &j);
}
