/* Fused stage-1 block kernels (conv -> leaky ReLU -> batch norm -> max-pool,
 * NHWC) that replace the separate lrelu/batchnorm/maxpool passes over the
 * network's largest tensors (PAN block 1: 537 MB each at batch 64):
 *   forward:  the conv applies the leaky ReLU and sums y and y^2 per channel
 *             in its registers (conv.c); batch norm + max-pool then read
 *             the conv's output once, writing only the pooled output, the
 *             winners and their normalised values (the normalised tensor
 *             is never stored). For few input channels the conv's output
 *             is not stored either: the conv runs again and normalises and
 *             pools in its registers (conv.c, cmir__conv3x3_lrelu_pool).
 *   backward: the batch-norm sums come from the pooled gradient and the
 *             winners alone (dy is zero elsewhere); then each row of
 *             dx = lrelu'(a) (A + (a - mean) B + G dy) is made inside the
 *             conv backward's threads just before its dW/dx kernels use it
 *             (no zero-filled pool gradient, no stored conv gradient); for
 *             few input channels the rows of a are remade from x as well.
 * Results: the forward is exactly the unfused sequence's for the same
 * statistics (mean and variance equal within rounding: sums of y and y^2
 * in double instead of two passes), the backward within float rounding
 * (per-channel float coefficients instead of double per element).
 * Per-thread partial sums in double are reduced in a fixed order, so
 * results are bit-identical for the same thread count, with or without
 * the stored conv output. On x86-64 CPUs with AVX-512F the loops run 16
 * channels per vector (the same operations in the same order as the
 * portable loops, no FMA contraction: bit-identical to them). */
#include "fused_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int cmir__fused_generic = 0;

/* ---- portable loops ---------------------------------------------------- */

static void stats_generic(const fjob *j, size_t lo, size_t hi, double *s, double *q)
{
    const int C = j->C;
    for (size_t r = lo; r < hi; r++)
        for (int c = 0; c < C; c++) {
            double v = j->x[r * C + c];
            s[c] += v;
            q[c] += v * v;
        }
}

static void pool_fwd_generic(const fjob *j, size_t lo, size_t hi)
{
    const int W = j->W, C = j->C, k = j->k, Ho = j->Ho, Wo = j->Wo;
    const size_t in_s = (size_t)j->H * W * C;
    for (size_t r = lo; r < hi; r++) {
        size_t n = r / (size_t)Ho;
        int oy = (int)(r % (size_t)Ho);
        const float *xs = j->x + n * in_s;
        for (int ox = 0; ox < Wo; ox++) {
            size_t o = (r * Wo + ox) * (size_t)C;
            for (int c = 0; c < C; c++) {
                float best = 0.0f, bxh = 0.0f;
                int32_t barg = 0;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        int32_t off = (int32_t)((((size_t)oy * k + dy) * W + (size_t)ox * k + dx) * C + c);
                        float xh = (xs[off] - j->mean[c]) * j->invstd[c];
                        float v = xh * j->gamma[c] + j->beta[c];
                        if ((dy == 0 && dx == 0) || v > best) {
                            best = v;
                            bxh = xh;
                            barg = off;
                        }
                    }
                j->y[o + c] = best;
                j->arg[o + c] = barg;
                if (j->xhat)
                    j->xhat[o + c] = bxh;
            }
        }
    }
}

/* Sums of dy and dy * xhat over pooled entries [lo, hi) (units of C). */
static void bsum_generic(const fjob *j, size_t lo, size_t hi, double *s, double *q)
{
    const int C = j->C;
    const size_t out_s = (size_t)j->Ho * j->Wo * C, in_s = (size_t)j->H * j->W * C;
    for (size_t r = lo; r < hi; r++)
        for (int c = 0; c < C; c++) {
            size_t i = r * C + c;
            float xh;
            if (j->xhat_in) {
                xh = j->xhat_in[i];
            } else {
                const float *xs = j->x + (i / out_s) * in_s;
                xh = (xs[j->carg[i]] - j->mean[c]) * j->invstd[c];
            }
            double g = j->dy[i];
            s[c] += g;
            q[c] += g * xh;
        }
}

/* Row yy of sample n of dx into out (W * C floats): per element
 * t = (x - mean) B + A (+ G dy at a pool winner), then the leaky-ReLU
 * derivative (see cmir__bn_maxpool_backward). */
