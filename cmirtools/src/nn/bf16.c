/* bf16 GEMM for the conv and dense layers (float32 operands rounded to
 * bfloat16 with round-to-nearest-even, float32 accumulation, float32
 * results) with AVX512_BF16's vdpbf16ps, chosen at run time from CPUID; a
 * scalar emulation of the same arithmetic for the tests; the precision
 * switch (cmir_nn_set_precision, CMIR_NO_BF16) that conv.c and dense.c read. */
#include "nn_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Precision switch ---------------------------------------------------- */

static int g_precision = CMIR_PRECISION_FP32;
int cmir__bf16_force_off = 0;

int cmir_nn_set_precision(cmir_precision p)
{
    if (p != CMIR_PRECISION_FP32 && p != CMIR_PRECISION_BF16)
        return cmir__error(CMIR_EINVAL, "cmir_nn_set_precision: precision must be fp32 or bf16");
    __atomic_store_n(&g_precision, (int)p, __ATOMIC_RELAXED);
    return 0;
}

cmir_precision cmir_nn_precision(void)
{
    return (cmir_precision)__atomic_load_n(&g_precision, __ATOMIC_RELAXED);
}

const char *cmir_precision_name(cmir_precision p)
{
    return p == CMIR_PRECISION_BF16 ? "bf16" : p == CMIR_PRECISION_AUTO ? "auto" : "fp32";
}

int cmir_precision_parse(const char *s, cmir_precision *p)
{
    if (s && !strcmp(s, "fp32"))
        *p = CMIR_PRECISION_FP32;
    else if (s && !strcmp(s, "bf16"))
        *p = CMIR_PRECISION_BF16;
    else if (s && !strcmp(s, "auto"))
        *p = CMIR_PRECISION_AUTO;
    else
        return cmir__error(CMIR_EINVAL, "precision '%s': expected auto, fp32 or bf16", s ? s : "");
    return 0;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(CMIR_NO_BF16_KERNELS)
#define BF_SIMD 1
#endif

static int cpu_has_bf16(void)
{
#ifdef BF_SIMD
    static int cached = -1; /* races only write the same value */
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        const char *e = getenv("CMIR_NO_BF16");
        c = (!e || !*e || !strcmp(e, "0")) && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
#else
    return 0;
#endif
}

int cmir_nn_bf16_available(void) { return !cmir__bf16_force_off && cpu_has_bf16(); }

int cmir__bf16_active(void)
{
    return cmir_nn_precision() == CMIR_PRECISION_BF16 && cmir_nn_bf16_available();
}

/* vpermw indices that interleave the two halves of a vcvtne2ps2bf16 result
 * (a's 16 values low, b's high) into (a[i], b[i]) pairs. */
const short cmir__bf16_interleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                         8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* ---- Scalar emulation ------------------------------------------------------ */

/* float -> bf16 bits, round to nearest even; denormals flush to signed
 * zero and NaNs stay quiet NaNs, as vcvtne2ps2bh does. */
uint16_t cmir__f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float cmir__bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    if ((u & 0x7f800000u) == 0) /* vdpbf16ps reads denormals as zero */
        u &= 0x80000000u;
    memcpy(&f, &u, 4);
    return f;
}

/* Pairs along k, as vdpbf16ps takes them: odd element first, then even,
 * each product exact in float32 and added with one rounding. */
void cmir__bgemm_ref(int transa, int transb, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            volatile float acc = beta != 0.0f ? c[(size_t)i * ldc + j] : 0.0f;
            for (int p = 0; p < k; p += 2) {
                float a0 = transa ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float b0 = transb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                float a1 = 0.0f, b1 = 0.0f;
                if (p + 1 < k) {
                    a1 = transa ? a[(size_t)(p + 1) * lda + i] : a[(size_t)i * lda + p + 1];
                    b1 = transb ? b[(size_t)j * ldb + p + 1] : b[(size_t)(p + 1) * ldb + j];
                }
                volatile float p1 = cmir__bf2f(cmir__f2bf(a1)) * cmir__bf2f(cmir__f2bf(b1));
                acc = acc + p1;
                volatile float p0 = cmir__bf2f(cmir__f2bf(a0)) * cmir__bf2f(cmir__f2bf(b0));
                acc = acc + p0;
            }
            c[(size_t)i * ldc + j] = acc;
        }
}

