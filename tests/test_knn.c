/* Tests of cmir_knn: ids, order and distances identical to a naive double
 * brute force (ties by index) on random, duplicated, near-tied and offset
 * data, 1-3 threads, both paths, masks, max_dist, units, bad arguments. */
#include <string.h>
#include <math.h>
#include "cmir/knn.h"
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

/* The brute force the header promises equality with. */
static void brute(const float *db, int64_t n, const float *q, int64_t m, int d, int k,
                  const cmir_knn_params *p, int64_t *ids, float *dist)
{
    ref_hit *h = malloc(sizeof(ref_hit) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < m; i++) {
        int64_t c = 0;
        for (int64_t x = 0; x < n; x++) {
            if (p && p->mask && (p->mask_value < 0 ? !p->mask[x] : p->mask[x] != p->mask_value))
                continue;
            double s = 0.0;
            for (int j = 0; j < d; j++) {
                double t = (double)q[i * d + j] - (double)db[x * d + j];
                s += t * t;
            }
            int sq = p ? p->squared : 1;
            if (p && p->max_dist != INFINITY && (sq ? s : sqrt(s)) > (double)p->max_dist)
                continue;
            h[c].d = s;
            h[c].id = x;
            c++;
        }
        qsort(h, (size_t)c, sizeof *h, ref_cmp);
        for (int r = 0; r < k; r++) {
            int sq = p ? p->squared : 1;
            ids[i * k + r] = r < c ? h[r].id : -1;
            dist[i * k + r] = r < c ? (float)(sq ? h[r].d : sqrt(h[r].d)) : INFINITY;
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

/* Runs cmir_knn with 1..3 threads and compares with brute(); returns the
 * number of mismatching rows (also counted as failures). */
static int check_case(const char *what, const float *db, int64_t n, const float *q, int64_t m,
                      int d, int k, const cmir_knn_params *p)
{
    cmir_knn_params pv = p ? *p : cmir_knn_default_params();
    size_t sz = (size_t)m * k;
    int64_t *ri = malloc(sizeof(int64_t) * (sz ? sz : 1)), *gi = malloc(sizeof(int64_t) * (sz ? sz : 1));
    float *rd = malloc(sizeof(float) * (sz ? sz : 1)), *gd = malloc(sizeof(float) * (sz ? sz : 1));
    brute(db, n, q, m, d, k, p, ri, rd);
    int bad_rows = 0;
    for (int T = 1; T <= 3; T++) {
        cmir_exec_params ep = cmir_exec_default_params();
        ep.threads = T;
        cmir_exec *ex = cmir_exec_new(ep);
        memset(gi, 0x55, sizeof(int64_t) * sz);
        ASSERT_OK(cmir_knn(ex, db, n, q, m, d, k, pv, gi, gd));
        for (int64_t i = 0; i < m; i++) {
            int ok = 1;
            for (int r = 0; r < k; r++) {
                size_t o = (size_t)i * k + r;
                if (gi[o] != ri[o] || memcmp(&gd[o], &rd[o], sizeof(float)) != 0)
                    ok = 0;
            }
            if (!ok) {
                if (bad_rows < 3) {
                    fprintf(stderr, "  %s T=%d query %lld differs:\n", what, T, (long long)i);
                    for (int r = 0; r < k && r < 12; r++)
                        fprintf(stderr, "    r%d got %lld %.9g want %lld %.9g\n", r,
                                (long long)gi[(size_t)i * k + r], gd[(size_t)i * k + r],
                                (long long)ri[(size_t)i * k + r], rd[(size_t)i * k + r]);
                }
                bad_rows++;
            }
        }
        /* dist == NULL gives the same ids */
        ASSERT_OK(cmir_knn(ex, db, n, q, m, d, k, pv, gi, NULL));
        ASSERT_TRUE(sz == 0 || memcmp(gi, ri, sizeof(int64_t) * sz) == 0);
        cmir_exec_free(ex);
    }
    /* ex == NULL: one thread, own scratch */
    ASSERT_OK(cmir_knn(NULL, db, n, q, m, d, k, pv, gi, gd));
    ASSERT_TRUE(sz == 0 || memcmp(gi, ri, sizeof(int64_t) * sz) == 0);
    ASSERT_EQ_INT(bad_rows, 0);
    printf("  %-44s n=%-6lld m=%-4lld d=%-3d k=%-4d %s\n", what, (long long)n, (long long)m, d,
           k, bad_rows ? "MISMATCH" : "identical");
    free(ri);
    free(gi);
    free(rd);
    free(gd);
    return bad_rows;
}

static void test_random_shapes(void)
{
    static const struct {
        int64_t n, m;
        int d, k;
    } c[] = {
        {0, 5, 8, 3},     {1, 1, 3, 5},      {7, 4, 2, 7},    {100, 17, 7, 10},
        {100, 17, 7, 30}, {5000, 40, 64, 10}, {3000, 1, 64, 10}, {3000, 5, 16, 1},
        {2000, 70, 33, 7}, {4099, 3, 5, 100}, {1500, 9, 1, 4},  {777, 50, 64, 194},
        {1000, 40, 64, 200}, {3000, 600, 64, 10}, {2000, 30, 200, 5}, {1200, 17, 129, 3},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        float *db = randn((size_t)c[i].n * c[i].d, 1.0f, 0.0f);
        float *q = randn((size_t)c[i].m * c[i].d, 1.0f, 0.0f);
        char name[64];
        snprintf(name, sizeof name, "random case %zu", i);
        check_case(name, db, c[i].n, q, c[i].m, c[i].d, c[i].k, NULL);
        free(db);
        free(q);
    }
}

/* Small blocks: many tiles, ragged last tile, several query blocks. */
static void test_small_blocks(void)
{
    int64_t n = 2345, m = 301;
    int d = 19, k = 9;
    float *db = randn((size_t)n * d, 1.0f, 0.0f), *q = randn((size_t)m * d, 1.0f, 0.0f);
    cmir_knn_params p = cmir_knn_default_params();
    p.query_block = 13;
    p.db_block = 100;
    check_case("query_block 13, db_block 100", db, n, q, m, d, k, &p);
    p.query_block = 1;
    p.db_block = 1;
    check_case("query_block 1, db_block 1", db, n, q, 20, d, k, &p);
    free(db);
    free(q);
}

/* Duplicated rows and integer grids: many exact ties in distance. */
static void test_ties(void)
{
    int64_t n = 3000, m = 60;
    int d = 8, k = 12;
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * m * d);
    for (int64_t i = 0; i < n; i++) {
        int64_t src = i < 300 ? i : (int64_t)cmir_rng_below(rng, 300); /* duplicates */
        for (int j = 0; j < d; j++)
            db[i * d + j] = i < 300 ? (float)((int)cmir_rng_below(rng, 3) - 1) : db[src * d + j];
    }
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < d; j++)
            q[i * d + j] = (float)((int)cmir_rng_below(rng, 3) - 1);
    check_case("grid {-1,0,1}^8 with duplicated rows", db, n, q, m, d, k, NULL);
    check_case("same, k = 700 (heap path, k < n/4)", db, n, q, 5, d, 700, NULL);
    /* every row identical: all n rows tie; the answer is rows 0..k-1 */
    for (int64_t i = 0; i < n * d; i++)
        db[i] = 0.25f;
    check_case("all rows identical", db, n, q, m, d, k, NULL);
    free(db);
    free(q);
}

/* Rows that differ from each other by an ulp or so around a large common
 * offset: float sgemm cannot tell them apart (||x||^2 ~ 1e6 * d, error far
 * above the gaps), the exact re-ranking must. */
static void test_near_ties(void)
{
    int64_t n = 4000, m = 30;
    int d = 64, k = 10;
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * m * d);
    float base[64];
    for (int j = 0; j < d; j++)
        base[j] = 1000.0f + cmir_rng_normal(rng);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            float v = base[j];
            int steps = (int)cmir_rng_below(rng, 5) - 2;
            for (int s = 0; s < (steps < 0 ? -steps : steps); s++)
                v = nextafterf(v, steps < 0 ? -INFINITY : INFINITY);
            db[i * d + j] = v;
        }
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < d; j++)
            q[i * d + j] = base[j] + 1e-4f * cmir_rng_normal(rng);
    check_case("ulp-spaced rows around offset 1000", db, n, q, m, d, k, NULL);
    check_case("same, full rankings of 400 rows (k = n)", db, 400, q, 10, d, 400, NULL);
    /* generic offset data: big norms, small differences */
    float *db2 = randn((size_t)n * d, 0.01f, 300.0f), *q2 = randn((size_t)m * d, 0.01f, 300.0f);
    check_case("offset 300, noise 0.01", db2, n, q2, m, d, k, NULL);
    check_case("offset 300, noise 0.01, m = 1", db2, n, q2, 1, d, k, NULL);
    /* moderate offsets: the bound is a real fraction of the gaps between
     * neighbours. At offset 1 the approximate stage keeps a few extra
     * candidates per query; at offset 3 most (not all) queries fall back to
     * exact distances for every row within the bound. */
    static const float offs[2] = {1.0f, 3.0f};
    for (int o = 0; o < 2; o++) {
        float *db3 = randn((size_t)n * d, 0.05f, offs[o]), *q3 = randn((size_t)m * d, 0.05f, offs[o]);
        for (int64_t i = 0; i < n; i += 7) /* some exact duplicates among them */
            memcpy(db3 + i * d, db3 + (i / 2) * d, sizeof(float) * d);
        check_case(o ? "offset 3, noise 0.05, duplicates" : "offset 1, noise 0.05, duplicates",
                   db3, n, q3, m, d, k, NULL);
        free(db3);
        free(q3);
    }
    free(db);
    free(q);
    free(db2);
    free(q2);
}