static void dense_row_generic(const fjob *j, size_t n, int yy, const float *arow, float *out)
{
    const int H = j->H, W = j->W, C = j->C, k = j->k, Ho = j->Ho, Wo = j->Wo;
    const float *A = j->m1, *B = j->m2, *G = j->g;
    const int oy = yy / k;
    const float *xr = arow ? arow : j->x + (n * H + yy) * (size_t)W * C;
    for (int xx = 0; xx < W; xx++) {
        int win = oy < Ho && xx / k < Wo;
        size_t pi = win ? ((n * Ho + oy) * Wo + xx / k) * (size_t)C : 0;
        int32_t tb = (int32_t)(((size_t)yy * W + xx) * C);
        for (int c = 0; c < C; c++) {
            float xv = xr[(size_t)xx * C + c];
            float t = (xv - j->mean[c]) * B[c] + A[c];
            if (win && j->carg[pi + c] == tb + c)
                t = t + G[c] * j->dy[pi + c];
            out[(size_t)xx * C + c] = xv > 0.0f ? t : j->slope * t;
        }
    }
}

/* ---- AVX-512 loops ----------------------------------------------------- */

#ifdef FUSED_AVX512
#include <immintrin.h>

#define FK_FN static __attribute__((target("avx512f"), noinline))
#define FK_IN static inline __attribute__((always_inline, target("avx512f")))

static __mmask16 fmask(int rem) { return (__mmask16)(rem >= 16 ? 0xFFFFu : (1u << rem) - 1u); }

FK_IN __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
FK_IN __m512d hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Rows [lo, hi), channels [c0, c0 + 16 NB) (last block masked by ml); the
 * per-channel sums run down the rows in order, as in the portable loop. */
FK_IN void stats_blk(const float *x, int C, size_t lo, size_t hi, int c0, const int NB,
                     __mmask16 ml, double *s, double *q)
{
    __m512d as[4][2], aq[4][2];
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        as[b][0] = _mm512_loadu_pd(s + c0 + 16 * b);
        as[b][1] = _mm512_loadu_pd(s + c0 + 16 * b + 8);
        aq[b][0] = _mm512_loadu_pd(q + c0 + 16 * b);
        aq[b][1] = _mm512_loadu_pd(q + c0 + 16 * b + 8);
    }
    const float *p = x + lo * C + c0;
    for (size_t r = lo; r < hi; r++, p += C) {
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            __m512 v = b == NB - 1 ? _mm512_maskz_loadu_ps(ml, p + 16 * b)
                                   : _mm512_loadu_ps(p + 16 * b);
            __m512d v0 = lo_pd(v), v1 = hi_pd(v);
            as[b][0] = _mm512_add_pd(as[b][0], v0);
            as[b][1] = _mm512_add_pd(as[b][1], v1);
            aq[b][0] = _mm512_add_pd(aq[b][0], _mm512_mul_pd(v0, v0));
            aq[b][1] = _mm512_add_pd(aq[b][1], _mm512_mul_pd(v1, v1));
        }
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        _mm512_storeu_pd(s + c0 + 16 * b, as[b][0]);
        _mm512_storeu_pd(s + c0 + 16 * b + 8, as[b][1]);
        _mm512_storeu_pd(q + c0 + 16 * b, aq[b][0]);
        _mm512_storeu_pd(q + c0 + 16 * b + 8, aq[b][1]);
    }
}

/* s, q hold room for C rounded up to 16 (masked lanes add zeros). */
FK_FN void stats_avx512(const float *x, int C, size_t lo, size_t hi, double *s, double *q)
{
    for (int c0 = 0; c0 < C; c0 += 64) {
        int rem = C - c0, NB = rem >= 64 ? 4 : (rem + 15) / 16;
        __mmask16 ml = fmask(rem - 16 * (NB - 1));
        switch (NB) {
        case 1: stats_blk(x, C, lo, hi, c0, 1, ml, s, q); break;
        case 2: stats_blk(x, C, lo, hi, c0, 2, ml, s, q); break;
        case 3: stats_blk(x, C, lo, hi, c0, 3, ml, s, q); break;
        default: stats_blk(x, C, lo, hi, c0, 4, ml, s, q); break;
        }
    }
}

/* 16 channels of x at element i: floats (masked by m), or (BF, C % 16 ==
 * 0) the bf16 of j->xb widened exactly */
