/* The int8 database of cmir_knn_q8 (per-row scale, exact error norms) and
 * its scan kernels: integer dot products (AVX-512 VNNI vpdpbusd, or
 * portable C), then a float filter whose rounding is bounded rigorously. */
#include "knn_q8.h"

#include <stdlib.h>

/*
 * The filter. For query q (codes qq, scale sq, q' = sq qq) and row x
 * (codes xq, scale s, x' = s xq), I = qq . xq is exact (int32) and
 *     A = ||q' - x'||^2 = qn + xn - 2 sq s I,   qn = ||q'||^2, xn = ||x'||^2.
 * By the triangle inequality ||q - x|| >= sqrt(A) - rq - rx, with rq, rx
 * upper bounds of ||q - q'||, ||x - x'||. The scan keeps the row iff
 *     lhs = fl(fma(fl(I), fl(cx sq), xl)) <= rhs = fl(t t - qv),  t = fl(W' + rx'),
 * cx = -2 s, xl <= xn (1 - K), qv <= qn (1 - K), W' >= W (1 + K),
 * rx' >= rx (1 + K), K = 2^-18, u = 2^-24. Using 2 |sq s I| <= qn + xn:
 * lhs <= -2 sq s I + xn - K xn + 3.2 u (qn + xn) (the rounding of cx sq,
 * of I when |I| >= 2^24, and of the fma, or of a separate multiply and
 * add), and rhs >= (1 + K)^2 (1 - 3u) (W + rx)^2 - qn + K qn - u qn. So
 * lhs > rhs implies A > (W + rx)^2 + (K - 4.2 u)(qn + xn) >= (W + rx)^2,
 * hence ||q - x|| > W - rq: a skipped row is farther than W - rq. Scales
 * within 2^-60..2^60 keep every term a normal float (or exactly 0) and
 * far from overflow (squared norms are below 1e30); rows outside get
 * rx' = +inf (never skipped), queries outside are not scanned at all.
 */

float cmir__q8_round_down(double v)
{
    float f = (float)v;
    if ((double)f > v) {
        if (f == 0.0f)
            return 0.0f; /* v > 0 tiny: 0 is below it */
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        b = f > 0.0f ? b - 1 : b + 1;
        memcpy(&f, &b, sizeof f);
    }
    return f;
}

/* Quantises one row: codes (d bytes, signed), returns the scale and writes
 * the rounded-up error norm (times 1 + K) and ||xq||^2. */
