/* The direct 3x3 convolution kernels for x86-64 CPUs with AVX-512F
 * (chosen at run time; conv.c holds the portable im2col + sgemm path and
 * the public entry points): forward with the fused leaky ReLU, statistics
 * and batch norm + max-pool epilogues, and the backward with dy made row
 * by row; at the bf16 precision the same drivers run conv_bf16.c's kernels.
 * Built everywhere; empty except for the stubs where the compiler cannot
 * target AVX-512 (or with -DCMIR_CONV_NO_DIRECT). */
#include "nn_internal.h"

#include <string.h>

/* ======================================================================== */
/* Direct convolution (x86-64 with AVX-512F, detected at run time).         */
/*                                                                          */
/* No im2col and no GEMM: each thread copies one sample at a time into a    */
/* zero-bordered buffer, so every output pixel has all nine taps, and       */
/* register-tiled kernels compute                                            */
/*   forward: a tile of P pixels x 16V output channels, bias preloaded,     */
/*            summed over taps and input channels in a fixed order;         */
/*   dx:      the same kernel on the padded dy with the flipped, transposed */
/*            weights {3,3,Cout,Cin};                                         */
/*   dW, db:  a tile of KR rows of dW x 16V channels summed over the pixels */
/*            of one output row in registers, then added to the thread's    */
/*            partial; partials are reduced in thread order.                */
/* Channel counts that are not multiples of 16 use masked loads/stores in   */
/* the same kernels. Everything runs in a fixed order, so results are       */
/* bit-identical for the same inputs and thread count.                      */

#ifdef CMIR__CONV_DIRECT
#include "conv_direct.h"

#define DK_FN static __attribute__((target("avx512f"), noinline))

/* Outputs at least this large are written with streaming stores: they
 * cannot stay in cache for the next layer anyway. */
#ifndef DIRECT_NT_BYTES
#define DIRECT_NT_BYTES ((size_t)32 << 20)
#endif

typedef struct dconv {
    const float *x, *W, *b, *dy;
    float *y, *dx;
    float *Wt;         /* {3,3,Co,Ci}: flipped, transposed W for dx */
    float *scratch;    /* per thread: padded x, padded dy, dW and db partials */
    size_t per_thread; /* floats */
    size_t off_dyp, off_dw;
    int N, H, Wd, Ci, Co;
    int nt;
    int act;     /* forward only: leaky ReLU with `slope` applied in the store */
    float slope;
    size_t off_st; /* forward with statistics: per-thread sums (doubles) at this float offset */
    int want_st;
    cmir__dyrow_fn dyrow; /* backward: dy made row by row by this (j->dy unused) */
    cmir__dypairs_fn dypairs; /* bf16: ... or straight into the pair buffers */
    void *dyctx;
    size_t off_row;       /* per-thread row buffer for dyrow without dx */
    const float *rb;      /* recompute: the forward's bias (NULL: zero) ... */
    float rslope;         /* ... and leaky-ReLU slope, to remake the conv's output */
    int recompute;        /* rows for dyrow (needs want_dw) */
    size_t off_arow;      /* per-thread buffer for one remade output row */
    /* forward without a stored output (cmir__conv3x3_lrelu_pool) */
    int pmode;            /* 1: sums only, 2: batch norm + max-pool */
    const struct fpool *ptmpl;
    float *py, *pxh;
    int32_t *parg;
    size_t off_prow;      /* per thread: a dummy output row, then best, bxh, barg {Wo, Co} */
    int pnt;              /* pooled outputs that large: row buffers streamed out */
    int pybf;             /* py in bf16: through the row buffers too */
    int want_dx, want_dw;
    /* bf16 precision (conv_bf16.c): forward (and its remade rows) on channel
     * pairs, dW on pixel pairs, dx on channel pairs of dy */
    int bfx, bfdw, bfdx;
    uint32_t *wq, *wtq; /* the weights' pairs for the forward and dx */
    size_t off_xq, off_e, off_o, off_dq, off_dypq; /* per-thread pair buffers */
    size_t off_tp; /* one input channel: per-thread tap pairs of one row {5, W} */
    int band;      /* bf16 dW: output rows summed in registers at a time */
    int ybf;       /* forward: y stored as bf16, each row through a float row at off_yrow */
    int xbf;       /* x holds bf16 (uint16) values */
    size_t off_yrow;
} dconv;


/* Copies sample xs{H,W,C} into the interior of xp{H+2,W+2,C}, whose
 * border is already zero. */
static void pad_sample(const float *xs, int H, int Wd, int C, float *xp)
{
    for (int y = 0; y < H; y++)
        memcpy(xp + ((size_t)(y + 1) * (Wd + 2) + 1) * C, xs + (size_t)y * Wd * C,
               sizeof(float) * Wd * C);
}

/* pad_sample from the bf16 values xs16 (C % 16 == 0), widened exactly */
DK_FN void pad_sample_bf(const uint16_t *xs16, int H, int Wd, int C, float *xp)
{
    const size_t rn = (size_t)Wd * C;
    for (int y = 0; y < H; y++) {
        const uint16_t *s = xs16 + (size_t)y * rn;
        float *d = xp + ((size_t)(y + 1) * (Wd + 2) + 1) * C;
        for (size_t i = 0; i < rn; i += 16)
            _mm512_storeu_ps(d + i, _mm512_castsi512_ps(_mm512_slli_epi32(
                                        _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                            (const __m256i *)(s + i))),
                                        16)));
    }
}