FK_IN __m512 ld_x(const float *xs, const uint16_t *xs16, size_t i, __mmask16 m, const int BF)
{
    if (BF)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(xs16 + i))), 16));
    return _mm512_maskz_loadu_ps(m, xs + i);
}

/* yrow (or NULL): y's rows go through it into bf16 (j->ybf) */
FK_IN void pool_fwd_body(const fjob *j, size_t lo, size_t hi, const int BF, float *yrow)
{
    const int W = j->W, C = j->C, k = j->k, Ho = j->Ho, Wo = j->Wo;
    const size_t in_s = (size_t)j->H * W * C;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (size_t r = lo; r < hi; r++) {
        size_t n = r / (size_t)Ho;
        int oy = (int)(r % (size_t)Ho);
        const float *xs = BF ? NULL : j->x + n * in_s;
        const uint16_t *xs16 = BF ? j->xb + n * in_s : NULL;
        for (int ox = 0; ox < Wo; ox++)
            for (int c0 = 0; c0 < C; c0 += 16) {
                __mmask16 m = fmask(C - c0);
                __m512 mu = _mm512_maskz_loadu_ps(m, j->mean + c0);
                __m512 is = _mm512_maskz_loadu_ps(m, j->invstd + c0);
                __m512 ga = _mm512_maskz_loadu_ps(m, j->gamma + c0);
                __m512 be = _mm512_maskz_loadu_ps(m, j->beta + c0);
                size_t o = (r * Wo + ox) * (size_t)C + c0;
                __m512 best = _mm512_setzero_ps(), bxh = best;
                __m512i barg = _mm512_setzero_si512();
                for (int dy = 0; dy < k; dy++) {
                    int32_t off = (int32_t)((((size_t)oy * k + dy) * W + (size_t)ox * k) * C + c0);
                    for (int dx = 0; dx < k; dx++, off += C) {
                        if (BF)
                            _mm_prefetch((const char *)(xs16 + off + (size_t)4 * k * C), _MM_HINT_T0);
                        else
                            _mm_prefetch((const char *)(xs + off + (size_t)4 * k * C), _MM_HINT_T0);
                        __m512 xv = ld_x(xs, xs16, (size_t)off, m, BF);
                        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(xv, mu), is);
                        __m512 v = _mm512_add_ps(_mm512_mul_ps(xh, ga), be);
                        __m512i ai = _mm512_add_epi32(_mm512_set1_epi32(off), iota);
                        if (dy == 0 && dx == 0) {
                            best = v;
                            bxh = xh;
                            barg = ai;
                        } else {
                            __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
                            best = _mm512_mask_mov_ps(best, gt, v);
                            bxh = _mm512_mask_mov_ps(bxh, gt, xh);
                            barg = _mm512_mask_mov_epi32(barg, gt, ai);
                        }
                    }
                }
                _mm512_mask_storeu_ps(yrow ? yrow + (size_t)ox * C + c0 : j->y + o, m, best);
                _mm512_mask_storeu_epi32(j->arg + o, m, barg);
                if (j->xhat)
                    _mm512_mask_storeu_ps(j->xhat + o, m, bxh);
            }
#ifdef CMIR__CONV_DIRECT
        if (yrow)
            cmir__bfd_store_row(yrow, (size_t)Wo * C, (uint16_t *)j->y + r * Wo * (size_t)C, 0);
#endif
    }
}

FK_FN void pool_fwd_avx512(const fjob *j, size_t lo, size_t hi)
{
    pool_fwd_body(j, lo, hi, 0, NULL);
}
FK_FN void pool_fwd_bf(const fjob *j, size_t lo, size_t hi, float *yrow)
{
    pool_fwd_body(j, lo, hi, 1, yrow);
}

/* Pooled entries [lo, hi), channels [c0, c0 + 16 NB) (last block masked by
 * ml): the rows run outermost, so each row's channels of the group are read
 * in one go (a channel at a time would read each cache line C / 16 times
 * over a tensor larger than the caches); per channel the rows are summed
 * in order, as in the portable loop. */
