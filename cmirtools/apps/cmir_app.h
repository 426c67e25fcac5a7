/* Shared by CMIR's command-line programs (not installed): GDAL-style
 * general options (--config, --debug, --formats, --help-general through
 * GDAL's own processor; --version and --help here), a terminal progress
 * bar bridged to libcmir's cancellable callback, and one-line errors. */
#ifndef CMIR_APP_H
#define CMIR_APP_H

#include "cmir/base.h"

/* Handles --version and --help/-h (printing `usage` to stdout and
 * exiting 0), registers GDAL drivers and runs GDAL's general option
 * processor over argv (which may rewrite argc/argv). Returns 0 to go on,
 * or an exit code (>= 0) with *done set when the program should stop. */
int cmir_app_init(const char *prog, const char *usage, int *argc, char ***argv, int *done);

/* Progress callback for libcmir functions: GDAL's 0...10...20... bar on
 * stdout (as GDAL prints it), or nothing when user points to an int that is
 * non-zero (quiet). Never cancels. */
int cmir_app_progress(double frac, const char *msg, void *user);

/* Like cmir_app_progress, and prints a non-NULL msg on its own line:
 * per-epoch summaries and the like (nothing at all when quiet). */
int cmir_app_progress_lines(double frac, const char *msg, void *user);

/* Prints "prog: message" on stderr and returns 1 (the exit code). */
int cmir_app_fail(const char *prog, const char *fmt, ...);

/* Frees what cmir_app_init allocated (GDAL's argv copy, drivers). */
void cmir_app_done(char **argv);

#endif
