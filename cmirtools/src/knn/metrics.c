/* Retrieval metrics: relevance counts, exact rankings from cmir_knn in query
 * blocks, per-query AP, AP@k, P@k, PR, NMRR and the paper's P@10..50,
 * averaged in query order (results independent of the thread count). */
#include "cmir/metrics.h"
#include "cmir/knn.h"
#include "../base/internal.h"

#include <math.h>
#include <string.h>

/* Rankings of one block of queries: at most this many bytes of ids. */
#define METRICS_BLOCK_BYTES ((size_t)16 << 20)

static const int default_cutoffs[5] = {5, 10, 20, 50, 100};
static const int paper_cut[CMIR_METRICS_PAPER_POINTS] = {10, 20, 30, 40, 50};

cmir_metrics_params cmir_metrics_default_params(void)
{
    cmir_metrics_params p;
    memset(&p, 0, sizeof p);
    p.cutoffs = default_cutoffs;
    p.n_cutoffs = 5;
    p.paper_queries = 50;
    p.seed = 1;
    return p;
}

typedef struct mjob {
    const cmir_metrics_labels *lab;
    int64_t nq, nd;
    int words;            /* multi-label: 64-bit words per item */
    uint64_t *qbits, *dbits;
    int self_exclude;
    const int *cutoffs;
    int nc;
    int64_t gtm;
    /* relevance counts, pass 1 */
    int64_t *R;           /* nq; -1 = unlabelled */
    /* pass 2: the evaluated queries and one block of rankings */
    const int64_t *eval;  /* query index of each evaluated query */
    int64_t b0, bn;       /* block: eval[b0 .. b0+bn) */
    const int64_t *ids;   /* bn x nd */
    /* per evaluated query outputs */
    double *ap, *nmrr, *pr, *apk, *pk, *paper;
    /* per thread scratch: hit ranks and cumulative precision sums */
    int64_t *hit_rank;
    double *hit_psum;
} mjob;

static int relevant(const mjob *j, int64_t q, int64_t x)
{
    if (j->lab->q_class)
        return j->lab->db_class[x] == j->lab->q_class[q];
    const uint64_t *a = j->qbits + (size_t)q * j->words, *b = j->dbits + (size_t)x * j->words;
    for (int w = 0; w < j->words; w++)
        if (a[w] & b[w])
            return 1;
    return 0;
}

static int labelled(const mjob *j, int64_t q)
{
    if (j->lab->q_class)
        return j->lab->q_class[q] > 0;
    const uint64_t *a = j->qbits + (size_t)q * j->words;
    for (int w = 0; w < j->words; w++)
        if (a[w])
            return 1;
    return 0;
}

/* Pass 1: R_q for the queries of thread t (-1 for unlabelled ones). */
static int task_count(int t, int T, void *user)
{
    mjob *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->nq, T, t, &lo, &hi);
    for (size_t q = lo; q < hi; q++) {
        if (!labelled(j, (int64_t)q)) {
            j->R[q] = -1;
            continue;
        }
        int64_t r = 0;
        for (int64_t x = 0; x < j->nd; x++)
            r += relevant(j, (int64_t)q, x);
        if (j->self_exclude && relevant(j, (int64_t)q, (int64_t)q))
            r--;
        j->R[q] = r;
    }
    return 0;
}

