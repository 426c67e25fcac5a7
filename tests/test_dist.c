/* The MPI layer (cmir/dist.h): run alone it is rank 0 of 1 (collectives
 * copy or do nothing, errors pass through); run under mpirun -np N (ctest
 * test_dist_mpi) every rank checks the collectives against values it can
 * compute itself: rank-ordered sums (the bits of a left-to-right sum in
 * rank order, in double), broadcast, allgather, gatherv, max and error agreement
 * naming the lowest failing rank. */
#include "cmir/dist.h"
#include "test_util.h"

#include <stdint.h>

static int R, N;

/* Rank r's i-th value: not exactly representable sums, so that the
 * order of the additions shows in the bits. */
static float val(int r, int64_t i) { return 1.0f / (float)(3 + r) + (float)i * 1e-7f * (float)(r + 1); }

static void test_sum_ordered(void)
{
    const int64_t n = 3000001; /* more than one block of the gathers */
    float *x = malloc(sizeof(float) * (size_t)n);
    double *y = malloc(sizeof(double) * 5);
    REQUIRE(x && y);
    for (int64_t i = 0; i < n; i++)
        x[i] = val(R, i);
    for (int i = 0; i < 5; i++)
        y[i] = 0.1 * (R + 1) + i;
    ASSERT_OK(cmir_dist_sum_float(x, n));
    ASSERT_OK(cmir_dist_sum_double(y, 5));
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = val(0, i);
        for (int r = 1; r < N; r++)
            s += val(r, i);
        bad += x[i] != (float)s; /* exactly: rank order, left to right, in double */
    }
    ASSERT_EQ_INT(bad, 0);
    for (int i = 0; i < 5; i++) {
        double s = 0.1 + i;
        for (int r = 1; r < N; r++)
            s += 0.1 * (r + 1) + i;
        ASSERT_TRUE(y[i] == s);
    }
    free(x);
    free(y);
}

static void test_bcast_gathers(void)
{
    char buf[64];
    snprintf(buf, sizeof buf, "from rank %d", R);
    ASSERT_OK(cmir_dist_bcast(buf, sizeof buf, N - 1));
    char want[64];
    snprintf(want, sizeof want, "from rank %d", N - 1);
    ASSERT_TRUE(!strcmp(buf, want));
    int64_t *all = malloc(sizeof(int64_t) * (size_t)N), mine = 1000 + R;
    REQUIRE(all);
    ASSERT_OK(cmir_dist_allgather(&mine, sizeof mine, all));
    for (int r = 0; r < N; r++)
        ASSERT_EQ_INT(all[r], 1000 + r);
    free(all);
    /* rank r sends r + 1 bytes of value r (rank 0 of 1: 1 byte) */
    char send[64];
    memset(send, 'a' + R, sizeof send);
    void *got = NULL;
    size_t cnt[64];
    ASSERT_OK(cmir_dist_gatherv(send, (size_t)R + 1, &got, cnt, 0));
    if (R == 0) {
        REQUIRE(got);
        size_t at = 0;
        for (int r = 0; r < N; r++) {
            ASSERT_EQ_INT(cnt[r], r + 1);
            for (int j = 0; j <= r; j++)
                ASSERT_EQ_INT(((char *)got)[at + j], 'a' + r);
            at += cnt[r];
        }
    } else
        ASSERT_TRUE(got == NULL);
    cmir_dist_free(got);
    int m[2] = {R, -R};
    ASSERT_OK(cmir_dist_max_int(m, 2));
    ASSERT_EQ_INT(m[0], N - 1);
    ASSERT_EQ_INT(m[1], 0);
    ASSERT_OK(cmir_dist_barrier());
}

static void test_agree(void)
{
    ASSERT_OK(cmir_dist_agree(0));
    /* alone, rank 0 fails; in a job, every rank but 0 */
    int fails = N == 1 || R >= 1;
    if (fails)
        cmir_dist_bcast(NULL, 1, 0); /* CMIR_EINVAL "cmir_dist_bcast: bad arguments" */
    int rc = cmir_dist_agree(fails ? CMIR_EINVAL : 0);
    const char *want = N == 1 ? "cmir_dist_bcast: bad arguments" : "rank 1: cmir_dist_bcast: bad arguments";
    ASSERT_EQ_INT(rc, CMIR_EINVAL);
    ASSERT_TRUE(!strcmp(cmir_last_error(), want));
    /* an agreed failure agreed again (every rank fails) keeps one prefix */
    rc = cmir_dist_agree(rc);
    ASSERT_EQ_INT(rc, CMIR_EINVAL);
    ASSERT_TRUE(!strcmp(cmir_last_error(), want));
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (cmir_dist_init(&argc, &argv)) {
        fprintf(stderr, "FAIL: cmir_dist_init: %s\n", cmir_last_error());
        return 1;
    }
    R = cmir_dist_rank();
    N = cmir_dist_size();
    printf("rank %d of %d (built %s MPI)\n", R, N, cmir_dist_built_with_mpi() ? "with" : "without");
    if (getenv("CMIR_TEST_WANT_RANKS") && atoi(getenv("CMIR_TEST_WANT_RANKS")) != N) {
        fprintf(stderr, "FAIL: %d ranks, the launcher started %s\n", N, getenv("CMIR_TEST_WANT_RANKS"));
        return 1;
    }
    RUN(test_sum_ordered);
    RUN(test_bcast_gathers);
    RUN(test_agree);
    cmir_dist_finalize();
    TEST_MAIN_END();
}
