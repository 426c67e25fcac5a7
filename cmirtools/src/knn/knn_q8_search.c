/* cmir_knn_q8_search: queries quantised like the rows, the int8 scan
 * (knn_q8.c) selects candidates under rigorous distance bounds, and every
 * candidate the bounds cannot exclude is ranked by cmir_knn's exact D. */
#include "knn_q8.h"

#define Q8_QBLK 128 /* queries a thread scans the database with at once */
#define Q8_CHUNK 64 /* blocks (of 16 rows) per pass over a query block */

/* Upper bounds (true distances, not squared) grow by these factors to
 * cover double rounding: 1e-15 per step, 1e-9 to turn "true distance
 * greater" into "double D greater" (D is within 1 +- epsd of it). */
#define Q8_UP (1.0 + 1e-15)
#define Q8_DN (1.0 - 1e-15)
#define Q8_SEP (1.0 + 1e-9)

/* Recomputes a query's bound ukm and its kernel threshold W. */
static void update_w(q8view *v, int i)
{
    const q8job *j = v->j;
    q8q *st = &v->st[i];
    const int k = j->kj.k;
    double uk = st->ukm; /* the max_dist bound, set by cmir__q8_prep_query */
    if (st->exact) {
        const knn_hit *h = v->buf + (size_t)i * j->cap;
        if (st->nbuf == k) {
            double u = sqrt(h[0].d / (1.0 - j->kj.epsd)) * Q8_UP * Q8_SEP;
            uk = u < uk ? u : uk;
        }
    } else if (st->ulen == k) {
        double u = v->uheap[(size_t)i * k] * Q8_SEP;
        uk = u < uk ? u : uk;
    }
    st->ukm = uk;
    v->W[i] = uk == INFINITY ? INFINITY
                             : round_up_float((uk + st->rq) * Q8_UP * (1.0 + Q8_KAPPA) * Q8_UP);
}

/* Quantises query q into the view's slot i. 0, or -1 when its scale is
 * outside the trusted range (the caller then uses cmir_knn). */
int cmir__q8_prep_query(const q8job *j, const float *q, int8_t *qc, q8q *st)
{
    const int d = j->kj.d, G = j->qx->G;
    float amax = 0.0f;
    for (int c = 0; c < d; c++)
        amax = fabsf(q[c]) > amax ? fabsf(q[c]) : amax;
    float s = amax / 127.0f;
    if (amax > 0.0f && (s < (float)Q8_SAFE_LO || s > (float)Q8_SAFE_HI))
        return -1;
    if (!qc)
        return 0;
    int32_t sum = 0, s2 = 0;
    double e2 = 0.0;
    memset(qc, 0, (size_t)G * 4);
    float inv = s > 0.0f ? 1.0f / s : 0.0f;
    for (int c = 0; c < d; c++) {
        float t = q[c] * inv;
        int v = (int)(t + (t >= 0.0f ? 0.5f : -0.5f));
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        qc[c] = (int8_t)v;
        sum += v;
        s2 += v * v;
        double e = (double)q[c] - (double)s * (double)v;
        e2 += e * e;
    }
    st->sq = s;
    st->off = 128 * sum;
    st->qn = (double)s * (double)s * (double)s2;
    st->qv = cmir__q8_round_down(st->qn * (1.0 - Q8_KAPPA) * Q8_DN);
    st->rq = sqrt(e2) * (1.0 + 1e-10) * Q8_UP;
    st->exact = st->ulen = st->nbuf = 0;
    st->ukm = j->kj.theta0 == INFINITY
                  ? INFINITY
                  : sqrt(j->kj.theta0 / (1.0 - j->kj.epsd)) * Q8_UP * Q8_SEP;
    return 0;
}

static const float *query_row(const q8view *v, int i)
{
    return v->j->kj.q + (size_t)(v->q0 + i) * v->j->kj.d;
}

/* Whether a buffered candidate (lower bound lo of its true distance, row
 * id) can still be among the k best. */
static int still_in(const q8view *v, const q8q *st, double lo, int64_t id)
{
    return lo <= (st->ukm + st->rq + (double)v->j->qx->rx[id]) * Q8_UP;
}

/* Approx mode -> exact heap: the buffered candidates that survive get
 * their exact D, sorted by (D, id), the k best kept as a max-heap. */
