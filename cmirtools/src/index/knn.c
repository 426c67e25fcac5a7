/* Exact brute-force Euclidean k-NN: small float sgemm tiles select candidates
 * under a rigorous rounding-error bound, candidates are re-ranked by double
 * distance and index; k >= n/4 (full rankings) sorts exact distances. */
#include "cmir/knn.h"
#include "base/internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KNN_HAVE_AVX512 1
#endif

#define KNN_DEFAULT_QB 512
/* Tiles of at most this many multiply-adds (rows x queries x d): OpenBLAS
 * 0.3.21 runs them (for SkylakeX, when M*N*K <= 1e6) with kernels that
 * neither pack the operands nor clear C first, and they stay in L1/L2. */
#define KNN_SMALL_MNK 1000000
#define KNN_SUB_BLOCK 128 /* queries per sgemm for d <= 128 */
/* Per-thread budget for the k-heaps of one query block. */
#define KNN_HEAP_BUDGET ((size_t)16 << 20)
/* Squared norms at or above this are refused: keeps every float sum and
 * product in the sgemm tile far from overflow. */
#define KNN_NORM_LIMIT 1e30
#define KNN_MAX_D (1 << 20)
#define KNN_U 0x1p-24  /* unit roundoff of float */
#define KNN_UD 0x1p-53 /* unit roundoff of double */

typedef struct knn_hit {
    double d;
    int64_t id;
} knn_hit;

typedef struct knn_key {
    uint64_t key; /* bit pattern of a non-negative double: ordered like it */
    int64_t id;
} knn_key;

typedef struct knn_job {
    const float *db, *q;
    int64_t n, m;
    int d, k;
    const uint8_t *mask;
    const float *nx; /* squared db norms (float) */
    double md;       /* max_dist as given (unit of `squared`) */
    double theta0;   /* bound on D above which nothing is kept (from md) */
    int squared;
    int qb, nb, sb;    /* queries per block (heap path), db rows per tile (0 = by
                          tile_shape()), queries per sgemm */
    int64_t q0, q1;    /* db-split mode: the query chunk */
    int split_db;      /* threads split the database instead of the queries */
    int avx512;        /* scan tiles with AVX-512F */
    double gam, epsd;  /* error-bound coefficients, see thr_for() */
    double xmax;       /* bound on every squared db norm */
    int cap;           /* candidate buffer per query (heap path) */
    size_t off_qt, off_thr, off_slot, off_aheap, off_buf; /* a thread's area */
    char *scratch;     /* per-thread areas */
    size_t per_thread; /* bytes */
    int64_t *ids;
    float *dist;
} knn_job;

/* ------------------------------------------------------------------------ */
/* Exact distances                                                           */
/*
 * The reference D must be bit-identical wherever it is computed: no
 * multiply-add contraction (GCC: off in ISO C mode, and forced off for
 * these functions; clang: the pragma).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define KNN_NO_CONTRACT
#elif defined(__GNUC__)
#define KNN_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define KNN_NO_CONTRACT
#endif

/* The reference distance: in-order double sum of squared differences. */
KNN_NO_CONTRACT static double exact_d(const float *a, const float *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

/* The same for four rows at once: four independent in-order chains, so each
 * result is bit-identical to exact_d, with more instruction-level overlap. */
KNN_NO_CONTRACT static void exact_d4(const float *q, const float *x0, const float *x1,
                                     const float *x2, const float *x3, int d, double out[4])
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int j = 0; j < d; j++) {
        double qj = (double)q[j];
        double t0 = qj - (double)x0[j], t1 = qj - (double)x1[j];
        double t2 = qj - (double)x2[j], t3 = qj - (double)x3[j];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

#ifdef KNN_HAVE_AVX512
/* 32 rows at once, one per double lane of four accumulators, each lane the
 * same in-order chain as exact_d (separate multiply and add), so results
 * are bit-identical; four chains hide the add latency. */
#define KNN_BATCH 32
__attribute__((target("avx512f"))) KNN_NO_CONTRACT static void
exact_d32_avx512(const float *q, const float *db, const int64_t rows[KNN_BATCH], int d,
                 double out[KNN_BATCH])
{
    long long off[KNN_BATCH];
    for (int u = 0; u < KNN_BATCH; u++)
        off[u] = (long long)rows[u] * d;
    __m512i i0 = _mm512_loadu_si512((const void *)off);
    __m512i i1 = _mm512_loadu_si512((const void *)(off + 8));
    __m512i i2 = _mm512_loadu_si512((const void *)(off + 16));
    __m512i i3 = _mm512_loadu_si512((const void *)(off + 24));
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    for (int j = 0; j < d; j++) {
        const float *b = db + j;
        __m512d qj = _mm512_set1_pd((double)q[j]);
        __m512d t0 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i0, b, 4)));
        __m512d t1 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i1, b, 4)));
        __m512d t2 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i2, b, 4)));
        __m512d t3 = _mm512_sub_pd(qj, _mm512_cvtps_pd(_mm512_i64gather_ps(i3, b, 4)));
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(t0, t0));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(t1, t1));
        s2 = _mm512_add_pd(s2, _mm512_mul_pd(t2, t2));
        s3 = _mm512_add_pd(s3, _mm512_mul_pd(t3, t3));
    }
    _mm512_storeu_pd(out, s0);
    _mm512_storeu_pd(out + 8, s1);
    _mm512_storeu_pd(out + 16, s2);
    _mm512_storeu_pd(out + 24, s3);
}
#else
#define KNN_BATCH 32
#endif