/* The same into the channel pairs xq{H+2,W+2,(C+1)/2} (border already 0);
 * xs16 (or NULL): x's values in bf16 (C even), which are those pairs. */
static void pad_pairs(const float *xs, const uint16_t *xs16, int H, int Wd, int C, uint32_t *xq)
{
    if (xs16) {
        for (int y = 0; y < H; y++)
            memcpy(xq + ((size_t)(y + 1) * (Wd + 2) + 1) * (size_t)(C / 2),
                   xs16 + (size_t)y * Wd * C, sizeof(uint16_t) * Wd * C);
        return;
    }
    const size_t cp = ((size_t)C + 1) / 2;
    for (int y = 0; y < H; y++)
        cmir__bfd_chan_pairs(xs + (size_t)y * Wd * C, (size_t)Wd, C,
                             xq + ((size_t)(y + 1) * (Wd + 2) + 1) * cp);
}

/* yb[p*Co + 16v] (p < P, v < V; last vector masked by ml) = bias +
 * sum_{tap, c} xb[tap offset + p*Ci + c] * wb[(tap*Ci + c)*Co + 16v].
 * xb: the padded input at the tile's top-left tap; rs: its row stride. */
DK_IN void fwd_tile(const float *xb, ptrdiff_t rs, int Ci, const float *wb, int Co,
                    const float *bias, float *yb, const int P, const int V, __mmask16 ml,
                    int nt, int act, float slope, double *st, int Cr, const fpool *pl,
                    int x0)
{
    __m512 acc[12][4];
    tile_bias(acc, bias, P, V, ml);
    for (int t = 0; t < 9; t++) {
        const float *xr = xb + (t / 3) * rs + (t % 3) * Ci;
        const float *wr = wb + (size_t)t * Ci * Co;
        for (int c = 0; c < Ci; c++, wr += Co) {
            __m512 w[4];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                w[v] = v == V - 1 ? _mm512_maskz_loadu_ps(ml, wr + 16 * v)
                                  : _mm512_loadu_ps(wr + 16 * v);
#pragma GCC unroll 12
            for (int p = 0; p < P; p++) {
                __m512 xv = _mm512_set1_ps(xr[(ptrdiff_t)p * Ci + c]);
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    acc[p][v] = _mm512_fmadd_ps(xv, w[v], acc[p][v]);
            }
        }
    }
    tile_finish(acc, yb, Co, P, V, ml, nt, act, slope, st, Cr, pl, x0);
}

#define FWD_T(PP, VV)                                                                          \
    fwd_tile(xb + (ptrdiff_t)x * Ci, rs, Ci, wb, Co, bias, yb + (size_t)x * Co, PP, VV, ml, nt,  \
             act, slope, st, Cr, pl, x)

/* One output row, one block of up to 16V output channels. */
#define DEF_FWD_ROW(VV, PMAX, SW)                                                              \
    DK_FN void fwd_row_##VV(const float *xb, ptrdiff_t rs, int Ci, const float *wb, int Co,     \
                            const float *bias, float *yb, int Wd, __mmask16 ml, int nt,        \
                            int act, float slope, double *st, int Cr, const fpool *pl)         \
    {                                                                                          \
        int x = 0;                                                                             \
        CMIR__ROW_TILES(x, Wd, PMAX, FWD_T, SW, VV);                                           \
    }
DEF_FWD_ROW(1, 12, CMIR__SW11)
DEF_FWD_ROW(2, 8, CMIR__SW7)
DEF_FWD_ROW(3, 8, CMIR__SW7)
DEF_FWD_ROW(4, 6, CMIR__SW5)

/* Output row y into yr{W,Co}. wq non-NULL: the bf16 kernels with these
 * weight pairs, xp holding the channel pairs (uint32) of the padded sample,
 * or for one channel the floats, whose tap pairs go through tb{5, W}. */
static void fwd_one_row(const float *xp, int y, int Wd, int Ci, const float *W, int Co,
                        const float *b, float *yr, int nt, int act, float slope, double *st,
                        int Cr, const fpool *pool, const uint32_t *wq, uint32_t *tb)
{
    fpool pb, *pl = NULL;
    if (pool) {
        pb = *pool;
        pb.y = y;
        pl = &pb;
    }
    if (wq && Ci == 1) {
        cmir__bfd_fwd_row_taps(xp, y, Wd, wq, Co, b, yr, nt, act, slope, st, Cr, pl, tb);
        return;
    }
    if (wq) {
        cmir__bfd_fwd_row((const uint32_t *)xp, y, Wd, (Ci + 1) / 2, wq, Co, b, yr, nt, act,
                          slope, st, Cr, pl);
        return;
    }
    const ptrdiff_t rs = (ptrdiff_t)(Wd + 2) * Ci;
    for (int co0 = 0; co0 < Co; co0 += 64) {
        int rem = Co - co0, V = rem >= 64 ? 4 : (rem + 15) / 16;
        __mmask16 ml = last_mask(rem - 16 * (V - 1));
        const float *xb = xp + y * rs, *wb = W + co0, *bias = b ? b + co0 : NULL;
        float *yb = yr + co0;
        double *sb = st ? st + co0 : NULL;
        if (pl)
            pl->co0 = co0;
        CMIR__BY_V(V, fwd_row, xb, rs, Ci, wb, Co, bias, yb, Wd, ml, nt, act, slope, sb, Cr, pl)
    }
}