FK_IN void bsum_blk(const fjob *j, size_t lo, size_t hi, int c0, const int NB, __mmask16 ml,
                    double *s, double *q)
{
    const int C = j->C;
    const size_t out_s = (size_t)j->Ho * j->Wo * C, in_s = (size_t)j->H * j->W * C;
    __m512d as[4][2], aq[4][2];
    __m512 mu[4], is[4];
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        const __mmask16 m = b == NB - 1 ? ml : 0xFFFF;
        const int c = c0 + 16 * b;
        mu[b] = _mm512_maskz_loadu_ps(m, j->mean + c);
        is[b] = _mm512_maskz_loadu_ps(m, j->invstd + c);
        as[b][0] = _mm512_loadu_pd(s + c), as[b][1] = _mm512_loadu_pd(s + c + 8);
        aq[b][0] = _mm512_loadu_pd(q + c), aq[b][1] = _mm512_loadu_pd(q + c + 8);
    }
    for (size_t r = lo; r < hi; r++) {
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            const __mmask16 m = b == NB - 1 ? ml : 0xFFFF;
            const size_t i = r * C + c0 + 16 * b;
            __m512 g = _mm512_maskz_loadu_ps(m, j->dy + i), xh;
            if (j->xhat_in) {
                xh = _mm512_maskz_loadu_ps(m, j->xhat_in + i);
            } else {
                const float *xs = j->x + (i / out_s) * in_s;
                __m512i a = _mm512_maskz_loadu_epi32(m, j->carg + i);
                __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, a, xs, 4);
                xh = _mm512_mul_ps(_mm512_sub_ps(xv, mu[b]), is[b]);
            }
            __m512d g0 = lo_pd(g), g1 = hi_pd(g);
            as[b][0] = _mm512_add_pd(as[b][0], g0);
            as[b][1] = _mm512_add_pd(as[b][1], g1);
            aq[b][0] = _mm512_add_pd(aq[b][0], _mm512_mul_pd(g0, lo_pd(xh)));
            aq[b][1] = _mm512_add_pd(aq[b][1], _mm512_mul_pd(g1, hi_pd(xh)));
        }
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        const int c = c0 + 16 * b;
        _mm512_storeu_pd(s + c, as[b][0]), _mm512_storeu_pd(s + c + 8, as[b][1]);
        _mm512_storeu_pd(q + c, aq[b][0]), _mm512_storeu_pd(q + c + 8, aq[b][1]);
    }
}

FK_FN void bsum_avx512(const fjob *j, size_t lo, size_t hi, double *s, double *q)
{
    for (int c0 = 0; c0 < j->C; c0 += 64) {
        int rem = j->C - c0, NB = rem >= 64 ? 4 : (rem + 15) / 16;
        __mmask16 ml = fmask(rem - 16 * (NB - 1));
        switch (NB) {
        case 1: bsum_blk(j, lo, hi, c0, 1, ml, s, q); break;
        case 2: bsum_blk(j, lo, hi, c0, 2, ml, s, q); break;
        case 3: bsum_blk(j, lo, hi, c0, 3, ml, s, q); break;
        default: bsum_blk(j, lo, hi, c0, 4, ml, s, q); break;
        }
    }
}

/* One pixel, one block of 16 channels (mu, B, A: the block's per-channel
 * mean, m2, m1); w: lanes where it is the winner. */
FK_IN void dense_px(const float *xp, float *op, __m512 mu, __m512 B, __m512 A, __mmask16 m,
                    __mmask16 w, __m512 gdy, __m512 sl, int nt)
{
    __m512 xv = _mm512_maskz_loadu_ps(m, xp);
    __m512 t = _mm512_sub_ps(xv, mu);
    t = _mm512_add_ps(_mm512_mul_ps(t, B), A);
    t = _mm512_mask_add_ps(t, w, t, gdy);
    t = _mm512_mask_mul_ps(t, _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_NGT_UQ), t, sl);
    if (nt && m == 0xFFFF)
        _mm512_stream_ps(op, t);
    else
        _mm512_mask_storeu_ps(op, m, t);
}

