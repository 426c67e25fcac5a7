/* Internal to the search tools (src/tools/search*.c): what the sharded
 * search under MPI (search_ranks.c) shares with the single-process one. */
#ifndef CMIR_SEARCH_INTERNAL_H
#define CMIR_SEARCH_INTERNAL_H

#include "../index/index_tools.h"
#include "cmir/model.h"

/* The model and the index belong together (model_path for the message,
 * may be NULL). */
int cmir__search_check_pair(cmir_model *m, cmir_index *ix, const char *model_path);
/* The same from the model's identity and d_v (the model may be freed). */
int cmir__search_check_ids(const char *model_id, int d_v, cmir_index *ix, const char *model_path);
/* Query i's code (dim floats), modality and description (d); ix is read
 * by row queries only (others may pass NULL); raster
 * queries are opened with the GDAL open options oo (NULL: none); a spoken
 * phrase of several labels also gives *lcodes (free) and *nl > 1. */
int cmir__search_embed_query(cmir_model *m, cmir_exec *ex, cmir_index *ix, const cmir_query *q, int i,
                             const char *const *oo, float *code, int *mod, char *d, size_t nd, float **lcodes, int *nl);
/* What a row of modality mod is ("PAN tile", "audio clip"...; static), and
 * the description of a row query ("PAN tile at row R of PATH"). */
const char *cmir__search_row_kind(cmir_model *m, int mod);
void cmir__search_row_desc(const char *kind, int64_t row, const char *index_path, char *d, size_t nd);
/* The queries' nearest rows, the queries of one target modality in one
 * pass (see search.c); excl[i]: a row query i leaves out, or -1. */
/* Queries per block: up to 512, fewer for a large k. */
int cmir__search_block(int k, int m);
int cmir__search_batch(cmir_index *ix, cmir_exec *ex, const float *codes, int m, const int *qmod,
                       const int64_t *excl, cmir_search_filter F, int k, int64_t *rows, float *dist);

#endif
