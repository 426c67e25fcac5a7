/* The direct 3x3 convolution kernels at the bf16 precision (AVX512_BF16,
 * chosen at run time by conv_avx512.c): the fp32 kernels' register tiles
 * with vdpbf16ps on pairs of input channels (forward, dx) or of pixels (dW),
 * float32 accumulation, and the conversions into those pair layouts. */
#include "conv_direct.h"

#ifdef CMIR__CONV_DIRECT
#include <string.h>

#define BK_FN static __attribute__((target("avx512f,avx512bw,avx512bf16"), noinline))
#define BK_IN static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))
#define BK_EX __attribute__((target("avx512f,avx512bw,avx512bf16")))

static inline uint32_t pair(float lo, float hi)
{
    return (uint32_t)cmir__f2bf(lo) | (uint32_t)cmir__f2bf(hi) << 16;
}

/* ---- Conversions ---------------------------------------------------------- */

BK_EX void cmir__bfd_chan_pairs(const float *src, size_t npix, int C, uint32_t *dst)
{
    if (C & 1) { /* odd channel counts: per pixel, the last pair padded */
        const int cp = (C + 1) / 2;
        for (size_t p = 0; p < npix; p++, src += C, dst += cp)
            for (int q = 0; q < cp; q++)
                dst[q] = pair(src[2 * q], 2 * q + 1 < C ? src[2 * q + 1] : 0.0f);
        return;
    }
    /* even: the pairs are the bf16 of the floats in order */
    size_t n = npix * (size_t)C, i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i / 2, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16),
                                                                     _mm512_loadu_ps(src + i)));
    for (; i < n; i += 2)
        dst[i / 2] = pair(src[i], src[i + 1]);
}

BK_EX void cmir__bfd_store_row(const float *src, size_t n, uint16_t *dst, int nt)
{
    nt = nt && ((uintptr_t)dst & 63) == 0;
    for (size_t i = 0; i < n; i += 32) {
        __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16),
                                                 _mm512_loadu_ps(src + i));
        if (nt)
            _mm512_stream_si512((__m512i *)(dst + i), h);
        else
            _mm512_storeu_si512(dst + i, h);
    }
}

/* d[q][c] (q < nq, c < C) = pixels (2q, 2q+1) of a row of np pixels {np, C};
 * past the row: 0. pf: the next row (prefetched as this one is read), or
 * NULL. */
BK_IN void pix_pairs_row(const float *row, int np, int nq, int C, uint32_t *d, const float *pf)
{
    const __m512i idx = _mm512_loadu_si512(cmir__bf16_interleave);
    if (C == 1) { /* the pairs are the bf16 of the row in order, 32 pixels a step */
        for (int q = 0; q < nq; q += 16) {
            int i = 2 * q;
            __mmask16 m0 = i < np ? last_mask(np - i) : 0;
            __mmask16 m1 = i + 16 < np ? last_mask(np - i - 16) : 0;
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + i + 16),
                                                     _mm512_maskz_loadu_ps(m0, row + i));
            _mm512_mask_storeu_epi32(d + q, last_mask(nq - q), h);
        }
        return;
    }
    for (int q = 0; q < nq; q++) {
        const float *p0 = 2 * q < np ? row + (size_t)2 * q * C : NULL;
        const float *p1 = 2 * q + 1 < np ? row + (size_t)(2 * q + 1) * C : NULL;
        for (int c = 0; c < C; c += 16) {
            __mmask16 m = last_mask(C - c);
            if (pf && p1) {
                _mm_prefetch((const char *)(pf + (p0 - row) + c), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + (p1 - row) + c), _MM_HINT_T0);
            }
            __m512 a = p0 ? _mm512_maskz_loadu_ps(m, p0 + c) : _mm512_setzero_ps();
            __m512 b = p1 ? _mm512_maskz_loadu_ps(m, p1 + c) : _mm512_setzero_ps();
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_mask_storeu_epi32(d + (size_t)q * C + c, m, _mm512_permutexvar_epi16(idx, h));
        }
    }
}

BK_EX void cmir__bfd_pix_pairs(const float *xp, int H, int Wd, int C, uint32_t *e, uint32_t *o)
{
    const int np = Wd + 2, wq = (Wd + 1) / 2;
    const size_t rs = (size_t)(wq + 1) * C;
    for (int r = 0; r < H + 2; r++) {
        const float *row = xp + (size_t)r * np * C;
        pix_pairs_row(row, np, wq + 1, C, e + r * rs, NULL);
        pix_pairs_row(row + C, np - 1, wq, C, o + r * rs, NULL);
    }
}

