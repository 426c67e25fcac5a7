/* Tests of cmir_metrics_eval: hand-computed AP, AP@k, P@k, PR, NMRR (ties,
 * R_q = 0, multi-label, self-exclusion), the paper protocol, a naive
 * cross-check for 1-3 threads, bad arguments. */
#include <string.h>
#include "cmir/metrics.h"
#include "test_util.h"

#include <stdint.h>

#define TOL 1e-12

static cmir_metrics_result run(int T, const float *Q, int64_t nq, const float *D, int64_t nd,
                               int d, const cmir_metrics_labels *lab,
                               const cmir_metrics_params *p, double *map_at, double *p_at)
{
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = T;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_metrics_result r;
    memset(&r, 0xff, sizeof r);
    cmir_metrics_params pv = p ? *p : cmir_metrics_default_params();
    ASSERT_OK(cmir_metrics_eval(ex, Q, nq, D, nd, d, lab, pv, NULL, NULL, &r, map_at, p_at));
    cmir_exec_free(ex);
    return r;
}

/* Query at 0, database at 1..6 with classes A B A A B B: ranking ids
 * 0..5, rel = 1 0 1 1 0 0, R = 3, hits at ranks 1, 3, 4. */
static void test_hand_single(void)
{
    const float D[6] = {1, 2, 3, 4, 5, 6}, Q[3] = {0, 0, 0};
    const int32_t dbc[6] = {1, 2, 1, 1, 2, 2};
    const int32_t qc[3] = {1, 3, 0}; /* class 3: R_q = 0; class 0: unlabelled */
    cmir_metrics_labels lab = {qc, dbc, NULL, NULL, 0};
    cmir_metrics_params p = cmir_metrics_default_params();
    static const int cuts[5] = {1, 2, 3, 5, 10};
    p.cutoffs = cuts;
    p.n_cutoffs = 5;
    double mapk[5], pk[5];
    cmir_metrics_result r = run(1, Q, 3, D, 6, 1, &lab, &p, mapk, pk);
    ASSERT_EQ_INT(r.n_queries, 1);
    ASSERT_EQ_INT(r.n_no_relevant, 1);
    ASSERT_EQ_INT(r.n_unlabelled, 1);
    ASSERT_EQ_INT(r.gtm, 3);
    /* AP = (1/3)(1/1 + 2/3 + 3/4) = 29/36 */
    ASSERT_NEAR(r.map, 29.0 / 36.0, TOL);
    /* P@1 = 1, P@2 = 1/2, P@3 = 2/3, P@5 = 3/5, P@10 = 3/10 (6 items only) */
    ASSERT_NEAR(pk[0], 1.0, TOL);
    ASSERT_NEAR(pk[1], 0.5, TOL);
    ASSERT_NEAR(pk[2], 2.0 / 3.0, TOL);
    ASSERT_NEAR(pk[3], 3.0 / 5.0, TOL);
    ASSERT_NEAR(pk[4], 3.0 / 10.0, TOL);
    /* AP@k = (1/min(R,k)) sum_{i<=k} P(i) rel(i) */
    ASSERT_NEAR(mapk[0], 1.0, TOL);                        /* 1/1 */
    ASSERT_NEAR(mapk[1], 0.5, TOL);                        /* 1/2 */
    ASSERT_NEAR(mapk[2], (1.0 + 2.0 / 3.0) / 3.0, TOL);    /* 5/9 */
    ASSERT_NEAR(mapk[3], 29.0 / 36.0, TOL);
    ASSERT_NEAR(mapk[4], 29.0 / 36.0, TOL);
    /* PR: precisions at hits 1, 2/3, 3/4 with recall 1/3, 2/3, 1 */
    static const double pr[11] = {1, 1, 1, 1, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75};
    for (int L = 0; L < 11; L++)
        ASSERT_NEAR(r.pr[L], pr[L], TOL);
    /* NMRR: NG = 3, GTM = 3, K = min(12, 6) = 6; ranks 1, 3, 4 all <= K:
     * AVR = 8/3, MRR = 8/3 - 0.5 - 1.5 = 2/3, NMRR = (2/3) / (7.5 - 2) */
    ASSERT_NEAR(r.anmrr, (2.0 / 3.0) / 5.5, TOL);
    /* paper protocol: P@10..50 = 3/10, 3/20, 3/30, 3/40, 3/50 */
    ASSERT_EQ_INT(r.paper_n, 1);
    ASSERT_NEAR(r.paper_p_at[0], 0.3, TOL);
    ASSERT_NEAR(r.paper_p_at[4], 0.06, TOL);
    ASSERT_NEAR(r.paper_mean, (0.3 + 0.15 + 0.1 + 0.075 + 0.06) / 5, TOL);
}

