/* Tests of the int8 scan with exact answers (cmir_knn_q8): the scan kernels'
 * integer dot products against naive loops, the distance bound checked in
 * double on every pair, and hits identical to a double brute force and to
 * cmir_knn on adversarial data, with both kernels and 1-3 threads. */
#include <math.h>
#include <string.h>
#include "cmir/knn.h"
#include "knn/knn_q8.h" /* the kernels and the query state, for the kernel tests */
#include "test_util.h"

#include <stdint.h>

static cmir_rng *rng;

typedef struct ref_hit {
    double d;
    int64_t id;
} ref_hit;

static int ref_cmp(const void *a, const void *b)
{
    const ref_hit *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* D of the header: in-order double sum, no contraction. */
static double ref_d(const float *a, const float *b, int d)
{
    volatile double s = 0.0;
    for (int j = 0; j < d; j++) {
        volatile double t = (double)a[j] - (double)b[j];
        volatile double t2 = t * t;
        s = s + t2;
    }
    return s;
}

static void brute(const float *db, int64_t n, const float *q, int64_t m, int d, int k,
                  const cmir_knn_params *p, int64_t *ids, float *dist)
{
    ref_hit *h = malloc(sizeof(ref_hit) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < m; i++) {
        int64_t c = 0;
        for (int64_t x = 0; x < n; x++) {
            if (p->mask && (p->mask_value < 0 ? !p->mask[x] : p->mask[x] != p->mask_value))
                continue;
            double s = ref_d(q + i * d, db + x * d, d);
            if (p->max_dist != INFINITY && (p->squared ? s : sqrt(s)) > (double)p->max_dist)
                continue;
            h[c].d = s;
            h[c].id = x;
            c++;
        }
        qsort(h, (size_t)c, sizeof *h, ref_cmp);
        for (int r = 0; r < k; r++) {
            ids[i * k + r] = r < c ? h[r].id : -1;
            dist[i * k + r] = r < c ? (float)(p->squared ? h[r].d : sqrt(h[r].d)) : INFINITY;
        }
    }
    free(h);
}

static float *randn(size_t n, float scale, float offset)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = offset + scale * cmir_rng_normal(rng);
    return v;
}

/* How check_case makes its database: cmir_knn_q8_new, or (test_records) a
 * round trip through stored records. */
static int (*q8_make)(const float *db, int64_t n, int d, cmir_knn_q8 **out) = cmir_knn_q8_new;

/* Both kernels (the portable one forced through CMIR_KNN_NO_VNNI), 1..3
 * threads: ids and dist bit-identical to brute() and to cmir_knn. */
static void check_case(const char *what, const float *db, int64_t n, const float *q, int64_t m,
                       int d, int k, const cmir_knn_params *pp)
{
    cmir_knn_params p = pp ? *pp : cmir_knn_default_params();
    size_t sz = (size_t)m * k;
    int64_t *ri = malloc(sizeof(int64_t) * sz), *gi = malloc(sizeof(int64_t) * sz);
    int64_t *fi = malloc(sizeof(int64_t) * sz);
    float *rd = malloc(sizeof(float) * sz), *gd = malloc(sizeof(float) * sz);
    float *fd = malloc(sizeof(float) * sz);
    brute(db, n, q, m, d, k, &p, ri, rd);
    ASSERT_OK(cmir_knn(NULL, db, n, q, m, d, k, p, fi, fd));
    ASSERT_TRUE(memcmp(fi, ri, sizeof(int64_t) * sz) == 0);
    cmir_knn_q8 *qx = NULL;
    ASSERT_OK(q8_make(db, n, d, &qx));
    int bad = 0;
    for (int kern = 0; kern < 2 && qx; kern++) {
        if (kern == 0 && !cmir_knn_q8_vnni())
            continue;
        if (kern == 1)
            setenv("CMIR_KNN_NO_VNNI", "1", 1);
        for (int T = 1; T <= 3; T++) {
            cmir_exec_params ep = cmir_exec_default_params();
            ep.threads = T;
            cmir_exec *ex = cmir_exec_new(ep);
            memset(gi, 0x55, sizeof(int64_t) * sz);
            ASSERT_OK(cmir_knn_q8_search(ex, qx, db, n, q, m, d, k, p, gi, gd));
            for (int64_t i = 0; i < m; i++)
                if (memcmp(gi + i * k, ri + i * k, sizeof(int64_t) * k) ||
                    memcmp(gd + i * k, rd + i * k, sizeof(float) * k)) {
                    if (bad++ < 2)
                        for (int r = 0; r < k && r < 12; r++)
                            fprintf(stderr, "  %s kern=%d T=%d q%lld r%d got %lld %.9g want %lld %.9g\n",
                                    what, kern, T, (long long)i, r, (long long)gi[i * k + r],
                                    gd[i * k + r], (long long)ri[i * k + r], rd[i * k + r]);
                }
            cmir_exec_free(ex);
        }
        unsetenv("CMIR_KNN_NO_VNNI");
    }
    ASSERT_EQ_INT(bad, 0);
    printf("  %-48s n=%-6lld m=%-4lld d=%-3d k=%-4d %s\n", what, (long long)n, (long long)m, d, k,
           bad ? "MISMATCH" : "identical");
    cmir_knn_q8_free(qx);
    free(ri);
    free(gi);
    free(fi);
    free(rd);
    free(gd);
    free(fd);
}