/* Database rows of size ~2^-50 against queries near 1: every difference
 * q_j - x_j needs more than 53 bits and its square is rounded, and all
 * distances lie within a few double ulps of each other. The order then
 * depends on each rounding of the reference (a fused multiply-add would
 * change it), which every path must reproduce bit for bit. */
static void test_last_bits(void)
{
    int64_t n = 600, m = 6;
    int d = 4;
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * m * d);
    for (int64_t i = 0; i < n * d; i++)
        db[i] = ldexpf(cmir_rng_uniform(rng) - 0.5f, -50);
    for (int64_t i = 0; i < m * d; i++)
        q[i] = 1.0f + ldexpf((float)(int)cmir_rng_below(rng, 1024), -10);
    check_case("rows of size 2^-50, k = 10", db, n, q, m, d, 10, NULL);
    check_case("rows of size 2^-50, full rankings", db, n, q, m, d, (int)n, NULL);
    free(db);
    free(q);
}

static void test_filters(void)
{
    int64_t n = 2500, m = 33;
    int d = 12, k = 15;
    float *db = randn((size_t)n * d, 1.0f, 0.0f), *q = randn((size_t)m * d, 1.0f, 0.0f);
    uint8_t *mask = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        mask[i] = cmir_rng_uniform(rng) < 0.3f;
    cmir_knn_params p = cmir_knn_default_params();
    p.mask = mask;
    check_case("mask (30% kept)", db, n, q, m, d, k, &p);
    check_case("mask, m = 1", db, n, q, 1, d, k, &p);
    p.mask = NULL;
    p.max_dist = 10.0f; /* squared; typical D ~ 24: only a few rows pass */
    check_case("max_dist 10 (squared)", db, n, q, m, d, k, &p);
    p.squared = 0;
    p.max_dist = 3.3f;
    check_case("max_dist 3.3 (Euclidean)", db, n, q, m, d, k, &p);
    p.mask = mask;
    check_case("mask + max_dist 3.3 (Euclidean), k > n/4", db, n, q, m, d, 700, &p);
    p.max_dist = 0.0f;
    check_case("max_dist 0", db, n, q, m, d, k, &p);
    p = cmir_knn_default_params();
    p.squared = 0;
    check_case("Euclidean distances", db, n, q, m, d, k, &p);
    for (int64_t i = 0; i < n; i++) /* one byte of labels per row, 0..2 */
        mask[i] = (uint8_t)(cmir_rng_uniform(rng) * 3.0f);
    p.mask = mask;
    for (int v = 0; v < 3; v++) {
        p.mask_value = v;
        check_case(v == 0 ? "mask_value 0 (rows labelled 0)" : v == 1 ? "mask_value 1" : "mask_value 2", db, n, q, m,
                   d, k, &p);
    }
    p.mask_value = 3; /* no row has it */
    check_case("mask_value matches no row", db, n, q, m, d, k, &p);
    p.mask_value = -1;
    for (int64_t i = 0; i < n; i++)
        mask[i] = 0;
    check_case("mask excludes everything", db, n, q, m, d, k, &p);
    free(mask);
    free(db);
    free(q);
}

