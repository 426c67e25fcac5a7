/* The fused batch-norm + max-pool backward rows (fused.c's dense_row) at
 * the bf16 precision, written straight into the layouts the bf16 conv
 * kernels read (pixel pairs for dW, channel pairs for dx) with the rows'
 * sums for db: no float row is stored and converted again. */
#include "fused_internal.h"

#include <string.h>

#ifdef FUSED_AVX512
#include <immintrin.h>

#define FB_FN static __attribute__((target("avx512f,avx512bw,avx512bf16"), noinline))
#define FB_IN static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))

/* One pixel's 16 channels of dx (xv: its a; mu, B, A: their
 * coefficients; gdy: G dy of its window, added in the lanes w where it is
 * the winner), the same operations in the same order as fused.c's
 * dense_px: the values the float row would hold, bit for bit. */
FB_IN __m512 px16(__m512 xv, __m512 mu, __m512 B, __m512 A, __mmask16 w, __m512 gdy, __m512 sl)
{
    __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(xv, mu), B), A);
    t = _mm512_mask_add_ps(t, w, t, gdy);
    return _mm512_mask_mul_ps(t, _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_NGT_UQ), t, sl);
}

/* (a, b) per lane: pixel pairs, a in the low half */
FB_IN __m512i pix2(__m512 a, __m512 b, __m512i idx)
{
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* 16 values from xa: floats, or (BF) bf16 widened exactly */
FB_IN __m512 ld16(const void *xa, size_t i, const int BF)
{
    if (BF)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)xa + i))),
            16));
    return _mm512_loadu_ps((const float *)xa + i);
}

/* Pixels x, x + 1 of 32 channels from xa (x) and xa + C (x + 1): into
 * the pixel pairs pd and the channel pairs cd (each NULL to skip), their
 * sums into s0, s1. w: winner lanes per pixel and vector, g: G dy. */
FB_IN void pair32(const void *xa, const int BF, int C, __m512 mu0, __m512 mu1, __m512 B0,
                  __m512 B1, __m512 A0,
                  __m512 A1, __mmask16 wa0, __mmask16 wa1, __mmask16 wb0, __mmask16 wb1,
                  __m512 g0, __m512 g1, __m512 sl, __m512i idx, uint32_t *pd, uint32_t *cd,
                  __m512 *s0, __m512 *s1)
{
    __m512 a0 = px16(ld16(xa, 0, BF), mu0, B0, A0, wa0, g0, sl);
    __m512 a1 = px16(ld16(xa, 16, BF), mu1, B1, A1, wa1, g1, sl);
    __m512 b0 = px16(ld16(xa, (size_t)C, BF), mu0, B0, A0, wb0, g0, sl);
    __m512 b1 = px16(ld16(xa, (size_t)C + 16, BF), mu1, B1, A1, wb1, g1, sl);
    *s0 = _mm512_add_ps(*s0, _mm512_add_ps(a0, b0));
    *s1 = _mm512_add_ps(*s1, _mm512_add_ps(a1, b1));
    if (pd) { /* (pixel x, pixel x + 1) per channel */
        _mm512_storeu_si512(pd, pix2(a0, b0, idx));
        _mm512_storeu_si512(pd + 16, pix2(a1, b1, idx));
    }
    if (cd) { /* (channel c, c + 1) per pixel: the channels in order */
        _mm512_storeu_si512(cd, (__m512i)_mm512_cvtne2ps_pbh(a1, a0));
        _mm512_storeu_si512(cd + C / 2, (__m512i)_mm512_cvtne2ps_pbh(b1, b0));
    }
}

