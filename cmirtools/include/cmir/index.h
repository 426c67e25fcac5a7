/* cmir/index.h: the retrieval index and search. An index is a GeoPackage
 * written through OGR, so QGIS and every OGR tool open it as it is:
 *   layer "tiles"       one polygon per indexed tile (its footprint, in the
 *                       index CRS, densified before reprojection) with
 *                       row, tile_id, modality ("PAN"/"MS"), archive, scene,
 *                       window ("xoff,yoff,xsize,ysize"), class, class_name,
 *                       labels (class names joined by ';');
 *   table "cmir_embeddings"  the embedding matrix in chunks of rows
 *                       (first_row, n_rows, data: little-endian float32
 *                       BLOB, n_rows x dim), read once into one array;
 *   table "cmir_meta"   key/value: format, model_id, dim, crs.
 * An index built with one model is never searched with another: the model
 * identity is checked. Appending is one SQLite transaction: a run that is
 * killed leaves the index as it was.
 *
 * Handles are opaque; *_free/close(NULL) is a no-op; strings returned by
 * an index belong to it and live until it is closed. */
#ifndef CMIR_INDEX_H
#define CMIR_INDEX_H

#include "cmir/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmir_index_params {
    const char *crs;  /* footprint CRS (any OGR definition); default "EPSG:4326" */
    int threads;      /* 0 = all CPUs */
    int append;       /* add to an existing index (same model) */
    const char *speech_manifest; /* image-speech models: also index every
                         clip of this corpus manifest (cmir/audio.h) as a
                         row of modality 1 ("audio"): no footprint, archive
                         = the clip's file, class/class_name/labels = its
                         spoken label, scene = its voice, tile_id = its
                         line in the manifest (0-based) */
} cmir_index_params;

CMIR_API cmir_index_params cmir_index_default_params(void);

/* Embeds every tile of every archive, both modalities, with the model and
 * writes (or, with p.append, extends) the index at index_path. With an
 * image-speech model, the archives' image tiles (modality 0) and the clips
 * of p.speech_manifest (modality 1); n_archives may then be 0. A new index
 * is written to a temporary file and renamed; an append is one
 * transaction. *n_added (may be NULL) receives the rows added. */
CMIR_API int cmir_index_build(const char *model_path, const char *const *archives, int n_archives,
                              const char *index_path, cmir_index_params p, cmir_progress_fn progress,
                              void *user, int64_t *n_added);

/* Merges index parts built with the same model (e.g. shards built in
 * parallel) into `out` (new file, atomic). */
CMIR_API int cmir_index_merge(const char *const *parts, int n_parts, const char *out,
                              cmir_progress_fn progress, void *user);

typedef struct cmir_index cmir_index;

/* Opens an index and loads its embedding matrix (n x dim floats) and the
 * per-row modality. NULL with a message on failure. */
CMIR_API cmir_index *cmir_index_open(const char *path);
CMIR_API void cmir_index_close(cmir_index *ix);
CMIR_API int64_t cmir_index_count(const cmir_index *ix);
CMIR_API int cmir_index_dim(const cmir_index *ix);
CMIR_API const char *cmir_index_model_id(const cmir_index *ix);
/* Row r's embedding (dim floats, owned by ix) and modality (0 PAN, 1 MS). */
CMIR_API const float *cmir_index_vector(const cmir_index *ix, int64_t r);
CMIR_API int cmir_index_modality(const cmir_index *ix, int64_t r);

/* What to search for. */
typedef struct cmir_search_filter {
    int modality;      /* -1 any (default), 0 PAN, 1 MS */
    int has_bbox;      /* restrict to footprints intersecting bbox */
    double bbox[4];    /* minx, miny, maxx, maxy in WGS84 longitude/latitude */
    float max_dist;    /* Euclidean distance limit; default +INFINITY */
    int64_t exclude;   /* a row to leave out (the query's own), -1 none */
} cmir_search_filter;

CMIR_API cmir_search_filter cmir_search_default_filter(void);

/* k nearest rows to each of the m queries (m x dim): rows and Euclidean
 * distances, m x k, ascending, ties by row; missing slots -1 / +INF.
 * Exact (identical to brute force; see cmir/knn.h). */
CMIR_API int cmir_index_search(cmir_index *ix, cmir_exec *ex, const float *q, int64_t m, int k,
                               const cmir_search_filter *f, int64_t *rows, float *dist);

/* ---- The search tool -------------------------------------------------- */
typedef enum cmir_query_kind {
    CMIR_QUERY_ROW = 0,    /* a row of the index */
    CMIR_QUERY_RASTER = 1, /* a raster file (or a window of it) */
    CMIR_QUERY_AUDIO = 2   /* a spoken query: any file libsndfile reads
                              (image-speech models only) */
} cmir_query_kind;

typedef struct cmir_query {
    cmir_query_kind kind;
    int64_t row;         /* CMIR_QUERY_ROW */
    const char *raster;  /* CMIR_QUERY_RASTER: any GDAL raster; 1 band =
                            PAN, the model's MS band count = MS */
    int has_window;
    int window[4];       /* xoff, yoff, xsize, ysize in the raster's pixels */
    const char *audio;   /* CMIR_QUERY_AUDIO: the clip */
} cmir_query;

typedef struct cmir_search_params {
    int k;                   /* default 10 */
    cmir_search_filter filter; /* modality: the target; default: the other
                                  modality than the query's (cross-modal) */
    const char *format;      /* OGR driver, default "GeoJSON" (RFC 7946) */
    const char *const *layer_options; /* NULL-terminated NAME=VALUE, or NULL */
    const char *quicklook;   /* PNG path: query beside its hits, or NULL */
    const char *archive_root;/* directory to resolve archive paths for the
                                quick-look, NULL = as stored */
    int threads;
} cmir_search_params;

CMIR_API cmir_search_params cmir_search_default_params(void);

/* Runs the queries against the index with the model and writes one
 * feature per hit to out_path (atomically): query, rank, distance, row,
 * tile_id, modality, archive, scene, class, class_name, labels and the
 * footprint (WGS84 lon/lat for GeoJSON). The query is described in the
 * layer's metadata (GeoJSON "description"). Refuses an index built by
 * another model. */
CMIR_API int cmir_search(const char *model_path, const char *index_path, const cmir_query *queries,
                         int n_queries, const char *out_path, cmir_search_params p,
                         cmir_progress_fn progress, void *user);

#ifdef __cplusplus
}
#endif
#endif