static void test_db_norms(void)
{
    int64_t n = 3000, m = 25;
    int d = 40, k = 5;
    float *db = randn((size_t)n * d, 2.0f, 0.5f), *q = randn((size_t)m * d, 2.0f, 0.5f);
    float *nx = malloc(sizeof(float) * n);
    ASSERT_OK(cmir_knn_norms(db, n, d, nx));
    double s = 0.0;
    for (int j = 0; j < d; j++)
        s += (double)db[7 * d + j] * db[7 * d + j];
    ASSERT_NEAR(nx[7], s, 1.2e-7 * s); /* double sum, rounded to float */
    cmir_knn_params p = cmir_knn_default_params();
    p.db_norms = nx;
    check_case("precomputed db_norms", db, n, q, m, d, k, &p);
    /* no norms array: each tile's computed in the scan from the maximum */
    float mx = -1.0f, want = 0.0f;
    for (int64_t i = 0; i < n; i++)
        want = nx[i] > want ? nx[i] : want;
    ASSERT_OK(cmir_knn_norm_max(db, n, d, &mx));
    ASSERT_EQ_INT(memcmp(&mx, &want, sizeof mx), 0); /* the same float as cmir_knn_norms's largest */
    p.db_norms = NULL;
    p.db_norm_max = mx;
    check_case("db_norm_max, tile norms", db, n, q, m, d, k, &p);
    check_case("db_norm_max, m = 2 (rows split)", db, n, q, 2, d, k, &p);
    cmir_knn_params pb = p;
    pb.query_block = 7;
    pb.db_block = 33;
    check_case("db_norm_max, small blocks", db, n, q, m, d, k, &pb);
    float *big = randn((size_t)20000 * 64, 1.0f, 0.0f), *bq = randn((size_t)40 * 64, 1.0f, 0.0f);
    ASSERT_OK(cmir_knn_norm_max(big, 20000, 64, &p.db_norm_max));
    check_case("db_norm_max, d = 64 (AVX-512 tiles)", big, 20000, bq, 40, 64, 10, &p);
    free(big);
    free(bq);
    p.db_norm_max = NAN;
    int64_t idn[25 * 5];
    ASSERT_EQ_INT(cmir_knn(NULL, db, n, q, m, d, k, p, idn, NULL), CMIR_EINVAL);
    p.db_norm_max = 0.0f;
    p.db_norms = nx;
    nx[3] = NAN;
    int64_t ids[25 * 5];
    ASSERT_EQ_INT(cmir_knn(NULL, db, n, q, m, d, k, p, ids, NULL), CMIR_EINVAL);
    free(nx);
    free(db);
    free(q);
}