BK_EX void cmir__bfd_row_pairs(const float *row, int Wd, int Co, uint32_t *d, const float *pf)
{
    pix_pairs_row(row, Wd, (Wd + 1) / 2, Co, d, pf);
}

void cmir__bfd_weights(const float *W, int Ci, int Co, int flip, uint32_t *wq)
{
    if (!flip && Ci == 1) { /* tap pairs: wq[j][co] = (W[2j][co], W[2j+1][co]) */
        for (int j = 0; j < 5; j++)
            for (int co = 0; co < Co; co++)
                wq[(size_t)j * Co + co] =
                    pair(W[(size_t)2 * j * Co + co], 2 * j + 1 < 9 ? W[(size_t)(2 * j + 1) * Co + co] : 0.0f);
        return;
    }
    if (!flip) { /* wq[t][cp][co] = (W[t][2cp][co], W[t][2cp+1][co]) */
        const int cp = (Ci + 1) / 2;
        for (int t = 0; t < 9; t++)
            for (int q = 0; q < cp; q++) {
                const float *r0 = W + ((size_t)t * Ci + 2 * q) * Co;
                const float *r1 = 2 * q + 1 < Ci ? r0 + Co : NULL;
                uint32_t *d = wq + ((size_t)t * cp + q) * Co;
                for (int co = 0; co < Co; co++)
                    d[co] = pair(r0[co], r1 ? r1[co] : 0.0f);
            }
        return;
    }
    /* wq[8-t][cp][ci] = (W[t][ci][2cp], W[t][ci][2cp+1]) */
    const int cp = (Co + 1) / 2;
    for (int t = 0; t < 9; t++)
        for (int q = 0; q < cp; q++) {
            uint32_t *d = wq + ((size_t)(8 - t) * cp + q) * Ci;
            for (int ci = 0; ci < Ci; ci++) {
                const float *w = W + ((size_t)t * Ci + ci) * Co + 2 * q;
                d[ci] = pair(w[0], 2 * q + 1 < Co ? w[1] : 0.0f);
            }
        }
}

/* ---- Forward (and dx) ------------------------------------------------------ */

/* fwd_tile of conv_avx512.c with pairs: acc[p][v] += sum over taps and
 * pairs q of xb[tap + p ps + q cs] . wb[(tap Cp + q) Co + 16v]. taps 9:
 * channel pairs of the padded input (ps = Cp, cs = 1); taps 1: the tap
 * pairs of one input channel (cmir__bfd_fwd_row_taps: ps = 1, cs = W). */
BK_IN void bfwd_tile(const uint32_t *xb, ptrdiff_t rs, int Cp, const uint32_t *wb, int Co,
                     const float *bias, float *yb, const int P, const int V, __mmask16 ml,
                     int nt, int act, float slope, double *st, int Cr, const fpool *pl, int x0,
                     const int taps, ptrdiff_t ps, ptrdiff_t cs)
{
    __m512 acc[12][4];
    tile_bias(acc, bias, P, V, ml);
    for (int t = 0; t < taps; t++) {
        const uint32_t *xr = taps == 1 ? xb : xb + (t / 3) * rs + (t % 3) * Cp;
        const uint32_t *wr = wb + (size_t)t * Cp * Co;
        for (int c = 0; c < Cp; c++, wr += Co) {
            __m512bh w[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                w[v] = (__m512bh)(v == V - 1 ? _mm512_maskz_loadu_epi32(ml, wr + 16 * v)
                                             : _mm512_loadu_si512(wr + 16 * v));
#pragma GCC unroll 12
            for (int p = 0; p < P; p++) {
                __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xr[(ptrdiff_t)p * ps + c * cs]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    acc[p][v] = _mm512_dpbf16_ps(acc[p][v], xv, w[v]);
            }
        }
    }
    tile_finish(acc, yb, Co, P, V, ml, nt, act, slope, st, Cr, pl, x0);
}

#define BFWD_T(PP, VV)                                                                         \
    bfwd_tile(xb + (ptrdiff_t)x * ps, rs, TAPS == 1 ? 5 : Cp, wb, Co, bias, yb + (size_t)x * Co, \
              PP, VV, ml, nt, act, slope, st, Cr, pl, x, TAPS, TAPS == 1 ? 1 : ps, cs)

#define DEF_BFWD_ROW(VV, PMAX, SW)                                                             \
    BK_FN void bfwd_row_##VV(const uint32_t *xb, ptrdiff_t rs, int Cp, const uint32_t *wb,      \
                             int Co, const float *bias, float *yb, int Wd, __mmask16 ml,       \
                             int nt, int act, float slope, double *st, int Cr, const fpool *pl, \
                             ptrdiff_t ps, ptrdiff_t cs)                                       \
    {                                                                                          \
        int x = 0;                                                                             \
        CMIR__ROW_TILES(x, Wd, PMAX, BFWD_T, SW, VV);                                          \
    }
