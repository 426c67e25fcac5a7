/* Tests of the training-free floors (cmir/metrics.h): cmir_floor_lstsq
 * against the normal equations on random data (with and without ridge, and
 * a rank-deficient X), cmir_floor_eval against a brute force, a floor that
 * must be perfect (MS band means determined by the PAN mean), fitting on the
 * training tiles only, and bad arguments refused by name. */
#include "cmir/metrics.h"
#include "floor_naive.h"
#include "test_util.h"

#include <string.h>

static void test_lstsq_vs_normal_equations(void)
{
    cmir_rng *r = cmir_rng_new(3);
    enum { N = 57, P = 4, Q = 5 };
    double X[N * P], Y[N * Q], B[P * Q], Bn[P * Q];
    for (int i = 0; i < N * P; i++)
        X[i] = 3 * cmir_rng_normal(r) + (i % P == 3 ? 1 : 0);
    for (int i = 0; i < N * Q; i++)
        Y[i] = 10 * cmir_rng_normal(r) + 4;
    const double ridges[3] = {0, 0.5, 40};
    for (int k = 0; k < 3; k++) {
        ASSERT_OK(cmir_floor_lstsq(X, N, P, Y, Q, ridges[k], B));
        fn_normal_eq(X, N, P, Y, Q, ridges[k], Bn);
        double worst = 0;
        for (int i = 0; i < P * Q; i++)
            worst = fmax(worst, fabs(B[i] - Bn[i]) / (1 + fabs(Bn[i])));
        printf("  ridge %g: largest difference from the normal equations %.2e\n", ridges[k], worst);
        ASSERT_LE(worst, 1e-10);
    }
    /* a column repeated: coefficient 0 on the copy, the same fit as without it */
    double X2[N * (P + 1)], B2[(P + 1) * Q];
    for (int i = 0; i < N; i++) {
        memcpy(X2 + i * (P + 1), X + i * P, sizeof(double) * P);
        X2[i * (P + 1) + P] = 2 * X[i * P + 1];
    }
    ASSERT_OK(cmir_floor_lstsq(X2, N, P + 1, Y, Q, 0, B2));
    fn_normal_eq(X, N, P, Y, Q, 0, Bn);
    for (int j = 0; j < Q; j++) {
        ASSERT_NEAR(B2[P * Q + j], 0, 1e-12);
        for (int i = 0; i < P; i++)
            ASSERT_NEAR(B2[i * Q + j], Bn[i * Q + j], 1e-9 * (1 + fabs(Bn[i * Q + j])));
    }
    cmir_rng_free(r);
}

/* Random statistics of n tiles of 4 classes whose band means follow their
 * PAN statistics loosely (noise) */
static void random_tiles(cmir_rng *r, int64_t n, int B, double noise, double *pan, double *ms, int32_t *cls)
{
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 4);
        cls[i] = c + 1;
        pan[i * 2] = 500 + 300 * c + 200 * cmir_rng_normal(r);
        pan[i * 2 + 1] = 2 + 0.5 * c + cmir_rng_uniform(r);
        for (int b = 0; b < B; b++)
            ms[i * B + b] = 0.01 * (b + 1) * pan[i * 2] + 30 * b * pan[i * 2 + 1] + noise * cmir_rng_normal(r);
    }
}

