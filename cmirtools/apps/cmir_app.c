/* Common plumbing of the command-line programs: general options through
 * GDAL, strict option values, the terminal progress bar and error lines. */
#include "cmir_app.h"
#include "cmir/dist.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cmir_app_init(const char *prog, const char *usage, int *argc, char ***argv, int *done)
{
    *done = 0;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp((*argv)[i], "--version")) {
            printf("%s (CMIR %s, %s)\n", prog, cmir_version(), GDALVersionInfo("--version"));
            *done = 1;
            return 0;
        }
        if (!strcmp((*argv)[i], "--help") || !strcmp((*argv)[i], "-h")) {
            fputs(usage, stdout);
            *done = 1;
            return 0;
        }
    }
    GDALAllRegister();
    int n = GDALGeneralCmdLineProcessor(*argc, argv, 0);
    if (n < 1) { /* --formats, --help-general, ... handled, or an error */
        *done = 1;
        return n == 0 ? 0 : 1;
    }
    *argc = n;
    return 0;
}

/* The bar only on a terminal: in a pipe or a file its fragments ("30.",
 * ".50") would mix with the programs' lines. */
static int bar_wanted(void)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDOUT_FILENO);
    return tty;
}

int cmir_app_progress(double frac, const char *msg, void *user)
{
    if ((user && *(const int *)user) || !bar_wanted())
        return 0;
    (void)msg;
    GDALTermProgress(frac, NULL, NULL);
    return 0;
}

int cmir_app_progress_lines(double frac, const char *msg, void *user)
{
    static double last = -1;
    int quiet = user && *(const int *)user;
    if (msg && quiet)
        return 0;
    if (msg) {
        if (last >= 0 && last < 1)
            fputc('\n', stdout); /* end the bar's line */
        printf("%s\n", msg);
        fflush(stdout);
        last = -1;
        return 0;
    }
    if (!quiet && bar_wanted()) {
        /* GDAL's bar restarts when frac goes backwards; keep it monotone. */
        if (frac < last)
            frac = last;
        GDALTermProgress(frac, NULL, NULL);
        last = frac;
    }
    return 0;
}

int cmir_app_output(const char *prog, const char *path, int overwrite)
{
    struct stat st;
    if (!path || overwrite || stat(path, &st) != 0) /* /vsi paths: GDAL's own rules */
        return 0;
    return cmir_app_fail(prog, "%s: already exists (use -overwrite to replace it)", path);
}

int cmir_app_list_add(const char *prog, char ***list, int *n, const char *v)
{
    char **l = realloc(*list, sizeof(char *) * (size_t)(*n + 2));
    if (!l)
        return cmir_app_fail(prog, "out of memory");
    l[(*n)++] = (char *)v;
    l[*n] = NULL;
    *list = l;
    return 0;
}

int cmir_app_fail(const char *prog, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(prog);
    const char *m = msg;
    if (!strncmp(m, prog, n) && m[n] == ':' && m[n + 1] == ' ')
        m += n + 2; /* the library named the function that shares our name */
    /* one line: a newline inside a message would make two */
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if (cmir_dist_rank() > 0) /* an MPI job: every rank reaches the failure, rank 0 says it */
        return 1;
    fprintf(stderr, "%s: %s\n", prog, m);
    return 1;
}

/* ---- strict option values ---- */
static int blank_or_empty(const char *s) { return !*s || isspace((unsigned char)*s); }

/* strtoll over the whole of s: 1 = parsed, 0 = not an integer, -1 = overflow */
static int whole_ll(const char *s, long long *v)
{
    char *end;
    if (blank_or_empty(s))
        return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    if (end == s || *end)
        return 0;
    return errno == ERANGE ? -1 : 1;
}

/* strtod over the whole of s: 1 = parsed, 0 = not a number, -1 = not finite */
static int whole_d(const char *s, const char *stop, double *v, const char **endp)
{
    char *end;
    if (blank_or_empty(s))
        return 0;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || (stop ? !strchr(stop, *end) : *end != '\0'))
        return 0;
    if (endp)
        *endp = end;
    return errno == ERANGE || !isfinite(*v) ? -1 : 1;
}

static void fmt_range(char *b, size_t cap, double lo, double hi)
{
    if (lo == -HUGE_VAL && hi == HUGE_VAL)
        snprintf(b, cap, "a finite number");
    else if (hi == HUGE_VAL)
        snprintf(b, cap, ">= %.17g", lo);
    else if (lo == -HUGE_VAL)
        snprintf(b, cap, "<= %.17g", hi);
    else
        snprintf(b, cap, "%.17g..%.17g", lo, hi);
}

int cmir_app_int64(const char *prog, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    long long v = 0;
    int k = whole_ll(s, &v);
    if (!k)
        cmir_app_fail(prog, "%s: '%s' is not an integer (%" PRId64 "..%" PRId64 ")", opt, s, lo, hi);
    else if (k < 0 || v < lo || v > hi)
        cmir_app_fail(prog, "%s: %s is out of range (%" PRId64 "..%" PRId64 ")", opt, s, lo, hi);
    else {
        *out = (int64_t)v;
        return 0;
    }
    return 2;
}