static void test_bad_args(void)
{
    float db[8] = {0}, q[4] = {0};
    int64_t ids[4];
    float dist[4];
    cmir_knn_params p = cmir_knn_default_params();
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 0, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, -3, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 0, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, NULL, 2, q, 1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, NULL, 1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, cmir_knn_default_params(), NULL, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, -1, q, 1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, -1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    ASSERT_TRUE(strlen(cmir_last_error()) > 0);
    p.max_dist = NAN;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, p, ids, dist), CMIR_EINVAL);
    p.max_dist = -1.0f;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, p, ids, dist), CMIR_EINVAL);
    p = cmir_knn_default_params();
    p.squared = 2;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, p, ids, dist), CMIR_EINVAL);
    p = cmir_knn_default_params();
    p.query_block = -1;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, p, ids, dist), CMIR_EINVAL);
    /* non-finite values */
    q[1] = NAN;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    q[1] = 0.0f;
    db[5] = INFINITY;
    ASSERT_EQ_INT(cmir_knn(NULL, db, 2, q, 1, 4, 1, cmir_knn_default_params(), ids, dist), CMIR_EINVAL);
    float nx[2];
    ASSERT_EQ_INT(cmir_knn_norms(db, 2, 4, nx), CMIR_EINVAL);
    db[5] = 1e20f; /* squared norm 1e40: refused */
    ASSERT_EQ_INT(cmir_knn_norms(db, 2, 4, nx), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn_norms(NULL, 2, 4, nx), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_knn_norms(db, 2, 0, nx), CMIR_EINVAL);
    /* m = 0 and n = 0 are fine */
    db[5] = 0.0f;
    ASSERT_OK(cmir_knn(NULL, db, 2, q, 0, 4, 3, cmir_knn_default_params(), NULL, NULL));
    ASSERT_OK(cmir_knn(NULL, NULL, 0, q, 1, 4, 3, cmir_knn_default_params(), ids, dist));
    ASSERT_EQ_INT(ids[0], -1);
    ASSERT_EQ_INT(ids[2], -1);
    ASSERT_TRUE(isinf(dist[1]) && dist[1] > 0);
}