/* ys{H,W,Co} = conv(xp{H+2,W+2,Ci}, W) + b (wq: as fwd_one_row). */
static void fwd_sample(const float *xp, int H, int Wd, int Ci, const float *W, int Co,
                       const float *b, float *ys, int nt, int act, float slope, double *st,
                       int Cr, const uint32_t *wq, uint32_t *tb)
{
    for (int y = 0; y < H; y++)
        fwd_one_row(xp, y, Wd, Ci, W, Co, b, ys + (size_t)y * Wd * Co, nt, act, slope, st, Cr,
                    NULL, wq, tb);
}

/* dwp[(k0+r)*Co + 16v] += sum over the Wd pixels of one output row of
 * xpad[pixel + tap(k) offset + c(k)] * dyr[pixel*Co + 16v], k = k0 + r. */
DK_IN void dw_tile(const float *xb, ptrdiff_t rs, int Ci, int k0, const float *dyr, int Co,
                   int Wd, float *dwp, const int KR, const int V, __mmask16 ml, const float *pf)
{
    const float *pr[10];
    __m512 acc[10][4];
#pragma GCC unroll 10
    for (int r = 0; r < KR; r++) {
        int k = k0 + r, t = k / Ci, c = k - t * Ci;
        pr[r] = xb + (t / 3) * rs + (ptrdiff_t)(t % 3) * Ci + c;
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            acc[r][v] = _mm512_setzero_ps();
    }
    for (int x = 0; x < Wd; x++) {
        __m512 d[4];
        const float *dp = dyr + (size_t)x * Co;
        if (pf) /* the next row of dy, while this one is in cache */
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                _mm_prefetch((const char *)(pf + (size_t)x * Co + 16 * v), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            d[v] = v == V - 1 ? _mm512_maskz_loadu_ps(ml, dp + 16 * v)
                              : _mm512_loadu_ps(dp + 16 * v);
#pragma GCC unroll 10
        for (int r = 0; r < KR; r++) {
            __m512 xv = _mm512_set1_ps(pr[r][(ptrdiff_t)x * Ci]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                acc[r][v] = _mm512_fmadd_ps(xv, d[v], acc[r][v]);
        }
    }
#pragma GCC unroll 10
    for (int r = 0; r < KR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            float *q = dwp + (size_t)(k0 + r) * Co + 16 * v;
            __mmask16 m = v == V - 1 ? ml : 0xFFFF;
            _mm512_mask_storeu_ps(q, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, q), acc[r][v]));
        }
}

#define DW_T(KK, VV) dw_tile(xb, rs, Ci, k0, dyr, Co, Wd, dwp, KK, VV, ml, k0 ? NULL : pf)

/* All K rows of dW, one block of up to 16V channels, one output row. */
#define DEF_DW_ROW(VV, KMAX, SW)                                                               \
    DK_FN void dw_row_##VV(const float *xb, ptrdiff_t rs, int Ci, int K, const float *dyr,     \
                           int Co, int Wd, float *dwp, __mmask16 ml, const float *pf)          \
    {                                                                                          \
        int k0 = 0;                                                                            \
        CMIR__ROW_TILES(k0, K, KMAX, DW_T, SW, VV);                                            \
    }
DEF_DW_ROW(1, 10, CMIR__SW9)
DEF_DW_ROW(2, 10, CMIR__SW9)
DEF_DW_ROW(3, 8, CMIR__SW7)
DEF_DW_ROW(4, 6, CMIR__SW5)

/* dbp[c] += sum over the Wd pixels of one row of dyr[pixel*Co + c]. */
DK_FN void db_row(const float *dyr, int Co, int Wd, float *dbp)
{
    for (int co0 = 0; co0 < Co; co0 += 16) {
        __mmask16 m = last_mask(Co - co0);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *p = dyr + co0;
        int x = 0;
        for (; x + 4 <= Wd; x += 4, p += 4 * (size_t)Co) {
            a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, p));
            a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(m, p + Co));
            a2 = _mm512_add_ps(a2, _mm512_maskz_loadu_ps(m, p + 2 * (size_t)Co));
            a3 = _mm512_add_ps(a3, _mm512_maskz_loadu_ps(m, p + 3 * (size_t)Co));
        }
        for (; x < Wd; x++, p += Co)
            a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, p));
        __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        _mm512_mask_storeu_ps(dbp + co0, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, dbp + co0), s));
    }
}

/* With j->recompute: row y of lrelu(conv(x) + b) from the padded sample xp,
 * bit-identical to the forward's, into the thread's row buffer. */
static const float *remake_row(const dconv *j, const float *xp, int y)
{
    if (!j->recompute)
        return NULL;
    float *ar = (float *)xp + j->off_arow;
    const int pairs = j->bfx && j->Ci > 1;
    fwd_one_row(pairs ? xp + j->off_xq : xp, y, j->Wd, j->Ci, j->W, j->Co, j->rb, ar, 0, 1,
                j->rslope, NULL, 0, NULL, j->bfx ? j->wq : NULL, (uint32_t *)xp + j->off_tp);
    return ar;
}

/* Adds one sample's contribution to the dW, db partials. dy rows are drs
 * floats apart from dys, or (dys NULL) made one at a time into rowbuf by
 * the job's dyrow for sample n. */