/* Number of hits at ranks <= c: hit ranks are ascending. */
static int64_t hits_upto(const int64_t *rank, int64_t nh, int64_t c)
{
    int64_t lo = 0, hi = nh;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (rank[mid] <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Pass 2: the metrics of the block's queries assigned to thread t. */
static int task_eval(int t, int T, void *user)
{
    mjob *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->bn, T, t, &lo, &hi);
    int64_t *rank = j->hit_rank + (size_t)t * (size_t)j->nd;
    double *psum = j->hit_psum + (size_t)t * (size_t)j->nd;
    for (size_t b = lo; b < hi; b++) {
        int64_t e = j->b0 + (int64_t)b, q = j->eval[e], R = j->R[q];
        const int64_t *ids = j->ids + b * (size_t)j->nd;
        /* Walk the ranking until all R relevant items are found. */
        int64_t nh = 0, r = 0;
        double s = 0.0;
        for (int64_t i = 0; i < j->nd && nh < R; i++) {
            int64_t x = ids[i];
            if (j->self_exclude && x == q)
                continue;
            r++;
            if (relevant(j, q, x)) {
                rank[nh] = r;
                s += (double)(nh + 1) / (double)r;
                psum[nh] = s;
                nh++;
            }
        }
        /* nh == R here: every relevant item is somewhere in the ranking */
        j->ap[e] = s / (double)R;
        for (int c = 0; c < j->nc; c++) {
            int64_t k = j->cutoffs[c], h = hits_upto(rank, nh, k);
            int64_t den = R < k ? R : k;
            j->apk[(size_t)e * j->nc + c] = h ? psum[h - 1] / (double)den : 0.0;
            j->pk[(size_t)e * j->nc + c] = (double)h / (double)k;
        }
        for (int c = 0; c < CMIR_METRICS_PAPER_POINTS; c++)
            j->paper[(size_t)e * CMIR_METRICS_PAPER_POINTS + c] =
                (double)hits_upto(rank, nh, paper_cut[c]) / (double)paper_cut[c];
        /* 11-point interpolated precision: level L needs hits h with
         * 10 h >= L R; the precision at the h-th hit is h / rank[h-1]. */
        double best = 0.0;
        int64_t h = nh;
        for (int L = 10; L >= 0; L--) {
            int64_t need = (L * R + 9) / 10; /* smallest h with 10 h >= L R */
            if (need < 1)
                need = 1;
            for (; h >= need; h--) {
                double p = (double)h / (double)rank[h - 1];
                best = p > best ? p : best;
            }
            j->pr[(size_t)e * CMIR_METRICS_PR_POINTS + L] = best;
        }
        /* NMRR */
        double K = (double)(4 * R < 2 * j->gtm ? 4 * R : 2 * j->gtm);
        double sum = 0.0;
        for (int64_t i = 0; i < nh; i++)
            sum += (double)rank[i] <= K ? (double)rank[i] : 1.25 * K;
        double avr = sum / (double)R, mrr = avr - 0.5 - 0.5 * (double)R;
        j->nmrr[e] = mrr / (1.25 * K - 0.5 - 0.5 * (double)R);
    }
    return 0;
}

int cmir_metrics_check_params(cmir_metrics_params p)
{
    if (p.n_cutoffs < 0)
        return cmir__error(CMIR_EINVAL, "cmir_metrics_params.n_cutoffs: must be >= 0, got %d", p.n_cutoffs);
    if (p.n_cutoffs > 0 && !p.cutoffs)
        return cmir__error(CMIR_EINVAL, "cmir_metrics_params.cutoffs: must not be NULL with n_cutoffs %d",
                           p.n_cutoffs);
    for (int c = 0; c < p.n_cutoffs; c++)
        if (p.cutoffs[c] < 1)
            return cmir__error(CMIR_EINVAL, "cmir_metrics_params.cutoffs[%d]: must be >= 1, got %d", c,
                               p.cutoffs[c]);
    if (p.paper_queries < 0)
        return cmir__error(CMIR_EINVAL, "cmir_metrics_params.paper_queries: must be >= 0, got %d",
                           p.paper_queries);
    return 0;
}

static int check_args(const float *Q, int64_t nq, const float *D, int64_t nd, int d,
                      const cmir_metrics_labels *lab, const cmir_metrics_params *p,
                      cmir_metrics_result *out)
{
    if ((!Q && nq > 0) || (!D && nd > 0) || !lab || !out)
        return cmir__error(CMIR_EINVAL, "cmir_metrics_eval: NULL argument");
    if (nq < 0 || nd < 0 || d <= 0 || nd > INT32_MAX)
        return cmir__error(CMIR_EINVAL, "cmir_metrics_eval: bad shape nq=%lld nd=%lld d=%d",
                           (long long)nq, (long long)nd, d);
    int single = lab->q_class || lab->db_class, multi = lab->q_multi || lab->db_multi;
    if (single == multi)
        return cmir__error(CMIR_EINVAL,
                           "cmir_metrics_eval: give exactly one label form (classes or "
                           "multi-label rows)");
    if (single && ((!lab->q_class && nq > 0) || (!lab->db_class && nd > 0)))
        return cmir__error(CMIR_EINVAL, "cmir_metrics_eval: q_class or db_class missing");
    if (multi && ((!lab->q_multi && nq > 0) || (!lab->db_multi && nd > 0) ||
                  lab->n_labels <= 0))
        return cmir__error(CMIR_EINVAL,
                           "cmir_metrics_eval: q_multi/db_multi missing or n_labels <= 0");
    if (single) {
        for (int64_t i = 0; i < nq; i++)
            if (lab->q_class[i] < 0)
                return cmir__error(CMIR_EINVAL, "cmir_metrics_eval: q_class[%lld] < 0",
                                   (long long)i);
        for (int64_t i = 0; i < nd; i++)
            if (lab->db_class[i] < 0)
                return cmir__error(CMIR_EINVAL, "cmir_metrics_eval: db_class[%lld] < 0",
                                   (long long)i);
    }
    int rc = cmir_metrics_check_params(*p);
    if (rc)
        return rc;
    if (p->self_exclude && nq > nd)
        return cmir__error(CMIR_EINVAL,
                           "cmir_metrics_eval: self_exclude needs nq <= nd (query i is "
                           "database item i)");
    return 0;
}

/* Packs multi-label byte rows into 64-bit words. */
static uint64_t *pack_bits(const uint8_t *rows, int64_t n, int L, int words)
{
    uint64_t *b = cmir__calloc((size_t)(n ? n : 1) * (size_t)words, sizeof(uint64_t));
    if (!b)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int l = 0; l < L; l++)
            if (rows[(size_t)i * L + l])
                b[(size_t)i * words + l / 64] |= (uint64_t)1 << (l % 64);
    return b;
}

