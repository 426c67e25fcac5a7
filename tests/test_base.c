/* Tests of the base module: seeded RNG (determinism and distribution),
 * error codes and thread-local messages, the allocator hook failing the
 * n-th allocation, the parallel loop and work splitting, the split GEMM
 * against a naive loop, and the arena. */
#include "cmir/nn.h"
#include "base/internal.h"
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

static void test_rng(void)
{
    cmir_rng *a = cmir_rng_new(42), *b = cmir_rng_new(42), *c = cmir_rng_new(43);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = cmir_rng_u64(a), y = cmir_rng_u64(b), z = cmir_rng_u64(c);
        same &= x == y;
        diff += x != z;
    }
    ASSERT_TRUE(same);
    ASSERT_TRUE(diff > 95);
    /* Moments of uniform and normal variates over 200k draws. */
    double su = 0, sn = 0, sn2 = 0;
    const int n = 200000;
    uint64_t lo = 100, hi = 0;
    for (int i = 0; i < n; i++) {
        float u = cmir_rng_uniform(a);
        ASSERT_TRUE(u >= 0.0f && u < 1.0f);
        su += u;
        double g = cmir_rng_normal(a);
        sn += g;
        sn2 += g * g;
        uint64_t k = cmir_rng_below(a, 7);
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    ASSERT_NEAR(su / n, 0.5, 0.005);
    ASSERT_NEAR(sn / n, 0.0, 0.01);
    ASSERT_NEAR(sn2 / n, 1.0, 0.02);
    ASSERT_EQ_INT(lo, 0);
    ASSERT_EQ_INT(hi, 6);
    /* Reseeding restarts the sequence. */
    cmir_rng_seed(a, 42);
    cmir_rng_seed(b, 42);
    ASSERT_TRUE(cmir_rng_u64(a) == cmir_rng_u64(b));
    cmir_rng_free(a);
    cmir_rng_free(b);
    cmir_rng_free(c);
    cmir_rng_free(NULL);
}

static void *other_thread(void *arg)
{
    (void)arg;
    cmir__error(CMIR_EIO, "message from the other thread");
    return NULL;
}

static void test_errors(void)
{
    ASSERT_EQ_INT(cmir__error(CMIR_EINVAL, "bad %d", 7), CMIR_EINVAL);
    ASSERT_TRUE(strcmp(cmir_last_error(), "bad 7") == 0);
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    ASSERT_TRUE(strcmp(cmir_last_error(), "bad 7") == 0); /* thread-local */
    cmir__error_prefix("matio");
    ASSERT_TRUE(strcmp(cmir_last_error(), "matio: bad 7") == 0);
    ASSERT_TRUE(strcmp(cmir_strerror(CMIR_EFORMAT), "CMIR_EFORMAT") == 0);
    ASSERT_TRUE(strcmp(cmir_version(), CMIR_VERSION_STRING) == 0);
    ASSERT_TRUE(strstr(cmir_build_info(), "OpenBLAS") != NULL);
    cmir_exec_params p = cmir_exec_default_params();
    p.threads = -3;
    ASSERT_TRUE(cmir_exec_new(p) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "cmir_exec_params.threads: must be in [0, 1024], got -3") != NULL);
    ASSERT_OK(cmir_exec_check_params(cmir_exec_default_params()));
    ASSERT_EQ_INT(cmir_exec_check_params(p), CMIR_EINVAL);
}

/* Creating an optimiser with two parameters: each allocation failing in
 * turn is reported as CMIR_ENOMEM (by code, not by message), never a crash. */
static int optim_once(void *u)
{
    (void)u;
    float w[4] = {0}, g[4] = {0};
    cmir_optim *o = cmir_optim_new(cmir_optim_default_params());
    int rc = o ? cmir_optim_add(o, w, g, 4) : cmir_last_error_code();
    if (!rc)
        rc = cmir_optim_add(o, w, g, 4);
    if (rc)
        ASSERT_TRUE(strstr(cmir_last_error(), "out of memory") != NULL); /* the message says it too */
    cmir_optim_free(o);
    return rc;
}