static void dw_sample(const dconv *j, size_t n, float *rowbuf, const float *xp,
                      const float *dys, size_t drs, int H, int Wd, int Ci, int Co, float *dwp,
                      float *dbp)
{
    const ptrdiff_t rs = (ptrdiff_t)(Wd + 2) * Ci;
    const int K = 9 * Ci;
    for (int y = 0; y < H; y++) {
        const float *dyrow = dys ? dys + (size_t)y * drs : rowbuf;
        if (j->dypairs) { /* dy's pixel pairs (and for dx its channel pairs) at once */
            uint32_t *cq = j->want_dx ? (uint32_t *)(xp + j->off_dypq) +
                                            ((size_t)(y + 1) * (Wd + 2) + 1) * (size_t)(Co / 2)
                                      : NULL;
            j->dypairs(j->dyctx, n, y, remake_row(j, xp, y),
                       (uint32_t *)(xp + j->off_dq) + (size_t)(y % j->band) * (Wd / 2) * Co, cq,
                       dbp);
        } else if (!dys) {
            j->dyrow(j->dyctx, n, y, remake_row(j, xp, y), rowbuf);
        }
        if (j->bfdw) { /* pixel pairs of the band's rows of dy, then the bf16 kernel */
            uint32_t *dq = (uint32_t *)(xp + j->off_dq);
            const int yb = y % j->band;
            if (!j->dypairs) {
                cmir__bfd_row_pairs(dyrow, Wd, Co, dq + (size_t)yb * ((Wd + 1) / 2) * Co,
                                    dys && y + 1 < H ? dyrow + drs : NULL);
                db_row(dyrow, Co, Wd, dbp);
            }
            if (yb == j->band - 1 || y == H - 1)
                cmir__bfd_dw_rows((const uint32_t *)(xp + j->off_e),
                                  (const uint32_t *)(xp + j->off_o), y - yb, yb + 1, Wd, Ci, dq,
                                  Co, dwp);
            continue;
        }
        for (int co0 = 0; co0 < Co; co0 += 64) {
            int rem = Co - co0, V = rem >= 64 ? 4 : (rem + 15) / 16;
            __mmask16 ml = last_mask(rem - 16 * (V - 1));
            const float *xb = xp + y * rs, *dyr = dyrow + co0;
            const float *pf = dys && y + 1 < H ? dyr + drs : NULL;
            float *dw = dwp + co0;
            CMIR__BY_V(V, dw_row, xb, rs, Ci, K, dyr, Co, Wd, dw, ml, pf)
        }
        db_row(dyrow, Co, Wd, dbp);
    }
}

DK_FN void stream_fence(void) { _mm_sfence(); }

/* dst[0..n) = src[0..n) (32-bit words) with streaming stores from dst's
 * first 64-byte boundary (no read for ownership of lines nothing reads
 * soon). */
DK_FN void stream_copy(float *dst, const float *src, size_t n)
{
    size_t i = 0;
    if (((uintptr_t)dst & 3) == 0) {
        i = ((64 - ((uintptr_t)dst & 63)) & 63) / 4;
        if (i > n)
            i = n;
        memcpy(dst, src, sizeof(float) * i);
        for (; i + 16 <= n; i += 16)
            _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    }
    if (i < n)
        memcpy(dst + i, src + i, sizeof(float) * (n - i));
}

/* n words src -> dst: streamed (nt), or copied */
static void row_out(float *dst, const float *src, size_t n, int nt)
{
    if (nt)
        stream_copy(dst, src, n);
    else
        memcpy(dst, src, sizeof(float) * n);
}

static int dfwd_task(int t, int T, void *user)
{
    const dconv *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    const size_t hw = (size_t)j->H * j->Wd;
    float *xp = j->scratch + (size_t)t * j->per_thread;
    memset(xp, 0, sizeof(float) * (size_t)(j->H + 2) * (j->Wd + 2) * j->Ci);
    double *st = j->want_st ? (double *)(xp + j->off_st) : NULL;
    if (st)
        memset(st, 0, sizeof(double) * 2 * round16((size_t)j->Co));
    for (size_t n = lo; n < hi; n++) {
        if (j->xbf) /* x's bf16 values are the pairs */
            pad_pairs(NULL, (const uint16_t *)j->x + n * hw * j->Ci, j->H, j->Wd, j->Ci,
                      (uint32_t *)xp);
        else if (j->bfx && j->Ci > 1)
            pad_pairs(j->x + n * hw * j->Ci, NULL, j->H, j->Wd, j->Ci, (uint32_t *)xp);
        else
            pad_sample(j->x + n * hw * j->Ci, j->H, j->Wd, j->Ci, xp);
        if (j->ybf) { /* each row into the float row, then its bf16 out */
            float *row = xp + j->off_yrow;
            const size_t rn = (size_t)j->Wd * j->Co;
            for (int y = 0; y < j->H; y++) {
                fwd_one_row(xp, y, j->Wd, j->Ci, j->W, j->Co, j->b, row, 0, j->act, j->slope,
                            st, (int)round16((size_t)j->Co), NULL, j->wq,
                            (uint32_t *)xp + j->off_tp);
                uint16_t *yb = (uint16_t *)j->y + (n * hw + (size_t)y * j->Wd) * j->Co;
                cmir__bfd_store_row(row, rn, yb, j->nt);
            }
            continue;
        }
        fwd_sample(xp, j->H, j->Wd, j->Ci, j->W, j->Co, j->b, j->y + n * hw * j->Co, j->nt,
                   j->act, j->slope, st, (int)round16((size_t)j->Co), j->wq,
                   (uint32_t *)xp + j->off_tp);
    }
    if (j->nt)
        stream_fence();
    return 0;
}

