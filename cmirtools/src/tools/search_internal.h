/* Internal to the search tools (src/tools/search*.c): what the sharded
 * search under MPI (search_ranks.c) shares with the single-process one. */
#ifndef CMIR_SEARCH_INTERNAL_H
#define CMIR_SEARCH_INTERNAL_H

#include "../index/index_tools.h"
#include "cmir/model.h"

/* The model and the index belong together (model_path for the message,
 * may be NULL). */
int cmir__search_check_pair(cmir_model *m, cmir_index *ix, const char *model_path);
/* Query i's code (dim floats), modality and description (d); a spoken
 * phrase of several labels also gives *lcodes (free) and *nl > 1. */
int cmir__search_embed_query(cmir_model *m, cmir_exec *ex, cmir_index *ix, const cmir_query *q, int i, float *code,
                             int *mod, char *d, size_t nd, float **lcodes, int *nl);
/* The description of a row query ("PAN tile at row R of PATH"). */
void cmir__search_row_desc(cmir_model *m, int mod, int64_t row, const char *index_path, char *d, size_t nd);

#endif