/* ---- the codes and the bound ---- */

/* Row x's codes decoded from the block layout. */
static void row_codes(const cmir_knn_q8 *qx, int64_t x, int *c)
{
    const uint8_t *blk = qx->codes + (size_t)(x / Q8_ROWS) * qx->G * 64 + (size_t)(x % Q8_ROWS) * 4;
    for (int j = 0; j < qx->d; j++)
        c[j] = (int)blk[(size_t)(j / 4) * 64 + j % 4] - 128;
}

/* Data that stresses the quantiser: Gaussian rows, rows with one huge
 * coordinate, rows with coordinates spanning 2^-20..2^20, zero rows, and
 * rows equal to others except below the quantisation step. */
static float *hard_rows(int64_t n, int d)
{
    float *x = randn((size_t)n * d, 1.0f, 0.0f);
    for (int64_t i = 0; i < n; i++) {
        float *r = x + i * d;
        switch (i % 6) {
        case 1: r[cmir_rng_below(rng, (uint32_t)d)] *= 1e4f; break;
        case 2:
            for (int j = 0; j < d; j++)
                r[j] = ldexpf(r[j], (int)cmir_rng_below(rng, 41) - 20);
            break;
        case 3: memset(r, 0, sizeof(float) * d); break;
        case 4:
            if (i >= 6) {
                memcpy(r, r - 6 * d, sizeof(float) * d);
                r[cmir_rng_below(rng, (uint32_t)d)] += 1e-4f;
            }
            break;
        default: break;
        }
    }
    return x;
}

/* For every pair: rx bounds ||x - s xq||, rq bounds ||q - sq qq||, and the
 * true distance (in long double from the floats) lies within rq + rx of
 * ||q' - x'|| (exact integers times scales). */
static void test_bound(void)
{
    static const int ds[4] = {1, 5, 64, 67};
    for (int di = 0; di < 4; di++) {
        int d = ds[di];
        int64_t n = 240, m = 40;
        float *db = hard_rows(n, d), *q = hard_rows(m, d);
        cmir_knn_q8 *qx = NULL;
        REQUIRE(cmir_knn_q8_new(db, n, d, &qx) == 0);
        ASSERT_EQ_INT((int)cmir_knn_q8_bytes_per_row(qx), 4 * ((d + 3) / 4) + 16);
        q8job j;
        memset(&j, 0, sizeof j);
        j.qx = qx;
        j.kj.d = d;
        j.kj.theta0 = INFINITY;
        int *xc = malloc(sizeof(int) * d);
        int8_t *qc = malloc((size_t)qx->G * 4);
        int viol = 0;
        for (int64_t x = 0; x < n; x++) {
            row_codes(qx, x, xc);
            long double s = -0.5L * qx->cx[x], e2 = 0, S = 0;
            for (int c = 0; c < d; c++) {
                long double e = (long double)db[x * d + c] - s * xc[c];
                e2 += e * e;
                S += (long double)xc[c] * xc[c];
                viol += xc[c] < -127 || xc[c] > 127;
            }
            viol += (long double)qx->rx[x] < sqrtl(e2);
            viol += S != (long double)qx->S[x];
        }
        for (int64_t i = 0; i < m; i++) {
            q8q st;
            REQUIRE(cmir__q8_prep_query(&j, q + i * d, qc, &st) == 0);
            for (int64_t x = 0; x < n; x++) {
                row_codes(qx, x, xc);
                long double I = 0, s = -0.5L * qx->cx[x], T = 0, Q = 0;
                for (int c = 0; c < d; c++) {
                    I += (long double)xc[c] * qc[c];
                    Q += (long double)qc[c] * qc[c];
                    long double t = (long double)q[i * d + c] - (long double)db[x * d + c];
                    T += t * t;
                }
                long double xn = s * s * qx->S[x];
                long double A = (long double)st.sq * st.sq * Q + xn - 2.0L * st.sq * s * I;
                long double a = sqrtl(A > 0 ? A : 0), r = st.rq + (long double)qx->rx[x];
                if (fabsl(sqrtl(T) - a) > r * (1 + 1e-12L) + 1e-30L) {
                    if (viol++ < 3)
                        fprintf(stderr, "  d=%d q%lld x%lld: |%.17Lg - %.17Lg| > %.17Lg\n", d,
                                (long long)i, (long long)x, sqrtl(T), a, r);
                }
            }
        }
        ASSERT_EQ_INT(viol, 0);
        printf("  d=%-3d bound checked on %lld pairs (%d violations), %d bytes per row\n", d,
               (long long)(n * m), viol,
               (int)cmir_knn_q8_bytes_per_row(qx));
        free(xc);
        free(qc);
        cmir_knn_q8_free(qx);
        free(db);
        free(q);
    }
}