static void test_alloc_hook(void)
{
    ASSERT_TRUE(t_sweep("optimiser", optim_once, NULL, 1, 50) > 2);
    cmir_allocator a = {t_fail_malloc, t_fail_realloc, t_plain_free, NULL};
    cmir_set_allocator(&a);
    t_fail_at = 1;
    t_calls = 0;
    ASSERT_TRUE(cmir_rng_new(1) == NULL);
    ASSERT_EQ_INT(cmir_last_error_code(), CMIR_ENOMEM);
    t_fail_at = 0;
    cmir_set_allocator(NULL);
}

static int counts[8];
static int count_task(int i, int n, void *u)
{
    (void)u;
    counts[i] = n;
    return i == 2 ? -9 : 0;
}

static void test_parallel(void)
{
    memset(counts, 0, sizeof counts);
    ASSERT_EQ_INT(cmir__parallel(4, count_task, NULL), -9);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(counts[i], 4);
    /* split covers [0, total) exactly, parts differ by at most 1. */
    for (int n = 1; n <= 5; n++) {
        size_t prev = 0;
        for (int i = 0; i < n; i++) {
            size_t lo, hi;
            cmir__split(13, n, i, &lo, &hi);
            ASSERT_EQ_INT(lo, prev);
            ASSERT_TRUE(hi - lo == (size_t)(13 / n) || hi - lo == (size_t)(13 / n + 1));
            prev = hi;
        }
        ASSERT_EQ_INT(prev, 13);
    }
}

static void test_arena(void)
{
    cmir_arena *a = cmir_arena_new(1024);
    float *p = cmir_arena_floats(a, 10), *q = cmir_arena_floats(a, 10);
    ASSERT_TRUE(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0);
    ASSERT_TRUE(q >= p + 10);
    ASSERT_TRUE(cmir_arena_floats(a, 1000) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "arena full") != NULL);
    cmir_arena_reset(a);
    ASSERT_EQ_INT(cmir_arena_used(a), 0);
    ASSERT_TRUE(cmir_arena_floats(a, 200) == p);
    cmir_arena_free(a);
    cmir_arena_free(NULL);
}

/* Atomic output files: commit puts the bytes at the target and leaves no
 * temporary file; abort leaves the previous target untouched; a target in a
 * missing directory fails at open; the name keeps the target's extension. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_atomic_file(void)
{
    char dir[] = "/tmp/cmir_atomic_XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char path[256], buf[16] = {0};
    snprintf(path, sizeof path, "%s/out.gpkg", dir);
    cmir__atomic_file af;
    ASSERT_EQ_INT(cmir__atomic_open(&af, path, 0), 0);
    ASSERT_TRUE(strstr(af.tmp, ".gpkg") != NULL && strcmp(af.tmp, path) != 0);
    ASSERT_EQ_INT(write(af.fd, "first", 5), 5);
    ASSERT_EQ_INT(cmir__atomic_commit(&af), 0);
    FILE *f = fopen(path, "rb");
    ASSERT_TRUE(f != NULL);
    if (f) {
        ASSERT_EQ_INT(fread(buf, 1, sizeof buf - 1, f), 5);
        fclose(f);
    }
    ASSERT_TRUE(strcmp(buf, "first") == 0);
    ASSERT_EQ_INT(count_entries(dir), 1);
    /* abort: the target keeps its bytes, the temporary file goes */
    ASSERT_EQ_INT(cmir__atomic_open(&af, path, 0), 0);
    ASSERT_EQ_INT(write(af.fd, "second!", 7), 7);
    ASSERT_EQ_INT(count_entries(dir), 2);
    cmir__atomic_abort(&af);
    cmir__atomic_abort(&af); /* twice is harmless */
    ASSERT_EQ_INT(count_entries(dir), 1);
    /* name only: the writer creates the file */
    ASSERT_EQ_INT(cmir__atomic_open(&af, path, CMIR__ATOMIC_NAME_ONLY), 0);
    ASSERT_EQ_INT(af.fd, -1);
    ASSERT_EQ_INT(access(af.tmp, F_OK), -1);
    f = fopen(af.tmp, "wb");
    ASSERT_TRUE(f && fputs("third", f) >= 0 && fclose(f) == 0);
    ASSERT_EQ_INT(cmir__atomic_commit(&af), 0);
    f = fopen(path, "rb");
    memset(buf, 0, sizeof buf);
    if (f) {
        ASSERT_EQ_INT(fread(buf, 1, sizeof buf - 1, f), 5);
        fclose(f);
    }
    ASSERT_TRUE(strcmp(buf, "third") == 0);
    ASSERT_EQ_INT(count_entries(dir), 1);
    /* a missing directory fails at open, naming the target */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/out.tif", dir);
    ASSERT_EQ_INT(cmir__atomic_open(&af, bad, 0), CMIR_EIO);
    ASSERT_TRUE(strstr(cmir_last_error(), bad) != NULL);
    cmir__atomic_abort(&af);
    unlink(path);
    rmdir(dir);
}

