/* Exact brute-force Euclidean k-NN: small float sgemm tiles select candidates
 * under a rigorous rounding-error bound, candidates are re-ranked by double
 * distance and index; k >= n/4 (full rankings) sorts exact distances. */
#include "knn_internal.h"

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

/* Max-heap of floats (the k best tile values of a query). */
CMIR__KNN_HEAP_OFFER(fheap_offer, float)

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
    if (!cmir__knn_keep(j, id))
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
    (void)fheap_offer(ah, &s->alen, j->k, a);
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
        const float *X = j->db + (size_t)x0 * d, *nx = j->nx ? j->nx + x0 : (const float *)(area + j->off_nx);
        if (!j->nx) /* values as cmir_knn_norms's; the rows were checked by the caller */
            (void)cmir__knn_norms_threads(1, X, bn, d, (float *)(area + j->off_nx));
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
    b = (b + 63) & ~(size_t)63;
    j->off_nx = b; /* tiles have at most max(nb, 4096) rows (tile_shape) */
    b += (size_t)(j->nb > 4096 ? j->nb : 4096) * sizeof(float);
    return (b + 63) & ~(size_t)63;
}

/* Per-query bytes of the heap path besides the tile. */
static size_t per_query_bytes(int k, int cap)
{
    return sizeof(qslot) + sizeof(float) + (size_t)k * sizeof(float) +
           (size_t)cap * sizeof(knn_hit);
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
/* Entry point                                                               */

cmir_knn_params cmir_knn_default_params(void)
{
    cmir_knn_params p;
    memset(&p, 0, sizeof p);
    p.max_dist = INFINITY;
    p.squared = 1;
    p.mask_value = -1;
    return p;
}

int cmir_knn_check_params(cmir_knn_params p)
{
    if (isnan(p.max_dist) || p.max_dist < 0.0f)
        return cmir__error(CMIR_EINVAL, "cmir_knn_params.max_dist: must be >= 0 and not NaN, got %g",
                           (double)p.max_dist);
    if (p.mask_value < -1 || p.mask_value > 255)
        return cmir__error(CMIR_EINVAL, "cmir_knn_params.mask_value: must be -1 or in 0..255, got %d", p.mask_value);
    if (p.squared != 0 && p.squared != 1)
        return cmir__error(CMIR_EINVAL, "cmir_knn_params.squared: must be 0 or 1, got %d", p.squared);
    if (p.query_block < 0 || p.query_block > (1 << 16))
        return cmir__error(CMIR_EINVAL, "cmir_knn_params.query_block: must be in 0..%d, got %d", 1 << 16,
                           p.query_block);
    if (p.db_block < 0 || p.db_block > (1 << 20))
        return cmir__error(CMIR_EINVAL, "cmir_knn_params.db_block: must be in 0..%d, got %d", 1 << 20,
                           p.db_block);
    return 0;
}

/* Arguments and values (so that workers never fail). */
int cmir__knn_check_args(const float *db, int64_t n, const float *q, int64_t m, int d, int k,
                      const cmir_knn_params *p, const int64_t *ids)
{
    if ((!db && n > 0) || (!q && m > 0) || (!ids && m > 0))
        return cmir__error(CMIR_EINVAL, "cmir_knn: NULL argument");
    if (n < 0 || m < 0 || d <= 0 || d > KNN_MAX_D || k <= 0)
        return cmir__error(CMIR_EINVAL, "cmir_knn: bad shape n=%lld m=%lld d=%d k=%d",
                           (long long)n, (long long)m, d, k);
    int rc = cmir_knn_check_params(*p);
    if (rc)
        return rc;
    if ((uint64_t)m * (uint64_t)k > (uint64_t)SIZE_MAX / 16)
        return cmir__error(CMIR_EINVAL, "cmir_knn: m*k too large");
    if (m == 0)
        return 0;
    for (int64_t i = 0; i < m; i++)
        if (!norm_ok(sq_norm(q + (size_t)i * d, d)))
            return cmir__error(CMIR_EINVAL,
                               "cmir_knn: query %lld has a NaN or infinite value or a squared "
                               "norm >= 1e30",
                               (long long)i);
    if (!p->db_norms && (!(p->db_norm_max >= 0.0f) || !norm_ok(p->db_norm_max)))
        return cmir__error(CMIR_EINVAL, "cmir_knn: db_norm_max is invalid");
    if (p->db_norms)
        for (int64_t i = 0; i < n; i++) {
            double s = p->db_norms[i];
            if (!(s >= 0.0) || !norm_ok(s))
                return cmir__error(CMIR_EINVAL, "cmir_knn: db_norms[%lld] is invalid",
                                   (long long)i);
        }
    return 0;
}

/* The job's problem and error-bound coefficients. */
static void job_init(knn_job *j, const float *db, int64_t n, const float *q, int64_t m, int d,
                     int k, const cmir_knn_params *p, int64_t *ids, float *dist)
{
    memset(j, 0, sizeof *j);
    j->db = db;
    j->q = q;
    j->n = n;
    j->m = m;
    j->d = d;
    j->k = k;
    j->mask = p->mask;
    j->mask_value = p->mask_value;
    j->md = p->max_dist;
    j->squared = p->squared;
    j->ids = ids;
    j->dist = dist;
    if (j->md == INFINITY)
        j->theta0 = INFINITY;
    else
        j->theta0 = (j->squared ? j->md : j->md * j->md) * (1.0 + 1e-14);
    double du = (double)(d + 1) * KNN_U;
    j->gam = (2.0 * du / (1.0 - du) + (d + 5.0) * KNN_U) * 1.001;
    j->epsd = 1.01 * (double)(d + 2) * KNN_UD;
    j->avx512 = cpu_avx512();
}

/* Heap path: block sizes, split mode, threads (*T lowered where rows are
 * few) and each thread's scratch bytes. */
static void plan_heap(knn_job *j, const cmir_knn_params *p, int *T)
{
    const int64_t n = j->n, m = j->m;
    const int k = j->k, d = j->d;
    j->nb = p->db_block;
    j->split_db = m < (int64_t)*T * 8;
    int qb = p->query_block ? p->query_block : KNN_DEFAULT_QB;
    int64_t cap = 4 * (int64_t)k + 64;
    j->cap = (int)(cap < n + 1 ? cap : n + 1);
    size_t hq = KNN_HEAP_BUDGET / per_query_bytes(k, j->cap);
    if ((size_t)qb > hq)
        qb = hq > 0 ? (int)hq : 1;
    if (j->split_db) {
        if (qb > m)
            qb = (int)m;
        if ((int64_t)*T * 256 > n) /* at least 256 rows per thread */
            *T = (int)(n / 256) > 1 ? (int)(n / 256) : 1;
    } else {
        int64_t share = (m + *T - 1) / *T;
        if (qb > share)
            qb = (int)share;
    }
    j->qb = qb;
    j->sb = d <= 128 ? KNN_SUB_BLOCK : qb;
    if (d > 128 && !j->nb) /* large d: ordinary (packed) sgemm tiles */
        j->nb = 512;
    j->per_thread = heap_area_layout(j);
}

/* Database-split mode: per chunk of queries, the threads scan their rows,
 * then threads 1..T-1 are merged into thread 0's heaps and emitted. */
static int run_split_db(knn_job *j, int T)
{
    const int k = j->k;
    for (int64_t q0 = 0; q0 < j->m; q0 += j->qb) {
        j->q0 = q0;
        j->q1 = j->m - q0 < j->qb ? j->m : q0 + j->qb;
        int rc = cmir__parallel(T, task_rows, j);
        if (rc)
            return rc;
        qview v0 = area_view(j, j->scratch, q0);
        for (int t = 1; t < T; t++) {
            qview vt = area_view(j, j->scratch + (size_t)t * j->per_thread, q0);
            for (int64_t i = 0; i < j->q1 - q0; i++)
                for (int r = 0; r < vt.slot[i].nbuf; r++)
                    heap_offer(v0.buf + (size_t)i * j->cap, &v0.slot[i].nbuf, k,
                               vt.buf[(size_t)i * j->cap + r]);
        }
        for (int64_t i = q0; i < j->q1; i++)
            heap_emit(j, v0.buf + (size_t)(i - q0) * j->cap, v0.slot[i - q0].nbuf,
                      j->ids + (size_t)i * k, j->dist ? j->dist + (size_t)i * k : NULL);
    }
    return 0;
}

/* Heap path after planning: the norms (given, or computed into nx_area),
 * their bound, then the tiles. */
static int run_heap(knn_job *j, cmir_exec *ex, int T, const cmir_knn_params *p, float *nx_area)
{
    int rc;
    const float *db_norms = p->db_norms;
    if (db_norms) {
        j->nx = db_norms;
    } else if (p->db_norm_max > 0.0f) { /* each tile's, in the scan */
        j->nx = NULL;
        j->xmax = (double)p->db_norm_max * (1.0 + (j->d + 3.0) * KNN_U);
        return j->split_db ? run_split_db(j, T) : cmir__parallel(T, task_queries, j);
    } else {
        if ((rc = cmir__knn_norms_threads(cmir_exec_threads(ex), j->db, j->n, j->d, nx_area)))
            return rc;
        j->nx = nx_area;
    }
    float xm = 0.0f;
    for (int64_t i = 0; i < j->n; i++)
        xm = j->nx[i] > xm ? j->nx[i] : xm;
    j->xmax = (double)xm * (1.0 + (j->d + 3.0) * KNN_U); /* nx may be low by (d+2)u */
    return j->split_db ? run_split_db(j, T) : cmir__parallel(T, task_queries, j);
}

int cmir_knn(cmir_exec *ex, const float *db, int64_t n, const float *q, int64_t m, int d, int k,
             cmir_knn_params p, int64_t *ids, float *dist)
{
    int rc = cmir__knn_check_args(db, n, q, m, d, k, &p, ids);
    if (rc || m == 0)
        return rc;
    knn_job j;
    job_init(&j, db, n, q, m, d, k, &p, ids, dist);
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
        plan_heap(&j, &p, &T);
        if (!p.db_norms && !(p.db_norm_max > 0.0f))
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
    if (full) {
        /* Only checks the values (the norms are not needed here). */
        rc = cmir__knn_norms_threads(cmir_exec_threads(ex), db, n, d, NULL);
        if (!rc)
            rc = cmir__parallel(T, cmir__knn_task_full, &j);
    } else {
        rc = run_heap(&j, ex, T, &p, (float *)base);
    }
    cmir__free_aligned(owned);
    return rc;
}