/* The kernels: with W = +inf every row is a candidate and its lower bound
 * lo = sqrt(A - e) (1 - 1e-15) is a function of the integer dot product,
 * so it must equal the one computed from a naive loop over the codes. With
 * W from a row's true distance (W - rq >= ||q - x||) the row must be kept;
 * with W far below it, skipped. Both kernels. */
static void run_tile(q8job *j, int kern, const float *q, int d, const double *W, int64_t n,
                     uint8_t *kept, double *lo)
{
    const cmir_knn_q8 *qx = j->qx;
    q8view v;
    memset(&v, 0, sizeof v);
    v.j = j;
    v.nq = Q8_QT;
    v.qc = calloc((size_t)Q8_QT * qx->G * 4, 1);
    v.st = calloc(Q8_QT, sizeof(q8q));
    v.W = calloc(Q8_QT, sizeof(float));
    v.uheap = calloc((size_t)Q8_QT * j->kj.k, sizeof(double));
    v.buf = calloc((size_t)Q8_QT * j->cap, sizeof(knn_hit));
    j->kj.q = q;
    for (int i = 0; i < Q8_QT; i++) {
        cmir__q8_prep_query(j, q + (size_t)i * d, v.qc + (size_t)i * qx->G * 4, &v.st[i]);
        v.W[i] = W[i] == INFINITY ? INFINITY : (float)W[i];
    }
    if (kern)
        cmir__q8_scan_vnni(&v, 0, 0, qx->nblk);
    else
        cmir__q8_scan_c(&v, 0, 0, qx->nblk);
    memset(kept, 0, (size_t)Q8_QT * n);
    for (int i = 0; i < Q8_QT; i++)
        for (int c = 0; c < v.st[i].nbuf; c++) {
            knn_hit h = v.buf[(size_t)i * j->cap + c];
            kept[(size_t)i * n + h.id] = 1;
            lo[(size_t)i * n + h.id] = h.d;
        }
    free(v.qc);
    free(v.st);
    free(v.W);
    free(v.uheap);
    free(v.buf);
}

