/* Small assertion macros for the test programs: each failure prints the
 * expression, both values and the location, and marks the test failed;
 * TEST_MAIN_END returns the exit code ctest reads (77 = skipped). */
#ifndef CMIR_TEST_UTIL_H
#define CMIR_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;

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

#define RUN(test)                                                             \
    do {                                                                      \
        int before_ = t_failures;                                             \
        test();                                                               \
        printf("%s %s\n", t_failures == before_ ? "ok  " : "FAIL", #test);    \
        fflush(stdout);                                                       \
    } while (0)

#define TEST_MAIN_END()                                                       \
    do {                                                                      \
        while (t_nkept)                                                       \
            free(t_kept[--t_nkept]);                                          \
        printf("%d failure(s)\n", t_failures);                                \
        return t_failures ? 1 : 0;                                            \
    } while (0)

#endif
