/* The index module's library-internal interface for the tools layer
 * (src/tools: index build and search): the GeoPackage layout for writers,
 * rows' features, the quick-look and filling cmir_hits. Tools include this
 * header, never index_internal.h. */
#ifndef CMIR_INDEX_TOOLS_H
#define CMIR_INDEX_TOOLS_H

#include "cmir/index.h"
#include "../geo/gdal_util.h"

#include <ogr_api.h>
#include <ogr_srs_api.h>

#define CMIR_INDEX_FORMAT "cmir-index 1"
#define CMIR_INDEX_CHUNK 8192 /* embedding rows per BLOB: 2 MiB at d = 64, so the transient BLOB copies while loading stay small */

/* Creates the three layers of a new index in ds. */
int cmir__index_create_layers(GDALDatasetH ds, const char *path, OGRSpatialReferenceH srs,
                              OGRLayerH *tiles, OGRLayerH *emb, OGRLayerH *meta);
/* Writes rows [first, first + n) of the matrix (n x dim) as one BLOB, with
 * their modalities (n bytes, 0 PAN, 1 MS) as another. */
int cmir__index_write_chunk(OGRLayerH emb, const char *path, int64_t first, int64_t n, int dim,
                            const float *v, const uint8_t *mod);
/* The int8 codes beside the matrix (codes.c, table "cmir_q8"): creating the
 * table in a new index (and its format key in cmir_meta); the table of an
 * existing one when it holds codes of this build's format (NULL: none, an
 * append then writes none either); writing the codes of rows [first,
 * first + n) of the matrix (v: those rows), one chunk per embedding chunk. */
int cmir__index_create_codes(GDALDatasetH ds, const char *path, OGRLayerH meta, OGRLayerH *q8);
OGRLayerH cmir__index_codes_layer(GDALDatasetH ds, OGRLayerH meta);
/* 1 when the open index (a manifest: its first part) stores codes of this format. */
int cmir__index_stores_codes(const cmir_index *ix);
int cmir__index_write_codes(OGRLayerH q8, const char *path, int64_t first, int64_t n, int dim, const float *v);
/* Sets key = value in cmir_meta (insert or update). */
int cmir__index_set_meta(OGRLayerH meta, const char *path, const char *key, const char *value);
/* Reads key from cmir_meta; NULL when absent; the caller frees. */
char *cmir__index_get_meta(OGRLayerH meta, const char *key);

/* An open index's path (as opened), CRS (owned by ix, traditional GIS
 * axis order) and stored CRS definition ("crs" of cmir_meta, may be NULL). */
const char *cmir__index_path(const cmir_index *ix);
OGRSpatialReferenceH cmir__index_srs(const cmir_index *ix);
const char *cmir__index_crs_wkt(const cmir_index *ix);
/* The "tiles" feature of row r (destroy with OGR_F_Destroy), or NULL. */
OGRFeatureH cmir__index_feature(cmir_index *ix, int64_t r);

/* Writes the quick-look PNG (atomically): the query (qtile h x w x nb when
 * given, else the tile of index row qrow) beside the tiles of rows[0..k)
 * (-1: none). root resolves relative archive paths (NULL: as stored). */
int cmir__quicklook(cmir_index *ix, const char *root, const float *qtile, int qh, int qw, int qnb, int64_t qrow,
                    const int64_t *rows, int k, const char *path);

/* Filling hits (src/index/hits.c): an empty set for n_queries queries
 * against ix (NULL when out of memory); query q's modality and description
 * ("query q: " is prefixed); the hits of query q, rows[0..k) and their
 * distances up to the first row < 0, each with row's attributes and
 * footprint read from ix. */
cmir_hits *cmir__hits_new(const cmir_index *ix, int n_queries);
int cmir__hits_set_query(cmir_hits *h, int q, int modality, const char *desc);
int cmir__hits_add(cmir_hits *h, cmir_index *ix, int q, const int64_t *rows, const float *dist, int k);
/* The footprints' CRS (owned by h), NULL when unknown. */
OGRSpatialReferenceH cmir__hits_srs(const cmir_hits *h);
/* Adds layer "cmir_hits" with every hit to ds (errors name path), the
 * footprints in t_srs (any OSR definition; NULL = WGS84 lon/lat). */
int cmir__hits_fill(const cmir_hits *h, GDALDatasetH ds, const char *path, const char *const *layer_options,
                    const char *t_srs);
/* Creates `file` with driver p.format (default GeoJSON) and writes the hits
 * into it, not atomically (errors name path, the final name). */
int cmir__hits_write_file(const cmir_hits *h, const char *file, const char *path, cmir_search_params p);

/* Sharded indexes (shards.c). A manifest: "cmir-shards 1", then one line
 * "shard FIRST COUNT PATH" per shard in row order (PATH relative to the
 * manifest's folder); cmir_index_open opens one as the merged index. */
typedef struct cmir__shard {
    char *path; /* resolved against the manifest's folder */
    int64_t first, count;
} cmir__shard;
/* 1 when the file at path starts with the manifest line. */
int cmir__is_manifest(const char *path);
int cmir__manifest_read(const char *path, cmir__shard **shards, int *n);
void cmir__manifest_free(cmir__shard *s, int n);
/* Writes a manifest (atomically) naming the shards as given, with their
 * row counts. */
int cmir__manifest_write(const char *path, const char *const *names, const int64_t *counts, int n);
/* Shards from..to-1 of a manifest opened as one index (rows re-based to
 * 0; a single shard is opened as the file it is); lean: without the
 * norms array (cmir__index_into). NULL with a message. */
cmir_index *cmir__index_open_range(const char *manifest, int from, int to, int lean);
/* Packing a hit's attributes and footprint (hits.c) for another process:
 * appends row r's record to *buf (*len bytes, *cap allocated; grown); a
 * record is read back by cmir__hits_add_packed, which adds it as query q's
 * next hit with distance d and (global) row and advances *at. */
int cmir__hits_pack(cmir_index *ix, int64_t r, char **buf, size_t *len, size_t *cap);
int cmir__hits_add_packed(cmir_hits *h, int q, float d, int64_t row, const char *buf, size_t len, size_t *at);

#endif