#define TAPS 9
DEF_BFWD_ROW(1, 12, CMIR__SW11)
DEF_BFWD_ROW(2, 8, CMIR__SW7)
DEF_BFWD_ROW(3, 8, CMIR__SW7)
DEF_BFWD_ROW(4, 6, CMIR__SW5)
#undef TAPS
#define TAPS 1
#define bfwd_row_1 bfwd_rowt_1
#define bfwd_row_2 bfwd_rowt_2
#define bfwd_row_3 bfwd_rowt_3
#define bfwd_row_4 bfwd_rowt_4
DEF_BFWD_ROW(1, 12, CMIR__SW11)
DEF_BFWD_ROW(2, 8, CMIR__SW7)
DEF_BFWD_ROW(3, 8, CMIR__SW7)
DEF_BFWD_ROW(4, 6, CMIR__SW5)
#undef bfwd_row_1
#undef bfwd_row_2
#undef bfwd_row_3
#undef bfwd_row_4
#undef TAPS

/* Rows of output channel blocks; taps: bfwd_tile's. */
static void fwd_row_blocks(const uint32_t *xb, ptrdiff_t rs, int Cp, const uint32_t *wq, int Co,
                           const float *b, float *yr, int Wd, int nt, int act, float slope,
                           double *st, int Cr, fpool *pl, int taps, ptrdiff_t ps, ptrdiff_t cs)
{
    for (int co0 = 0; co0 < Co; co0 += 64) {
        int rem = Co - co0, V = rem >= 64 ? 4 : (rem + 15) / 16;
        __mmask16 ml = last_mask(rem - 16 * (V - 1));
        const uint32_t *wb = wq + co0;
        const float *bias = b ? b + co0 : NULL;
        float *yb = yr + co0;
        double *sb = st ? st + co0 : NULL;
        if (pl)
            pl->co0 = co0;
        if (taps == 9) {
            CMIR__BY_V(V, bfwd_row, xb, rs, Cp, wb, Co, bias, yb, Wd, ml, nt, act, slope, sb, Cr,
                       pl, ps, cs)
        } else {
            CMIR__BY_V(V, bfwd_rowt, xb, rs, Cp, wb, Co, bias, yb, Wd, ml, nt, act, slope, sb, Cr,
                       pl, ps, cs)
        }
    }
}

void cmir__bfd_fwd_row(const uint32_t *xq, int y, int Wd, int Cp, const uint32_t *wq, int Co,
                       const float *b, float *yr, int nt, int act, float slope, double *st,
                       int Cr, fpool *pl)
{
    const ptrdiff_t rs = (ptrdiff_t)(Wd + 2) * Cp;
    fwd_row_blocks(xq + y * rs, rs, Cp, wq, Co, b, yr, Wd, nt, act, slope, st, Cr, pl, 9, Cp, 1);
}

/* t[j][x] (j < 5, x < W) = taps (2j, 2j+1) of output pixel x of row y of
 * the padded one-channel sample xp{H+2, W+2} (tap 9: 0). */
BK_FN void tap_pairs(const float *xp, int y, int Wd, uint32_t *t)
{
    const __m512i idx = _mm512_loadu_si512(cmir__bf16_interleave);
    const size_t rs = (size_t)Wd + 2;
    for (int j = 0; j < 5; j++) {
        const int ta = 2 * j, tb = 2 * j + 1;
        const float *ra = xp + (size_t)(y + ta / 3) * rs + ta % 3;
        const float *rb = tb < 9 ? xp + (size_t)(y + tb / 3) * rs + tb % 3 : NULL;
        for (int x = 0; x < Wd; x += 16) {
            __mmask16 m = last_mask(Wd - x);
            __m512 a = _mm512_maskz_loadu_ps(m, ra + x);
            __m512 b = rb ? _mm512_maskz_loadu_ps(m, rb + x) : _mm512_setzero_ps();
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_mask_storeu_epi32(t + (size_t)j * Wd + x, m, _mm512_permutexvar_epi16(idx, h));
        }
    }
}