static void test_kernels(void)
{
    static const int ds[3] = {3, 64, 70};
    for (int di = 0; di < 3; di++) {
        int d = ds[di];
        int64_t n = 203; /* not a multiple of 16 */
        float *db = hard_rows(n, d), *q = randn((size_t)Q8_QT * d, 1.0f, 0.0f);
        cmir_knn_q8 *qx = NULL;
        REQUIRE(cmir_knn_q8_new(db, n, d, &qx) == 0);
        q8job j;
        memset(&j, 0, sizeof j);
        j.qx = qx;
        j.kj.db = db;
        j.kj.n = n;
        j.kj.d = d;
        j.kj.k = (int)n + 1; /* the upper-bound heap never fills: W stays */
        j.kj.theta0 = INFINITY;
        j.cap = (int)n + 1;
        uint8_t *kept = malloc((size_t)Q8_QT * n);
        double *lo = malloc(sizeof(double) * Q8_QT * n), W[Q8_QT];
        int *xc = malloc(sizeof(int) * d);
        int8_t *qc = malloc((size_t)qx->G * 4);
        for (int kern = 0; kern < 2; kern++) {
            if (kern && !cmir_knn_q8_vnni())
                continue;
            for (int i = 0; i < Q8_QT; i++)
                W[i] = INFINITY;
            run_tile(&j, kern, q, d, W, n, kept, lo);
            int bad = 0;
            for (int i = 0; i < Q8_QT; i++) {
                q8q st;
                cmir__q8_prep_query(&j, q + i * d, qc, &st);
                for (int64_t x = 0; x < n; x++) {
                    row_codes(qx, x, xc);
                    int64_t I = 0;
                    for (int c = 0; c < d; c++)
                        I += (int64_t)xc[c] * qc[c];
                    double sx = -0.5 * (double)qx->cx[x], xn = sx * sx * (double)qx->S[x];
                    double A = st.qn + xn - 2.0 * ((double)st.sq * sx) * (double)I;
                    double e = 1e-14 * (st.qn + xn);
                    double want = sqrt(A - e > 0.0 ? A - e : 0.0) * (1.0 - 1e-15);
                    bad += !kept[(size_t)i * n + x] || lo[(size_t)i * n + x] != want;
                }
            }
            ASSERT_EQ_INT(bad, 0);
            /* W from row 7 i of each query (W / (1 + K) - rq >= its true
             * distance): that row must stay */
            int lost = 0, skipped = 0, far_kept = 0;
            for (int i = 0; i < Q8_QT; i++) {
                q8q st;
                cmir__q8_prep_query(&j, q + i * d, qc, &st);
                double t = sqrt(ref_d(q + i * d, db + (size_t)(7 * i) * d, d)) * (1 + 1e-12);
                W[i] = (double)nextafterf((float)((t + st.rq) * (1.0 + Q8_KAPPA) * (1 + 1e-6)), INFINITY);
            }
            run_tile(&j, kern, q, d, W, n, kept, lo);
            for (int i = 0; i < Q8_QT; i++) {
                lost += !kept[(size_t)i * n + 7 * i];
                for (int64_t x = 0; x < n; x++) { /* rows far beyond W + bounds: skipped */
                    q8q st;
                    cmir__q8_prep_query(&j, q + i * d, qc, &st);
                    double t = sqrt(ref_d(q + i * d, db + x * d, d));
                    if (t > 1.01 * (W[i] + 2 * st.rq + 2 * qx->rx[x]) + 1e-6)
                        skipped += !kept[(size_t)i * n + x], far_kept += kept[(size_t)i * n + x];
                }
            }
            ASSERT_EQ_INT(lost, 0);
            ASSERT_EQ_INT(far_kept, 0);
            ASSERT_TRUE(skipped > 0);
            printf("  %s kernel d=%-3d: dot products equal the naive loop; %d far rows skipped\n",
                   kern ? "VNNI    " : "portable", d, skipped);
        }
        free(kept);
        free(lo);
        free(xc);
        free(qc);
        cmir_knn_q8_free(qx);
        free(db);
        free(q);
    }
}

/* ---- searches ---- */

static void test_random(void)
{
    float *db = randn((size_t)5000 * 64, 1.0f, 0.0f), *q = randn((size_t)50 * 64, 1.0f, 0.0f);
    check_case("gaussian", db, 5000, q, 50, 64, 10, NULL);
    check_case("gaussian, k = 1", db, 5000, q, 50, 64, 1, NULL);
    check_case("gaussian, d = 13", db, 5000, q, 50, 13, 10, NULL);
    /* queries that are rows: distance 0 ties with nothing else */
    check_case("queries are database rows", db, 5000, db + 64 * 100, 20, 64, 10, NULL);
    free(db);
    free(q);
}