static float quantise_row(const float *x, int d, int8_t *c, double *rx_up, int32_t *S)
{
    float amax = 0.0f;
    for (int j = 0; j < d; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float s = amax / 127.0f;
    int unsafe = amax > 0.0f && (s < (float)Q8_SAFE_LO || s > (float)Q8_SAFE_HI);
    float inv = s > 0.0f && !unsafe ? 1.0f / s : 0.0f; /* unsafe rows: codes 0 */
    double e2 = 0.0;
    int32_t ss = 0;
    /* any rounding to a code will do: the error is measured, not assumed */
    for (int j = 0; j < d; j++) {
        float t = x[j] * inv;
        int v = (int)(t + (t >= 0.0f ? 0.5f : -0.5f));
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        c[j] = (int8_t)v;
        ss += v * v;
        double e = (double)x[j] - (double)s * (double)v; /* the product is exact */
        e2 += e * e;
    }
    *S = ss;
    /* the sum's relative error is below (d + 2) 2^-53, sqrt's 2^-53 */
    double r = sqrt(e2) * (1.0 + 1e-10) * (1.0 + Q8_KAPPA) * (1.0 + 1e-15);
    *rx_up = unsafe ? INFINITY : r;
    return s;
}

float cmir__q8_xl(float s, int32_t S)
{
    double xn = (double)s * (double)s * (double)S;
    return cmir__q8_round_down(xn * (1.0 - Q8_KAPPA) * (1.0 - 1e-15));
}

int cmir__q8_alloc(int64_t n, int d, cmir_knn_q8 **out)
{
    *out = NULL;
    if (n < 0 || d <= 0 || d > Q8_MAX_D || n > ((int64_t)1 << 40))
        return cmir__error(CMIR_EINVAL, "cmir_knn_q8: bad shape n=%lld d=%d (d must be 1..%d)", (long long)n, d,
                           Q8_MAX_D);
    cmir_knn_q8 *qx = cmir__calloc(1, sizeof *qx);
    if (!qx)
        return CMIR_ENOMEM;
    qx->n = n;
    qx->d = d;
    qx->G = (d + 3) / 4;
    qx->nblk = (n + Q8_ROWS - 1) / Q8_ROWS;
    size_t rows = (size_t)(qx->nblk ? qx->nblk : 1) * Q8_ROWS;
    qx->codes = cmir__malloc_aligned((size_t)(qx->nblk ? qx->nblk : 1) * qx->G * 64);
    qx->cx = cmir__malloc_aligned(rows * sizeof(float));
    qx->xl = cmir__malloc_aligned(rows * sizeof(float));
    qx->rx = cmir__malloc_aligned(rows * sizeof(float));
    qx->S = cmir__malloc_aligned(rows * sizeof(int32_t));
    if (!qx->codes || !qx->cx || !qx->xl || !qx->rx || !qx->S) {
        cmir_knn_q8_free(qx);
        return CMIR_ENOMEM;
    }
    memset(qx->codes, 128, (size_t)(qx->nblk ? qx->nblk : 1) * qx->G * 64);
    /* a row not set yet is never skipped (rx = +inf); pads are zeros */
    for (size_t r = 0; r < rows; r++) {
        qx->cx[r] = qx->xl[r] = 0.0f;
        qx->rx[r] = (int64_t)r < n ? INFINITY : 0.0f;
        qx->S[r] = 0;
    }
    *out = qx;
    return 0;
}

void cmir__q8_put_row(cmir_knn_q8 *qx, int64_t r, const int8_t *c, float cx, float xl, float rx, int32_t S)
{
    qx->cx[r] = cx;
    qx->xl[r] = xl;
    qx->rx[r] = rx;
    qx->S[r] = S;
    uint8_t *blk = qx->codes + (size_t)(r / Q8_ROWS) * qx->G * 64 + (size_t)(r % Q8_ROWS) * 4;
    for (int j = 0; j < qx->d; j++)
        blk[(size_t)(j / 4) * 64 + j % 4] = (uint8_t)(c[j] + 128);
}

int cmir__q8_quantise(cmir_knn_q8 *qx, const float *rows, int64_t r0, int64_t nr)
{
    const int d = qx->d;
    int8_t *c = cmir__malloc((size_t)d);
    if (!c)
        return CMIR_ENOMEM;
    for (int64_t i = 0; i < nr; i++) {
        double rx;
        int32_t S;
        float s = quantise_row(rows + (size_t)i * d, d, c, &rx, &S);
        cmir__q8_put_row(qx, r0 + i, c, -2.0f * s, cmir__q8_xl(s, S), round_up_float(rx), S);
    }
    cmir__free(c);
    return 0;
}

int cmir_knn_q8_new(const float *db, int64_t n, int d, cmir_knn_q8 **out)
{
    if (!out)
        return cmir__error(CMIR_EINVAL, "cmir_knn_q8_new: NULL argument");
    *out = NULL;
    if ((!db && n > 0) || n < 0 || d <= 0 || d > Q8_MAX_D || n > ((int64_t)1 << 40))
        return cmir__error(CMIR_EINVAL, "cmir_knn_q8_new: bad shape n=%lld d=%d (d must be 1..%d)",
                           (long long)n, d, Q8_MAX_D);
    int rc = cmir__knn_norms_threads(1, db, n, d, NULL);
    cmir_knn_q8 *qx = NULL;
    if (!rc)
        rc = cmir__q8_alloc(n, d, &qx);
    if (!rc)
        rc = cmir__q8_quantise(qx, db, 0, n);
    if (rc)
        cmir_knn_q8_free(qx);
    else
        *out = qx;
    return rc;
}

void cmir_knn_q8_free(cmir_knn_q8 *qx)
{
    if (!qx)
        return;
    cmir__free_aligned(qx->codes);
    cmir__free_aligned(qx->cx);
    cmir__free_aligned(qx->xl);
    cmir__free_aligned(qx->rx);
    cmir__free_aligned(qx->S);
    cmir__free(qx);
}

size_t cmir_knn_q8_bytes_per_row(const cmir_knn_q8 *qx)
{
    if (!qx)
        return 0;
    return (size_t)qx->G * 4 + 4 * sizeof(float);
}

int cmir__q8_have_vnni(void)
{
    const char *e = getenv("CMIR_KNN_NO_VNNI");
    if (e && *e && strcmp(e, "0"))
        return 0;
#ifdef KNN_HAVE_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int cmir_knn_q8_vnni(void) { return cmir__q8_have_vnni(); }

/* ------------------------------------------------------------------------ */
/* Portable scan: the same integers and the same filter, in C.               */

void cmir__q8_scan_c(q8view *v, int i0, int64_t b0, int64_t b1)
{
    const cmir_knn_q8 *qx = v->j->qx;
    const int G = qx->G;
    int32_t I[Q8_QT][Q8_ROWS];
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *blk = qx->codes + (size_t)b * G * 64;
        for (int i = 0; i < Q8_QT; i++) {
            const int8_t *qc = v->qc + (size_t)(i0 + i) * G * 4;
            for (int r = 0; r < Q8_ROWS; r++) {
                int32_t s = 0;
                for (int g = 0; g < G; g++)
                    for (int c = 0; c < 4; c++)
                        s += ((int32_t)blk[g * 64 + r * 4 + c] - 128) * qc[g * 4 + c];
                I[i][r] = s;
            }
        }
        int nr = (int)(qx->n - b * Q8_ROWS < Q8_ROWS ? qx->n - b * Q8_ROWS : Q8_ROWS);
        for (int i = 0; i < Q8_QT; i++) {
            const q8q *st = &v->st[i0 + i];
            for (int r = 0; r < nr; r++) {
                size_t x = (size_t)b * Q8_ROWS + r;
                float c = qx->cx[x] * st->sq;
                float lhs = (float)I[i][r] * c + qx->xl[x];
                float t = v->W[i0 + i] + qx->rx[x];
                float rhs = t * t - st->qv;
                if (lhs <= rhs)
                    cmir__q8_candidate(v, i0 + i, (int64_t)x, I[i][r]);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* AVX-512 VNNI scan: per block, Q8_QT accumulators of 16 rows each; a
 * group of 4 dimensions is one 64-byte load and one vpdpbusd per query
 * (u8 codes of 16 rows times the query's 4 s8 codes, broadcast). */

#ifdef KNN_HAVE_AVX512
#define Q8_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni,fma")))

Q8_TARGET static inline void q8_filter(q8view *v, int i, int64_t b, __m512i acc, __mmask16 valid,
                                __m512 cxv, __m512 xlv, __m512 rxv)
{
    const q8q *st = &v->st[i];
    __m512i I = _mm512_sub_epi32(acc, _mm512_set1_epi32(st->off));
    __m512 c = _mm512_mul_ps(cxv, _mm512_set1_ps(st->sq));
    __m512 lhs = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), c, xlv);
    __m512 t = _mm512_add_ps(_mm512_set1_ps(v->W[i]), rxv);
    __m512 rhs = _mm512_fmsub_ps(t, t, _mm512_set1_ps(st->qv));
    __mmask16 m = _mm512_mask_cmp_ps_mask(valid, lhs, rhs, _CMP_LE_OQ);
    if (!m)
        return;
    int32_t Iv[16];
    _mm512_storeu_si512((void *)Iv, I);
    while (m) {
        int r = __builtin_ctz((unsigned)m);
        m &= (__mmask16)(m - 1);
        cmir__q8_candidate(v, i, b * Q8_ROWS + r, Iv[r]);
    }
}

Q8_TARGET void cmir__q8_scan_vnni(q8view *v, int i0, int64_t b0, int64_t b1)
{
    const cmir_knn_q8 *qx = v->j->qx;
    const int G = qx->G;
    const int32_t *qw[Q8_QT];
    for (int i = 0; i < Q8_QT; i++)
        qw[i] = (const int32_t *)(const void *)(v->qc + (size_t)(i0 + i) * G * 4);
    for (int64_t b = b0; b < b1; b++) {
        const __m512i *blk = (const __m512i *)(const void *)(qx->codes + (size_t)b * G * 64);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                a6 = a0, a7 = a0;
        for (int g = 0; g < G; g++) {
            __m512i x = _mm512_load_si512(blk + g);
            a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(qw[0][g]));
            a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(qw[1][g]));
            a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(qw[2][g]));
            a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(qw[3][g]));
            a4 = _mm512_dpbusd_epi32(a4, x, _mm512_set1_epi32(qw[4][g]));
            a5 = _mm512_dpbusd_epi32(a5, x, _mm512_set1_epi32(qw[5][g]));
            a6 = _mm512_dpbusd_epi32(a6, x, _mm512_set1_epi32(qw[6][g]));
            a7 = _mm512_dpbusd_epi32(a7, x, _mm512_set1_epi32(qw[7][g]));
        }
        int64_t left = qx->n - b * Q8_ROWS;
        __mmask16 valid = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const size_t x0 = (size_t)b * Q8_ROWS;
        __m512 cxv = _mm512_load_ps(qx->cx + x0), xlv = _mm512_load_ps(qx->xl + x0);
        __m512 rxv = _mm512_load_ps(qx->rx + x0);
        q8_filter(v, i0 + 0, b, a0, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 1, b, a1, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 2, b, a2, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 3, b, a3, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 4, b, a4, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 5, b, a5, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 6, b, a6, valid, cxv, xlv, rxv);
        q8_filter(v, i0 + 7, b, a7, valid, cxv, xlv, rxv);
    }
}
#else
void cmir__q8_scan_vnni(q8view *v, int i0, int64_t b0, int64_t b1)
{
    cmir__q8_scan_c(v, i0, b0, b1);
}
#endif