/* As dense_row_generic; nt: streaming stores (out 64-byte aligned, C % 16 == 0). */
FK_FN void dense_row_avx512(const fjob *j, size_t n, int yy, const float *arow, float *out,
                            int nt)
{
    const int H = j->H, W = j->W, C = j->C, k = j->k, Ho = j->Ho, Wo = j->Wo;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sl = _mm512_set1_ps(j->slope), zero = _mm512_setzero_ps();
    const int oy = yy / k, xw = oy < Ho ? Wo * k : 0; /* columns covered by windows */
    const float *xr = arow ? arow : j->x + (n * H + yy) * (size_t)W * C;
    /* pixel by pixel (the row streams from memory in order), the next
     * windows' pixels prefetched */
    for (int ox = 0; ox * k < xw; ox++)
        for (int c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 m = fmask(C - c0);
            const __m512 mu = _mm512_maskz_loadu_ps(m, j->mean + c0);
            const __m512 B = _mm512_maskz_loadu_ps(m, j->m2 + c0);
            const __m512 A = _mm512_maskz_loadu_ps(m, j->m1 + c0);
            size_t pi = ((n * Ho + oy) * Wo + ox) * (size_t)C + c0;
            /* winner offset relative to this row's first pixel of the window */
            int32_t base = (int32_t)(((size_t)yy * W + (size_t)ox * k) * C + c0);
            __m512i rel = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, j->carg + pi),
                                           _mm512_add_epi32(_mm512_set1_epi32(base), iota));
            __m512 gdy = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, j->g + c0),
                                       _mm512_maskz_loadu_ps(m, j->dy + pi));
            size_t e = (size_t)ox * k * C + c0;
            for (int dx = 0; dx < k; dx++, e += C) {
                _mm_prefetch((const char *)(xr + e + (size_t)4 * k * C), _MM_HINT_T0);
                __mmask16 w = _mm512_mask_cmpeq_epi32_mask(m, rel, _mm512_set1_epi32(dx * C));
                dense_px(xr + e, out + e, mu, B, A, m, w, gdy, sl, nt);
            }
        }
    for (int xx = xw; xx < W; xx++) /* outside every window: no winners */
        for (int c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 m = fmask(C - c0);
            dense_px(xr + (size_t)xx * C + c0, out + (size_t)xx * C + c0,
                     _mm512_maskz_loadu_ps(m, j->mean + c0), _mm512_maskz_loadu_ps(m, j->m2 + c0),
                     _mm512_maskz_loadu_ps(m, j->m1 + c0), m, 0, zero, sl, nt);
        }
}

FK_FN void stream_fence(void) { _mm_sfence(); }

static int have_avx512(void) { return !cmir__fused_generic && __builtin_cpu_supports("avx512f"); }
#else
static int have_avx512(void) { return 0; }
#endif

/* ---- tasks ------------------------------------------------------------- */

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* part: T blocks of 2 * round16(C) doubles: sums, then sums of squares. */
static int stats_task(int t, int T, void *user)
{
    const fjob *j = user;
    size_t lo, hi, Cr = round16((size_t)j->C);
    cmir__split(j->M, T, t, &lo, &hi);
    double *s = j->part + (size_t)t * 2 * Cr, *q = s + Cr;
    memset(s, 0, sizeof(double) * 2 * Cr);
#ifdef FUSED_AVX512
    if (have_avx512()) {
        stats_avx512(j->x, j->C, lo, hi, s, q);
        return 0;
    }
#endif
    stats_generic(j, lo, hi, s, q);
    return 0;
}

static int pool_task(int t, int T, void *user)
{
    const fjob *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N * j->Ho, T, t, &lo, &hi);
#ifdef FUSED_AVX512
    if (j->xb) { /* only where cmir__bn_abf_ok: AVX-512 */
        float *yrow = NULL;
        if (j->ybf && !(yrow = cmir__malloc_aligned(sizeof(float) * (size_t)j->Wo * j->C)))
            return CMIR_ENOMEM;
        pool_fwd_bf(j, lo, hi, yrow);
        cmir__free_aligned(yrow);
        return 0;
    }
    if (have_avx512()) {
        pool_fwd_avx512(j, lo, hi);
        return 0;
    }
#endif
    pool_fwd_generic(j, lo, hi);
    return 0;
}

static int bsum_task(int t, int T, void *user)
{
    const fjob *j = user;
    size_t lo, hi, Cr = round16((size_t)j->C);
    cmir__split((size_t)j->N * j->Ho * j->Wo, T, t, &lo, &hi);
    double *s = j->part + (size_t)t * 2 * Cr, *q = s + Cr;
    memset(s, 0, sizeof(double) * 2 * Cr);
#ifdef FUSED_AVX512
    if (have_avx512()) {
        bsum_avx512(j, lo, hi, s, q);
        return 0;
    }
#endif
    bsum_generic(j, lo, hi, s, q);
    return 0;
}

/* Row yy of sample n of the gradient; arow: that row of x when the caller
 * has it (NULL: read from j->x). */