static void test_adversarial(void)
{
    int64_t n = 3000, m = 40;
    int d = 16;
    /* exact ties: a grid with duplicated rows */
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * m * d);
    for (int64_t i = 0; i < n; i++) {
        int64_t src = i < 300 ? i : (int64_t)cmir_rng_below(rng, 300);
        for (int j = 0; j < d; j++)
            db[i * d + j] = i < 300 ? (float)((int)cmir_rng_below(rng, 3) - 1) : db[src * d + j];
    }
    for (int64_t i = 0; i < m * d; i++)
        q[i] = (float)((int)cmir_rng_below(rng, 3) - 1);
    check_case("grid {-1,0,1}^16, duplicated rows (ties)", db, n, q, m, d, 12, NULL);
    check_case("same, k = 740 (k near n/4)", db, n, q, 5, d, 740, NULL);
    check_case("same, k = n (full rankings)", db, 600, q, 5, d, 600, NULL);
    /* near-duplicates differing only below the quantisation step */
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            db[i * d + j] = (float)(j % 5) + (float)(int)cmir_rng_below(rng, 4) * 1e-5f;
    for (int64_t i = 0; i < m * d; i++)
        q[i] = (float)((i % d) % 5) + cmir_rng_uniform(rng) * 4e-5f;
    check_case("rows equal below the quantisation step", db, n, q, m, d, 10, NULL);
    /* ulp-spaced rows around a large offset */
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            float v = 1000.0f + (float)j;
            for (int s = (int)cmir_rng_below(rng, 4); s > 0; s--)
                v = nextafterf(v, INFINITY);
            db[i * d + j] = v;
        }
    check_case("ulp-spaced rows around 1000", db, n, db + 5 * d, m, d, 10, NULL);
    /* every row identical */
    for (int64_t i = 0; i < n * d; i++)
        db[i] = 0.5f;
    check_case("all rows identical", db, n, q, m, d, 10, NULL);
    free(db);
    free(q);
    /* large dynamic range and the other hard rows, and tiny rows (scale below
     * 2^-60: never skipped) */
    float *h = hard_rows(4000, 32), *hq = hard_rows(30, 32);
    check_case("hard rows (huge, 2^+-20, zero, near-dup)", h, 4000, hq, 30, 32, 10, NULL);
    for (int64_t i = 0; i < 4000 * 32; i += 97)
        h[i] = ldexpf(h[i], -80);
    for (int64_t i = 0; i < 4000; i += 3)
        for (int j = 0; j < 32; j++)
            h[i * 32 + j] = ldexpf(cmir_rng_normal(rng), -70);
    check_case("with rows of size 2^-70", h, 4000, hq, 30, 32, 10, NULL);
    free(h);
    free(hq);
}

static void test_filters(void)
{
    int64_t n = 4000, m = 30;
    int d = 24;
    float *db = randn((size_t)n * d, 1.0f, 0.0f), *q = randn((size_t)m * d, 1.0f, 0.0f);
    uint8_t *mask = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        mask[i] = (uint8_t)(cmir_rng_below(rng, 3) != 0);
    cmir_knn_params p = cmir_knn_default_params();
    p.mask = mask;
    check_case("mask", db, n, q, m, d, 10, &p);
    p.squared = 0;
    p.max_dist = 5.0f;
    check_case("mask, max_dist 5 (euclidean)", db, n, q, m, d, 10, &p);
    p = cmir_knn_default_params();
    for (int64_t i = 0; i < n; i++) /* labels 0..2 as the mask, one value kept */
        mask[i] = (uint8_t)cmir_rng_below(rng, 3);
    p.mask = mask;
    p.mask_value = 0;
    check_case("mask_value 0", db, n, q, m, d, 10, &p);
    p.mask_value = 2;
    check_case("mask_value 2", db, n, q, m, d, 10, &p);
    p.mask = NULL;
    p.mask_value = -1;
    p.squared = 1;
    p.max_dist = 20.0f;
    check_case("max_dist 20 (squared)", db, n, q, m, d, 50, &p);
    free(db);
    free(q);
    free(mask);
}

static void test_bad_args(void)
{
    float db[32], q[8];
    for (int i = 0; i < 32; i++)
        db[i] = (float)i;
    int64_t ids[4];
    cmir_knn_q8 *qx = NULL;
    REFUSES(cmir_knn_q8_new(db, 8, 0, &qx), "cmir_knn_q8_new: bad shape");
    REFUSES(cmir_knn_q8_new(db, 8, 5000, &qx), "d must be 1..4096");
    db[5] = NAN;
    REFUSES(cmir_knn_q8_new(db, 8, 4, &qx), "row 1 has a NaN");
    db[5] = 5.0f;
    REQUIRE(cmir_knn_q8_new(db, 8, 4, &qx) == 0);
    memcpy(q, db, sizeof q);
    REFUSES(cmir_knn_q8_search(NULL, qx, db, 7, q, 1, 4, 1, cmir_knn_default_params(), ids, NULL),
            "quantised database is 8 x 4, db is 7 x 4");
    REFUSES(cmir_knn_q8_search(NULL, NULL, db, 8, q, 1, 4, 1, cmir_knn_default_params(), ids, NULL),
            "NULL quantised database");
    q[0] = INFINITY;
    REFUSES(cmir_knn_q8_search(NULL, qx, db, 8, q, 1, 4, 1, cmir_knn_default_params(), ids, NULL),
            "query 0 has a NaN or infinite value");
    cmir_knn_q8_free(qx);
    cmir_knn_q8_free(NULL);
}

