/* Shared by the direct 3x3 convolution kernels (conv_avx512.c: float32;
 * conv_bf16.c: bf16 pairs, float32 accumulation): a register tile's fused
 * epilogues (leaky ReLU, statistics, batch norm + max-pool, store) and the
 * bf16 kernels' entry points. nn's sources only, where CMIR__CONV_DIRECT. */
#ifndef CMIR_CONV_DIRECT_H
#define CMIR_CONV_DIRECT_H

#include "nn_internal.h"

#ifdef CMIR__CONV_DIRECT
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define DK_IN static inline __attribute__((always_inline, target("avx512f")))

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static inline __mmask16 last_mask(int rem) /* rem in 1..16 */
{
    return (__mmask16)(rem >= 16 ? 0xFFFFu : (1u << rem) - 1u);
}

/* The row drivers' tiling (conv_avx512.c, conv_bf16.c). CMIR__SWn(F, T, VV)
 * lists F(1, T, VV) .. F(n, T, VV). CMIR__ROW_TILES runs the tile macro
 * T(P, VV) over full tiles of TMAX along i in [i, n), then the remainder
 * (< TMAX, a size SW lists) as one switch case. CMIR__BY_V calls F_1 ..
 * F_4 for V vectors of 16 channels. */
#define CMIR__SW5(F, T, VV) F(1, T, VV) F(2, T, VV) F(3, T, VV) F(4, T, VV) F(5, T, VV)
#define CMIR__SW7(F, T, VV) CMIR__SW5(F, T, VV) F(6, T, VV) F(7, T, VV)
#define CMIR__SW9(F, T, VV) CMIR__SW7(F, T, VV) F(8, T, VV) F(9, T, VV)
#define CMIR__SW11(F, T, VV) CMIR__SW9(F, T, VV) F(10, T, VV) F(11, T, VV)
#define CMIR__TILE_CASE(P, T, VV)                                                              \
    case P:                                                                                    \
        T(P, VV);                                                                              \
        break;
#define CMIR__ROW_TILES(i, n, TMAX, T, SW, VV)                                                 \
    do {                                                                                       \
        for (; (i) + (TMAX) <= (n); (i) += (TMAX))                                             \
            T(TMAX, VV);                                                                       \
        switch ((n) - (i)) {                                                                   \
            SW(CMIR__TILE_CASE, T, VV)                                                         \
        default:                                                                               \
            break;                                                                             \
        }                                                                                      \
    } while (0)
#define CMIR__BY_V(V, F, ...)                                                                  \
    switch (V) {                                                                               \
    case 1: F##_1(__VA_ARGS__); break;                                                         \
    case 2: F##_2(__VA_ARGS__); break;                                                         \
    case 3: F##_3(__VA_ARGS__); break;                                                         \
    default: F##_4(__VA_ARGS__); break;                                                        \
    }

/* Forward epilogue without a stored output: batch norm with given
 * statistics + max-pool k x k into per-thread row buffers {Wo, Co}. */
typedef struct fpool {
    int store;                      /* 0: y is not written */
    int k, Wo, Hok;                 /* window; rows y < Hok are pooled */
    int y, W, Co, co0;              /* current row, width, channels, first channel of the block */
    const float *mu, *is, *ga, *be; /* per channel, from 0 */
    float *best, *bxh;
    int32_t *barg;
} fpool;

/* A forward tile's accumulators (P pixels x V vectors, the last masked
 * by ml) start at the bias, or at zero without one. */
DK_IN void tile_bias(__m512 acc[12][4], const float *bias, const int P, const int V,
                     __mmask16 ml)
{
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        __m512 b0 = bias ? _mm512_maskz_loadu_ps(v == V - 1 ? ml : 0xFFFF, bias + 16 * v)
                         : _mm512_setzero_ps();
#pragma GCC unroll 12
        for (int p = 0; p < P; p++)
            acc[p][v] = b0;
    }
}

/* fwd_tile's statistics: per-channel sum and sum of squares of the tile
 * acc (P pixels x V vectors), added into st (sums) and st + Cr (squares)
 * in double. */