static void dense_row(const fjob *j, size_t n, int yy, const float *arow, float *out, int nt)
{
#ifdef FUSED_AVX512
    if (have_avx512()) {
        dense_row_avx512(j, n, yy, arow, out, nt);
        return;
    }
#endif
    (void)nt;
    dense_row_generic(j, n, yy, arow, out);
}

int cmir__bn_dense_task(int t, int T, void *user)
{
    const fjob *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N * j->H, T, t, &lo, &hi);
    for (size_t r = lo; r < hi; r++)
        dense_row(j, r / (size_t)j->H, (int)(r % (size_t)j->H), NULL,
                  j->dx + r * j->W * (size_t)j->C, j->nt);
#ifdef FUSED_AVX512
    if (j->nt)
        stream_fence();
#endif
    return 0;
}

/* cmir__dyrow_fn for the conv backward */
void cmir__bn_dense_row_cb(void *ctx, size_t n, int y, const float *arow, float *row)
{
    dense_row(ctx, n, y, arow, row, 0);
}

/* Fixed-order reduction of the T partial blocks into out[2C]. */
static void reduce2(const fjob *j, int T, double *out)
{
    size_t Cr = round16((size_t)j->C);
    for (int c = 0; c < 2 * j->C; c++) {
        size_t o = c < j->C ? (size_t)c : Cr + (size_t)(c - j->C);
        double v = 0.0;
        for (int t = 0; t < T; t++)
            v += j->part[(size_t)t * 2 * Cr + o];
        out[c] = v;
    }
}

/* Shapes shared by both directions: x{N,H,W,C}, pooled p{N,H/k,W/k,C}. */
static int fused_setup(cmir_exec *ex, const char *fn, int k, const cmir_tensor *x,
                       const cmir_tensor *p, const char *pn, fjob *j, int *T)
{
    int rc;
    if ((rc = cmir__check_tensor(x, 4, fn, "x")) || (rc = cmir__check_tensor(p, 4, fn, pn)))
        return rc;
    if (k < 1)
        return cmir__error(CMIR_EINVAL, "%s: bad window %d", fn, k);
    memset(j, 0, sizeof *j);
    j->N = (int)x->shape[0];
    j->H = (int)x->shape[1];
    j->W = (int)x->shape[2];
    j->C = (int)x->shape[3];
    j->k = k;
    j->Ho = j->H / k;
    j->Wo = j->W / k;
    j->M = (size_t)j->N * j->H * j->W;
    if (j->C <= 0 || j->M == 0)
        return cmir__error(CMIR_EINVAL, "%s: empty input", fn);
    if (p->shape[0] != j->N || p->shape[1] != j->Ho || p->shape[2] != j->Wo ||
        p->shape[3] != j->C)
        return cmir__error(CMIR_EINVAL, "%s: %s must be %dx%dx%dx%d for window %d", fn, pn,
                           j->N, j->Ho, j->Wo, j->C, k);
    if ((int64_t)j->H * j->W * j->C > INT32_MAX - 16)
        return cmir__error(CMIR_EINVAL, "%s: sample too large", fn);
    *T = cmir__elementwise_threads(ex, j->M * (size_t)j->C);
    size_t Cr = round16((size_t)j->C);
    /* partials, then 2C reduced sums, then 3C floats of coefficients */
    size_t bytes = sizeof(double) * (2 * Cr * (size_t)*T + 2 * (size_t)j->C) +
                   sizeof(float) * 3 * (size_t)j->C;
    j->part = cmir__exec_scratch(ex, bytes);
    if (!j->part)
        return CMIR_ENOMEM;
    j->x = x->data;
    return 0;
}

/* Batch mean and invstd from the sums of x and x^2 over M rows; running
 * statistics updated as cmir_batchnorm_forward does. */
void cmir__bn_stats_finish(cmir_bn_params p, size_t M, int C, const double *sum,
                           const double *sq, float *running_mean, float *running_var,
                           float *mean, float *invstd)
{
    for (int c = 0; c < C; c++) {
        double m = sum[c] / (double)M;
        double ss = sq[c] - sum[c] * m; /* sum of squared deviations */
        if (ss < 0.0)
            ss = 0.0;
        double v = ss / (double)M;
        double unbiased = M > 1 ? ss / (double)(M - 1) : v;
        mean[c] = (float)m;
        invstd[c] = (float)(1.0 / sqrt(v + p.eps));
        running_mean[c] = (1.0f - p.momentum) * running_mean[c] + p.momentum * mean[c];
        running_var[c] = (1.0f - p.momentum) * running_var[c] + p.momentum * (float)unbiased;
    }
}