/* Ties: database at -1, 1, 2, -2 (ids 0..3), query at 0: distances 1, 1,
 * 4, 4, so the ranking is 0, 1, 2, 3 (ties by smaller index). Classes
 * B A B A: rel = 0 1 0 1, AP = (1/2)(1/2 + 2/4) = 1/2. The opposite tie
 * order would give rel 1 0 1 0 and AP 5/6. */
static void test_ties_by_index(void)
{
    const float D[4] = {-1, 1, 2, -2}, Q[1] = {0};
    const int32_t dbc[4] = {2, 1, 2, 1}, qc[1] = {1};
    cmir_metrics_labels lab = {qc, dbc, NULL, NULL, 0};
    for (int T = 1; T <= 3; T++) {
        cmir_metrics_result r = run(T, Q, 1, D, 4, 1, &lab, NULL, NULL, NULL);
        ASSERT_NEAR(r.map, 0.5, TOL);
        /* NG 2, GTM 2, K = 4, ranks 2, 4: AVR 3, MRR 1.5, NMRR 1.5 / 3.5 */
        ASSERT_NEAR(r.anmrr, 1.5 / 3.5, TOL);
    }
    /* 2-D with exact distance ties: (1,0), (0,1), (-1,0), (0,-1) all at
     * distance 1; the last one alone is relevant: rank 4 */
    const float D2[8] = {1, 0, 0, 1, -1, 0, 0, -1}, Q2[2] = {0, 0};
    const int32_t dbc2[4] = {2, 2, 2, 1};
    lab.db_class = dbc2;
    cmir_metrics_result r = run(2, Q2, 1, D2, 4, 2, &lab, NULL, NULL, NULL);
    ASSERT_NEAR(r.map, 0.25, TOL);
}

/* Multi-label (70 labels, two 64-bit words): database at 1..5 with label
 * sets {0}, {65}, {1}, {0, 65}, {}; query at 0 with {65, 2}: rel = 0 1 0 1 0,
 * AP = 1/2. A second query without labels is skipped; a third with {3}
 * has R_q = 0. */
static void test_multilabel(void)
{
    enum { L = 70 };
    const float D[5] = {1, 2, 3, 4, 5}, Q[3] = {0, 0, 0};
    uint8_t dbm[5 * L] = {0}, qm[3 * L] = {0};
    dbm[0 * L + 0] = 1;
    dbm[1 * L + 65] = 1;
    dbm[2 * L + 1] = 1;
    dbm[3 * L + 0] = 1;
    dbm[3 * L + 65] = 7; /* any non-zero byte */
    qm[0 * L + 65] = 1;
    qm[0 * L + 2] = 1;
    qm[2 * L + 3] = 1;
    cmir_metrics_labels lab = {NULL, NULL, qm, dbm, L};
    cmir_metrics_result r = run(1, Q, 3, D, 5, 1, &lab, NULL, NULL, NULL);
    ASSERT_EQ_INT(r.n_queries, 1);
    ASSERT_EQ_INT(r.n_unlabelled, 1);
    ASSERT_EQ_INT(r.n_no_relevant, 1);
    ASSERT_NEAR(r.map, 0.5, TOL);
    /* hits at ranks 2, 4: P = 1/2, 1/2; recall 1/2, 1 */
    for (int l = 0; l < 11; l++)
        ASSERT_NEAR(r.pr[l], 0.5, TOL);
}