/* ---- stored records ---- */

/* The codes of db quantised in uneven ranges into a blank database,
 * written as records, read back into another blank one in other ranges:
 * what an index stores and loads. */
static int q8_round_trip(const float *db, int64_t n, int d, cmir_knn_q8 **out)
{
    cmir_knn_q8 *a = NULL, *b = NULL;
    size_t rb = cmir_knn_q8_record_bytes(d);
    unsigned char *rec = malloc(rb * (size_t)(n ? n : 1));
    int64_t cut = n / 3 + 1 < n ? n / 3 + 1 : n, cut2 = n - 37 > 0 ? n - 37 : 0;
    int rc = cmir_knn_q8_new_blank(n, d, &a);
    if (!rc)
        rc = cmir_knn_q8_set_rows(a, 0, cut, db);
    if (!rc)
        rc = cmir_knn_q8_set_rows(a, cut, n - cut, db + (size_t)cut * d);
    if (!rc)
        rc = cmir_knn_q8_get_rows(a, 0, n, rec);
    if (!rc)
        rc = cmir_knn_q8_new_blank(n, d, &b);
    if (!rc)
        rc = cmir_knn_q8_put_rows(b, cut2, n - cut2, rec + rb * (size_t)cut2);
    if (!rc)
        rc = cmir_knn_q8_put_rows(b, 0, cut2, rec);
    cmir_knn_q8_free(a);
    free(rec);
    if (rc)
        cmir_knn_q8_free(b);
    *out = rc ? NULL : b;
    return rc;
}

/* Records: byte for byte those of cmir_knn_q8_new after a round trip (the
 * block layout too), hits identical on ties and hard rows, rows never set
 * still exact, damaged records refused naming the row. */