/* cmir__sgemm split among threads (by rows, or by columns when C is wider
 * than tall) against a naive double loop, every transpose, with beta: within
 * float rounding of the loop at 1, 2 and 3 threads, the same bits when
 * called again with the same thread count, and the padding untouched. */
static void test_sgemm_split(void)
{
    /* over 2^24 multiply-adds, where the split starts, by rows and by columns */
    static const int shapes[3][3] = {{600, 200, 150}, {40, 3000, 150}, {3, 5, 7}};
    cmir_rng *r = cmir_rng_new(5);
    REQUIRE(r);
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
                float *a = malloc(sizeof(float) * na), *b = malloc(sizeof(float) * nb);
                float *c0 = malloc(sizeof(float) * (size_t)m * ldc), *c[3];
                REQUIRE(a && b && c0);
                for (size_t i = 0; i < na; i++)
                    a[i] = 2.0f * cmir_rng_uniform(r) - 1.0f;
                for (size_t i = 0; i < nb; i++)
                    b[i] = 2.0f * cmir_rng_uniform(r) - 1.0f;
                for (size_t i = 0; i < (size_t)m * ldc; i++)
                    c0[i] = cmir_rng_uniform(r);
                for (int t = 0; t < 3; t++) {
                    c[t] = malloc(sizeof(float) * (size_t)m * ldc);
                    REQUIRE(c[t]);
                    memcpy(c[t], c0, sizeof(float) * (size_t)m * ldc);
                    cmir__sgemm(t + 1, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c[t], ldc);
                }
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double d = 0;
                        for (int q = 0; q < k; q++)
                            d += (double)(ta ? a[q * lda + i] : a[i * lda + q]) *
                                 (tb ? b[j * ldb + q] : b[q * ldb + j]);
                        double want = 0.5 * d + 0.25 * c0[i * ldc + j];
                        for (int t = 0; t < 3; t++)
                            ASSERT_NEAR(c[t][i * ldc + j], want, 1e-5 * (1 + fabs(want)) * k);
                    }
                float *again = malloc(sizeof(float) * (size_t)m * ldc);
                REQUIRE(again);
                memcpy(again, c0, sizeof(float) * (size_t)m * ldc);
                cmir__sgemm(2, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, again, ldc);
                ASSERT_TRUE(!memcmp(again, c[1], sizeof(float) * (size_t)m * ldc));
                free(again);
                for (int i = 0; i < m; i++) /* the padding past n is untouched */
                    for (int j = n; j < ldc; j++)
                        for (int t = 0; t < 3; t++)
                            ASSERT_TRUE(c[t][i * ldc + j] == c0[i * ldc + j]);
                for (int t = 0; t < 3; t++)
                    free(c[t]);
                free(a);
                free(b);
                free(c0);
            }
    cmir_rng_free(r);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    RUN(test_rng);
    RUN(test_errors);
    RUN(test_alloc_hook);
    RUN(test_parallel);
    RUN(test_sgemm_split);
    RUN(test_arena);
    RUN(test_atomic_file);
    TEST_MAIN_END();
}