/* ---- AVX512_BF16 kernels ---------------------------------------------------
 * A is packed into panels of MR rows: {kp, MR} pairs (uint32: bf16 of
 * k = 2kp in the low half, 2kp+1 in the high half); B into {Kp, Np} pairs
 * (Np = n rounded up to 16, zero padded). A tile of MR rows x 64 columns
 * lives in 24 registers; vdpbf16ps adds a pair of products per lane. */
#ifdef BF_SIMD
#include <immintrin.h>

#define BF_FN static __attribute__((target("avx512f,avx512bw,avx512bf16"), noinline))
#define BF_IN static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16")))
#define MR 6

static __mmask16 bmask(int rem) { return (__mmask16)(rem >= 16 ? 0xFFFFu : (1u << rem) - 1u); }

BF_IN void tile(const uint32_t *ap, const uint32_t *bp, size_t np, int kp, float *c, int ldc,
                const int mr, const int nv, __mmask16 ml, int load_c)
{
    __m512 acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = load_c ? _mm512_maskz_loadu_ps(v == nv - 1 ? ml : 0xFFFF,
                                                       c + (size_t)i * ldc + 16 * v)
                               : _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = (__m512bh)_mm512_loadu_si512(bp + (size_t)p * np + 16 * v);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)p * MR + i]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * v, v == nv - 1 ? ml : 0xFFFF,
                                  acc[i][v]);
}

#define TILE_NV(MRV)                                                                       \
    switch (nv) {                                                                         \
    case 1: tile(ap, bp, np, kp, c, ldc, MRV, 1, ml, load_c); break;                      \
    case 2: tile(ap, bp, np, kp, c, ldc, MRV, 2, ml, load_c); break;                      \
    case 3: tile(ap, bp, np, kp, c, ldc, MRV, 3, ml, load_c); break;                      \
    default: tile(ap, bp, np, kp, c, ldc, MRV, 4, ml, load_c); break;                     \
    }

BF_FN void tile_any(const uint32_t *ap, const uint32_t *bp, size_t np, int kp, float *c,
                    int ldc, int mr, int nv, __mmask16 ml, int load_c)
{
    switch (mr) {
    case 1: TILE_NV(1) break;
    case 2: TILE_NV(2) break;
    case 3: TILE_NV(3) break;
    case 4: TILE_NV(4) break;
    case 5: TILE_NV(5) break;
    default: TILE_NV(6) break;
    }
}

/* Bp{Kp, np} from op(B) (k x n). Row pairs of a plain B are converted 16
 * columns at a time and interleaved; a transposed B is small (weights). */
