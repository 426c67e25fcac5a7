/* Shared by CMIR's command-line programs (not installed): GDAL-style
 * general options (--config, --debug, --formats, --help-general through
 * GDAL's own processor; --version and --help here), one strict parser for
 * option values, a terminal progress bar bridged to libcmir's cancellable
 * callback, and one-line errors. */
#ifndef CMIR_APP_H
#define CMIR_APP_H

#include "cmir/base.h"

#include <stdint.h>

/* Handles --version and --help/-h (printing `usage` to stdout and
 * exiting 0), registers GDAL drivers and runs GDAL's general option
 * processor over argv (which may rewrite argc/argv). Returns 0 to go on,
 * or an exit code (>= 0) with *done set when the program should stop. */
int cmir_app_init(const char *prog, const char *usage, int *argc, char ***argv, int *done);

/* Progress callback for libcmir functions: GDAL's 0...10...20... bar on
 * stdout when stdout is a terminal (as GDAL prints it); nothing when it is
 * not (a pipe or a file gets whole lines only, never bar fragments), or
 * when user points to an int that is non-zero (quiet). Never cancels. */
int cmir_app_progress(double frac, const char *msg, void *user);

/* Like cmir_app_progress, and prints a non-NULL msg on its own line:
 * per-epoch summaries and the like (nothing at all when quiet). On a
 * terminal the bar is ended before the line; elsewhere only the lines. */
int cmir_app_progress_lines(double frac, const char *msg, void *user);

/* ---- option values, parsed strictly ----
 * The whole value must be the number, in base 10, without leading blanks
 * or trailing characters ("5x", "116,1" and "" are refused), within
 * [lo, hi] (doubles: finite as well). On failure each prints one line,
 * "prog: OPT: 'VALUE' is not an integer (LO..HI)" or "prog: OPT: VALUE is
 * out of range (LO..HI)", and returns 2 (the exit code of a usage error);
 * 0 on success, *out untouched on failure. */
int cmir_app_int(const char *prog, const char *opt, const char *s, long lo, long hi, int *out);
int cmir_app_int64(const char *prog, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cmir_app_u64(const char *prog, const char *opt, const char *s, uint64_t *out);
int cmir_app_double(const char *prog, const char *opt, const char *s, double lo, double hi, double *out);
int cmir_app_float(const char *prog, const char *opt, const char *s, double lo, double hi, float *out);
/* Exactly n comma-separated numbers in [lo, hi] ("xmin,ymin,xmax,ymax"). */
int cmir_app_doubles(const char *prog, const char *opt, const char *s, int n, double lo, double hi, double *out);
/* 1 to max comma-separated integers in [lo, hi] ("10,50,100"); *n their count. */
int cmir_app_ints(const char *prog, const char *opt, const char *s, long lo, long hi, int max, int *out, int *n);

/* The value of option argv[*i], advancing *i; NULL after printing
 * "prog: option OPT needs a value" when it is the last argument. */
const char *cmir_app_value(const char *prog, int argc, char **argv, int *i);

/* Prints "prog: message" on stderr and returns 1 (the exit code). A
 * message that already starts with "prog: " (a library message naming the
 * function of the same name) is printed once, not as "prog: prog: ...". */
int cmir_app_fail(const char *prog, const char *fmt, ...);

/* Outputs are never replaced silently (as ogr2ogr and gdal_translate -of
 * GPKG): 0 when path does not exist or overwrite is set; otherwise prints
 * "prog: PATH: already exists (use -overwrite to replace it)" and returns
 * 1. A NULL path is fine. */
int cmir_app_output(const char *prog, const char *path, int overwrite);

/* Options shared by the programs: -overwrite, and (when takes_oo) -oo
 * NAME=VALUE, GDAL open options, repeatable. */
typedef struct cmir_app_common {
    int takes_oo;
    int overwrite;
    char **oo; /* NULL-terminated, or NULL; the strings are argv's */
    int n_oo;
} cmir_app_common;

/* 1 when argv[*i] is one of c's options (consumed, *i advanced past its
 * value), 0 when it is not, -1 after printing why it is wrong (exit 2). */
int cmir_app_common_option(const char *prog, int argc, char **argv, int *i, cmir_app_common *c);
void cmir_app_common_free(cmir_app_common *c);

/* Appends v to the NULL-terminated list *list of *n strings (-oo, -co,
 * -lco...); 0, or 1 after printing "prog: out of memory". */
int cmir_app_list_add(const char *prog, char ***list, int *n, const char *v);

/* Frees what cmir_app_init allocated (GDAL's argv copy, drivers). */
void cmir_app_done(char **argv);

#endif