static double mean_of(const double *v, size_t stride, int64_t n)
{
    if (n == 0)
        return NAN;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[(size_t)i * stride];
    return s / (double)n;
}

/* Pass 1: R_q of every query, the evaluated ones into eval (*ne of them),
 * the skipped counts and GTM into res. */
static void count_pass(mjob *j, int T, int64_t *eval, int64_t *ne, cmir_metrics_result *res)
{
    const int64_t nq = j->nq;
    cmir__parallel(T < nq ? T : (nq > 0 ? (int)nq : 1), task_count, j);
    int64_t n = 0;
    for (int64_t q = 0; q < nq; q++) {
        if (j->R[q] < 0)
            res->n_unlabelled++;
        else if (j->R[q] == 0)
            res->n_no_relevant++;
        else {
            eval[n++] = q;
            if (j->R[q] > j->gtm)
                j->gtm = j->R[q];
        }
    }
    res->n_queries = n;
    res->gtm = j->gtm;
    j->eval = eval;
    *ne = n;
}

/* The paper's sample: ns of the ne evaluated queries marked in sampled
 * (all of them, or a partial Fisher-Yates over positions 0..ne-1). */
static int paper_sample(cmir_rng *rng, int64_t ne, int64_t ns, uint8_t *sampled)
{
    if (ns == ne) {
        memset(sampled, 1, (size_t)ne);
        return 0;
    }
    int64_t *perm = cmir__malloc(sizeof(int64_t) * (size_t)ne);
    if (!perm)
        return CMIR_ENOMEM;
    for (int64_t i = 0; i < ne; i++)
        perm[i] = i;
    for (int64_t i = 0; i < ns; i++) {
        int64_t r = i + (int64_t)cmir_rng_below(rng, (uint64_t)(ne - i));
        int64_t t = perm[i];
        perm[i] = perm[r];
        perm[r] = t;
        sampled[perm[i]] = 1;
    }
    cmir__free(perm);
    return 0;
}

/* Pass 2: exact rankings of the ne evaluated queries in blocks of at most
 * METRICS_BLOCK_BYTES of ids, metrics per query (into j's arrays). */
static int rank_pass(mjob *j, cmir_exec *ex, int T, const float *Q, const float *D, int d,
                     int64_t ne, cmir_progress_fn progress, void *user)
{
    const int64_t nd = j->nd;
    int64_t bq = (int64_t)(METRICS_BLOCK_BYTES / (sizeof(int64_t) * (size_t)nd));
    if (bq < 1)
        bq = 1;
    if (bq > ne)
        bq = ne;
    int rc = 0;
    int64_t *ids = cmir__malloc(sizeof(int64_t) * (size_t)bq * (size_t)nd);
    float *qbuf = cmir__malloc(sizeof(float) * (size_t)bq * (size_t)d);
    if (!ids || !qbuf || !(j->hit_rank = cmir__malloc(sizeof(int64_t) * (size_t)T * (size_t)nd)) ||
        !(j->hit_psum = cmir__malloc(sizeof(double) * (size_t)T * (size_t)nd)))
        rc = CMIR_ENOMEM;
    j->ids = ids;
    for (int64_t b0 = 0; !rc && b0 < ne; b0 += bq) {
        int64_t bn = ne - b0 < bq ? ne - b0 : bq;
        for (int64_t b = 0; b < bn; b++)
            memcpy(qbuf + (size_t)b * d, Q + (size_t)j->eval[b0 + b] * d, sizeof(float) * d);
        if ((rc = cmir_knn(ex, D, nd, qbuf, bn, d, (int)nd, cmir_knn_default_params(), ids, NULL))) {
            cmir__error_prefix("cmir_metrics_eval");
            break;
        }
        j->b0 = b0;
        j->bn = bn;
        cmir__parallel(T < bn ? T : (int)bn, task_eval, j);
        if (progress && progress((double)(b0 + bn) / (double)ne, "ranking", user))
            rc = cmir__error(CMIR_ECANCEL, "cmir_metrics_eval: cancelled");
    }
    j->ids = NULL;
    cmir__free(ids);
    cmir__free(qbuf);
    return rc;
}

