/* Internal to the index module: the opened-index structure. What the
 * tools layer may use is in index_tools.h. */
#ifndef CMIR_INDEX_INTERNAL_H
#define CMIR_INDEX_INTERNAL_H

#include "index_tools.h"

#include <ogr_api.h>
#include <ogr_srs_api.h>

struct cmir_index {
    char *path;
    GDALDatasetH ds;
    OGRLayerH tiles;
    char *model_id, *crs_wkt;
    int dim;
    int64_t n;
    float *v;         /* n x dim */
    float *norms;     /* n, computed at open */
    struct cmir_knn_q8 *q8; /* int8 codes of v for the scan (knn.h), built by
                               the first batched search on a VNNI CPU */
    int q8_tried;
    uint8_t *mod;     /* n */
    int64_t *fid;     /* n: FID of row r in "tiles", built on demand when a
                         feature's FID is not row + 1 (never, for indexes
                         written by CMIR) */
    double *env;      /* n x 4 envelopes in the index CRS, loaded on demand */
    OGRSpatialReferenceH srs;
};

#endif