/* Same-set retrieval: items at 0, 1, 3, 6 with classes A A B A.
 *   q0: others 1 (d 1), 3 (9), 6 (36): rel 1 0 1, AP = 5/6
 *   q1: others 0 (1), 3 (4), 6 (25):  rel 1 0 1, AP = 5/6
 *   q2: class B, no other B: R_q = 0
 *   q3: others 3 (9), 1 (25), 0 (36): rel 0 1 1, AP = (1/2)(1/2 + 2/3) = 7/12
 * mAP = 3/4. Without self-exclusion every query finds itself first. */
static void test_self_exclude(void)
{
    const float X[4] = {0, 1, 3, 6};
    const int32_t c[4] = {1, 1, 2, 1};
    cmir_metrics_labels lab = {c, c, NULL, NULL, 0};
    cmir_metrics_params p = cmir_metrics_default_params();
    p.self_exclude = 1;
    cmir_metrics_result r = run(2, X, 4, X, 4, 1, &lab, &p, NULL, NULL);
    ASSERT_EQ_INT(r.n_queries, 3);
    ASSERT_EQ_INT(r.n_no_relevant, 1);
    ASSERT_EQ_INT(r.gtm, 2);
    ASSERT_NEAR(r.map, 0.75, TOL);
    p.self_exclude = 0;
    r = run(2, X, 4, X, 4, 1, &lab, &p, NULL, NULL);
    ASSERT_EQ_INT(r.n_queries, 4);
    /* q0: 0 1 3 6 -> rel 1 1 0 1: (1 + 1 + 3/4)/3 = 11/12
     * q1: 1 0 3 6 -> 1 1 0 1: 11/12;  q2 (B): 3 1 6 0 -> only itself: 1
     * q3: 6 3 1 0 -> 1 0 1 1: (1 + 2/3 + 3/4)/3 = 29/36 */
    ASSERT_NEAR(r.map, (11.0 / 12 + 11.0 / 12 + 1.0 + 29.0 / 36) / 4, TOL);
    /* self_exclude with more queries than database items */
    cmir_metrics_result rr;
    p.self_exclude = 1;
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 3, 1, &lab, p, NULL, NULL, &rr, NULL, NULL),
                  CMIR_EINVAL);
}

/* ANMRR: perfect ranking (0), worst (1), and the PR curve of a perfect
 * ranking (all 1). */
static void test_anmrr_extremes(void)
{
    /* two queries; query 0 (class 1) at 0 has its 3 relevant items nearest,
     * query 1 (class 2) at 100 has its 2 relevant items nearest */
    const float D[8] = {1, 2, 3, 50, 60, 99, 98, 70}, Q[2] = {0, 100};
    const int32_t dbc[8] = {1, 1, 1, 3, 3, 2, 2, 3}, qc[2] = {1, 2};
    cmir_metrics_labels lab = {qc, dbc, NULL, NULL, 0};
    cmir_metrics_result r = run(1, Q, 2, D, 8, 1, &lab, NULL, NULL, NULL);
    ASSERT_NEAR(r.anmrr, 0.0, TOL);
    ASSERT_NEAR(r.map, 1.0, TOL);
    for (int L = 0; L < 11; L++)
        ASSERT_NEAR(r.pr[L], 1.0, TOL);
    /* worst: one relevant item (GTM 1, K = 2) ranked last of 6 */
    const float D2[6] = {1, 2, 3, 4, 5, 6}, Q2[1] = {0};
    const int32_t dbc2[6] = {2, 2, 2, 2, 2, 1}, qc2[1] = {1};
    lab.q_class = qc2;
    lab.db_class = dbc2;
    r = run(1, Q2, 1, D2, 6, 1, &lab, NULL, NULL, NULL);
    ASSERT_NEAR(r.anmrr, 1.0, TOL);
    ASSERT_NEAR(r.map, 1.0 / 6.0, TOL);
    /* NG 2 (GTM 2, K 4), ranks 1 and 6: Rank 1 and 1.25*4 = 5, AVR 3,
     * MRR 1.5, NMRR = 1.5 / (5 - 0.5 - 1) = 3/7 */
    const int32_t dbc3[6] = {1, 2, 2, 2, 2, 1};
    lab.db_class = dbc3;
    r = run(1, Q2, 1, D2, 6, 1, &lab, NULL, NULL, NULL);
    ASSERT_NEAR(r.anmrr, 3.0 / 7.0, TOL);
}

