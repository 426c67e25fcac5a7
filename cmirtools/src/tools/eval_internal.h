/* Internal to the evaluation tool (src/tools/eval*.c): the floors of
 * cmir_eval() on an archive that is already open, and the atomic streams
 * the report writers (JSON, CSV, SVG) share. */
#ifndef CMIR_EVAL_INTERNAL_H
#define CMIR_EVAL_INTERNAL_H

#include "cmir/archive.h"
#include "cmir/train.h"
#include "../base/internal.h"

#include <stdio.h>

/* cmir_eval_floor() on an open archive with the caller's threads: fills the
 * floor fields of out (dir[k].has_floor, floor, floor_map_at, floor_p_at,
 * floor_fit_tiles); leaves the rest of out alone. */
int cmir__eval_floor(cmir_exec *ex, cmir_archive *a, const int64_t *train, int64_t n_train, const int64_t *test,
                     int64_t n_test, int multilabel, cmir_eval_params p, cmir_eval_report *out);

#endif