/* The means over the evaluated queries, in query order. */
static void means(const mjob *j, int64_t ne, const uint8_t *sampled, int64_t ns,
                  cmir_metrics_result *res, double *map_at, double *p_at)
{
    res->map = mean_of(j->ap, 1, ne);
    res->anmrr = mean_of(j->nmrr, 1, ne);
    for (int L = 0; L < CMIR_METRICS_PR_POINTS; L++)
        res->pr[L] = mean_of(j->pr + L, CMIR_METRICS_PR_POINTS, ne);
    for (int c = 0; c < j->nc; c++) {
        if (map_at)
            map_at[c] = mean_of(j->apk + c, (size_t)j->nc, ne);
        if (p_at)
            p_at[c] = mean_of(j->pk + c, (size_t)j->nc, ne);
    }
    for (int c = 0; c < CMIR_METRICS_PAPER_POINTS; c++) {
        double s = 0.0;
        for (int64_t e = 0; e < ne; e++)
            if (sampled[e])
                s += j->paper[(size_t)e * CMIR_METRICS_PAPER_POINTS + c];
        res->paper_p_at[c] = ns ? s / (double)ns : NAN;
    }
    res->paper_mean = 0.0;
    for (int c = 0; c < CMIR_METRICS_PAPER_POINTS; c++)
        res->paper_mean += res->paper_p_at[c];
    res->paper_mean /= CMIR_METRICS_PAPER_POINTS;
}

int cmir_metrics_eval(cmir_exec *ex, const float *Q, int64_t nq, const float *D, int64_t nd,
                      int d, const cmir_metrics_labels *labels, cmir_metrics_params p,
                      cmir_progress_fn progress, void *user, cmir_metrics_result *out,
                      double *map_at, double *p_at)
{
    int rc = check_args(Q, nq, D, nd, d, labels, &p, out);
    if (rc)
        return rc;
    mjob j;
    memset(&j, 0, sizeof j);
    j.lab = labels;
    j.nq = nq;
    j.nd = nd;
    j.self_exclude = p.self_exclude;
    j.cutoffs = p.cutoffs;
    j.nc = p.n_cutoffs;
    int T = cmir_exec_threads(ex);
    if (T > 64)
        T = 64;
    int64_t *eval = NULL, ne = 0, ns = 0;
    uint8_t *sampled = NULL;
    double *perq = NULL;
    cmir_rng *rng = NULL;
    cmir_metrics_result res;
    memset(&res, 0, sizeof res);

    if (labels->q_multi) {
        j.words = (labels->n_labels + 63) / 64;
        if (!(j.qbits = pack_bits(labels->q_multi, nq, labels->n_labels, j.words)) ||
            !(j.dbits = pack_bits(labels->db_multi, nd, labels->n_labels, j.words))) {
            rc = CMIR_ENOMEM;
            goto done;
        }
    }
    if (!(j.R = cmir__malloc(sizeof(int64_t) * (size_t)(nq ? nq : 1))) ||
        !(eval = cmir__malloc(sizeof(int64_t) * (size_t)(nq ? nq : 1)))) {
        rc = CMIR_ENOMEM;
        goto done;
    }
    count_pass(&j, T, eval, &ne, &res);

    ns = p.paper_queries == 0 || p.paper_queries > ne ? ne : p.paper_queries;
    if (!(sampled = cmir__calloc((size_t)(ne ? ne : 1), 1)) || !(rng = cmir_rng_new(p.seed)) ||
        paper_sample(rng, ne, ns, sampled)) {
        rc = CMIR_ENOMEM;
        goto done;
    }
    res.paper_n = ns;

    size_t per_q = 2 + CMIR_METRICS_PR_POINTS + 2 * (size_t)j.nc + CMIR_METRICS_PAPER_POINTS;
    if (!(perq = cmir__malloc(sizeof(double) * per_q * (size_t)(ne ? ne : 1)))) {
        rc = CMIR_ENOMEM;
        goto done;
    }
    j.ap = perq;
    j.nmrr = j.ap + ne;
    j.pr = j.nmrr + ne;
    j.apk = j.pr + (size_t)ne * CMIR_METRICS_PR_POINTS;
    j.pk = j.apk + (size_t)ne * j.nc;
    j.paper = j.pk + (size_t)ne * j.nc;
    if (ne > 0 && (rc = rank_pass(&j, ex, T, Q, D, d, ne, progress, user)))
        goto done;
    means(&j, ne, sampled, ns, &res, map_at, p_at);
    *out = res;
done:
    cmir__free(j.qbits);
    cmir__free(j.dbits);
    cmir__free(j.R);
    cmir__free(eval);
    cmir__free(sampled);
    cmir__free(perq);
    cmir__free(j.hit_rank);
    cmir__free(j.hit_psum);
    cmir_rng_free(rng);
    return rc;
}