/* cmir__conv3x3_lrelu_pool's passes: nothing full-size is written. */
static int dpool_task(int t, int T, void *user)
{
    const dconv *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    const size_t hw = (size_t)j->H * j->Wd, Cr = round16((size_t)j->Co);
    float *xp = j->scratch + (size_t)t * j->per_thread;
    memset(xp, 0, sizeof(float) * (size_t)(j->H + 2) * (j->Wd + 2) * j->Ci);
    double *st = j->pmode == 1 ? (double *)(xp + j->off_st) : NULL;
    if (st)
        memset(st, 0, sizeof(double) * 2 * Cr);
    float *dummy = xp + j->off_prow;
    fpool pl = *j->ptmpl;
    const size_t pw = round16((size_t)pl.Wo * j->Co);
    float *rbest = dummy + round16((size_t)j->Wd * j->Co), *rbxh = rbest + pw;
    int32_t *rbarg = (int32_t *)(rbxh + pw);
    if (j->pmode == 1)
        pl.Hok = 0; /* statistics only */
    const int Ho = pl.k > 0 ? pl.Hok / pl.k : 0;
    const size_t prow = (size_t)pl.Wo * j->Co;
    for (size_t n = lo; n < hi; n++) {
        if (j->xbf) /* x's bf16 values are the pairs */
            pad_pairs(NULL, (const uint16_t *)j->x + n * hw * j->Ci, j->H, j->Wd, j->Ci,
                      (uint32_t *)xp);
        else if (j->bfx && j->Ci > 1)
            pad_pairs(j->x + n * hw * j->Ci, NULL, j->H, j->Wd, j->Ci, (uint32_t *)xp);
        else
            pad_sample(j->x + n * hw * j->Ci, j->H, j->Wd, j->Ci, xp);
        for (int y = 0; y < j->H; y++) {
            const int pooled = j->pmode == 2 && y < pl.Hok && prow;
            size_t o = pooled ? (n * Ho + (size_t)(y / pl.k)) * prow : 0;
            const int rows = j->pnt || j->pybf;
            if (pooled && y % pl.k == 0) {
                /* small outputs: the window row's maxima straight into them
                 * (the first row of a window writes every lane); large ones
                 * (or y in bf16) through the row buffers, copied out
                 * (streamed when large) at the window's end */
                pl.best = rows ? rbest : j->py + o;
                pl.barg = rows ? rbarg : j->parg + o;
                pl.bxh = rows || !j->pxh ? rbxh : j->pxh + o;
            }
            fwd_one_row(xp, y, j->Wd, j->Ci, j->W, j->Co, j->b, dummy, 0, 1, j->slope, st,
                        (int)Cr, &pl, j->wq, (uint32_t *)xp + j->off_tp);
            if (pooled && rows && y % pl.k == pl.k - 1) {
                if (j->pybf)
                    cmir__bfd_store_row(rbest, prow, (uint16_t *)j->py + o, j->pnt);
                else
                    row_out(j->py + o, rbest, prow, j->pnt);
                row_out((float *)(j->parg + o), (const float *)rbarg, prow, j->pnt);
                if (j->pxh)
                    row_out(j->pxh + o, rbxh, prow, j->pnt);
            }
        }
    }
    if (j->pnt)
        stream_fence();
    return 0;
}

static int dbwd_task(int t, int T, void *user)
{
    const dconv *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    const size_t hw = (size_t)j->H * j->Wd, pad = (size_t)(j->H + 2) * (j->Wd + 2);
    float *xp = j->scratch + (size_t)t * j->per_thread;
    float *dyp = xp + j->off_dyp, *dwp = xp + j->off_dw, *dbp = dwp + (size_t)9 * j->Ci * j->Co;
    if (j->want_dw) {
        memset(xp, 0, sizeof(float) * pad * j->Ci);
        memset(dwp, 0, sizeof(float) * ((size_t)9 * j->Ci * j->Co + j->Co));
        if (j->recompute && j->bfx && j->Ci > 1)
            memset(xp + j->off_xq, 0, sizeof(uint32_t) * pad * ((size_t)(j->Ci + 1) / 2));
    }
    if (j->want_dx && !j->dypairs)
        memset(dyp, 0, sizeof(float) * pad * j->Co);
    if (j->want_dx && j->dypairs) /* the border of dy's channel pairs */
        memset(xp + j->off_dypq, 0, sizeof(uint32_t) * pad * (size_t)(j->Co / 2));
    const size_t prs = (size_t)(j->Wd + 2) * j->Co; /* padded dy row stride */
    for (size_t n = lo; n < hi; n++) {
        const float *dys = j->dyrow ? NULL : j->dy + n * hw * j->Co;
        size_t drs = (size_t)j->Wd * j->Co;
        if (j->want_dw) {
            const float *xs = j->xbf ? NULL : j->x + n * hw * j->Ci;
            const uint16_t *xs16 = j->xbf ? (const uint16_t *)j->x + n * hw * j->Ci : NULL;
            if (xs16)
                pad_sample_bf(xs16, j->H, j->Wd, j->Ci, xp);
            else
                pad_sample(xs, j->H, j->Wd, j->Ci, xp);
            if (j->bfdw)
                cmir__bfd_pix_pairs(xp, j->H, j->Wd, j->Ci, (uint32_t *)(xp + j->off_e),
                                    (uint32_t *)(xp + j->off_o));
            if (j->recompute && j->bfx && j->Ci > 1)
                pad_pairs(xs, xs16, j->H, j->Wd, j->Ci, (uint32_t *)(xp + j->off_xq));
        }
        if (j->dyrow && j->want_dx && !j->dypairs) { /* the whole sample, into the padded buffer */
            for (int y = 0; y < j->H; y++)
                j->dyrow(j->dyctx, n, y, remake_row(j, xp, y), dyp + (size_t)(y + 1) * prs + j->Co);
            dys = dyp + prs + j->Co;
            drs = prs;
        }
        if (j->want_dw) {
            dw_sample(j, n, xp + j->off_row, xp, dys, drs, j->H, j->Wd, j->Ci, j->Co, dwp, dbp);
        }
        if (j->want_dx) {
            if (!j->dyrow)
                pad_sample(dys, j->H, j->Wd, j->Co, dyp);
            const float *src = dyp;
            if (j->bfdx) { /* channel pairs of the whole padded dy (dypairs: made) */
                if (!j->dypairs)
                    cmir__bfd_chan_pairs(dyp, pad, j->Co, (uint32_t *)(xp + j->off_dypq));
                src = xp + j->off_dypq;
            }
            fwd_sample(src, j->H, j->Wd, j->Co, j->Wt, j->Ci, NULL, j->dx + n * hw * j->Ci, 0, 0,
                       0.0f, NULL, 0, j->bfdx ? j->wtq : NULL, NULL);
        }
    }
    return 0;
}