static void to_exact(q8view *v, int i)
{
    const q8job *j = v->j;
    q8q *st = &v->st[i];
    if (st->exact)
        return;
    knn_hit *buf = v->buf + (size_t)i * j->cap;
    const float *q = query_row(v, i);
    const int d = j->kj.d;
    int n = 0;
    for (int a = 0; a < st->nbuf; a++) {
        if (!still_in(v, st, buf[a].d, buf[a].id))
            continue;
        double D = exact_d(q, j->kj.db + (size_t)buf[a].id * d, d);
        if (keep_dist(&j->kj, D)) {
            buf[n].id = buf[a].id;
            buf[n].d = D;
            n++;
        }
    }
    qsort(buf, (size_t)n, sizeof *buf, hit_cmp);
    if (n > j->kj.k)
        n = j->kj.k;
    for (int a = 0, b = n - 1; a < b; a++, b--) { /* descending: a valid max-heap */
        knn_hit t = buf[a];
        buf[a] = buf[b];
        buf[b] = t;
    }
    st->nbuf = n;
    st->exact = 1;
    update_w(v, i);
}

/* The query's max-heap of the k smallest upper bounds. */
CMIR__KNN_HEAP_OFFER(uheap_offer, double)

void cmir__q8_candidate(q8view *v, int i, int64_t id, int32_t I)
{
    const q8job *j = v->j;
    if (!cmir__knn_keep(&j->kj, id))
        return;
    q8q *st = &v->st[i];
    knn_hit *buf = v->buf + (size_t)i * j->cap;
    const int k = j->kj.k;
    if (st->exact) {
        double D = exact_d(query_row(v, i), j->kj.db + (size_t)id * j->kj.d, j->kj.d);
        knn_hit h = {D, id};
        if (keep_dist(&j->kj, D) && heap_offer(buf, &st->nbuf, k, h))
            update_w(v, i);
        return;
    }
    /* A = ||q' - x'||^2 in double: error below 1e-14 (qn + xn) */
    const cmir_knn_q8 *qx = j->qx;
    double sx = -0.5 * (double)qx->cx[id], xn = sx * sx * (double)qx->S[id];
    double A = st->qn + xn - 2.0 * ((double)st->sq * sx) * (double)I;
    double e = 1e-14 * (st->qn + xn), rx = (double)qx->rx[id];
    double lo = sqrt(A - e > 0.0 ? A - e : 0.0) * Q8_DN;
    if (!still_in(v, st, lo, id))
        return;
    double hi = (sqrt(A + e) * Q8_UP + st->rq + rx) * Q8_UP;
    if (uheap_offer(v->uheap + (size_t)i * k, &st->ulen, k, hi) && st->ulen == k)
        update_w(v, i);
    buf[st->nbuf].d = lo;
    buf[st->nbuf].id = id;
    if (++st->nbuf == j->cap) {
        int out = 0;
        for (int a = 0; a < st->nbuf; a++)
            if (still_in(v, st, buf[a].d, buf[a].id))
                buf[out++] = buf[a];
        st->nbuf = out;
        if (out > j->cap / 2) /* masses of rows within the bound: rank them exactly */
            to_exact(v, i);
    }
}

/* The view of thread area `area` for queries [q0, q0 + nq). */
static q8view area_view(const q8job *j, char *area, int64_t q0, int nq)
{
    q8view v;
    size_t B = (size_t)j->qblk, o = 0;
    v.j = j;
    v.q0 = q0;
    v.nq = nq;
    v.qc = (int8_t *)area;
    o += (B * j->qx->G * 4 + 63) & ~(size_t)63;
    v.st = (q8q *)(area + o);
    o += (B * sizeof(q8q) + 63) & ~(size_t)63;
    v.W = (float *)(area + o);
    o += (B * sizeof(float) + 63) & ~(size_t)63;
    v.uheap = (double *)(area + o);
    o += (B * j->kj.k * sizeof(double) + 63) & ~(size_t)63;
    v.buf = (knn_hit *)(area + o);
    return v;
}

static size_t area_bytes(const q8job *j)
{
    size_t B = (size_t)j->qblk, o = 0;
    o += (B * j->qx->G * 4 + 63) & ~(size_t)63;
    o += (B * sizeof(q8q) + 63) & ~(size_t)63;
    o += (B * sizeof(float) + 63) & ~(size_t)63;
    o += (B * j->kj.k * sizeof(double) + 63) & ~(size_t)63;
    o += (B * j->cap * sizeof(knn_hit) + 63) & ~(size_t)63;
    return o;
}