/* Whether a hit at exact squared distance D passes max_dist. */
static int keep_dist(const knn_job *j, double D)
{
    if (j->md == INFINITY)
        return 1;
    return j->squared ? D <= j->md : sqrt(D) <= j->md;
}

/* Squared norm in double. Only its accuracy matters (relative error below
 * (d + 1) 2^-53 in any summation order), so eight partial sums keep the
 * adds independent. */
static double sq_norm(const float *x, int d)
{
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= d; j += 8)
        for (int u = 0; u < 8; u++)
            s[u] += (double)x[j + u] * (double)x[j + u];
    for (; j < d; j++)
        s[0] += (double)x[j] * (double)x[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#ifdef KNN_HAVE_AVX512
/* The same in AVX-512 (products of floats are exact in double). */
__attribute__((target("avx512f"))) static double sq_norm_avx512(const float *x, int d)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        __m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + j + 8));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; j < d; j++)
        s += (double)x[j] * (double)x[j];
    return s;
}
#endif

static int norm_ok(double s) { return isfinite(s) && s < KNN_NORM_LIMIT; }

/* ------------------------------------------------------------------------ */
/* The candidate bounds                                                      */
/*
 * Tile value A = sgemm's nx + sum_j (-2 x_j) q_j, with nx = fl(||x||^2).
 * It is an inner product of length d + 1; with u = 2^-24 and gamma_n =
 * n u / (1 - n u), any summation order, blocking or FMA use gives
 * |A - (nx - 2 q.x)| <= gamma_{d+1} (nx + 2 sum_j |q_j x_j|). The norms
 * may come from the caller: we allow |nx - ||x||^2| <= (d + 2) u ||x||^2
 * (any float or double summation; ours errs by at most 1.01 u). With
 * 2 |q.x| <= 2 ||q|| ||x|| <= ||q||^2 + ||x||^2, the real r = ||x||^2 -
 * 2 q.x satisfies
 *     |A - r| <= E = (2 gamma_{d+1} + (d + 5) u) (||q||^2 + X)
 * where X bounds every ||x||^2 of the database (the largest nx, raised by
 * the same allowance). The double reference D (d
 * squares of rounded differences, summed in order) is within a factor
 * (1 +- epsd), epsd = 1.01 (d + 2) 2^-53, of the real T = ||q - x||^2 =
 * ||q||^2 + r <= 2 (||q||^2 + X), and the double query norm qs has the same
 * relative accuracy. Hence two rules, each proving D(x) > D(y) or D(x) >
 * theta, so that row x can be skipped:
 *   exact rule:  A(x) > theta / (1 - epsd) - qs (1 - epsd) + E   =>  D(x) > theta
 *   approx rule: A(x) > A(y) + 2E + 4.1 epsd (qs + X)              =>  D(x) > D(y)
 * (the approx rule against each of k rows y makes x miss the k best). Each
 * threshold is computed in double with a small extra margin for its own
 * rounding and rounded up to float.
 */
/* The smallest float >= v (v finite or +inf). */
static float round_up_float(double v)
{
    if (v > (double)FLT_MAX)
        return INFINITY;
    float f = (float)v;
    if ((double)f < v) { /* one ulp up; f != 0 here unless v is tiny */
        if (f == 0.0f)
            return FLT_TRUE_MIN;
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        b = f > 0.0f ? b + 1 : b - 1;
        memcpy(&f, &b, sizeof f);
    }
    return f;
}

static float thr_for(const knn_job *j, double theta, double qs)
{
    if (theta == INFINITY)
        return INFINITY;
    double E = j->gam * (qs + j->xmax) + 1e-30;
    double v = theta / (1.0 - j->epsd) - qs * (1.0 - j->epsd) + E;
    v += 8.0 * KNN_UD * (theta + qs + E); /* rounding of these few operations */
    return round_up_float(v);
}

static double approx_margin(const knn_job *j, double qs)
{
    return 2.0 * j->gam * (qs + j->xmax) + 4.1 * j->epsd * (qs + j->xmax) + 1e-30;
}

static float approx_thr(float top, double marg)
{
    double v = (double)top + marg;
    v += 8.0 * KNN_UD * (fabs((double)top) + marg);
    return round_up_float(v);
}

/* ------------------------------------------------------------------------ */
/* Heaps                                                                     */

static int hit_less(knn_hit a, knn_hit b) { return a.d < b.d || (a.d == b.d && a.id < b.id); }