/* The bf16 precision runs conv_bf16.c's kernels from these same drivers. */
static int direct_available(int ci)
{
    (void)ci;
    return __builtin_cpu_supports("avx512f");
}

/* Fills the shape fields and the thread count. */
static void direct_setup(cmir_exec *ex, const cmir_tensor *x, const cmir_tensor *y, dconv *j,
                         int *T)
{
    memset(j, 0, sizeof *j);
    j->N = (int)x->shape[0];
    j->H = (int)x->shape[1];
    j->Wd = (int)x->shape[2];
    j->Ci = (int)x->shape[3];
    j->Co = (int)y->shape[3];
    j->x = x->data;
    if (cmir__bf16_active()) { /* one input channel: no pairs to make, float32 */
        j->bfx = j->Ci >= CMIR__BF16_MIN_CI;
        j->bfdx = j->Co >= CMIR__BF16_MIN_CI;
        j->bfdw = 1;
    }
    *T = cmir_exec_threads(ex);
    if (*T > j->N)
        *T = j->N > 0 ? j->N : 1;
}

/* The forward's scratch: T per-thread areas, then (bf16) W's pairs. */
static int fwd_scratch(cmir_exec *ex, dconv *j, int T, const float *W)
{
    size_t wn = j->bfx ? round16((size_t)9 * ((j->Ci + 1) / 2) * j->Co) : 0;
    j->scratch = cmir__exec_scratch(ex, (j->per_thread * (size_t)T + wn) * sizeof(float));
    if (!j->scratch)
        return CMIR_ENOMEM;
    if (j->bfx) {
        j->wq = (uint32_t *)(j->scratch + j->per_thread * (size_t)T);
        cmir__bfd_weights(W, j->Ci, j->Co, 0, j->wq);
    }
    return 0;
}

int cmir__conv_direct_forward(cmir_exec *ex, const cmir_tensor *x, const float *W, const float *b,
                              cmir_tensor *y, int act, float slope, double *sums, int flags)
{
    const int ybf = (flags & CMIR__CONV_YBF) != 0;
    dconv j;
    int T;
    direct_setup(ex, x, y, &j, &T);
    j.act = act;
    j.slope = slope;
    j.W = W;
    j.b = b;
    j.y = y->data;
    if (ybf && (!cmir__bf16_active() || j.Co % 32))
        return cmir__error(CMIR_EINVAL, "cmir__conv_direct_forward: bf16 output needs the bf16 "
                                        "precision and output channels in 32s (got %d)", j.Co);
    j.ybf = ybf;
    if ((j.xbf = (flags & CMIR__CONV_XBF) != 0) && (!j.bfx || j.Ci % 16))
        return cmir__error(CMIR_EINVAL, "cmir__conv_direct_forward: bf16 input needs the bf16 "
                                        "precision and input channels in 16s (got %d)", j.Ci);
    size_t ybytes = (size_t)j.N * j.H * j.Wd * j.Co * sizeof(float);
    j.nt = ybytes >= DIRECT_NT_BYTES && j.Co % 16 == 0 && ((uintptr_t)j.y & 63) == 0;
    j.per_thread = round16((size_t)(j.H + 2) * (j.Wd + 2) * j.Ci);
    if (ybf) {
        j.off_yrow = j.per_thread;
        j.per_thread += round16((size_t)j.Wd * j.Co);
    }
    const size_t Cr = round16((size_t)j.Co);
    if (sums) { /* 2 Cr doubles per thread after the padded sample */
        j.want_st = 1;
        j.off_st = j.per_thread;
        j.per_thread += 4 * Cr;
    }
    if (j.bfx && j.Ci == 1) {
        j.off_tp = j.per_thread;
        j.per_thread += round16((size_t)5 * j.Wd);
    }
    int rc = fwd_scratch(ex, &j, T, W);
    if (rc || (rc = cmir__parallel(T, dfwd_task, &j)))
        return rc;
    if (!sums)
        return 0;
    /* Fixed-order reduction of the per-thread sums. */
    for (int c = 0; c < 2 * j.Co; c++) {
        size_t o = c < j.Co ? (size_t)c : Cr + (size_t)(c - j.Co);
        double v = 0.0;
        for (int t = 0; t < T; t++)
            v += ((const double *)(j.scratch + (size_t)t * j.per_thread + j.off_st))[o];
        sums[c] = v;
    }
    return 0;
}

