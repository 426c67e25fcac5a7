/* Small assertion macros for the test programs: each failure prints the
 * expression, both values and the location, and marks the test failed;
 * REQUIRE also stops the test case; SKIP stops it as skipped (a missing
 * dependency); TEST_INIT selects cases by name (-t NAME runs only NAME,
 * -x NAME leaves NAME out; both repeatable); t_sweep fails each allocation
 * in turn; TEST_MAIN_END returns the exit code ctest reads (1 = failed,
 * 77 = a case was skipped and none failed, 0 = passed). */
#ifndef CMIR_TEST_UTIL_H
#define CMIR_TEST_UTIL_H

#include "cmir/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;
__attribute__((unused)) static int t_skipped;

/* Strings a test allocates for its whole run (paths), freed at the end so
 * LeakSanitizer sees no leak. */
static char *t_kept[1024];
static int t_nkept;
__attribute__((unused)) static const char *t_keep(char *s)
{
    if (s && t_nkept < 1024)
        t_kept[t_nkept++] = s;
    return s;
}

#define FAILED_AT() fprintf(stderr, "  at %s:%d\n", __FILE__, __LINE__), t_failures++

#define ASSERT_TRUE(c)                                                        \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "FAIL: %s\n", #c);                                \
            FAILED_AT();                                                      \
        }                                                                     \
    } while (0)

/* expr returns CMIR_EINVAL and cmir_last_error() names field (the
 * check_params tests; the test includes a cmir header). */
#define REFUSES(expr, field)                                                  \
    do {                                                                      \
        ASSERT_EQ_INT((expr), CMIR_EINVAL);                                   \
        ASSERT_TRUE(strstr(cmir_last_error(), (field)) != NULL);             \
    } while (0)

/* Asserts c and, when it fails, stops the test case (returns from the
 * calling void function): for preconditions the rest depends on. */
#define REQUIRE(c)                                                            \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "FAIL (required): %s\n", #c);                     \
            FAILED_AT();                                                      \
            return;                                                           \
        }                                                                     \
    } while (0)

/* Stops the test case as skipped, saying why (a dependency is missing):
 * ctest then reads 77 (SKIP_RETURN_CODE), never a pass. */