void cmir__bfd_fwd_row_taps(const float *xp, int y, int Wd, const uint32_t *wq, int Co,
                            const float *b, float *yr, int nt, int act, float slope, double *st,
                            int Cr, fpool *pl, uint32_t *t)
{
    tap_pairs(xp, y, Wd, t);
    fwd_row_blocks(t, 0, 5, wq, Co, b, yr, Wd, nt, act, slope, st, Cr, pl, 1, 1, Wd);
}

/* ---- Weight gradient ------------------------------------------------------- */

/* dwp[(k0+r) Co + 16v] += sum over the nr output rows of a band and their
 * pixel pairs q of x pair (tap(k), c(k)) . d[(row wq + q) Co + 16v],
 * k = k0 + r: the pixel pairs of tap column 0 are e[q], of column 1 o[q],
 * of column 2 e[q+1]. */
BK_IN void bdw_tile(const uint32_t *e, const uint32_t *o, size_t ers, int Ci, int k0,
                    const uint32_t *d, int Co, int wq, int nr, float *dwp, const int KR,
                    const int V, __mmask16 ml)
{
    const uint32_t *pr[10];
    __m512 acc[10][4];
#pragma GCC unroll 10
    for (int r = 0; r < KR; r++) {
        int k = k0 + r, t = k / Ci, c = k - t * Ci, kx = t % 3;
        pr[r] = (kx == 1 ? o : e) + (size_t)(t / 3) * ers + (kx == 2 ? Ci : 0) + c;
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            acc[r][v] = _mm512_setzero_ps();
    }
    for (int yy = 0; yy < nr; yy++, d += (size_t)wq * Co) {
        if (yy) /* the next output row of the band */
#pragma GCC unroll 10
            for (int r = 0; r < KR; r++)
                pr[r] += ers;
        for (int q = 0; q < wq; q++) {
            __m512bh dv[4];
            const uint32_t *dp = d + (size_t)q * Co;
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                dv[v] = (__m512bh)(v == V - 1 ? _mm512_maskz_loadu_epi32(ml, dp + 16 * v)
                                              : _mm512_loadu_si512(dp + 16 * v));
#pragma GCC unroll 10
            for (int r = 0; r < KR; r++) {
                __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pr[r][(size_t)q * Ci]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv, dv[v]);
            }
        }
    }
#pragma GCC unroll 10
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            float *p = dwp + (size_t)(k0 + r) * Co + 16 * v;
            __mmask16 m = v == V - 1 ? ml : 0xFFFF;
            _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), acc[r][v]));
        }
}

#define BDW_T(KK, VV) bdw_tile(e, o, ers, Ci, k0, d, Co, wq, nr, dwp, KK, VV, ml)
#define DEF_BDW_ROW(VV, KMAX, SW)                                                              \
    BK_FN void bdw_row_##VV(const uint32_t *e, const uint32_t *o, size_t ers, int Ci,          \
                            const uint32_t *d, int Co, int wq, int nr, float *dwp,             \
                            __mmask16 ml)                                                      \
    {                                                                                          \
        const int K = 9 * Ci;                                                                  \
        int k0 = 0;                                                                            \
        CMIR__ROW_TILES(k0, K, KMAX, BDW_T, SW, VV);                                           \
    }
DEF_BDW_ROW(1, 10, CMIR__SW9)
DEF_BDW_ROW(2, 10, CMIR__SW9)
DEF_BDW_ROW(3, 8, CMIR__SW7)
DEF_BDW_ROW(4, 6, CMIR__SW5)

void cmir__bfd_dw_rows(const uint32_t *e, const uint32_t *o, int y, int nr, int Wd, int Ci,
                       const uint32_t *d, int Co, float *dwp)
{
    const int wq = (Wd + 1) / 2;
    const size_t ers = (size_t)(wq + 1) * Ci;
    e += (size_t)y * ers;
    o += (size_t)y * ers;
    for (int co0 = 0; co0 < Co; co0 += 64) {
        int rem = Co - co0, V = rem >= 64 ? 4 : (rem + 15) / 16;
        __mmask16 ml = last_mask(rem - 16 * (V - 1));
        CMIR__BY_V(V, bdw_row, e, o, ers, Ci, d + co0, Co, wq, nr, dwp + co0, ml)
    }
}
#endif /* CMIR__CONV_DIRECT */