/* The paper protocol: 60 items at 1..60, the 25 nearest relevant: P@10 =
 * P@20 = 1, P@30 = 25/30, P@40 = 25/40, P@50 = 25/50 (capped by the class
 * size 25). With two queries and a sample of one, the result is one of the
 * two, the same for the same seed. */
static void test_paper_protocol(void)
{
    float D[60], Q[2] = {0, 61};
    int32_t dbc[60], qc[2] = {1, 1};
    for (int i = 0; i < 60; i++) {
        D[i] = (float)(i + 1);
        dbc[i] = i < 25 ? 1 : 2;
    }
    cmir_metrics_labels lab = {qc, dbc, NULL, NULL, 0};
    cmir_metrics_params p = cmir_metrics_default_params();
    p.paper_queries = 0;
    cmir_metrics_result r = run(1, Q, 1, D, 60, 1, &lab, &p, NULL, NULL);
    const double a[5] = {1.0, 1.0, 25.0 / 30, 25.0 / 40, 25.0 / 50};
    for (int c = 0; c < 5; c++)
        ASSERT_NEAR(r.paper_p_at[c], a[c], TOL);
    ASSERT_NEAR(r.paper_mean, (a[0] + a[1] + a[2] + a[3] + a[4]) / 5, TOL);
    /* query 1 at 61 sees the 35 irrelevant items first: P@10..30 = 0,
     * P@40 = 5/40, P@50 = 15/50 */
    const double b[5] = {0, 0, 0, 5.0 / 40, 15.0 / 50};
    int seen[2] = {0, 0};
    for (uint64_t seed = 1; seed <= 12; seed++) {
        p.paper_queries = 1;
        p.seed = seed;
        r = run(2, Q, 2, D, 60, 1, &lab, &p, NULL, NULL);
        ASSERT_EQ_INT(r.paper_n, 1);
        int isa = fabs(r.paper_p_at[0] - 1.0) < TOL;
        const double *e = isa ? a : b;
        for (int c = 0; c < 5; c++)
            ASSERT_NEAR(r.paper_p_at[c], e[c], TOL);
        seen[isa]++;
        cmir_metrics_result r2 = run(1, Q, 2, D, 60, 1, &lab, &p, NULL, NULL);
        ASSERT_TRUE(memcmp(r2.paper_p_at, r.paper_p_at, sizeof r.paper_p_at) == 0);
    }
    ASSERT_TRUE(seen[0] > 0 && seen[1] > 0); /* both get drawn over 12 seeds */
    p.paper_queries = 5; /* more than there are: all */
    r = run(1, Q, 2, D, 60, 1, &lab, &p, NULL, NULL);
    ASSERT_EQ_INT(r.paper_n, 2);
    ASSERT_NEAR(r.paper_p_at[4], (0.5 + 0.3) / 2, TOL);
}

/* ---- random cross-check against a naive implementation ---- */

typedef struct nh {
    double d;
    int64_t id;
} nh;