static void test_floor_vs_brute_force(void)
{
    cmir_rng *r = cmir_rng_new(11);
    enum { NT = 80, NE = 61, B = 5 };
    double tp[NT * 2], tm[NT * B], ep[NE * 2], em[NE * B];
    int32_t tc[NT], ec[NE];
    random_tiles(r, NT, B, 8, tp, tm, tc);
    random_tiles(r, NE, B, 8, ep, em, ec);
    ec[7] = 0; /* an unlabelled query is skipped, and its tile never relevant */
    cmir_floor_tiles tr = {NT, tp, tm}, te = {NE, ep, em};
    cmir_metrics_labels lab = {ec, ec, NULL, NULL, 0};
    cmir_metrics_params mp = cmir_metrics_default_params();
    cmir_metrics_result res[4];
    double mapk[4 * 5], pk[4 * 5], naive_map[4], naive_pr[4][11];
    fn_floors(tp, tm, NT, ep, em, ec, NE, B, naive_map, naive_pr);
    for (int T = 1; T <= 3; T += 2) {
        cmir_exec_params xp = cmir_exec_default_params();
        xp.threads = T;
        cmir_exec *ex = cmir_exec_new(xp);
        ASSERT_OK(cmir_floor_eval(ex, &tr, &te, B, &lab, mp, cmir_floor_default_params(), NULL, NULL, res, mapk,
                                  pk, NULL));
        cmir_exec_free(ex);
        for (int k = 0; k < 4; k++) {
            if (T == 1)
                printf("  direction %d: floor mAP %.4f (brute force %.4f), %lld queries\n", k, res[k].map,
                       naive_map[k], (long long)res[k].n_queries);
            ASSERT_NEAR(res[k].map, naive_map[k], 1e-9);
            ASSERT_EQ_INT(res[k].n_queries, NE - 1);
            for (int l = 0; l < 11; l++)
                ASSERT_NEAR(res[k].pr[l], naive_pr[k][l], 1e-9);
        }
    }
    /* neither perfect nor chance: the data have signal and noise */
    ASSERT_TRUE(res[0].map > 0.3 && res[0].map < 0.999);
    cmir_rng_free(r);
}

/* MS band means an affine function of the PAN mean, classes apart in PAN
 * mean and deviation: every floor ranks a query's class first. */
static void test_floor_perfect(void)
{
    cmir_rng *r = cmir_rng_new(5);
    enum { NT = 40, NE = 36, B = 4 };
    double tp[NT * 2], tm[NT * B], ep[NE * 2], em[NE * B], coef[3 * B];
    int32_t tc[NT], ec[NE];
    for (int s = 0; s < 2; s++) {
        int64_t n = s ? NE : NT;
        double *pan = s ? ep : tp, *ms = s ? em : tm;
        int32_t *cls = s ? ec : tc;
        for (int64_t i = 0; i < n; i++) {
            int c = (int)(i % 3);
            cls[i] = c + 1;
            pan[i * 2] = 100 * c + 10 * cmir_rng_uniform(r);
            pan[i * 2 + 1] = 5 + 4 * c + cmir_rng_uniform(r);
            for (int b = 0; b < B; b++)
                ms[i * B + b] = (b + 1) * 0.5 * pan[i * 2] - 7 * b;
        }
    }
    cmir_floor_tiles tr = {NT, tp, tm}, te = {NE, ep, em};
    cmir_metrics_labels lab = {ec, ec, NULL, NULL, 0};
    cmir_metrics_result res[4];
    ASSERT_OK(cmir_floor_eval(NULL, &tr, &te, B, &lab, cmir_metrics_default_params(), cmir_floor_default_params(),
                              NULL, NULL, res, NULL, NULL, coef));
    for (int k = 0; k < 4; k++) {
        ASSERT_NEAR(res[k].map, 1.0, 1e-12);
        ASSERT_NEAR(res[k].pr[10], 1.0, 1e-12);
    }
    for (int b = 0; b < B; b++) /* the deviation carries nothing */
        ASSERT_NEAR(coef[B + b], 0.0, 1e-9);
    cmir_rng_free(r);
}

/* The fit sees the training tiles only: test tiles whose band means break
 * the training relation change the floor, not the fitted map. */
static void test_fit_on_training_only(void)
{
    cmir_rng *r = cmir_rng_new(9);
    enum { NT = 50, NE = 30, B = 3 };
    double tp[NT * 2], tm[NT * B], ep[NE * 2], em[NE * B], c1[3 * B], c2[3 * B];
    int32_t tc[NT], ec[NE];
    random_tiles(r, NT, B, 5, tp, tm, tc);
    random_tiles(r, NE, B, 5, ep, em, ec);
    cmir_floor_tiles tr = {NT, tp, tm}, te = {NE, ep, em};
    cmir_metrics_labels lab = {ec, ec, NULL, NULL, 0};
    cmir_metrics_result res[4], res2[4];
    cmir_metrics_params mp = cmir_metrics_default_params();
    ASSERT_OK(cmir_floor_eval(NULL, &tr, &te, B, &lab, mp, cmir_floor_default_params(), NULL, NULL, res, NULL,
                              NULL, c1));
    for (int i = 0; i < NE * B; i++)
        em[i] = -em[i] * 3 + 1000;
    ASSERT_OK(cmir_floor_eval(NULL, &tr, &te, B, &lab, mp, cmir_floor_default_params(), NULL, NULL, res2, NULL,
                              NULL, c2));
    for (int i = 0; i < 3 * B; i++)
        ASSERT_NEAR(c1[i], c2[i], 0);
    ASSERT_TRUE(res2[0].map < res[0].map);
    cmir_rng_free(r);
}