/* Failing the n-th allocation gives CMIR_ENOMEM (and, under ASan, no
 * leak) until enough allocations succeed; then the result is right. */

typedef struct knn_case {
    const float *db, *q;
    int64_t n, m, *out;
    int d, k;
} knn_case;

static int knn_once(void *u)
{
    const knn_case *c = u;
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    cmir_exec *ex = cmir_exec_new(ep);
    int rc = ex ? cmir_knn(ex, c->db, c->n, c->q, c->m, c->d, c->k, cmir_knn_default_params(), c->out, NULL) : cmir_last_error_code();
    cmir_exec_free(ex);
    return rc;
}

static void test_alloc_failures(void)
{
    int64_t n = 600, m = 20;
    int d = 8, k = 5;
    float *db = randn((size_t)n * d, 1.0f, 0.0f), *q = randn((size_t)m * d, 1.0f, 0.0f);
    int64_t ids[20 * 5], ref[20 * 5];
    float dist[20 * 5], rd[20 * 5];
    brute(db, n, q, m, d, k, NULL, ref, rd);
    int64_t *all = malloc(sizeof(int64_t) * (size_t)(n * m)); /* full rankings */
    for (int full = 0; full < 2; full++) {
        knn_case c = {db, q, n, m, full ? all : ids, d, full ? (int)n : k};
        int allocs = t_sweep(full ? "full ranking" : "heap path", knn_once, &c, 1, 50);
        if (full)
            for (int64_t i = 0; i < m; i++)
                memcpy(ids + i * k, all + i * n, sizeof(int64_t) * k);
        ASSERT_TRUE(allocs > 1);
        ASSERT_TRUE(memcmp(ids, ref, sizeof ids) == 0);
    }
    free(all);
    /* without a context */
    cmir_allocator al = {t_fail_malloc, t_fail_realloc, t_plain_free, NULL};
    cmir_set_allocator(&al);
    t_calls = 0;
    t_fail_at = 1;
    ASSERT_EQ_INT(cmir_knn(NULL, db, n, q, m, d, k, cmir_knn_default_params(), ids, dist), CMIR_ENOMEM);
    ASSERT_EQ_INT(cmir_last_error_code(), CMIR_ENOMEM);
    cmir_set_allocator(NULL);
    t_fail_at = 0;
    free(db);
    free(q);
}

static void test_check_params(void)
{
    cmir_knn_params p = cmir_knn_default_params();
    ASSERT_OK(cmir_knn_check_params(p));
    p.max_dist = NAN;
    REFUSES(cmir_knn_check_params(p), "cmir_knn_params.max_dist");
    p = cmir_knn_default_params();
    p.max_dist = -1.0f;
    REFUSES(cmir_knn_check_params(p), "cmir_knn_params.max_dist");
    p = cmir_knn_default_params();
    p.squared = 2;
    REFUSES(cmir_knn_check_params(p), "cmir_knn_params.squared");
    p = cmir_knn_default_params();
    p.query_block = -3;
    REFUSES(cmir_knn_check_params(p), "cmir_knn_params.query_block: must be in 0..65536, got -3");
    p = cmir_knn_default_params();
    p.db_block = (1 << 20) + 1;
    REFUSES(cmir_knn_check_params(p), "cmir_knn_params.db_block");
    /* cmir_knn refuses the same way. */
    float db[2] = {0, 1}, q[1] = {0}, dist[1];
    int64_t ids[1];
    REFUSES(cmir_knn(NULL, db, 2, q, 1, 1, 1, p, ids, dist), "cmir_knn_params.db_block");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    rng = cmir_rng_new(20240611);
    RUN(test_random_shapes);
    RUN(test_small_blocks);
    RUN(test_ties);
    RUN(test_near_ties);
    RUN(test_last_bits);
    RUN(test_filters);
    RUN(test_db_norms);
    RUN(test_bad_args);
    RUN(test_alloc_failures);
    cmir_rng_free(rng);
    RUN(test_check_params);
    TEST_MAIN_END();
}