static void test_records(void)
{
    int64_t n = 1003;
    int d = 13;
    float *db = hard_rows(n, d), *q = hard_rows(25, d);
    cmir_knn_q8 *ref = NULL, *rt = NULL;
    REQUIRE(cmir_knn_q8_new(db, n, d, &ref) == 0);
    REQUIRE(q8_round_trip(db, n, d, &rt) == 0);
    size_t rb = cmir_knn_q8_record_bytes(d);
    ASSERT_EQ_INT(rb, d + 16);
    unsigned char *r1 = malloc(rb * n), *r2 = malloc(rb * n);
    ASSERT_OK(cmir_knn_q8_get_rows(ref, 0, n, r1));
    ASSERT_OK(cmir_knn_q8_get_rows(rt, 0, n, r2));
    ASSERT_EQ_INT(memcmp(r1, r2, rb * n), 0);
    size_t rows = (size_t)ref->nblk * Q8_ROWS;
    ASSERT_EQ_INT(memcmp(ref->codes, rt->codes, (size_t)ref->nblk * ref->G * 64), 0);
    ASSERT_EQ_INT(memcmp(ref->cx, rt->cx, rows * 4) | memcmp(ref->xl, rt->xl, rows * 4) |
                  memcmp(ref->rx, rt->rx, rows * 4) | memcmp(ref->S, rt->S, rows * 4), 0);
    cmir_knn_q8_free(rt);
    /* the searches over read-back codes, as check_case does with its own */
    q8_make = q8_round_trip;
    check_case("records: hard rows", db, n, q, 25, d, 10, NULL);
    int64_t gn = 2000;
    float *g = malloc(sizeof(float) * gn * 16);
    for (int64_t i = 0; i < gn; i++) {
        int64_t src = cmir_rng_below(rng, 200);
        for (int j = 0; j < 16; j++)
            g[i * 16 + j] = i < 200 ? (float)((int)cmir_rng_below(rng, 3) - 1) : g[src * 16 + j];
    }
    check_case("records: grid with duplicated rows (ties)", g, gn, g + 16 * 7, 30, 16, 12, NULL);
    q8_make = cmir_knn_q8_new;
    /* a blank database with rows never set answers exactly (they are never
     * skipped) */
    cmir_knn_q8 *part = NULL;
    REQUIRE(cmir_knn_q8_new_blank(gn, 16, &part) == 0);
    ASSERT_OK(cmir_knn_q8_set_rows(part, 100, 500, g + 100 * 16));
    int64_t ids[30 * 12], rid[30 * 12];
    float dist[30 * 12], rd[30 * 12];
    cmir_knn_params p = cmir_knn_default_params();
    brute(g, gn, g + 16 * 7, 30, 16, 12, &p, rid, rd);
    ASSERT_OK(cmir_knn_q8_search(NULL, part, g, gn, g + 16 * 7, 30, 16, 12, p, ids, dist));
    ASSERT_EQ_INT(memcmp(ids, rid, sizeof ids) | memcmp(dist, rd, sizeof dist), 0);
    cmir_knn_q8_free(part);
    /* damaged records: a code of -128, ||xq||^2, xl, rx, the scale */
    cmir_knn_q8 *b = NULL;
    REQUIRE(cmir_knn_q8_new_blank(n, d, &b) == 0);
    const int at[] = {0, d, d + 4, d + 8, d + 12, d + 8};
    const uint32_t bits[] = {0x80, 0x7fc00000, 0x3f800000, 0xbf800000, 0, 0x7fc00000};
    for (int c = 0; c < 6; c++) {
        memcpy(r2, r1, rb * n);
        size_t o = rb * 777 + (size_t)at[c];
        uint32_t w = bits[c];
        if (c == 4) { /* ||xq||^2 off by one */
            memcpy(&w, r1 + o, 4);
            w ^= 1;
        }
        if (c == 0)
            r2[o] = 0x80;
        else
            memcpy(r2 + o, &w, 4);
        ASSERT_EQ_INT(cmir_knn_q8_put_rows(b, 0, n, r2), CMIR_EFORMAT);
        ASSERT_TRUE(strstr(cmir_last_error(), "row 777 is damaged") != NULL);
    }
    REFUSES(cmir_knn_q8_put_rows(b, 1000, 4, r1), "outside the database");
    REFUSES(cmir_knn_q8_set_rows(b, -1, 4, db), "outside the database");
    REFUSES(cmir_knn_q8_get_rows(NULL, 0, 1, r1), "cmir_knn_q8_get_rows");
    cmir_knn_q8_free(b);
    cmir_knn_q8_free(ref);
    free(r1);
    free(r2);
    free(db);
    free(q);
    free(g);
}

typedef struct q8_case {
    const float *db, *q;
    int64_t *ids;
} q8_case;

static int q8_once(void *u)
{
    q8_case *c = u;
    cmir_knn_q8 *qx = NULL;
    int rc = cmir_knn_q8_new(c->db, 600, 8, &qx);
    if (!rc)
        rc = cmir_knn_q8_search(NULL, qx, c->db, 600, c->q, 20, 8, 5, cmir_knn_default_params(),
                                c->ids, NULL);
    cmir_knn_q8_free(qx);
    return rc;
}

static void test_alloc_failures(void)
{
    float *db = randn(600 * 8, 1.0f, 0.0f), *q = randn(20 * 8, 1.0f, 0.0f);
    int64_t ids[100], ref[100];
    float rd[100];
    cmir_knn_params p = cmir_knn_default_params();
    brute(db, 600, q, 20, 8, 5, &p, ref, rd);
    q8_case c = {db, q, ids};
    ASSERT_TRUE(t_sweep("q8 build and search", q8_once, &c, 1, 50) > 1);
    ASSERT_TRUE(memcmp(ids, ref, sizeof ids) == 0);
    free(db);
    free(q);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    rng = cmir_rng_new(20261203);
    printf("  VNNI kernel on this CPU: %s\n", cmir_knn_q8_vnni() ? "yes" : "no (portable only)");
    RUN(test_bound);
    RUN(test_kernels);
    RUN(test_random);
    RUN(test_adversarial);
    RUN(test_filters);
    RUN(test_records);
    RUN(test_bad_args);
    RUN(test_alloc_failures);
    cmir_rng_free(rng);
    TEST_MAIN_END();
}