BF_FN void pack_b(int transb, int n, int k, const float *b, int ldb, uint32_t *bp, size_t np)
{
    const int kp = (k + 1) / 2;
    if (transb) { /* row j of the stored B holds column j's pairs in order: blocks of
                   * 16 columns x 16 pairs, converted by rows, stored by pairs */
        uint32_t tmp[16 * 16];
        const __m512i col = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(16));
        for (size_t j0 = 0; j0 < np; j0 += 16)
            for (int p0 = 0; p0 < kp; p0 += 16) {
                const int f = 2 * p0; /* first float of the block's pairs */
                __mmask16 m0 = f < k ? bmask(k - f) : 0, m1 = f + 16 < k ? bmask(k - f - 16) : 0;
                for (int jj = 0; jj < 16; jj++) {
                    __m512i h = _mm512_setzero_si512();
                    if ((int)(j0 + jj) < n) {
                        const float *r = b + (j0 + jj) * (size_t)ldb + f;
                        h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, r + 16),
                                                          _mm512_maskz_loadu_ps(m0, r));
                    }
                    _mm512_storeu_si512(tmp + 16 * jj, h);
                }
                for (int q = 0; q < 16 && p0 + q < kp; q++)
                    _mm512_storeu_si512(bp + (size_t)(p0 + q) * np + j0,
                                        _mm512_i32gather_epi32(
                                            _mm512_add_epi32(col, _mm512_set1_epi32(q)), tmp, 4));
            }
        return;
    }
    const __m512i idx = _mm512_loadu_si512(cmir__bf16_interleave);
    for (int p = 0; p < kp; p++) {
        const float *r0 = b + (size_t)(2 * p) * ldb;
        const float *r1 = 2 * p + 1 < k ? r0 + ldb : NULL;
        for (size_t j = 0; j < np; j += 16) {
            __mmask16 m = (int)j < n ? bmask(n - (int)j) : 0;
            __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + j);
            __m512 x1 = r1 ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
            _mm512_storeu_si512(bp + (size_t)p * np + j, _mm512_permutexvar_epi16(idx, h));
        }
    }
}

/* All panels of op(A){m,k}: panel q (rows [q MR, q MR + MR)) at
 * ap + q kp MR, {kp, MR} pairs, rows past m zero. A plain A is converted
 * a row at a time; a transposed one (the weight gradients' dy^T or x^T)
 * two rows of the stored matrix at a time, interleaved, in one pass. */
BF_FN void pack_a(int transa, int m, int k, const float *a, int lda, uint32_t *ap,
                  uint16_t *row)
{
    const int kp = (k + 1) / 2, mt = (m + MR - 1) / MR;
    const size_t ps = (size_t)kp * MR;
    if (m % MR)
        memset(ap + (size_t)(mt - 1) * ps, 0, sizeof(uint32_t) * ps);
    if (transa) {
        const __m512i idx = _mm512_loadu_si512(cmir__bf16_interleave);
        uint32_t tmp[16];
        for (int p = 0; p < kp; p++) {
            const float *r0 = a + (size_t)(2 * p) * lda;
            const float *r1 = 2 * p + 1 < k ? r0 + lda : NULL;
            for (int i = 0; i < m; i += 16) {
                __mmask16 mk = bmask(m - i);
                __m512 x0 = _mm512_maskz_loadu_ps(mk, r0 + i);
                __m512 x1 = r1 ? _mm512_maskz_loadu_ps(mk, r1 + i) : _mm512_setzero_ps();
                __m512i h = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
                _mm512_storeu_si512(tmp, _mm512_permutexvar_epi16(idx, h));
                int e = m - i < 16 ? m - i : 16;
                for (int q = 0; q < e; q++)
                    ap[(size_t)((i + q) / MR) * ps + (size_t)p * MR + (i + q) % MR] = tmp[q];
            }
        }
        return;
    }
    for (int i = 0; i < m; i++) {
        const float *src = a + (size_t)i * lda;
        int q = 0;
        for (; q + 32 <= k; q += 32) {
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + q + 16),
                                                     _mm512_loadu_ps(src + q));
            _mm512_storeu_si512(row + q, h);
        }
        for (; q < k; q++)
            row[q] = cmir__f2bf(src[q]);
        if (k & 1)
            row[k] = 0;
        const uint32_t *r32 = (const uint32_t *)row;
        uint32_t *dst = ap + (size_t)(i / MR) * ps + i % MR;
        for (int p = 0; p < kp; p++)
            dst[(size_t)p * MR] = r32[p];
    }
}

typedef struct bjob {
    int m, n, k;
    const uint32_t *ap, *bp;
    size_t np;
    float beta;
    float *c;
    int ldc;
} bjob;

/* K is cut into chunks of KC pairs so a chunk of packed B stays in L2;
 * the partial sums go through C in float32 (same rounding as one pass). */
#define KC 512