static int hit_cmp(const void *a, const void *b)
{
    knn_hit x = *(const knn_hit *)a, y = *(const knn_hit *)b;
    return hit_less(x, y) ? -1 : hit_less(y, x) ? 1 : 0;
}

/* Max-heap of (D, id), worst on top. */
static void sift_down(knn_hit *h, int len, int i)
{
    knn_hit x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && hit_less(h[c], h[c + 1]))
            c++;
        if (!hit_less(x, h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Offers x to the heap of capacity k; returns 1 if it entered. */
static int heap_offer(knn_hit *h, int *len, int k, knn_hit x)
{
    if (*len < k) {
        int i = (*len)++;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!hit_less(h[p], x))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = x;
        return 1;
    }
    if (!hit_less(x, h[0]))
        return 0;
    h[0] = x;
    sift_down(h, *len, 0);
    return 1;
}

/* Sorts the heap ascending in place (heap sort) and writes one output row. */
static void heap_emit(const knn_job *j, knn_hit *h, int len, int64_t *ids, float *dist)
{
    for (int n = len - 1; n > 0; n--) {
        knn_hit t = h[0];
        h[0] = h[n];
        h[n] = t;
        sift_down(h, n, 0);
    }
    for (int r = 0; r < j->k; r++) {
        ids[r] = r < len ? h[r].id : -1;
        if (dist)
            dist[r] = r < len ? (float)(j->squared ? h[r].d : sqrt(h[r].d)) : INFINITY;
    }
}

/* Max-heap of floats (the k best tile values of a query). */
static void fheap_offer(float *h, int *len, int k, float a)
{
    int i;
    if (*len < k) {
        i = (*len)++;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!(h[p] < a))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = a;
        return;
    }
    if (!(a < h[0]))
        return;
    i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= k)
            break;
        if (c + 1 < k && h[c] < h[c + 1])
            c++;
        if (!(a < h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = a;
}

/* ------------------------------------------------------------------------ */
/* Heap path: per-query state                                                */
/*
 * Approximate mode (the normal one): a float max-heap holds the k smallest
 * tile values A seen so far; rows passing the approx rule against its top
 * are appended to a candidate buffer (A, id) of capacity cap = 4k + 64,
 * which is compacted when full. At the end the survivors get their exact D
 * and the k best (D, id) are kept. If compaction cannot free half the
 * buffer (masses of rows within the error bound of each other, e.g.
 * duplicates), the query switches to exact mode: the buffer becomes an
 * exact max-heap of (D, id) and every later row passing the exact rule gets
 * its D at once. max_dist < INFINITY starts in exact mode.
 */
typedef struct qslot {
    double qs;   /* squared query norm, double */
    double marg; /* approx rule margin */
    float *thr;  /* -> its entry of the block's threshold array: rows with
                    A > *thr are skipped */
    int exact;   /* mode */
    int alen;    /* approx heap fill */
    int nbuf;    /* approx: candidates in buf; exact: heap fill */
} qslot;

typedef struct qview {
    const knn_job *j;
    const float *q; /* first query row of the block */
    qslot *slot;
    float *thr;    /* qb skip thresholds, contiguous (vector compares) */
    float *qt;     /* the query block transposed: d x qb */
    float *aheap;  /* qb x k */
    knn_hit *buf;  /* qb x cap */
} qview;

static qview area_view(const knn_job *j, char *area, int64_t qa)
{
    qview v;
    v.j = j;
    v.q = j->q + (size_t)qa * j->d;
    v.slot = (qslot *)(area + j->off_slot);
    v.thr = (float *)(area + j->off_thr);
    v.qt = (float *)(area + j->off_qt);
    v.aheap = (float *)(area + j->off_aheap);
    v.buf = (knn_hit *)(area + j->off_buf);
    return v;
}

static double theta_exact(const knn_job *j, const qslot *s, const knn_hit *h)
{
    return s->nbuf < j->k ? j->theta0 : h[0].d;
}

/* Exact D of the candidates buf[0..n) (d field holds A on entry), keeping
 * those that pass max_dist; returns how many remain (compacted). */
static int exact_candidates(const knn_job *j, const float *q, knn_hit *buf, int n)
{
    const int d = j->d;
    int i = 0, out = 0;
    double D4[4];
    for (; i + 4 <= n; i += 4) {
        exact_d4(q, j->db + (size_t)buf[i].id * d, j->db + (size_t)buf[i + 1].id * d,
                 j->db + (size_t)buf[i + 2].id * d, j->db + (size_t)buf[i + 3].id * d, d, D4);
        for (int u = 0; u < 4; u++)
            if (keep_dist(j, D4[u])) {
                buf[out].id = buf[i + u].id;
                buf[out].d = D4[u];
                out++;
            }
    }
    for (; i < n; i++) {
        double D = exact_d(q, j->db + (size_t)buf[i].id * d, d);
        if (keep_dist(j, D)) {
            buf[out].id = buf[i].id;
            buf[out].d = D;
            out++;
        }
    }
    return out;
}

/* Drops buffered candidates that the current threshold rules out. */
static void compact(qslot *s, knn_hit *buf)
{
    int out = 0;
    for (int i = 0; i < s->nbuf; i++)
        if (buf[i].d <= (double)*s->thr)
            buf[out++] = buf[i];
    s->nbuf = out;
}

/* Approx mode -> exact heap (also the end of every approx-mode query). */
static void to_exact(const knn_job *j, qslot *s, const float *q, knn_hit *buf)
{
    if (s->exact)
        return;
    compact(s, buf);
    int n = exact_candidates(j, q, buf, s->nbuf);
    if (n > 32) {
        qsort(buf, (size_t)n, sizeof *buf, hit_cmp);
    } else { /* usually about k entries: insertion sort */
        for (int a = 1; a < n; a++) {
            knn_hit x = buf[a];
            int b = a - 1;
            for (; b >= 0 && hit_less(x, buf[b]); b--)
                buf[b + 1] = buf[b];
            buf[b + 1] = x;
        }
    }
    if (n > j->k)
        n = j->k;
    for (int a = 0, b = n - 1; a < b; a++, b--) { /* descending: a valid max-heap */
        knn_hit t = buf[a];
        buf[a] = buf[b];
        buf[b] = t;
    }
    s->nbuf = n;
    s->exact = 1;
    *s->thr = thr_for(j, theta_exact(j, s, buf), s->qs);
}

static void slot_init(const knn_job *j, qslot *s, float *thr, const float *q)
{
    s->thr = thr;
    s->qs = sq_norm(q, j->d);
    s->marg = approx_margin(j, s->qs);
    s->alen = 0;
    s->nbuf = 0;
    s->exact = j->theta0 != INFINITY;
    *s->thr = s->exact ? thr_for(j, j->theta0, s->qs) : INFINITY;
}

/* Row id with tile value a passed `a <= thr` for query i of the view. */
static void candidate(qview *v, int i, float a, int64_t id)
{
    const knn_job *j = v->j;
    if (j->mask && !j->mask[id])
        return;
    qslot *s = &v->slot[i];
    knn_hit *buf = v->buf + (size_t)i * j->cap;
    const float *q = v->q + (size_t)i * j->d;
    if (s->exact) {
        double D = exact_d(q, j->db + (size_t)id * j->d, j->d);
        if (!keep_dist(j, D))
            return;
        knn_hit h = {D, id};
        if (heap_offer(buf, &s->nbuf, j->k, h))
            *s->thr = thr_for(j, theta_exact(j, s, buf), s->qs);
        return;
    }
    float *ah = v->aheap + (size_t)i * j->k;
    fheap_offer(ah, &s->alen, j->k, a);
    if (s->alen == j->k)
        *s->thr = approx_thr(ah[0], s->marg);
    buf[s->nbuf].d = a;
    buf[s->nbuf].id = id;
    if (++s->nbuf == j->cap) {
        compact(s, buf);
        if (s->nbuf > j->cap / 2)
            to_exact(j, s, q, buf);
    }
}

/* A tile is C = -2 X Q^T for database rows x0 .. x0+bn-1 (tile rows) and
 * the queries i0 .. i0+sw-1 of the block (tile columns, ldc = sw). Entry
 * (t, i) is a candidate when A = C + nx[t] <= thr[i0 + i]. Portable
 * version: counts the hits of a chunk before looking (that loop
 * vectorizes). */
static void scan_tile_generic(qview *v, const float *C, const float *nx, int bn, int sw, int i0,
                              int64_t x0)
{
    const float *thr = v->thr + i0;
    for (int t = 0; t < bn; t++) {
        const float *c = C + (size_t)t * sw;
        const float n = nx[t];
        int i = 0;
        for (; i + 16 <= sw; i += 16) {
            int cnt = 0;
            for (int u = 0; u < 16; u++)
                cnt += c[i + u] + n <= thr[i + u];
            if (!cnt)
                continue;
            for (int u = 0; u < 16; u++) {
                float a = c[i + u] + n;
                if (a <= thr[i + u])
                    candidate(v, i0 + i + u, a, x0 + t);
            }
        }
        for (; i < sw; i++) {
            float a = c[i] + n;
            if (a <= thr[i])
                candidate(v, i0 + i, a, x0 + t);
        }
    }
}

#ifdef KNN_HAVE_AVX512
__attribute__((target("avx512f"))) static inline __mmask16
hits16(const float *c, const float *thr, __m512 vn)
{
    return _mm512_cmp_ps_mask(_mm512_add_ps(_mm512_loadu_ps(c), vn), _mm512_loadu_ps(thr),
                              _CMP_LE_OQ);
}

__attribute__((target("avx512f"))) static void
scan_tile_avx512(qview *v, const float *C, const float *nx, int bn, int sw, int i0, int64_t x0)
{
    const float *thr = v->thr + i0;
    const int full = sw & ~15, full4 = sw & ~63;
    const __mmask16 tail = (__mmask16)((1u << (sw & 15)) - 1u);
    for (int t = 0; t < bn; t++) {
        const float *c = C + (size_t)t * sw;
        const float n = nx[t];
        const __m512 vn = _mm512_set1_ps(n);
        int i = 0;
        /* 64 columns per branch: hits are rare once the heaps are full */
        for (; i < full4; i += 64) {
            __mmask16 m0 = hits16(c + i, thr + i, vn), m1 = hits16(c + i + 16, thr + i + 16, vn);
            __mmask16 m2 = hits16(c + i + 32, thr + i + 32, vn);
            __mmask16 m3 = hits16(c + i + 48, thr + i + 48, vn);
            if (!(m0 | m1 | m2 | m3))
                continue;
            uint64_t mk = (uint64_t)m0 | (uint64_t)m1 << 16 | (uint64_t)m2 << 32 |
                          (uint64_t)m3 << 48;
            while (mk) {
                int u = __builtin_ctzll(mk);
                mk &= mk - 1;
                float a = c[i + u] + n;
                if (a <= thr[i + u]) /* thr may have dropped meanwhile */
                    candidate(v, i0 + i + u, a, x0 + t);
            }
        }
        for (; i < sw; i += 16) {
            __mmask16 mk;
            if (i < full)
                mk = hits16(c + i, thr + i, vn);
            else
                mk = _mm512_mask_cmp_ps_mask(
                    tail, _mm512_add_ps(_mm512_maskz_loadu_ps(tail, c + i), vn),
                    _mm512_maskz_loadu_ps(tail, thr + i), _CMP_LE_OQ);
            while (mk) {
                int u = __builtin_ctz((unsigned)mk);
                mk &= (__mmask16)(mk - 1);
                float a = c[i + u] + n;
                if (a <= thr[i + u])
                    candidate(v, i0 + i + u, a, x0 + t);
            }
        }
    }
}
#endif

/* Tile shape for a block of bq queries: sw queries per sgemm (the sub-block)
 * and bn database rows. */
static void tile_shape(const knn_job *j, int bq, int *sw, int *bn)
{
    *sw = bq < j->sb ? bq : j->sb;
    if (j->nb) {
        *bn = j->nb;
        return;
    }
    int64_t r = KNN_SMALL_MNK / ((int64_t)*sw * j->d);
    *bn = (int)(r < 16 ? 16 : r > 4096 ? 4096 : r);
}

/* Queries [qa, qe) against db rows [xa, xb): initialises the slots, runs
 * the tiles, and leaves each query's exact top-k as a max-heap in its
 * buffer (length slot.nbuf). */
static void run_block(const knn_job *j, char *area, int64_t qa, int64_t qe, int64_t xa,
                      int64_t xb)
{
    const int bq = (int)(qe - qa), d = j->d;
    float *tile = (float *)area;
    qview v = area_view(j, area, qa);
    for (int i = 0; i < bq; i++) {
        slot_init(j, &v.slot[i], &v.thr[i], v.q + (size_t)i * d);
        for (int c = 0; c < d; c++)
            v.qt[(size_t)c * bq + i] = v.q[(size_t)i * d + c];
    }
    int sw0, nb;
    tile_shape(j, bq, &sw0, &nb);
    for (int64_t x0 = xa; x0 < xb; x0 += nb) {
        int bn = (int)(xb - x0 < nb ? xb - x0 : nb);
        const float *X = j->db + (size_t)x0 * d, *nx = j->nx + x0;
        /* Both operands untransposed (the queries were transposed once), so
         * OpenBLAS needs no transposing copies; the database rows of the
         * tile stay in cache across the sub-blocks. */
        for (int i0 = 0; i0 < bq; i0 += sw0) {
            int sw = bq - i0 < sw0 ? bq - i0 : sw0;
            cmir__sgemm(1, 0, 0, bn, sw, d, -2.0f, X, d, v.qt + i0, bq, 0.0f, tile, sw);
#ifdef KNN_HAVE_AVX512
            if (j->avx512 && sw >= 16) {
                scan_tile_avx512(&v, tile, nx, bn, sw, i0, x0);
                continue;
            }
#endif
            scan_tile_generic(&v, tile, nx, bn, sw, i0, x0);
        }
    }
    for (int i = 0; i < bq; i++)
        to_exact(j, &v.slot[i], v.q + (size_t)i * d, v.buf + (size_t)i * j->cap);
}

/* Lays out one thread's area: tile, slots, approx heaps, buffers. */
static size_t heap_area_layout(knn_job *j)
{
    int sw, bn;
    tile_shape(j, j->qb, &sw, &bn);
    size_t tile = (size_t)sw * bn;
    if (!j->nb) { /* smaller query blocks (the last one) get taller tiles */
        size_t small = (size_t)(KNN_SMALL_MNK / j->d) + 16 * (size_t)j->sb;
        tile = tile > small ? tile : small;
    }
    size_t b = tile * sizeof(float);
    b = (b + 63) & ~(size_t)63;
    j->off_qt = b;
    b += (size_t)j->qb * j->d * sizeof(float);
    b = (b + 63) & ~(size_t)63;
    j->off_thr = b;
    b += (size_t)j->qb * sizeof(float);
    b = (b + 63) & ~(size_t)63;
    j->off_slot = b;
    b += (size_t)j->qb * sizeof(qslot);
    b = (b + 63) & ~(size_t)63;
    j->off_aheap = b;
    b += (size_t)j->qb * j->k * sizeof(float);
    b = (b + 63) & ~(size_t)63;
    j->off_buf = b;
    b += (size_t)j->qb * j->cap * sizeof(knn_hit);
    return (b + 63) & ~(size_t)63;
}

/* Per-query bytes of the heap path besides the tile. */
static size_t per_query_bytes(int k, int cap)
{
    return sizeof(qslot) + sizeof(float) + (size_t)k * sizeof(float) +
           (size_t)cap * sizeof(knn_hit);
}

/* Whether the CPU runs AVX-512F (asked once per call, in the caller). */
static int cpu_avx512(void)
{
#ifdef KNN_HAVE_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

/* Query-split mode: thread t owns a contiguous range of queries. */
static int task_queries(int t, int T, void *user)
{
    const knn_job *j = user;
    char *area = j->scratch + (size_t)t * j->per_thread;
    size_t lo, hi;
    cmir__split((size_t)j->m, T, t, &lo, &hi);
    for (int64_t qa = (int64_t)lo; qa < (int64_t)hi; qa += j->qb) {
        int64_t qe = (int64_t)hi - qa < j->qb ? (int64_t)hi : qa + j->qb;
        run_block(j, area, qa, qe, 0, j->n);
        qview v = area_view(j, area, qa);
        for (int64_t i = qa; i < qe; i++)
            heap_emit(j, v.buf + (size_t)(i - qa) * j->cap, v.slot[i - qa].nbuf,
                      j->ids + (size_t)i * j->k, j->dist ? j->dist + (size_t)i * j->k : NULL);
    }
    return 0;
}

/* Database-split mode: thread t scans its rows for the chunk [q0, q1). */
static int task_rows(int t, int T, void *user)
{
    const knn_job *j = user;
    char *area = j->scratch + (size_t)t * j->per_thread;
    size_t lo, hi;
    cmir__split((size_t)j->n, T, t, &lo, &hi);
    run_block(j, area, j->q0, j->q1, (int64_t)lo, (int64_t)hi);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Full path (k >= n/4): every allowed row's D, radix-sorted                 */

/* Stable LSD radix sort on the 64-bit keys (11-bit digits), so rows with
 * equal keys keep their (ascending index) order. Returns the sorted copy
 * (a or tmp). */
static knn_key *radix_sort(knn_key *a, knn_key *tmp, size_t n)
{
    size_t cnt[2048];
    knn_key *src = a, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 11) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].key >> shift) & 2047]++;
        if (n == 0 || cnt[(src[0].key >> shift) & 2047] == n)
            continue; /* one digit value: the pass would change nothing */
        size_t sum = 0;
        for (int b = 0; b < 2048; b++) {
            size_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].key >> shift) & 2047]++] = src[i];
        knn_key *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