DK_IN void tile_stats(__m512 acc[12][4], const int P, const int V, double *st, int Cr)
{
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        __m512 s = acc[0][v], q = _mm512_mul_ps(acc[0][v], acc[0][v]);
#pragma GCC unroll 12
        for (int p = 1; p < P; p++) {
            s = _mm512_add_ps(s, acc[p][v]);
            q = _mm512_fmadd_ps(acc[p][v], acc[p][v], q);
        }
        double *ds = st + 16 * v, *dq = ds + Cr;
        __m512d s0 = _mm512_cvtps_pd(_mm512_castps512_ps256(s));
        __m512d s1 = _mm512_cvtps_pd(
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
        __m512d q0 = _mm512_cvtps_pd(_mm512_castps512_ps256(q));
        __m512d q1 = _mm512_cvtps_pd(
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
        _mm512_storeu_pd(ds, _mm512_add_pd(_mm512_loadu_pd(ds), s0));
        _mm512_storeu_pd(ds + 8, _mm512_add_pd(_mm512_loadu_pd(ds + 8), s1));
        _mm512_storeu_pd(dq, _mm512_add_pd(_mm512_loadu_pd(dq), q0));
        _mm512_storeu_pd(dq + 8, _mm512_add_pd(_mm512_loadu_pd(dq + 8), q1));
    }
}

/* The end of a forward tile acc (P pixels x V vectors of 16 channels, the
 * last masked by ml; x0: its first pixel): leaky ReLU, statistics, batch
 * norm + max-pool, then the store into yb[p*Co + 16v] (streaming with nt). */
DK_IN void tile_finish(__m512 acc[12][4], float *yb, int Co, const int P, const int V,
                       __mmask16 ml, int nt, int act, float slope, double *st, int Cr,
                       const fpool *pl, int x0)
{
    if (act) { /* y > 0 ? y : slope * y, exactly as cmir_lrelu_forward */
        const __m512 zero = _mm512_setzero_ps(), sv = _mm512_set1_ps(slope);
#pragma GCC unroll 12
        for (int p = 0; p < P; p++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                acc[p][v] = _mm512_mask_mul_ps(
                    acc[p][v], _mm512_cmp_ps_mask(acc[p][v], zero, _CMP_NGT_UQ), acc[p][v], sv);
    }
    if (st) /* per-channel sum and sum of squares of the tile, into double */
        tile_stats(acc, P, V, st, Cr);
    if (pl && pl->y < pl->Hok) { /* normalise, then the running window maxima */
        const int k = pl->k, xend = pl->Wo * k, row0 = pl->y % k == 0;
        const __m512i iota =
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            const int c = pl->co0 + 16 * v;
            const __mmask16 m = v == V - 1 ? ml : 0xFFFF;
            const __m512 mu = _mm512_maskz_loadu_ps(m, pl->mu + c);
            const __m512 is = _mm512_maskz_loadu_ps(m, pl->is + c);
            const __m512 ga = _mm512_maskz_loadu_ps(m, pl->ga + c);
            const __m512 be = _mm512_maskz_loadu_ps(m, pl->be + c);
            const int32_t a0 = (int32_t)(((size_t)pl->y * pl->W) * pl->Co) + c;
            /* The tile's pixels of one window are reduced in registers (the
             * first maximum wins), then merged into best, bxh, barg (row
             * buffers or the output rows), which hold the earlier pixels:
             * strict > keeps those on ties, so the winner is the first
             * maximum in row-major order. */
            __m512 bv = _mm512_setzero_ps(), bx = bv;
            __m512i ba = _mm512_setzero_si512();
            int cur = -1, seg0 = 0;
#pragma GCC unroll 12
            for (int p = 0; p <= P; p++) {
                const int x = x0 + p, ox = p < P && x < xend ? x / k : -2;
                if (ox != cur && cur >= 0) { /* flush window cur */
                    const size_t bo = (size_t)cur * pl->Co + c;
                    __mmask16 upd = m;
                    if (!(row0 && seg0 == cur * k))
                        upd = _mm512_mask_cmp_ps_mask(
                            m, bv, _mm512_maskz_loadu_ps(m, pl->best + bo), _CMP_GT_OQ);
                    _mm512_mask_storeu_ps(pl->best + bo, upd, bv);
                    _mm512_mask_storeu_ps(pl->bxh + bo, upd, bx);
                    _mm512_mask_storeu_epi32(pl->barg + bo, upd, ba);
                }
                if (ox < 0)
                    break;
                __m512 xh = _mm512_mul_ps(_mm512_sub_ps(acc[p][v], mu), is);
                __m512 val = _mm512_add_ps(_mm512_mul_ps(xh, ga), be);
                __m512i ai = _mm512_add_epi32(_mm512_set1_epi32(a0 + x * pl->Co), iota);
                if (ox != cur) {
                    cur = ox;
                    seg0 = x;
                    bv = val;
                    bx = xh;
                    ba = ai;
                } else {
                    __mmask16 gt = _mm512_cmp_ps_mask(val, bv, _CMP_GT_OQ);
                    bv = _mm512_mask_mov_ps(bv, gt, val);
                    bx = _mm512_mask_mov_ps(bx, gt, xh);
                    ba = _mm512_mask_mov_epi32(ba, gt, ai);
                }
            }
        }
    }
    if (pl && !pl->store)
        return;
#pragma GCC unroll 12
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            float *d = yb + (size_t)p * Co + 16 * v;
            if (v == V - 1 && ml != 0xFFFF)
                _mm512_mask_storeu_ps(d, ml, acc[p][v]);
            else if (nt)
                _mm512_stream_ps(d, acc[p][v]);
            else
                _mm512_storeu_ps(d, acc[p][v]);
        }
}