static int nh_cmp(const void *a, const void *b)
{
    const nh *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void naive(const float *Q, int64_t nq, const float *D, int64_t nd, int d,
                  const int32_t *qc, const int32_t *dc, int self, const int *cuts, int nc,
                  double *map, double *anmrr, double *pr, double *mapk, double *pk)
{
    nh *h = malloc(sizeof(nh) * nd);
    int64_t gtm = 0, ne = 0;
    for (int64_t q = 0; q < nq; q++) {
        int64_t R = 0;
        for (int64_t x = 0; x < nd; x++)
            R += qc[q] > 0 && dc[x] == qc[q] && !(self && x == q);
        gtm = R > gtm ? R : gtm;
    }
    *map = *anmrr = 0;
    for (int l = 0; l < 11; l++)
        pr[l] = 0;
    for (int c = 0; c < nc; c++)
        mapk[c] = pk[c] = 0;
    for (int64_t q = 0; q < nq; q++) {
        int64_t n = 0, R = 0;
        for (int64_t x = 0; x < nd; x++) {
            if (self && x == q)
                continue;
            double s = 0;
            for (int j = 0; j < d; j++) {
                double t = (double)Q[q * d + j] - (double)D[x * d + j];
                s += t * t;
            }
            h[n].d = s;
            h[n].id = x;
            n++;
            R += qc[q] > 0 && dc[x] == qc[q];
        }
        if (qc[q] <= 0 || R == 0)
            continue;
        ne++;
        qsort(h, (size_t)n, sizeof *h, nh_cmp);
        double ap = 0, K = (double)(4 * R < 2 * gtm ? 4 * R : 2 * gtm), rs = 0, prec[11] = {0};
        int64_t hits = 0;
        for (int64_t i = 0; i < n; i++) {
            int rel = dc[h[i].id] == qc[q];
            hits += rel;
            double P = (double)hits / (double)(i + 1);
            if (rel) {
                ap += P;
                rs += (double)(i + 1) <= K ? (double)(i + 1) : 1.25 * K;
                for (int l = 0; l < 11; l++)
                    if (10 * hits >= l * R && P > prec[l])
                        prec[l] = P;
            }
            for (int c = 0; c < nc; c++)
                if (i + 1 == cuts[c])
                    pk[c] += (double)hits / cuts[c];
        }
        for (int c = 0; c < nc; c++) {
            if (cuts[c] > n)
                pk[c] += (double)hits / cuts[c];
            double s = 0;
            int64_t hh = 0;
            for (int64_t i = 0; i < n && i < cuts[c]; i++)
                if (dc[h[i].id] == qc[q]) {
                    hh++;
                    s += (double)hh / (double)(i + 1);
                }
            mapk[c] += s / (double)(R < cuts[c] ? R : cuts[c]);
        }
        *map += ap / R;
        *anmrr += (rs / R - 0.5 - 0.5 * R) / (1.25 * K - 0.5 - 0.5 * R);
        for (int l = 0; l < 11; l++)
            pr[l] += prec[l];
    }
    *map /= ne;
    *anmrr /= ne;
    for (int l = 0; l < 11; l++)
        pr[l] /= ne;
    for (int c = 0; c < nc; c++) {
        mapk[c] /= ne;
        pk[c] /= ne;
    }
    free(h);
}

static void test_random_vs_naive(void)
{
    cmir_rng *rng = cmir_rng_new(77);
    const int64_t nd = 700, nq = 90;
    const int d = 6;
    float *D = malloc(sizeof(float) * nd * d), *Q = malloc(sizeof(float) * nq * d);
    int32_t *dc = malloc(sizeof(int32_t) * nd), *qc = malloc(sizeof(int32_t) * nq);
    for (int64_t i = 0; i < nd * d; i++) /* coarse grid: many exact ties */
        D[i] = (float)(int)cmir_rng_below(rng, 4);
    for (int64_t i = 0; i < nd; i++)
        dc[i] = (int32_t)cmir_rng_below(rng, 6); /* 0 = unlabelled */
    for (int64_t i = 0; i < nq; i++) {
        int64_t src = (int64_t)cmir_rng_below(rng, (uint64_t)nd);
        memcpy(Q + i * d, D + src * d, sizeof(float) * d);
        qc[i] = (int32_t)cmir_rng_below(rng, 7); /* 6: never in the database */
    }
    static const int cuts[4] = {1, 7, 50, 1000};
    cmir_metrics_labels lab = {qc, dc, NULL, NULL, 0};
    cmir_metrics_params p = cmir_metrics_default_params();
    p.cutoffs = cuts;
    p.n_cutoffs = 4;
    for (int self = 0; self <= 1; self++) {
        double map, anmrr, pr[11], mapk[4], pk[4];
        /* self-exclusion: Q is the first nq items of D */
        const float *Qs = self ? D : Q;
        const int32_t *qcs = self ? dc : qc;
        naive(Qs, nq, D, nd, d, qcs, dc, self, cuts, 4, &map, &anmrr, pr, mapk, pk);
        lab.q_class = qcs;
        p.self_exclude = self;
        cmir_metrics_result ref;
        double rk[4], rp[4];
        for (int T = 1; T <= 3; T++) {
            double gk[4], gp[4];
            cmir_metrics_result r = run(T, Qs, nq, D, nd, d, &lab, &p, gk, gp);
            ASSERT_NEAR(r.map, map, 1e-12);
            ASSERT_NEAR(r.anmrr, anmrr, 1e-12);
            for (int l = 0; l < 11; l++)
                ASSERT_NEAR(r.pr[l], pr[l], 1e-12);
            for (int c = 0; c < 4; c++) {
                ASSERT_NEAR(gk[c], mapk[c], 1e-12);
                ASSERT_NEAR(gp[c], pk[c], 1e-12);
            }
            if (T == 1) {
                ref = r;
                memcpy(rk, gk, sizeof rk);
                memcpy(rp, gp, sizeof rp);
            } else { /* bitwise identical across thread counts */
                ASSERT_TRUE(memcmp(&ref, &r, sizeof r) == 0);
                ASSERT_TRUE(memcmp(rk, gk, sizeof rk) == 0 && memcmp(rp, gp, sizeof rp) == 0);
            }
        }
        printf("  self_exclude=%d: %lld queries, mAP %.4f, ANMRR %.4f, P@7 %.4f\n", self,
               (long long)ref.n_queries, ref.map, ref.anmrr, rp[1]);
    }
    free(D);
    free(Q);
    free(dc);
    free(qc);
    cmir_rng_free(rng);
}

static void test_edge_and_bad(void)
{
    const float X[4] = {0, 1, 2, 3};
    const int32_t c[4] = {1, 1, 2, 2}, neg[4] = {1, -1, 1, 1};
    const uint8_t m[4] = {1, 0, 1, 1};
    cmir_metrics_result r;
    cmir_metrics_labels lab = {c, c, NULL, NULL, 0};
    /* nothing to evaluate: NaN means, counts set */
    ASSERT_OK(cmir_metrics_eval(NULL, X, 4, X, 0, 1, &lab, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL));
    ASSERT_EQ_INT(r.n_queries, 0);
    ASSERT_EQ_INT(r.n_no_relevant, 4);
    ASSERT_TRUE(isnan(r.map) && isnan(r.anmrr) && isnan(r.pr[0]));
    ASSERT_OK(cmir_metrics_eval(NULL, X, 0, X, 4, 1, &lab, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL));
    ASSERT_EQ_INT(r.n_queries, 0);
    /* bad arguments */
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 0, &lab, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, NULL, 4, X, 4, 1, &lab, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, NULL, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &lab, cmir_metrics_default_params(), NULL, NULL, NULL, NULL, NULL),
                  CMIR_EINVAL);
    cmir_metrics_labels both = {c, c, m, m, 1};
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &both, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
    cmir_metrics_labels none = {NULL, NULL, NULL, NULL, 0};
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &none, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
    cmir_metrics_labels bad = {c, neg, NULL, NULL, 0};
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &bad, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
    cmir_metrics_labels ml0 = {NULL, NULL, m, m, 0};
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &ml0, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
    cmir_metrics_params p = cmir_metrics_default_params();
    static const int zero[1] = {0};
    p.cutoffs = zero;
    p.n_cutoffs = 1;
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &lab, p, NULL, NULL, &r, NULL, NULL), CMIR_EINVAL);
    p = cmir_metrics_default_params();
    p.paper_queries = -1;
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &lab, p, NULL, NULL, &r, NULL, NULL), CMIR_EINVAL);
    const float nanq[4] = {0, NAN, 2, 3};
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, nanq, 4, X, 4, 1, &lab, cmir_metrics_default_params(), NULL, NULL, &r, NULL, NULL),
                  CMIR_EINVAL);
}