int cmir__channel_sums(cmir_exec *ex, const cmir_tensor *x, double *sums)
{
    const char *fn = "cmir__channel_sums";
    int rc = cmir__check_tensor(x, 0, fn, "x");
    if (rc)
        return rc;
    fjob j;
    memset(&j, 0, sizeof j);
    j.C = (int)x->shape[x->ndim - 1];
    j.M = j.C ? (size_t)(cmir_tensor_numel(x) / j.C) : 0;
    if (j.C <= 0 || j.M == 0)
        return cmir__error(CMIR_EINVAL, "%s: empty input", fn);
    int T = cmir__elementwise_threads(ex, j.M * (size_t)j.C);
    j.part = cmir__exec_scratch(ex, sizeof(double) * 2 * round16((size_t)j.C) * (size_t)T);
    if (!j.part)
        return CMIR_ENOMEM;
    j.x = x->data;
    if ((rc = cmir__parallel(T, stats_task, &j)))
        return rc;
    reduce2(&j, T, sums);
    return 0;
}

/* xb: x's values in bf16 (then sums are required in training); ybf (with
 * xb): y written in bf16 */
int cmir__bn_pool_fwd(cmir_exec *ex, cmir_bn_params p, int training, int k, const cmir_tensor *x,
                      const uint16_t *xb, int ybf, const float *gamma, const float *beta,
                      float *running_mean, float *running_var, float *save_mean,
                      float *save_invstd, const double *sums, cmir_tensor *y, int32_t *argmax,
                      float *xhat)
{
    const char *fn = "cmir__bn_maxpool_forward";
    fjob j;
    int T = 1, rc = fused_setup(ex, fn, k, x, y, "y", &j, &T);
    if (rc)
        return rc;
    j.xb = xb;
    j.ybf = ybf;
    if ((ybf && !xb) || (xb && (!cmir__bn_abf_ok(j.C, k, j.W) || (training && !sums))))
        return cmir__error(CMIR_EINVAL, "%s: bf16 input unsupported here", fn);
    if (!gamma || !beta || !running_mean || !running_var || !argmax ||
        (training && (!save_mean || !save_invstd)))
        return cmir__error(CMIR_EINVAL, "%s: NULL parameter", fn);
    if ((rc = cmir_bn_check_params(p)))
        return rc;
    const int C = j.C;
    float *mean = save_mean, *invstd = save_invstd, *tmp = NULL;
    if (training) {
        double *sum = j.part + 2 * round16((size_t)C) * (size_t)T, *sq = sum + C;
        if (sums) {
            memcpy(sum, sums, sizeof(double) * 2 * C);
        } else {
            if ((rc = cmir__parallel(T, stats_task, &j)))
                return rc;
            reduce2(&j, T, sum);
        }
        size_t M = j.M;
        if ((rc = cmir__exec_reduce_sums(ex, sum, 2 * (size_t)C, &M)))
            return rc;
        cmir__bn_stats_finish(p, M, C, sum, sq, running_mean, running_var, mean, invstd);
    } else {
        if (cmir__bn_inference_stats(p, C, running_mean, running_var, &mean, &invstd, &tmp))
            return CMIR_ENOMEM;
    }
    j.mean = mean;
    j.invstd = invstd;
    j.gamma = gamma;
    j.beta = beta;
    j.y = y->data;
    j.arg = argmax;
    j.xhat = xhat;
    int Tp = T > j.N * j.Ho ? j.N * j.Ho : T;
    rc = j.Ho > 0 && j.Wo > 0 ? cmir__parallel(Tp > 0 ? Tp : 1, pool_task, &j) : 0;
    cmir__free(tmp);
    return rc;
}

int cmir__bn_maxpool_forward(cmir_exec *ex, cmir_bn_params p, int training, int k,
                            const cmir_tensor *x, const float *gamma, const float *beta,
                            float *running_mean, float *running_var, float *save_mean,
                            float *save_invstd, const double *sums, cmir_tensor *y,
                            int32_t *argmax, float *xhat)
{
    return cmir__bn_pool_fwd(ex, p, training, k, x, NULL, 0, gamma, beta, running_mean,
                             running_var, save_mean, save_invstd, sums, y, argmax, xhat);
}