#define SKIP(...)                                                             \
    do {                                                                      \
        printf("  SKIP: ");                                                   \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
        t_skipped++;                                                          \
        return;                                                               \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                   \
    do {                                                                      \
        long long va_ = (long long)(a), vb_ = (long long)(b);                 \
        if (va_ != vb_) {                                                     \
            fprintf(stderr, "FAIL: %s == %s: %lld != %lld\n", #a, #b, va_, vb_); \
            FAILED_AT();                                                      \
        }                                                                     \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                \
    do {                                                                      \
        double va_ = (double)(a), vb_ = (double)(b);                          \
        if (!(fabs(va_ - vb_) <= (tol))) {                                    \
            fprintf(stderr, "FAIL: %s ~ %s: %.9g vs %.9g (tol %g)\n", #a, #b, \
                    va_, vb_, (double)(tol));                                 \
            FAILED_AT();                                                      \
        }                                                                     \
    } while (0)

#define ASSERT_LE(a, b)                                                       \
    do {                                                                      \
        double va_ = (double)(a), vb_ = (double)(b);                          \
        if (!(va_ <= vb_)) {                                                  \
            fprintf(stderr, "FAIL: %s <= %s: %.9g > %.9g\n", #a, #b, va_, vb_); \
            FAILED_AT();                                                      \
        }                                                                     \
    } while (0)

#define ASSERT_OK(expr)                                                       \
    do {                                                                      \
        int rc_ = (expr);                                                     \
        if (rc_ != 0) {                                                       \
            fprintf(stderr, "FAIL: %s returned %d: %s\n", #expr, rc_,         \
                    cmir_last_error());                                       \
            FAILED_AT();                                                      \
        }                                                                     \
    } while (0)

/* ---- selecting test cases by name ---- */
static const char *t_sel[64];
static char t_sel_kind[64]; /* 't' run only these, 'x' leave out */
static int t_sel_hit[64], t_nsel;

/* Takes "-t NAME" and "-x NAME" out of argv (the rest keeps its order). */
__attribute__((unused)) static void t_init(int *argc, char **argv)
{
    int o = 1;
    for (int i = 1; i < *argc; i++) {
        if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "-x")) && i + 1 < *argc && t_nsel < 64) {
            t_sel_kind[t_nsel] = argv[i][1];
            t_sel[t_nsel++] = argv[++i];
        } else {
            argv[o++] = argv[i];
        }
    }
    *argc = o;
    argv[o] = NULL;
}
#define TEST_INIT(argc, argv) t_init(&(argc), (argv))

__attribute__((unused)) static int t_selected(const char *name)
{
    int only = 0, in = 0;
    for (int i = 0; i < t_nsel; i++) {
        int match = !strcmp(t_sel[i], name);
        t_sel_hit[i] |= match;
        if (t_sel_kind[i] == 't') {
            only = 1;
            in |= match;
        } else if (match) {
            return 0;
        }
    }
    return !only || in;
}

#define RUN(test)                                                             \
    do {                                                                      \
        if (t_selected(#test)) {                                              \
            int before_ = t_failures, skipped_ = t_skipped;                   \
            test();                                                           \
            printf("%s %s\n", t_failures != before_  ? "FAIL"                  \
                               : t_skipped != skipped_ ? "skip"               \
                                                       : "ok  ",              \
                   #test);                                                    \
            fflush(stdout);                                                   \
        }                                                                     \
    } while (0)

/* ---- allocation failures ----
 * t_sweep runs fn(user) with allocation n failing, for n = 1, 1 + step,
 * 1 + 2 step, ... until a run makes fewer than n allocations (the failure
 * was never reached: that run must return 0) or n passes max. Every run
 * that reached its failure must return CMIR_ENOMEM with
 * cmir_last_error_code() CMIR_ENOMEM (fn returns cmir_last_error_code()
 * for a constructor that gave NULL). Records a test failure otherwise, and
 * returns the number of allocations of the run without a failure (0 when
 * max was passed). */
typedef int (*t_sweep_fn)(void *user);
static int t_fail_at, t_calls;
__attribute__((unused)) static void *t_fail_malloc(size_t n, void *u)
{
    (void)u;
    return ++t_calls == t_fail_at ? NULL : malloc(n);
}
__attribute__((unused)) static void *t_fail_realloc(void *p, size_t n, void *u)
{
    (void)u;
    return ++t_calls == t_fail_at ? NULL : realloc(p, n);
}
__attribute__((unused)) static void t_plain_free(void *p, void *u)
{
    (void)u;
    free(p);
}

__attribute__((unused)) static int t_sweep(const char *what, t_sweep_fn fn, void *user, int step, int max)
{
    cmir_allocator a = {t_fail_malloc, t_fail_realloc, t_plain_free, NULL};
    int n, failures = 0, bad = 0, full = 0;
    for (n = 1; n <= max; n += step) {
        t_fail_at = n;
        t_calls = 0;
        cmir_set_allocator(&a);
        int rc = fn(user);
        cmir_set_allocator(NULL);
        if (t_calls < n) { /* the failure was never reached */
            if (rc != 0) {
                printf("  %s: run without a failure returned %d: %s\n", what, rc, cmir_last_error());
                bad++;
            }
            full = t_calls;
            break;
        }
        failures++;
        if ((rc != CMIR_ENOMEM || cmir_last_error_code() != CMIR_ENOMEM) && bad++ < 3)
            printf("  %s: allocation %d failed, got %d (%s) instead of CMIR_ENOMEM\n", what, n, rc,
                   cmir_last_error());
    }
    t_fail_at = 0;
    if (n > max) {
        printf("  %s: allocation %d still reached: raise max\n", what, max);
        bad++;
    }
    printf("  %s: %d injected failures (every %d%s allocation), all reported; %d allocations in a full run\n",
           what, failures, step, step == 1 ? "st" : "th", full);
    if (bad) {
        fprintf(stderr, "FAIL: allocation-failure sweep of %s\n", what);
        FAILED_AT();
    }
    return full;
}

/* Unknown -t/-x names fail: a misspelt case must not pass by running nothing. */
#define TEST_MAIN_END()                                                       \
    do {                                                                      \
        while (t_nkept)                                                       \
            free(t_kept[--t_nkept]);                                          \
        for (int i_ = 0; i_ < t_nsel; i_++)                                   \
            if (!t_sel_hit[i_]) {                                             \
                fprintf(stderr, "FAIL: no test case named %s\n", t_sel[i_]);  \
                t_failures++;                                                 \
            }                                                                 \
        printf("%d failure(s), %d case(s) skipped\n", t_failures, t_skipped); \
        return t_failures ? 1 : t_skipped ? 77 : 0;                           \
    } while (0)

/* In a sanitizer build, "LD_PRELOAD='libasan[:libubsan]'" for the runtimes
 * this test runs with (read from /proc/self/maps), followed by opts; "" in
 * a normal build. GDAL's programs and QGIS are not instrumented, and the
 * instrumented plugin needs the runtimes loaded first. */
static inline void t_sanitizer_preload(char *pre, size_t n, const char *opts)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096], libs[2][1024] = {"", ""};
    pre[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (!path)
            continue;
        path[strcspn(path, "\n")] = '\0';
        for (int i = 0; i < 2; i++)
            if (!libs[i][0] && strstr(path, i ? "/libubsan.so" : "/libasan.so"))
                snprintf(libs[i], sizeof libs[i], "%s", path);
    }
    fclose(f);
    if (libs[0][0])
        snprintf(pre, n, "LD_PRELOAD='%s%s%s'%s", libs[0], libs[1][0] ? ":" : "", libs[1], opts);
}

/* Runs the shell command line full (stdout and stderr together into buf,
 * cap bytes, NUL-terminated, the rest read and dropped); returns its exit
 * status, 1000 + signal when it was killed (sh reports a killed child as
 * 128 + signal), -1 when it could not be started. For tests that drive
 * GDAL's and QGIS's programs. */
#include <sys/wait.h>
static inline int t_capture(const char *full, char *buf, size_t cap)
{
    FILE *p = popen(full, "r");
    size_t n = 0, got;
    buf[0] = '\0';
    if (!p)
        return -1;
    while (n < cap - 1 && (got = fread(buf + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    buf[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return rc > 128 ? 1000 + rc - 128 : rc;
}

/* The output of such a command must contain s. */
#define EXPECT_CONTAINS(out, s)                                                   \
    do {                                                                          \
        if (!strstr((out), (s))) {                                                \
            fprintf(stderr, "FAIL: output lacks '%s'\n--- output ---\n%.3000s\n", \
                    (s), (out));                                                  \
            FAILED_AT();                                                          \
        }                                                                         \
    } while (0)

#endif