int cmir__conv_direct_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                               const cmir_tensor *dy, cmir_tensor *dx, float *dW, float *db,
                               cmir__dyrow_fn dyrow, cmir__dypairs_fn dypairs, void *dyctx,
                               const float *rb, float rslope, int flags)
{
    dconv j;
    int T, rc;
    const int recompute = (flags & CMIR__CONV_REMAKE) != 0;
    direct_setup(ex, x, dy, &j, &T);
    if ((j.xbf = (flags & CMIR__CONV_XBF) != 0) && (!cmir__bf16_active() || j.Ci % 16))
        return cmir__error(CMIR_EINVAL, "cmir__conv_direct_backward: bf16 input needs the bf16 "
                                        "precision and input channels in 16s (got %d)", j.Ci);
    j.W = W;
    j.dy = dy->data;
    j.dyrow = dyrow;
    j.dyctx = dyctx;
    j.rb = rb;
    j.rslope = rslope;
    j.recompute = dyrow && recompute && (dW || db);
    j.dx = dx ? dx->data : NULL;
    j.want_dx = dx != NULL;
    j.want_dw = dW || db;
    if (!j.want_dw)
        j.bfdw = 0;
    if (!j.want_dx)
        j.bfdx = 0;
    if (!j.recompute)
        j.bfx = 0;
    /* dy's pairs from dyrow's pair form: for dW, and for dx when it is wanted
     * (its rows then come from dw_sample); then no float dy is kept */
    if (dyrow && dypairs && j.bfdw && (!j.want_dx || j.bfdx))
        j.dypairs = dypairs;
    const size_t pad = (size_t)(j.H + 2) * (j.Wd + 2), kc = (size_t)9 * j.Ci * j.Co;
    size_t n = j.want_dw ? round16(pad * j.Ci) : 0;
    j.off_dyp = n;
    n += j.want_dx && !j.dypairs ? round16(pad * j.Co) : 0;
    j.off_dw = n;
    n += j.want_dw ? round16(kc + j.Co) : 0;
    if (dyrow && !j.want_dx && !j.dypairs) {
        j.off_row = n;
        n += round16((size_t)j.Wd * j.Co);
    }
    if (j.recompute) {
        j.off_arow = n;
        n += round16((size_t)j.Wd * j.Co);
    }
    const size_t cip = ((size_t)j.Ci + 1) / 2, cop = ((size_t)j.Co + 1) / 2;
    if (j.bfdw) { /* pixel pairs of x (e, o) and of a band of rows of dy */
        const size_t wq = ((size_t)j.Wd + 1) / 2, es = round16((size_t)(j.H + 2) * (wq + 1) * j.Ci);
        /* dW's tiles stay in registers over the band: 8K pairs of dy */
        size_t band = 8192 / (wq * j.Co);
        j.band = band < 1 ? 1 : band > (size_t)j.H ? j.H : (int)band;
        j.off_e = n;
        j.off_o = n + es;
        j.off_dq = n + 2 * es;
        n += 2 * es + round16((size_t)j.band * wq * j.Co);
    }
    if (j.bfx && j.Ci > 1) { /* channel pairs of x, to remake the forward's rows */
        j.off_xq = n;
        n += round16(pad * cip);
    } else if (j.bfx) { /* one channel: tap pairs of one row */
        j.off_tp = n;
        n += round16((size_t)5 * j.Wd);
    }
    if (j.bfdx) { /* channel pairs of the padded dy */
        j.off_dypq = n;
        n += round16(pad * cop);
    }
    j.per_thread = n ? n : 16;
    const size_t wn = j.bfx ? round16(9 * cip * j.Co) : 0;
    const size_t wtn = j.bfdx ? round16(9 * cop * j.Ci) : j.want_dx ? kc : 0;
    float *s = cmir__exec_scratch(ex, (j.per_thread * (size_t)T + wn + wtn) * sizeof(float));
    if (!s)
        return CMIR_ENOMEM;
    j.scratch = s;
    if (j.bfx) {
        j.wq = (uint32_t *)(s + j.per_thread * (size_t)T);
        cmir__bfd_weights(W, j.Ci, j.Co, 0, j.wq);
    }
    if (j.bfdx) {
        j.wtq = (uint32_t *)(s + j.per_thread * (size_t)T + wn);
        cmir__bfd_weights(W, j.Ci, j.Co, 1, j.wtq);
    } else if (j.want_dx) {
        /* Wt[8-t][co][ci] = W[t][ci][co]. */
        j.Wt = s + j.per_thread * (size_t)T + wn;
        for (int t = 0; t < 9; t++)
            for (int ci = 0; ci < j.Ci; ci++)
                for (int co = 0; co < j.Co; co++)
                    j.Wt[((size_t)(8 - t) * j.Co + co) * j.Ci + ci] =
                        W[((size_t)t * j.Ci + ci) * j.Co + co];
    }
    if ((rc = cmir__parallel(T, dbwd_task, &j)))
        return rc;
    if (j.want_dw)
        cmir__conv_reduce_partials(s + j.off_dw, j.per_thread, T, kc, j.Co, dW, db);
    return 0;
}
#endif /* direct convolution */