/* Queries [qa, qe): quantise, scan every block, rank, emit. */
static void run_qblock(const q8job *j, char *area, int64_t qa, int64_t qe)
{
    const int nq = (int)(qe - qa), npad = (nq + Q8_QT - 1) / Q8_QT * Q8_QT;
    const int G = j->qx->G;
    q8view v = area_view(j, area, qa, nq);
    for (int i = 0; i < npad; i++) {
        int8_t *qc = v.qc + (size_t)i * G * 4;
        if (i < nq) {
            cmir__q8_prep_query(j, query_row(&v, i), qc, &v.st[i]);
            update_w(&v, i);
        } else { /* pad: zero codes, a NaN threshold keeps nothing */
            memset(qc, 0, (size_t)G * 4);
            memset(&v.st[i], 0, sizeof v.st[i]);
            v.W[i] = NAN;
        }
    }
    for (int64_t b = 0; b < j->qx->nblk; b += Q8_CHUNK) {
        int64_t be = j->qx->nblk - b < Q8_CHUNK ? j->qx->nblk : b + Q8_CHUNK;
        for (int i0 = 0; i0 < npad; i0 += Q8_QT) {
            if (j->vnni)
                cmir__q8_scan_vnni(&v, i0, b, be);
            else
                cmir__q8_scan_c(&v, i0, b, be);
        }
    }
    for (int i = 0; i < nq; i++) {
        to_exact(&v, i);
        heap_emit(&j->kj, v.buf + (size_t)i * j->cap, v.st[i].nbuf,
                  j->kj.ids + (size_t)(qa + i) * j->kj.k,
                  j->kj.dist ? j->kj.dist + (size_t)(qa + i) * j->kj.k : NULL);
    }
}

static int task_q8(int t, int T, void *user)
{
    const q8job *j = user;
    char *area = j->scratch + (size_t)t * j->per_thread;
    size_t lo, hi;
    cmir__split((size_t)j->kj.m, T, t, &lo, &hi);
    for (int64_t qa = (int64_t)lo; qa < (int64_t)hi; qa += j->qblk) {
        int64_t qe = (int64_t)hi - qa < j->qblk ? (int64_t)hi : qa + j->qblk;
        run_qblock(j, area, qa, qe);
    }
    return 0;
}

int cmir_knn_q8_search(cmir_exec *ex, const cmir_knn_q8 *qx, const float *db, int64_t n,
                       const float *q, int64_t m, int d, int k, cmir_knn_params p,
                       int64_t *ids, float *dist)
{
    p.db_norms = NULL;
    if (!qx)
        return cmir__error(CMIR_EINVAL, "cmir_knn_q8_search: NULL quantised database");
    int rc = cmir__knn_check_args(db, n, q, m, d, k, &p, ids);
    if (rc || m == 0)
        return rc;
    if (qx->n != n || qx->d != d)
        return cmir__error(CMIR_EINVAL,
                           "cmir_knn_q8_search: quantised database is %lld x %d, db is %lld x %d",
                           (long long)qx->n, qx->d, (long long)n, d);
    q8job j;
    memset(&j, 0, sizeof j);
    j.qx = qx;
    j.kj.db = db;
    j.kj.q = q;
    j.kj.n = n;
    j.kj.m = m;
    j.kj.d = d;
    j.kj.k = k;
    j.kj.mask = p.mask;
    j.kj.mask_value = p.mask_value;
    j.kj.md = p.max_dist;
    j.kj.squared = p.squared;
    j.kj.theta0 = p.max_dist == INFINITY
                      ? INFINITY
                      : (p.squared ? (double)p.max_dist : (double)p.max_dist * p.max_dist) *
                            (1.0 + 1e-14);
    j.kj.epsd = 1.01 * (double)(d + 2) * KNN_UD;
    j.kj.ids = ids;
    j.kj.dist = dist;
    int fallback = n == 0 || (int64_t)k * 4 >= n;
    for (int64_t i = 0; !fallback && i < m; i++)
        fallback = cmir__q8_prep_query(&j, q + (size_t)i * d, NULL, NULL) != 0;
    if (fallback)
        return cmir_knn(ex, db, n, q, m, d, k, p, ids, dist);
    j.vnni = cmir__q8_have_vnni();
    int64_t cap = 4 * (int64_t)k + 64;
    j.cap = (int)(cap < n + 1 ? cap : n + 1);
    int T = cmir_exec_threads(ex);
    T = T > 64 ? 64 : T;
    if ((int64_t)T > m)
        T = (int)m;
    int64_t share = (m + T - 1) / T;
    j.qblk = share < Q8_QBLK ? (int)((share + Q8_QT - 1) / Q8_QT * Q8_QT) : Q8_QBLK;
    size_t perq = (size_t)j.cap * sizeof(knn_hit) + (size_t)k * sizeof(double) + 128;
    while (j.qblk > Q8_QT && (size_t)j.qblk * perq > KNN_HEAP_BUDGET)
        j.qblk -= Q8_QT;
    j.per_thread = area_bytes(&j);
    char *owned = NULL;
    size_t total = j.per_thread * (size_t)T + 64;
    j.scratch = ex ? cmir__exec_scratch(ex, total) : (owned = cmir__malloc_aligned(total));
    if (!j.scratch)
        return CMIR_ENOMEM;
    rc = cmir__parallel(T, task_q8, &j);
    cmir__free_aligned(owned);
    return rc;
}