static int cancel_cb(double frac, const char *msg, void *user)
{
    (void)frac;
    (void)msg;
    ++*(int *)user;
    return 1;
}

static void test_cancel(void)
{
    const float X[4] = {0, 1, 2, 3};
    const int32_t c[4] = {1, 1, 2, 2};
    cmir_metrics_labels lab = {c, c, NULL, NULL, 0};
    cmir_metrics_params p = cmir_metrics_default_params();
    int calls = 0;
    cmir_metrics_result r;
    ASSERT_EQ_INT(cmir_metrics_eval(NULL, X, 4, X, 4, 1, &lab, p, cancel_cb, &calls, &r, NULL, NULL),
                  CMIR_ECANCEL);
    ASSERT_EQ_INT(calls, 1);
}


/* Failing the n-th allocation: CMIR_ENOMEM until it succeeds, then the
 * same result as without the hook (multi-label, so every buffer is used). */
typedef struct metrics_case {
    const float *Q, *D;
    const cmir_metrics_labels *lab;
    const cmir_metrics_params *p;
    cmir_metrics_result *r;
} metrics_case;

static int metrics_once(void *u)
{
    const metrics_case *c = u;
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    cmir_exec *ex = cmir_exec_new(ep);
    int rc = ex ? cmir_metrics_eval(ex, c->Q, 2, c->D, 5, 1, c->lab, *c->p, NULL, NULL, c->r, NULL, NULL)
                : cmir_last_error_code();
    cmir_exec_free(ex);
    return rc;
}