static int bjob_task(int t, int T, void *user)
{
    const bjob *j = user;
    const int kp = (j->k + 1) / 2, mt = (j->m + MR - 1) / MR;
    size_t lo, hi;
    cmir__split((size_t)mt, T, t, &lo, &hi);
    /* A 64-column block of a chunk of B (KC x 64 pairs, 128 KiB) stays in L2
     * while the thread's row panels stream past it. */
    for (int p0 = 0; p0 < kp; p0 += KC) {
        int pc = kp - p0 < KC ? kp - p0 : KC, load_c = p0 > 0 || j->beta != 0.0f;
        for (int n0 = 0; n0 < j->n; n0 += 64) {
            int nr = j->n - n0 < 64 ? j->n - n0 : 64, nv = (nr + 15) / 16;
            __mmask16 ml = bmask(nr - 16 * (nv - 1));
            for (size_t q = lo; q < hi; q++) {
                int m0 = (int)q * MR, mr = j->m - m0 < MR ? j->m - m0 : MR;
                const uint32_t *ap = j->ap + q * (size_t)kp * MR + (size_t)p0 * MR;
                tile_any(ap, j->bp + (size_t)p0 * j->np + n0, j->np, pc,
                         j->c + (size_t)m0 * j->ldc + n0, j->ldc, mr, nv, ml, load_c);
            }
        }
    }
    return 0;
}

static size_t simd_work(int m, int n, int k)
{
    size_t kp = ((size_t)k + 1) / 2, mt = ((size_t)m + MR - 1) / MR;
    size_t np = ((size_t)n + 15) & ~(size_t)15;
    return 4 * (mt * kp * MR + kp * np + kp + 32) + 128;
}

static int bgemm_simd(int threads, int transa, int transb, int m, int n, int k, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc,
                      void *work)
{
    const int kp = (k + 1) / 2, mt = (m + MR - 1) / MR;
    size_t np = ((size_t)n + 15) & ~(size_t)15;
    uint32_t *ap = work, *bp = ap + (size_t)mt * kp * MR;
    uint16_t *row = (uint16_t *)(bp + (size_t)kp * np);
    pack_b(transb, n, k, b, ldb, bp, np);
    pack_a(transa, m, k, a, lda, ap, row);
    bjob j = {m, n, k, ap, bp, np, beta, c, ldc};
    if (threads > mt)
        threads = mt > 0 ? mt : 1;
    return cmir__parallel(threads, bjob_task, &j);
}
#endif /* BF_SIMD */

size_t cmir__bgemm_work(int transa, int transb, int m, int n, int k)
{
    (void)transa, (void)transb;
#ifdef BF_SIMD
    return simd_work(m, n, k);
#else
    (void)m, (void)n, (void)k;
    return 0;
#endif
}

/* C{m,n} = op(A) op(B) + beta C, beta 0 or 1 (C is not read for 0). */
int cmir__bgemm(int threads, int transa, int transb, int m, int n, int k, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc, void *work)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0) {
        if (beta == 0.0f)
            for (int i = 0; i < m; i++)
                memset(c + (size_t)i * ldc, 0, sizeof(float) * (size_t)n);
        return 0;
    }
#ifdef BF_SIMD
    if (cpu_has_bf16()) {
        void *own = NULL;
        if (!work && !(work = own = cmir__malloc_aligned(cmir__bgemm_work(transa, transb, m, n, k))))
            return CMIR_ENOMEM;
        int rc = bgemm_simd(threads, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc, work);
        cmir__free_aligned(own);
        return rc;
    }
#endif
    (void)threads, (void)work;
    cmir__bgemm_ref(transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return 0;
}

/* What conv.c and dense.c call in place of cmir__sgemm (alpha 1, beta 0
 * or 1): bf16 where the precision is bf16 and the CPU has AVX512_BF16,
 * else OpenBLAS exactly as before. */
int cmir__gemm_auto(int threads, int transa, int transb, int m, int n, int k, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc, void *work)
{
    if (cmir__bf16_active())
        return cmir__bgemm(threads, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc,
                           work);
    cmir__sgemm(threads, transa, transb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    return 0;
}
