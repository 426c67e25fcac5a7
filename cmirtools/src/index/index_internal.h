/* Internal to the index module: the GeoPackage layout (layer and field
 * names), the opened-index structure, and helpers shared by building,
 * merging, opening and searching. */
#ifndef CMIR_INDEX_INTERNAL_H
#define CMIR_INDEX_INTERNAL_H

#include "cmir/index.h"
#include "../geo/gdal_util.h"

#include <ogr_api.h>
#include <ogr_srs_api.h>

#define CMIR_INDEX_FORMAT "cmir-index 1"
#define CMIR_INDEX_CHUNK 8192 /* embedding rows per BLOB: 2 MiB at d = 64, so the transient BLOB copies while loading stay small */

struct cmir_index {
    char *path;
    GDALDatasetH ds;
    OGRLayerH tiles;
    char *model_id, *crs_wkt;
    int dim;
    int64_t n;
    float *v;         /* n x dim */
    float *norms;     /* n, computed at open */
    uint8_t *mod;     /* n */
    int64_t *fid;     /* n: FID of row r in "tiles", built on demand when a
                         feature's FID is not row + 1 (never, for indexes
                         written by CMIR) */
    double *env;      /* n x 4 envelopes in the index CRS, loaded on demand */
    OGRSpatialReferenceH srs;
};

/* Creates the three layers of a new index in ds. */
int cmir__index_create_layers(GDALDatasetH ds, const char *path, OGRSpatialReferenceH srs,
                              OGRLayerH *tiles, OGRLayerH *emb, OGRLayerH *meta);
/* Writes rows [first, first + n) of the matrix (n x dim) as one BLOB, with
 * their modalities (n bytes, 0 PAN, 1 MS) as another. */
int cmir__index_write_chunk(OGRLayerH emb, const char *path, int64_t first, int64_t n, int dim,
                            const float *v, const uint8_t *mod);
/* The "tiles" feature of row r (destroy with OGR_F_Destroy), or NULL. */
OGRFeatureH cmir__index_feature(cmir_index *ix, int64_t r);
/* Sets key = value in cmir_meta (insert or update). */
int cmir__index_set_meta(OGRLayerH meta, const char *path, const char *key, const char *value);
/* Reads key from cmir_meta; NULL when absent; the caller frees. */
char *cmir__index_get_meta(OGRLayerH meta, const char *key);
/* Writes the quick-look PNG: the query (qtile h x w x nb when given, else
 * the tile of index row qrow) beside the tiles of rows[0..k). root
 * resolves relative archive paths (NULL: as stored). */
int cmir__quicklook(cmir_index *ix, const char *root, const float *qtile, int qh, int qw, int qnb, int64_t qrow,
                    const int64_t *rows, int k, const char *path);
/* Temporary name beside `path` keeping its extension (caller frees). */
char *cmir__temp_beside(const char *path);

#endif