/* The backward's sums, dgamma, dbeta and per-channel coefficients (into
 * coef[3C]); fills the job for dense_row. */
int cmir__bn_bwd_prepare(cmir_exec *ex, const char *fn, float slope, int k, const cmir_tensor *x,
                         const float *gamma, const float *save_mean, const float *save_invstd,
                         const cmir_tensor *dy, const int32_t *argmax, const float *xhat,
                         float *dgamma, float *dbeta, fjob *j, int *T, float *coef)
{
    int rc = fused_setup(ex, fn, k, x, dy, "dy", j, T);
    if (rc)
        return rc;
    if (!gamma || !save_mean || !save_invstd || !argmax)
        return cmir__error(CMIR_EINVAL, "%s: NULL parameter", fn);
    if (slope < 0.0f)
        return cmir__error(CMIR_EINVAL, "%s: slope must be >= 0", fn);
    const int C = j->C;
    j->mean = save_mean;
    j->invstd = save_invstd;
    j->gamma = gamma;
    j->dy = dy->data;
    j->carg = argmax;
    j->xhat_in = xhat;
    j->slope = slope;
    double *sum = j->part + 2 * round16((size_t)C) * (size_t)*T, *sdx = sum + C;
    size_t P = (size_t)j->N * j->Ho * j->Wo;
    if (P) {
        int Tb = cmir__elementwise_threads(ex, P * (size_t)C);
        if ((rc = cmir__parallel(Tb, bsum_task, j)))
            return rc;
        reduce2(j, Tb, sum); /* sum[0..C) = sum dy, sdx = sum dy xhat */
    } else {
        memset(sum, 0, sizeof(double) * 2 * C);
    }
    for (int c = 0; c < C; c++) {
        if (dbeta)
            dbeta[c] = (float)sum[c];
        if (dgamma)
            dgamma[c] = (float)sdx[c];
    }
    /* data-parallel: dgamma, dbeta stay this process's share (the trainer
     * sums the gradients); dx needs the global batch's sums and count */
    size_t M = j->M;
    if ((rc = cmir__exec_reduce_sums(ex, sum, 2 * (size_t)C, &M)))
        return rc;
    /* dx = G (dy - sum(dy)/M - xhat sum(dy xhat)/M), G = gamma invstd, as
     * A + (x - mean) B + G dy with A = -G sum(dy)/M, B = -G invstd sum(dy xhat)/M */
    double invM = 1.0 / (double)M;
    for (int c = 0; c < C; c++) {
        double G = (double)gamma[c] * save_invstd[c];
        coef[c] = (float)(-G * sum[c] * invM);
        coef[C + c] = (float)(-G * save_invstd[c] * sdx[c] * invM);
        coef[2 * C + c] = (float)G;
    }
    j->m1 = coef;
    j->m2 = coef + C;
    j->g = coef + 2 * C;
    return 0;
}

int cmir__bn_maxpool_backward(cmir_exec *ex, float slope, int k, const cmir_tensor *x,
                             const float *gamma, const float *save_mean,
                             const float *save_invstd, const cmir_tensor *dy,
                             const int32_t *argmax, const float *xhat, cmir_tensor *dx,
                             float *dgamma, float *dbeta)
{
    const char *fn = "cmir__bn_maxpool_backward";
    int rc = cmir__check_tensor(x, 4, fn, "x");
    if (rc)
        return rc;
    if (dx && ((rc = cmir__check_tensor(dx, 0, fn, "dx")) ||
               (rc = cmir__check_same(x, dx, fn, "x", "dx"))))
        return rc;
    fjob j;
    int T = 1, C = (int)x->shape[3];
    float *coef = cmir__malloc(sizeof(float) * 3 * (size_t)(C > 0 ? C : 1));
    if (!coef)
        return CMIR_ENOMEM;
    rc = cmir__bn_bwd_prepare(ex, fn, slope, k, x, gamma, save_mean, save_invstd, dy, argmax,
                              xhat, dgamma, dbeta, &j, &T, coef);
    if (!rc && dx) {
        j.dx = dx->data;
        j.nt = j.M * (size_t)j.C * sizeof(float) >= ((size_t)32 << 20) && j.C % 16 == 0 &&
               ((uintptr_t)j.dx & 63) == 0;
        int rows = j.N * j.H;
        rc = cmir__parallel(T > rows ? rows : T, cmir__bn_dense_task, &j);
    }
    cmir__free(coef);
    return rc;
}