static void test_alloc_failures(void)
{
    enum { L = 3 };
    const float D[5] = {1, 2, 3, 4, 5}, Q[2] = {0, 2.5f};
    uint8_t dbm[5 * L] = {1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0};
    uint8_t qm[2 * L] = {1, 0, 0, 0, 1, 0};
    cmir_metrics_labels lab = {NULL, NULL, qm, dbm, L};
    cmir_metrics_params p = cmir_metrics_default_params();
    p.paper_queries = 1;
    cmir_metrics_result ref, r;
    ASSERT_OK(cmir_metrics_eval(NULL, Q, 2, D, 5, 1, &lab, p, NULL, NULL, &ref, NULL, NULL));
    metrics_case c = {Q, D, &lab, &p, &r};
    ASSERT_TRUE(t_sweep("cmir_metrics_eval", metrics_once, &c, 1, 60) > 5);
    ASSERT_TRUE(memcmp(&r, &ref, sizeof r) == 0);
}

static void test_check_params(void)
{
    cmir_metrics_params p = cmir_metrics_default_params();
    ASSERT_OK(cmir_metrics_check_params(p));
    p.n_cutoffs = -1;
    REFUSES(cmir_metrics_check_params(p), "cmir_metrics_params.n_cutoffs");
    p = cmir_metrics_default_params();
    p.cutoffs = NULL;
    REFUSES(cmir_metrics_check_params(p), "cmir_metrics_params.cutoffs");
    p = cmir_metrics_default_params();
    const int bad[2] = {5, 0};
    p.cutoffs = bad;
    p.n_cutoffs = 2;
    REFUSES(cmir_metrics_check_params(p), "cmir_metrics_params.cutoffs[1]: must be >= 1, got 0");
    p = cmir_metrics_default_params();
    p.paper_queries = -2;
    REFUSES(cmir_metrics_check_params(p), "cmir_metrics_params.paper_queries");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    RUN(test_hand_single);
    RUN(test_ties_by_index);
    RUN(test_multilabel);
    RUN(test_self_exclude);
    RUN(test_anmrr_extremes);
    RUN(test_paper_protocol);
    RUN(test_random_vs_naive);
    RUN(test_edge_and_bad);
    RUN(test_cancel);
    RUN(test_alloc_failures);
    RUN(test_check_params);
    TEST_MAIN_END();
}