typedef struct floor_case {
    const cmir_floor_tiles *tr, *te;
    const cmir_metrics_labels *lab;
    cmir_metrics_result *r;
} floor_case;

static int floor_once(void *u)
{
    const floor_case *c = u;
    return cmir_floor_eval(NULL, c->tr, c->te, 3, c->lab, cmir_metrics_default_params(),
                           cmir_floor_default_params(), NULL, NULL, c->r, NULL, NULL, NULL);
}

/* Every allocation failure is reported as CMIR_ENOMEM, and a run without
 * one gives the same result. */
static void test_alloc_failures(void)
{
    cmir_rng *r = cmir_rng_new(2);
    enum { NT = 12, NE = 9, B = 3 };
    double tp[NT * 2], tm[NT * B], ep[NE * 2], em[NE * B];
    int32_t tc[NT], ec[NE];
    random_tiles(r, NT, B, 5, tp, tm, tc);
    random_tiles(r, NE, B, 5, ep, em, ec);
    cmir_floor_tiles tr = {NT, tp, tm}, te = {NE, ep, em};
    cmir_metrics_labels lab = {ec, ec, NULL, NULL, 0};
    cmir_metrics_result ref[4], res[4];
    floor_case c = {&tr, &te, &lab, ref};
    ASSERT_OK(floor_once(&c));
    c.r = res;
    ASSERT_TRUE(t_sweep("cmir_floor_eval", floor_once, &c, 1, 200) > 10);
    ASSERT_TRUE(memcmp(res, ref, sizeof res) == 0);
    cmir_rng_free(r);
}

static void test_bad_arguments(void)
{
    cmir_floor_params p = cmir_floor_default_params();
    ASSERT_OK(cmir_floor_check_params(p));
    p.standardise = 2;
    REFUSES(cmir_floor_check_params(p), "cmir_floor_params.standardise");
    p = cmir_floor_default_params();
    p.ridge = -1;
    REFUSES(cmir_floor_check_params(p), "cmir_floor_params.ridge");
    p.ridge = NAN;
    REFUSES(cmir_floor_check_params(p), "cmir_floor_params.ridge");
    double X[4] = {1, 2, 3, NAN}, Y[4] = {1, 2, 3, 4}, B[1];
    REFUSES(cmir_floor_lstsq(X, 4, 1, Y, 1, 0, B), "non-finite");
    REFUSES(cmir_floor_lstsq(Y, 0, 1, Y, 1, 0, B), "cmir_floor_lstsq");
    double pan[2] = {1, 2}, ms[1] = {3};
    int32_t cls[1] = {1};
    cmir_floor_tiles one = {1, pan, ms};
    cmir_metrics_labels lab = {cls, cls, NULL, NULL, 0};
    cmir_metrics_result res[4];
    REFUSES(cmir_floor_eval(NULL, &one, &one, 1, &lab, cmir_metrics_default_params(), cmir_floor_default_params(),
                            NULL, NULL, res, NULL, NULL, NULL),
            "1 training tiles");
    p = cmir_floor_default_params();
    p.ridge = -2;
    REFUSES(cmir_floor_eval(NULL, &one, &one, 1, &lab, cmir_metrics_default_params(), p, NULL, NULL, res, NULL,
                            NULL, NULL),
            "cmir_floor_params.ridge");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    RUN(test_lstsq_vs_normal_equations);
    RUN(test_floor_vs_brute_force);
    RUN(test_floor_perfect);
    RUN(test_fit_on_training_only);
    RUN(test_alloc_failures);
    RUN(test_bad_arguments);
    TEST_MAIN_END();
}