int cmir_app_int(const char *prog, const char *opt, const char *s, long lo, long hi, int *out)
{
    int64_t v;
    int rc = cmir_app_int64(prog, opt, s, lo, hi, &v);
    if (!rc)
        *out = (int)v;
    return rc;
}

int cmir_app_u64(const char *prog, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = blank_or_empty(s) || *s == '-' || *s == '+' ? 0 : strtoull(s, &end, 10);
    if (blank_or_empty(s) || *s == '-' || *s == '+' || end == s || *end)
        cmir_app_fail(prog, "%s: '%s' is not an unsigned integer (0..%" PRIu64 ")", opt, s, UINT64_MAX);
    else if (errno == ERANGE)
        cmir_app_fail(prog, "%s: %s is out of range (0..%" PRIu64 ")", opt, s, UINT64_MAX);
    else {
        *out = (uint64_t)v;
        return 0;
    }
    return 2;
}

int cmir_app_double(const char *prog, const char *opt, const char *s, double lo, double hi, double *out)
{
    double v = 0;
    char r[96];
    fmt_range(r, sizeof r, lo, hi);
    int k = whole_d(s, NULL, &v, NULL);
    if (!k)
        cmir_app_fail(prog, "%s: '%s' is not a number (%s)", opt, s, r);
    else if (k < 0 || v < lo || v > hi)
        cmir_app_fail(prog, "%s: %s is out of range (%s)", opt, s, r);
    else {
        *out = v;
        return 0;
    }
    return 2;
}

int cmir_app_float(const char *prog, const char *opt, const char *s, double lo, double hi, float *out)
{
    double v;
    int rc = cmir_app_double(prog, opt, s, lo, hi, &v);
    if (!rc && fabs(v) > (double)FLT_MAX) {
        cmir_app_fail(prog, "%s: %s is out of range (a float)", opt, s);
        return 2;
    }
    if (!rc)
        *out = (float)v;
    return rc;
}

int cmir_app_doubles(const char *prog, const char *opt, const char *s, int n, double lo, double hi, double *out)
{
    double v[16];
    const char *p = s, *end = s;
    char r[96];
    fmt_range(r, sizeof r, lo, hi);
    for (int k = 0; k < n && k < 16; k++) {
        int ok = whole_d(p, k < n - 1 ? "," : "", &v[k], &end);
        if (ok > 0 && (k < n - 1 ? *end == ',' : !*end) && v[k] >= lo && v[k] <= hi) {
            p = end + 1;
            continue;
        }
        if (ok == 0 || (k < n - 1 ? *end != ',' : *end != '\0'))
            cmir_app_fail(prog, "%s: '%s' is not %d comma-separated numbers", opt, s, n);
        else
            cmir_app_fail(prog, "%s: '%s': number %d is out of range (%s)", opt, s, k + 1, r);
        return 2;
    }
    memcpy(out, v, sizeof(double) * (size_t)n);
    return 0;
}

int cmir_app_ints(const char *prog, const char *opt, const char *s, long lo, long hi, int max, int *out, int *n)
{
    int v[64], k = 0;
    const char *p = s;
    if (max > 64)
        max = 64;
    for (;;) {
        char item[64];
        size_t len = strcspn(p, ",");
        long long x = 0;
        int ok = len < sizeof item ? (memcpy(item, p, len), item[len] = '\0', whole_ll(item, &x)) : 0;
        if (!ok) {
            cmir_app_fail(prog, "%s: '%s' is not a comma-separated list of integers", opt, s);
            return 2;
        }
        if (ok < 0 || x < lo || x > hi) {
            cmir_app_fail(prog, "%s: '%s': %.*s is out of range (%ld..%ld)", opt, s, (int)len, p, lo, hi);
            return 2;
        }
        if (k == max) {
            cmir_app_fail(prog, "%s: '%s' has more than %d values", opt, s, max);
            return 2;
        }
        v[k++] = (int)x;
        if (!p[len])
            break;
        p += len + 1;
    }
    memcpy(out, v, sizeof(int) * (size_t)k);
    *n = k;
    return 0;
}

const char *cmir_app_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cmir_app_fail(prog, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

void cmir_app_done(char **argv)
{
    CSLDestroy(argv);
    GDALDestroyDriverManager();
}

int cmir_app_common_option(const char *prog, int argc, char **argv, int *i, cmir_app_common *c)
{
    const char *a = argv[*i];
    if (!strcmp(a, "-overwrite")) {
        c->overwrite = 1;
        return 1;
    }
    if (!c->takes_oo || strcmp(a, "-oo"))
        return 0;
    const char *v = cmir_app_value(prog, argc, argv, i);
    return v && !cmir_app_list_add(prog, &c->oo, &c->n_oo, v) ? 1 : -1;
}

void cmir_app_common_free(cmir_app_common *c)
{
    free(c->oo);
    c->oo = NULL;
    c->n_oo = 0;
}