/* BF: the rows come from j->xb (arow NULL) */
FB_IN void dy_pairs_body(const fjob *j, size_t n, int yy, const float *arow, uint32_t *pix,
                         uint32_t *chan, float *db, const int BF)
{
    const __m512i idx = _mm512_loadu_si512(cmir__bf16_interleave);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sl = _mm512_set1_ps(j->slope), zero = _mm512_setzero_ps();
    const int W = j->W, C = j->C, k = j->k, Wo = yy / k < j->Ho ? j->Wo : 0;
    const size_t r0 = (n * j->H + yy) * (size_t)W * C;
    const float *xr = BF ? NULL : arow ? arow : j->x + r0;
    const uint16_t *xr16 = BF ? j->xb + r0 : NULL;
    /* the pooled entries of this row's windows, and this row's offsets */
    const size_t prow = ((n * j->Ho + (size_t)(yy / k)) * j->Wo) * C;
    const int32_t rowoff = (int32_t)((size_t)yy * W * C);
#define PAIR_AT(x, wa0, wa1, wb0, wb1, g0, g1)                                                  \
    pair32(BF ? (const void *)(xr16 + (size_t)(x) * C + c)                                   \
              : (const void *)(xr + (size_t)(x) * C + c),                                      \
           BF, C, mu0, mu1, B0, B1, A0, A1, wa0, wa1, wb0, wb1, g0, g1,  \
           sl, idx, pix ? pix + (size_t)(x) / 2 * C + c : NULL,                                 \
           chan ? chan + (size_t)(x) * (C / 2) + c / 2 : NULL, &s0, &s1)
    for (int c = 0; c < C; c += 32) { /* two vectors of channels, pixel pairs */
        const __m512 mu0 = _mm512_loadu_ps(j->mean + c), mu1 = _mm512_loadu_ps(j->mean + c + 16);
        const __m512 B0 = _mm512_loadu_ps(j->m2 + c), B1 = _mm512_loadu_ps(j->m2 + c + 16);
        const __m512 A0 = _mm512_loadu_ps(j->m1 + c), A1 = _mm512_loadu_ps(j->m1 + c + 16);
        const __m512 G0 = _mm512_loadu_ps(j->g + c), G1 = _mm512_loadu_ps(j->g + c + 16);
        __m512 s0 = zero, s1 = zero;
        for (int ox = 0; ox < Wo; ox++) { /* a window's pixels, two at a time (k even) */
            const size_t pi = prow + (size_t)ox * C + c;
            if (ox + 8 < Wo) { /* the pooled rows come from memory once per k rows */
                _mm_prefetch((const char *)(j->carg + pi + 8 * C), _MM_HINT_T0);
                _mm_prefetch((const char *)(j->carg + pi + 8 * C + 16), _MM_HINT_T0);
                _mm_prefetch((const char *)(j->dy + pi + 8 * C), _MM_HINT_T0);
                _mm_prefetch((const char *)(j->dy + pi + 8 * C + 16), _MM_HINT_T0);
            }
            const int32_t at = rowoff + ox * k * C + c; /* pixel ox k's offset */
            /* winners relative to the window's first pixel on this row */
            const __m512i r0 = _mm512_sub_epi32(_mm512_loadu_si512(j->carg + pi), _mm512_set1_epi32(at));
            const __m512i r1 = _mm512_sub_epi32(_mm512_loadu_si512(j->carg + pi + 16),
                                                _mm512_set1_epi32(at + 16));
            const __m512 g0 = _mm512_mul_ps(G0, _mm512_loadu_ps(j->dy + pi));
            const __m512 g1 = _mm512_mul_ps(G1, _mm512_loadu_ps(j->dy + pi + 16));
            __m512i oa = iota, ob = _mm512_add_epi32(iota, _mm512_set1_epi32(C));
            const __m512i step = _mm512_set1_epi32(2 * C);
            for (int d = 0; d < k; d += 2, oa = _mm512_add_epi32(oa, step),
                     ob = _mm512_add_epi32(ob, step))
                PAIR_AT(ox * k + d, _mm512_cmpeq_epi32_mask(r0, oa), _mm512_cmpeq_epi32_mask(r1, oa),
                        _mm512_cmpeq_epi32_mask(r0, ob), _mm512_cmpeq_epi32_mask(r1, ob), g0, g1);
        }
        for (int x = Wo * k; x < W; x += 2) /* outside every window: no winners */
            PAIR_AT(x, 0, 0, 0, 0, zero, zero);
        _mm512_storeu_ps(db + c, _mm512_add_ps(_mm512_loadu_ps(db + c), s0));
        _mm512_storeu_ps(db + c + 16, _mm512_add_ps(_mm512_loadu_ps(db + c + 16), s1));
    }
#undef PAIR_AT
}

FB_FN void dy_pairs(const fjob *j, size_t n, int yy, const float *arow, uint32_t *pix,
                    uint32_t *chan, float *db)
{
    dy_pairs_body(j, n, yy, arow, pix, chan, db, 0);
}

FB_FN void dy_pairs_bf(const fjob *j, size_t n, int yy, uint32_t *pix, uint32_t *chan,
                       float *db)
{
    dy_pairs_body(j, n, yy, NULL, pix, chan, db, 1);
}

int cmir__bn_abf_ok(int C, int k, int W)
{
    return !cmir__fused_generic && cmir__bf16_active() && C % 32 == 0 && k % 2 == 0 &&
           W % 2 == 0;
}

int cmir__bn_dy_pairs_ok(const fjob *j) { return cmir__bn_abf_ok(j->C, j->k, j->W); }

void cmir__bn_dy_pairs(void *job, size_t n, int y, const float *arow, uint32_t *pix,
                       uint32_t *chan, float *db)
{
    const fjob *j = job;
    if (j->xb)
        dy_pairs_bf(j, n, y, pix, chan, db);
    else
        dy_pairs(j, n, y, arow, pix, chan, db);
}
#else
int cmir__bn_abf_ok(int C, int k, int W)
{
    (void)C, (void)k, (void)W;
    return 0;
}

int cmir__bn_dy_pairs_ok(const fjob *j)
{
    (void)j;
    return 0;
}

void cmir__bn_dy_pairs(void *job, size_t n, int y, const float *arow, uint32_t *pix,
                       uint32_t *chan, float *db)
{
    (void)job, (void)n, (void)y, (void)arow, (void)pix, (void)chan, (void)db;
}
#endif