int cmir__conv3x3_direct_available(int ci)
{
#ifdef CMIR__CONV_DIRECT
    return direct_available(ci);
#else
    (void)ci;
    return 0;
#endif
}

int cmir__conv3x3_lrelu_pool(cmir_exec *ex, const cmir_tensor *x, const float *W,
                             const float *b, float slope, int Co, double *sums,
                             const float *mean, const float *invstd, const float *gamma,
                             const float *beta, int k, float *y, int32_t *argmax, float *xhat,
                             int flags)
{
#ifdef CMIR__CONV_DIRECT
    const char *fn = "cmir__conv3x3_bn_maxpool_forward";
    if (!x || !x->data || x->ndim != 4)
        return cmir__check_tensor(x, 4, fn, "x");
    cmir_tensor yv = cmir_tensor_4d(x->data, x->shape[0], x->shape[1], x->shape[2], Co);
    int rc = cmir__conv_check(fn, x, W, &yv, 0);
    if (rc)
        return rc;
    if (k < 1 || (!sums && (!mean || !invstd || !gamma || !beta || !y || !argmax)))
        return cmir__error(CMIR_EINVAL, "%s: bad window or NULL argument", fn);
    if (!direct_available((int)x->shape[3]))
        return 1;
    dconv j;
    int T;
    direct_setup(ex, x, &yv, &j, &T);
    j.W = W;
    j.b = b;
    j.slope = slope;
    j.pmode = sums ? 1 : 2;
    fpool tm;
    memset(&tm, 0, sizeof tm);
    tm.store = 0;
    tm.k = k;
    tm.Wo = j.Wd / k;
    tm.Hok = (j.H / k) * k;
    tm.W = j.Wd;
    tm.Co = Co;
    tm.mu = mean;
    tm.is = invstd;
    tm.ga = gamma;
    tm.be = beta;
    j.ptmpl = &tm;
    j.py = y;
    j.parg = argmax;
    j.pxh = xhat;
    /* three outputs of N Ho Wo Co 32-bit words: streamed when large */
    j.pnt = !sums && (size_t)j.N * (j.H / k) * (j.Wd / k) * Co * 12 >= DIRECT_NT_BYTES;
    j.pybf = !sums && (flags & CMIR__CONV_YBF);
    if (j.pybf && (!cmir__bf16_active() || Co % 32))
        return cmir__error(CMIR_EINVAL, "%s: bf16 y needs the bf16 precision and Co %% 32 == 0",
                           fn);
    const size_t Cr = round16((size_t)Co), pw = round16((size_t)tm.Wo * Co);
    j.per_thread = round16((size_t)(j.H + 2) * (j.Wd + 2) * j.Ci);
    j.off_st = j.per_thread;
    j.per_thread += 4 * Cr;
    j.off_prow = j.per_thread;
    j.per_thread += round16((size_t)j.Wd * Co) + 3 * pw;
    if (j.bfx && j.Ci == 1) {
        j.off_tp = j.per_thread;
        j.per_thread += round16((size_t)5 * j.Wd);
    }
    if ((rc = fwd_scratch(ex, &j, T, W)) || (rc = cmir__parallel(T, dpool_task, &j)) || !sums)
        return rc;
    for (int c = 0; c < 2 * Co; c++) { /* fixed-order reduction */
        size_t o = c < Co ? (size_t)c : Cr + (size_t)(c - Co);
        double v = 0.0;
        for (int t = 0; t < T; t++)
            v += ((const double *)(j.scratch + (size_t)t * j.per_thread + j.off_st))[o];
        sums[c] = v;
    }
    return 0;
#else
    (void)ex; (void)x; (void)W; (void)b; (void)slope; (void)Co; (void)sums; (void)mean;
    (void)invstd; (void)gamma; (void)beta; (void)k; (void)y; (void)argmax; (void)xhat;
    (void)flags;
    return 1;
#endif
}

int cmir__conv3x3_backward_rows(cmir_exec *ex, const cmir_tensor *x, const float *W, int Co,
                                cmir__dyrow_fn dyrow, cmir__dypairs_fn dypairs, void *ctx,
                                const float *b, float slope, int flags, cmir_tensor *dx,
                                float *dW, float *db)
{
#ifdef CMIR__CONV_DIRECT
    const char *fn = "cmir__conv3x3_bn_maxpool_backward";
    if (!x || !x->data || x->ndim != 4)
        return cmir__check_tensor(x, 4, fn, "x");
    /* dy's shape, for the checks only: its data is never read */
    cmir_tensor dy = cmir_tensor_4d(x->data, x->shape[0], x->shape[1], x->shape[2], Co);
    int rc = cmir__conv_check(fn, x, W, &dy, 1);
    if (rc)
        return rc;
    if (dx && ((rc = cmir__check_tensor(dx, 4, fn, "dx")) ||
               (rc = cmir__check_same(x, dx, fn, "x", "dx"))))
        return rc;
    if (direct_available((int)x->shape[3]))
        return cmir__conv_direct_backward(ex, x, W, &dy, dx, dW, db, dyrow, dypairs, ctx, b, slope,
                                          flags);
#else
    (void)ex; (void)x; (void)W; (void)Co; (void)dyrow; (void)dypairs; (void)ctx; (void)dx; (void)dW;
    (void)db;
    (void)b; (void)slope; (void)flags;
#endif
    return 1;
}