/* conv_bf16.c (AVX512_BF16; callers check cmir__bf16_active()). Layouts,
 * uint32 = two bf16 (the lower index in the low half):
 *  channel pairs  q{pixels, (C+1)/2}: (c, c+1) of one pixel, C odd: 0 pad;
 *  pixel pairs    e/o{H+2 rows, Wq+1, C} of a padded sample {H+2,W+2,C},
 *                 Wq = (W+1)/2: e[r][q][c] pixels (2q, 2q+1), o: (2q+1,
 *                 2q+2) (past the row: 0);
 *  dy row pairs   d{Wq, Co}: pixels (2q, 2q+1) of one row (W odd: 0 pad);
 *                 pf: the next row, prefetched meanwhile (or NULL). */
void cmir__bfd_chan_pairs(const float *src, size_t npix, int C, uint32_t *dst);
void cmir__bfd_pix_pairs(const float *xp, int H, int Wd, int C, uint32_t *e, uint32_t *o);
void cmir__bfd_row_pairs(const float *row, int Wd, int Co, uint32_t *d, const float *pf);
/* wq{9, (Ci+1)/2, Co} from W{9, Ci, Co} (Ci 1: the tap pairs {5, Co});
 * flip: the flipped, transposed {9, (Co+1)/2, Ci} for dx instead. */
void cmir__bfd_weights(const float *W, int Ci, int Co, int flip, uint32_t *wq);
/* Row y of the forward from the channel pairs xq{H+2,W+2,Cp} of a padded
 * sample and wq{9,Cp,Co}, with fwd_tile's epilogues (pool: pool->y is y). */
void cmir__bfd_fwd_row(const uint32_t *xq, int y, int Wd, int Cp, const uint32_t *wq, int Co,
                       const float *b, float *yr, int nt, int act, float slope, double *st,
                       int Cr, fpool *pool);
/* The same for one input channel from the padded float sample xp{H+2,W+2}
 * on pairs of taps (t: 5 W scratch), wq the tap pairs. */
void cmir__bfd_fwd_row_taps(const float *xp, int y, int Wd, const uint32_t *wq, int Co,
                            const float *b, float *yr, int nt, int act, float slope, double *st,
                            int Cr, fpool *pool, uint32_t *t);
/* dwp{9Ci, Co} += x^T dy over the nr output rows from y (a band, summed in
 * registers): e, o of the padded sample, d{nr, Wq, Co} the rows' pairs. */
void cmir__bfd_dw_rows(const uint32_t *e, const uint32_t *o, int y, int nr, int Wd, int Ci,
                       const uint32_t *d, int Co, float *dwp);
#endif /* CMIR__CONV_DIRECT */
#endif
