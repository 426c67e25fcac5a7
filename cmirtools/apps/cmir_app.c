/* Common plumbing of the command-line programs: general options through
 * GDAL, the terminal progress bar and error lines. */
#include "cmir_app.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int cmir_app_progress(double frac, const char *msg, void *user)
{
    if (user && *(const int *)user)
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
    if (!quiet) {
        /* GDAL's bar restarts when frac goes backwards; keep it monotone. */
        if (frac < last)
            frac = last;
        GDALTermProgress(frac, NULL, NULL);
        last = frac;
    }
    return 0;
}

int cmir_app_fail(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

void cmir_app_done(char **argv)
{
    CSLDestroy(argv);
    GDALDestroyDriverManager();
}