static uint64_t dkey(double D)
{
    uint64_t u;
    memcpy(&u, &D, sizeof u); /* D >= +0: the bit pattern orders like D */
    return u;
}

static int task_full(int t, int T, void *user)
{
    const knn_job *j = user;
    knn_key *buf = (knn_key *)(j->scratch + (size_t)t * j->per_thread);
    knn_key *tmp = buf + j->n;
    size_t lo, hi;
    cmir__split((size_t)j->m, T, t, &lo, &hi);
    const int d = j->d;
    for (size_t i = lo; i < hi; i++) {
        const float *q = j->q + i * d;
        size_t cnt = 0;
        int64_t x = 0;
        double Db[KNN_BATCH];
        while (x < j->n) {
            int64_t r[KNN_BATCH];
            int nr = 0;
            for (; x < j->n && nr < KNN_BATCH; x++)
                if (!j->mask || j->mask[x])
                    r[nr++] = x;
            if (nr == 0)
                break;
            for (int u = nr; u < KNN_BATCH; u++)
                r[u] = r[0];
#ifdef KNN_HAVE_AVX512
            if (j->avx512) {
                exact_d32_avx512(q, j->db, r, d, Db);
            } else
#endif
            {
                for (int u = 0; u < nr; u += 4)
                    exact_d4(q, j->db + (size_t)r[u] * d, j->db + (size_t)r[u + 1] * d,
                             j->db + (size_t)r[u + 2] * d, j->db + (size_t)r[u + 3] * d, d,
                             Db + u);
            }
            for (int u = 0; u < nr; u++)
                if (keep_dist(j, Db[u])) {
                    buf[cnt].key = dkey(Db[u]);
                    buf[cnt].id = r[u];
                    cnt++;
                }
        }
        knn_key *s = radix_sort(buf, tmp, cnt);
        int64_t *ids = j->ids + i * j->k;
        float *dist = j->dist ? j->dist + i * j->k : NULL;
        for (int r = 0; r < j->k; r++) {
            if ((size_t)r < cnt) {
                ids[r] = s[r].id;
                if (dist) {
                    double D;
                    memcpy(&D, &s[r].key, sizeof D);
                    dist[r] = (float)(j->squared ? D : sqrt(D));
                }
            } else {
                ids[r] = -1;
                if (dist)
                    dist[r] = INFINITY;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Norms                                                                     */

typedef struct norms_job {
    const float *x;
    int64_t n;
    int d, avx512;
    float *out;
    int64_t bad[64]; /* first bad row of each thread, -1 if none */
} norms_job;

static int task_norms(int t, int T, void *user)
{
    norms_job *nj = user;
    size_t lo, hi;
    cmir__split((size_t)nj->n, T, t, &lo, &hi);
    nj->bad[t] = -1;
    for (size_t i = lo; i < hi; i++) {
#ifdef KNN_HAVE_AVX512
        double s = nj->avx512 ? sq_norm_avx512(nj->x + i * nj->d, nj->d)
                              : sq_norm(nj->x + i * nj->d, nj->d);
#else
        double s = sq_norm(nj->x + i * nj->d, nj->d);
#endif
        if (!norm_ok(s)) {
            nj->bad[t] = (int64_t)i;
            return CMIR_EINVAL;
        }
        if (nj->out)
            nj->out[i] = (float)s;
    }
    return 0;
}

static int norms_threads(int T, const float *x, int64_t n, int d, float *norms)
{
    norms_job nj;
    if (n == 0)
        return 0;
    nj.x = x;
    nj.n = n;
    nj.d = d;
    nj.avx512 = cpu_avx512();
    nj.out = norms;
    if (T > 64)
        T = 64;
    if ((int64_t)T * 4096 > n)
        T = (int)(n / 4096) > 1 ? (int)(n / 4096) : 1;
    if (cmir__parallel(T, task_norms, &nj) == 0)
        return 0;
    for (int t = 0; t < T; t++)
        if (nj.bad[t] >= 0)
            return cmir__error(CMIR_EINVAL,
                               "cmir_knn: row %lld has a NaN or infinite value or a squared "
                               "norm >= 1e30",
                               (long long)nj.bad[t]);
    return cmir__error(CMIR_EINVAL, "cmir_knn: bad values");
}

int cmir_knn_norms(const float *x, int64_t n, int d, float *norms)
{
    if ((!x && n > 0) || (!norms && n > 0))
        return cmir__error(CMIR_EINVAL, "cmir_knn_norms: NULL argument");
    if (n < 0 || d <= 0 || d > KNN_MAX_D)
        return cmir__error(CMIR_EINVAL, "cmir_knn_norms: bad shape n=%lld d=%d", (long long)n,
                           d);
    return norms_threads(1, x, n, d, norms);
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */

cmir_knn_params cmir_knn_default_params(void)
{
    cmir_knn_params p;
    memset(&p, 0, sizeof p);
    p.max_dist = INFINITY;
    p.squared = 1;
    return p;
}

int cmir_knn(cmir_exec *ex, const float *db, int64_t n, const float *q, int64_t m, int d, int k,
             const cmir_knn_params *pp, int64_t *ids, float *dist)
{
    cmir_knn_params p = pp ? *pp : cmir_knn_default_params();
    if ((!db && n > 0) || (!q && m > 0) || (!ids && m > 0))
        return cmir__error(CMIR_EINVAL, "cmir_knn: NULL argument");
    if (n < 0 || m < 0 || d <= 0 || d > KNN_MAX_D || k <= 0)
        return cmir__error(CMIR_EINVAL, "cmir_knn: bad shape n=%lld m=%lld d=%d k=%d",
                           (long long)n, (long long)m, d, k);
    if (isnan(p.max_dist) || p.max_dist < 0.0f)
        return cmir__error(CMIR_EINVAL, "cmir_knn: max_dist must be >= 0 and not NaN");
    if (p.squared != 0 && p.squared != 1)
        return cmir__error(CMIR_EINVAL, "cmir_knn: squared must be 0 or 1");
    if (p.query_block < 0 || p.db_block < 0 || p.query_block > (1 << 16) ||
        p.db_block > (1 << 20))
        return cmir__error(CMIR_EINVAL, "cmir_knn: bad block sizes");
    if ((uint64_t)m * (uint64_t)k > (uint64_t)SIZE_MAX / 16)
        return cmir__error(CMIR_EINVAL, "cmir_knn: m*k too large");
    if (m == 0)
        return 0;

    /* Query values: checked here, so workers never fail. */
    for (int64_t i = 0; i < m; i++)
        if (!norm_ok(sq_norm(q + (size_t)i * d, d)))
            return cmir__error(CMIR_EINVAL,
                               "cmir_knn: query %lld has a NaN or infinite value or a squared "
                               "norm >= 1e30",
                               (long long)i);
    if (p.db_norms)
        for (int64_t i = 0; i < n; i++) {
            double s = p.db_norms[i];
            if (!(s >= 0.0) || !norm_ok(s))
                return cmir__error(CMIR_EINVAL, "cmir_knn: db_norms[%lld] is invalid",
                                   (long long)i);
        }

    knn_job j;
    memset(&j, 0, sizeof j);
    j.db = db;
    j.q = q;
    j.n = n;
    j.m = m;
    j.d = d;
    j.k = k;
    j.mask = p.mask;
    j.md = p.max_dist;
    j.squared = p.squared;
    j.ids = ids;
    j.dist = dist;
    if (j.md == INFINITY)
        j.theta0 = INFINITY;
    else
        j.theta0 = (j.squared ? j.md : j.md * j.md) * (1.0 + 1e-14);
    double du = (double)(d + 1) * KNN_U;
    j.gam = (2.0 * du / (1.0 - du) + (d + 5.0) * KNN_U) * 1.001;
    j.epsd = 1.01 * (double)(d + 2) * KNN_UD;
    j.avx512 = cpu_avx512();

    int T = cmir_exec_threads(ex);
    if (T > 64)
        T = 64;
    int full = n == 0 || (int64_t)k * 4 >= n;
    size_t norms_bytes = 0;
    if (full) {
        if (T > m)
            T = (int)m;
        j.per_thread = ((size_t)n * 2 * sizeof(knn_key) + 63) & ~(size_t)63;
    } else {
        j.nb = p.db_block;
        j.split_db = m < (int64_t)T * 8;
        int qb = p.query_block ? p.query_block : KNN_DEFAULT_QB;
        int64_t cap = 4 * (int64_t)k + 64;
        j.cap = (int)(cap < n + 1 ? cap : n + 1);
        size_t hq = KNN_HEAP_BUDGET / per_query_bytes(k, j.cap);
        if ((size_t)qb > hq)
            qb = hq > 0 ? (int)hq : 1;
        if (j.split_db) {
            if (qb > m)
                qb = (int)m;
            if ((int64_t)T * 256 > n) /* at least 256 rows per thread */
                T = (int)(n / 256) > 1 ? (int)(n / 256) : 1;
        } else {
            int64_t share = (m + T - 1) / T;
            if (qb > share)
                qb = (int)share;
        }
        j.qb = qb;
        j.sb = d <= 128 ? KNN_SUB_BLOCK : qb;
        if (d > 128 && !j.nb) /* large d: ordinary (packed) sgemm tiles */
            j.nb = 512;
        j.per_thread = heap_area_layout(&j);
        if (!p.db_norms)
            norms_bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    }
    size_t total = norms_bytes + j.per_thread * (size_t)T + 64;
    char *owned = NULL, *base;
    if (ex)
        base = cmir__exec_scratch(ex, total);
    else
        base = owned = cmir__malloc_aligned(total);
    if (!base)
        return CMIR_ENOMEM;
    j.scratch = base + norms_bytes;

    int rc = 0;
    if (full) {
        /* Only checks the values (the norms are not needed here). */
        if ((rc = norms_threads(cmir_exec_threads(ex), db, n, d, NULL)))
            goto done;
        rc = cmir__parallel(T, task_full, &j);
    } else {
        if (p.db_norms) {
            j.nx = p.db_norms;
        } else {
            float *nx = (float *)base;
            if ((rc = norms_threads(cmir_exec_threads(ex), db, n, d, nx)))
                goto done;
            j.nx = nx;
        }
        float xm = 0.0f;
        for (int64_t i = 0; i < n; i++)
            xm = j.nx[i] > xm ? j.nx[i] : xm;
        j.xmax = (double)xm * (1.0 + (d + 3.0) * KNN_U); /* nx may be low by (d+2)u */
        if (!j.split_db) {
            rc = cmir__parallel(T, task_queries, &j);
        } else {
            for (int64_t q0 = 0; q0 < m && !rc; q0 += j.qb) {
                j.q0 = q0;
                j.q1 = m - q0 < j.qb ? m : q0 + j.qb;
                rc = cmir__parallel(T, task_rows, &j);
                if (rc)
                    break;
                /* Merge threads 1..T-1 into thread 0's heaps, then emit. */
                qview v0 = area_view(&j, j.scratch, q0);
                for (int t = 1; t < T; t++) {
                    qview vt = area_view(&j, j.scratch + (size_t)t * j.per_thread, q0);
                    for (int64_t i = 0; i < j.q1 - q0; i++)
                        for (int r = 0; r < vt.slot[i].nbuf; r++)
                            heap_offer(v0.buf + (size_t)i * j.cap, &v0.slot[i].nbuf, k,
                                       vt.buf[(size_t)i * j.cap + r]);
                }
                for (int64_t i = q0; i < j.q1; i++)
                    heap_emit(&j, v0.buf + (size_t)(i - q0) * j.cap, v0.slot[i - q0].nbuf,
                              ids + (size_t)i * k, dist ? dist + (size_t)i * k : NULL);
            }
        }
    }
done:
    cmir__free_aligned(owned);
    return rc;
}
