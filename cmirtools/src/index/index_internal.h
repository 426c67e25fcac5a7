/* Internal to the index module: the opened-index structure. What the
 * tools layer may use is in index_tools.h. */
#ifndef CMIR_INDEX_INTERNAL_H
#define CMIR_INDEX_INTERNAL_H

#include "index_tools.h"

#include <ogr_api.h>
#include <ogr_srs_api.h>

/* Arrays of a whole (a manifest opened as one index) that an opened
 * shard loads its rows into, n rows of dim, instead of its own (v NULL:
 * its own). lean: no norms array (norm_max only; the scan computes each
 * tile's norms), for a rank that holds its shards' matrix and no more. */
typedef struct cmir__index_into {
    float *v, *norms;
    uint8_t *mod;
    int64_t n;
    int dim;
    int lean;
} cmir__index_into;

struct cmir_index {
    char *path;
    GDALDatasetH ds;
    OGRLayerH tiles;
    char *model_id, *crs_wkt;
    int dim;
    int64_t n;
    float *v;         /* n x dim */
    float *norms;     /* n, computed at open; NULL when lean (into.lean) */
    float norm_max;   /* the largest of them (cmir_knn_norm_max) */
    struct cmir_knn_q8 *q8; /* int8 codes of v for the scan (knn.h), loaded
                               (codes.c) by the first batched search on a VNNI CPU */
    int q8_tried;
    int scan;         /* CMIR_SCAN_* */
    uint8_t *mod;     /* n */
    int64_t *fid;     /* n: FID of row r in "tiles", built on demand when a
                         feature's FID is not row + 1 (never, for indexes
                         written by CMIR) */
    double *env;      /* n x 4 envelopes in the index CRS, loaded on demand */
    OGRSpatialReferenceH srs;
    /* a shard manifest opened in one process (shards.c): the parts (their
     * rows loaded into v) and their first rows, n_parts + 1 of them */
    int n_parts;
    struct cmir_index **parts;
    int64_t *part_first;
    cmir__index_into into; /* v, norms and mod belong to a whole when set */
};

/* shards.c: a manifest opened as one index; row r's feature renumbered;
 * the parts' envelopes into ix->env (allocated). */
int cmir__index_open_shards(cmir_index *ix);
/* cmir_index_open of a shard (never a manifest) whose rows go to into (may
 * be NULL: its own arrays). */
cmir_index *cmir__index_open_into(const char *path, const cmir__index_into *into);
OGRFeatureH cmir__index_shard_feature(cmir_index *ix, int64_t r);
int cmir__index_shard_envelopes(cmir_index *ix);
/* codes.c: the int8 codes of ix (a manifest: of its parts), loaded from the
 * files where stored, quantised where not; CMIR_EFORMAT naming the file for
 * a damaged code chunk. */
int cmir__index_codes(cmir_index *ix, struct cmir_knn_q8 **out);
/* index.c: envelopes of every footprint (once). */
int cmir__index_load_envelopes(cmir_index *ix);

#endif
