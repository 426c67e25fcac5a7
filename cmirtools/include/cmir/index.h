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
 *   table "cmir_q8"     the int8 codes of the rows for the int8 scan, in
 *                       chunks like the embeddings (first_row, n_rows, dim,
 *                       data: n_rows cmir_knn_q8 records of dim + 16 bytes,
 *                       cmir/knn.h; checksum: over the chunk's float rows
 *                       and records); absent in indexes built with
 *                       no_codes or by older builds;
 *   table "cmir_meta"   key/value: format, model_id, dim, crs, q8_format
 *                       (CMIR_KNN_Q8_FORMAT when the codes are stored).
 * An index built with one model is never searched with another: the model
 * identity is checked. Appending is one SQLite transaction: a run that is
 * killed leaves the index as it was.
 *
 * Handles are opaque; *_free/close(NULL) is a no-op; strings returned by
 * an index belong to it and live until it is closed. */
#ifndef CMIR_INDEX_H
#define CMIR_INDEX_H

#include "cmir/base.h"

typedef struct cmir_model cmir_model;

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmir_index_params {
    const char *crs;  /* footprint CRS (any OGR definition); default "EPSG:4326" */
    int threads;      /* 0 = all CPUs */
    int append;       /* add to an existing index (same model) */
    const char *speech_manifest; /* image-speech models: also index every
                         clip of this corpus manifest (cmir/audio.h) as a
                         row of modality CMIR_AUDIO (1, "audio"): no footprint, archive
                         = the clip's file, class/class_name/labels = its
                         spoken label, scene = its voice, tile_id = its
                         line in the manifest (0-based) */
    int n_shards;     /* > 1: build only shard `shard` (0..n_shards-1) of the
                         index: the run of whole 64-tile batches, in the
                         order a single build embeds them, that falls to it
                         when the batches are cut into n_shards contiguous
                         runs; the shards' rows, concatenated in shard order
                         (cmir_index_merge), are the single build's rows, bit
                         for bit. Default 1 (the whole index); not with
                         append or speech_manifest */
    int shard;
    int no_codes;     /* 1: store no int8 codes (dim + 16 bytes a row, beside
                         the matrix's 4 dim; default 0: stored): the first
                         int8 search (cmir_index_set_scan) then quantises
                         the rows itself. An append writes codes when the
                         index has them; a merge when its first part has */
} cmir_index_params;

CMIR_API cmir_index_params cmir_index_default_params(void);
/* 0, or CMIR_EINVAL naming the bad field (threads, n_shards, shard). cmir_index_build calls it. */
CMIR_API int cmir_index_check_params(cmir_index_params p);

/* Embeds every tile of every archive, both modalities, with the model and
 * writes (or, with p.append, extends) the index at index_path. With an
 * image-speech model, the archives' image tiles (modality 0) and the clips
 * of p.speech_manifest (modality 1); n_archives may then be 0. A new index
 * is written to a temporary file and renamed; an append is one
 * transaction. *n_added (may be NULL) receives the rows added. */
CMIR_API int cmir_index_build(const char *model_path, const char *const *archives, int n_archives,
                              const char *index_path, cmir_index_params p, cmir_progress_fn progress,
                              void *user, int64_t *n_added);

/* ---- Under MPI (cmir/dist.h; cmir_dist_init called first) ----------
 * Every rank of the job calls cmir_index_build_ranks with the same
 * arguments: rank r builds shard r of size (p.n_shards and p.shard are
 * set from the job) to OUT.TAG.RofN.gpkg beside out (TAG: one per run),
 * atomically. Then, with sharded, rank 0 writes the manifest out (a text
 * file listing the shards and their rows, atomic; the shards of the
 * manifest it replaces are removed); without, rank 0 merges the shards
 * into out (a GeoPackage, atomic; needs every shard on its file system)
 * and removes them. A failure on any rank fails every rank with "rank R:
 * message"; the file at out is then untouched. At size 1 (no MPI) it is
 * a one-shard build. *n_added: the rows of the whole index. */
CMIR_API int cmir_index_build_ranks(const char *model_path, const char *const *archives, int n_archives,
                                    const char *out, int sharded, cmir_index_params p, cmir_progress_fn progress,
                                    void *user, int64_t *n_added);

/* Merges index parts built with the same model (e.g. shards built in
 * parallel) into `out` (new file, atomic). */
CMIR_API int cmir_index_merge(const char *const *parts, int n_parts, const char *out,
                              cmir_progress_fn progress, void *user);

typedef struct cmir_index cmir_index;

/* Opens an index and loads its embedding matrix (n x dim floats) and the
 * per-row modality. path may also be a shard manifest: its shards are
 * then opened one after the other and their rows concatenated, as if they
 * were the merged index (same rows, same hits; attributes read from the
 * shards). NULL with a message on failure. */
CMIR_API cmir_index *cmir_index_open(const char *path);
CMIR_API void cmir_index_close(cmir_index *ix);
CMIR_API int64_t cmir_index_count(const cmir_index *ix);
CMIR_API int cmir_index_dim(const cmir_index *ix);
CMIR_API const char *cmir_index_model_id(const cmir_index *ix);
/* Row r's embedding (dim floats, owned by ix) and modality (a cmir_modality:
 * CMIR_PAN or CMIR_MS; CMIR_IMAGE or CMIR_AUDIO in an image-speech index),
 * -1 for a bad row. */
CMIR_API const float *cmir_index_vector(const cmir_index *ix, int64_t r);
CMIR_API int cmir_index_modality(const cmir_index *ix, int64_t r);

/* The modality of the rows a search keeps. Image-speech models: image is
 * PAN's slot, audio MS's. */
typedef enum cmir_target {
    CMIR_TARGET_OTHER = -2, /* the other modality than each query's (PAN
                               query -> MS rows, MS -> PAN, image <-> audio):
                               cross-modal retrieval, cmir_search's default;
                               resolved per query by cmir_search_run.
                               cmir_index_search, which does not know the
                               query's modality, keeps every row for it */
    CMIR_TARGET_ANY = -1,   /* every row */
    CMIR_TARGET_PAN = 0,
    CMIR_TARGET_IMAGE = 0,
    CMIR_TARGET_MS = 1,
    CMIR_TARGET_AUDIO = 1
} cmir_target;

/* What to search for. */
typedef struct cmir_search_filter {
    cmir_target modality; /* default CMIR_TARGET_ANY */
    int has_bbox;      /* restrict to footprints intersecting bbox */
    double bbox[4];    /* minx, miny, maxx, maxy in WGS84 longitude/latitude */
    int has_spat;      /* restrict to footprints whose envelope meets spat, as
                          ogr2ogr -spat (both boxes: they must meet both) */
    double spat[4];    /* xmin, ymin, xmax, ymax in spat_srs, NULL = the index CRS */
    const char *spat_srs; /* any OSR definition (EPSG:32650, WKT...), or NULL */
    float max_dist;    /* Euclidean distance limit; default +INFINITY */
    int64_t exclude;   /* a row to leave out (the query's own), -1 none */
} cmir_search_filter;

CMIR_API cmir_search_filter cmir_search_default_filter(void);

/* k nearest rows to each of the m queries (m x dim): rows and Euclidean
 * distances, m x k, ascending, ties by row; missing slots -1 / +INF.
 * Exact (identical to brute force; see cmir/knn.h). */
CMIR_API int cmir_index_search(cmir_index *ix, cmir_exec *ex, const float *q, int64_t m, int k,
                               const cmir_search_filter *f, int64_t *rows, float *dist);

/* How cmir_index_search scans the matrix; the hits are the same either way.
 * CMIR_SCAN_AUTO (default): on a CPU with AVX512-VNNI, batches (8 queries
 * per thread or more) scan int8 codes of the rows and re-rank in float
 * whatever the codes' error bound cannot exclude; the codes (dim + 16
 * bytes per row, beside the float matrix's 4 dim) are loaded by the first
 * such search from the index, which stores them (table cmir_q8, unless
 * built with no_codes), and computed for rows it stores none for (indexes
 * from older builds); a damaged code chunk fails that search with
 * CMIR_EFORMAT naming the file (CMIR_SCAN_FLOAT still searches it).
 * CMIR_SCAN_FLOAT: float32 only, no memory beyond the matrix (what a
 * shard of an index too large for one machine wants).
 * CMIR_SCAN_INT8: the int8 scan for every search on a VNNI CPU (float
 * elsewhere). Set it before the searches; not while another thread
 * searches the same index. 0, or CMIR_EINVAL for another value. */
enum { CMIR_SCAN_AUTO = 0, CMIR_SCAN_FLOAT = 1, CMIR_SCAN_INT8 = 2 };
CMIR_API int cmir_index_set_scan(cmir_index *ix, int scan);

/* ---- The search tool -------------------------------------------------- */
#define CMIR_SEARCH_K_MAX 100000 /* the most hits per query (k) */
/* The most model-sized tiles a raster query's window may hold (their codes
 * are averaged): a larger window is refused, so that the time a query takes
 * is bounded whatever size the raster claims. */
#define CMIR_SEARCH_RASTER_TILES_MAX 4096

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

/* A query list file: one query per line, 'row N', 'raster FILE [X Y W H]'
 * or 'audio FILE' (FILE without blanks), blank lines and lines starting
 * with '#' ignored. Loads every query of the list at path into a new list
 * (*out; free with cmir_query_list_free; the queries' strings belong to
 * the list). A line that is none of these, or a list with no query, is
 * refused with "path:line: ..." and *out = NULL. Memory is bounded by the
 * file's size. */
typedef struct cmir_query_list cmir_query_list;
CMIR_API int cmir_query_list_load(const char *path, cmir_query_list **out);
CMIR_API int cmir_query_list_count(const cmir_query_list *l);
/* The queries, count of them, owned by l. */
CMIR_API const cmir_query *cmir_query_list_queries(const cmir_query_list *l);
CMIR_API void cmir_query_list_free(cmir_query_list *l);

/* ---- Query files (.cmirq) and tile files (.cmirt) ----------------------
 * Small text files that stand for a query or for one tile, for programs that
 * accept only existing file paths (QGIS Processing and qgis_process): the
 * GDAL driver opens a .cmirq as the hits layer of its query (the keys of
 * CMIR:QUERY: MODEL, INDEX, ROW | RASTER [SRCWIN] | AUDIO, K, TARGET, BBOX,
 * MAX_DIST, THREADS) and a .cmirt as the tile (ARCHIVE, MODALITY PAN|MS,
 * TILE, 0-based). The first line is the magic and the version
 * ("CMIR-QUERY 1"), then KEY=VALUE lines; blank lines and lines starting
 * with '#' are ignored. */
#define CMIR_QUERY_FILE_MAGIC "CMIR-QUERY"
#define CMIR_TILE_FILE_MAGIC "CMIR-TILE"

/* Reads the key file at path whose first line is "<magic> 1": *kv gets its
 * KEY=VALUE lines (keys upper-cased), NULL-terminated, with the values of
 * MODEL, INDEX, RASTER, AUDIO and ARCHIVE that are relative paths made
 * relative to the file's directory. Free with cmir_keyfile_free. Refuses
 * in one line ("path:line: ...") a file that is not one (CMIR_EFORMAT). */
CMIR_API int cmir_keyfile_read(const char *path, const char *magic, char ***kv);
CMIR_API void cmir_keyfile_free(char **kv);

typedef struct cmir_search_params {
    int k;                   /* 1..CMIR_SEARCH_K_MAX, default 10 */
    cmir_search_filter filter; /* modality: default CMIR_TARGET_OTHER
                                  (cross-modal) */
    const char *format;      /* OGR driver, default "GeoJSON" (RFC 7946) */
    const char *const *layer_options; /* NULL-terminated NAME=VALUE, or NULL */
    const char *t_srs;       /* CRS of the written footprints (any OSR definition), NULL =
                                WGS84 lon/lat; GeoJSON is RFC 7946 only in WGS84 (another
                                CRS is written as GDAL does, with a "crs" member) */
    const char *const *open_options; /* GDAL open options for raster queries (-oo), or NULL */
    const char *quicklook;   /* PNG path: query beside its hits, or NULL */
    const char *archive_root;/* directory to resolve archive paths for the
                                quick-look, NULL = as stored */
    int threads;
    const char *query_file;  /* also write the (single) query as a query
                                file (.cmirq), or NULL */
    int scan;                /* CMIR_SCAN_* (cmir_index_set_scan); CMIR_SCAN_AUTO
                                (default) is CMIR_SCAN_FLOAT in a sharded search
                                under MPI (cmir_search_ranks), whose ranks hold
                                their shards' matrices and nothing more */
    const char *qgs;         /* also write a QGIS project (.qgs) of the first
                                query: the query tile, the hits' scenes, the
                                hits styled by rank, and its map image
                                (project.png) rendered by qgis_process when
                                found (config option CMIR_QGIS_PROCESS: its
                                path, or NONE), else by GDAL; or NULL */
} cmir_search_params;

CMIR_API cmir_search_params cmir_search_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first bad field (k,
 * filter.modality, filter.spat, threads). cmir_search and cmir_search_run call it. */
CMIR_API int cmir_search_check_params(cmir_search_params p);

/* ---- Search results in memory ----------------------------------------
 * cmir_hits holds every hit of a search: per hit its query, rank (1 =
 * nearest), Euclidean distance, index row, the row's attributes as stored
 * in the index and its footprint. Hits are ordered by query, then rank.
 * The caller owns the hits (cmir_hits_free; NULL is a no-op); strings and
 * coordinates returned belong to them and live until they are freed.
 * Hits are never modified after cmir_search_run returns them, so several
 * threads may read the same hits at once. Accessors given an index out of
 * range return -1, NaN or NULL. */
typedef struct cmir_hits cmir_hits;

/* The attributes of a hit, as stored in the index's "tiles" layer. */
typedef enum cmir_hit_attr {
    CMIR_HIT_TILE_ID = 0,  /* tile number in its archive (clip line for audio) */
    CMIR_HIT_MODALITY,     /* "PAN", "MS", "image" or "audio" */
    CMIR_HIT_ARCHIVE,      /* archive file (clip file for audio) */
    CMIR_HIT_SCENE,        /* source scene (voice for audio) */
    CMIR_HIT_WINDOW,       /* "xoff,yoff,xsize,ysize" in the scene's pixels */
    CMIR_HIT_CLASS,        /* class number */
    CMIR_HIT_CLASS_NAME,
    CMIR_HIT_LABELS,       /* class names joined by ';' */
    CMIR_HIT_N_ATTRS
} cmir_hit_attr;

/* Runs the queries against the index with the model (the index must have
 * been built with it: its identity is checked) and returns the hits in
 * *out: for each query the p.k nearest rows under p.filter, exact (as
 * brute force; ties by row); a row query leaves its own row out. p.format,
 * p.layer_options, p.quicklook and p.archive_root are not used. The model
 * and the index are only read, but the model's scratch memory is written
 * (cmir/model.h): one search at a time per model and index. progress (may
 * be NULL) is called after each query; a non-zero return cancels. */
CMIR_API int cmir_search_run(cmir_model *model, cmir_index *index, const cmir_query *queries, int n_queries,
                             cmir_search_params p, cmir_progress_fn progress, void *user, cmir_hits **out);
CMIR_API void cmir_hits_free(cmir_hits *h);

/* Number of hits (all queries) and of queries. */
CMIR_API int64_t cmir_hits_count(const cmir_hits *h);
CMIR_API int cmir_hits_query_count(const cmir_hits *h);
/* Query q's description ("query q: PAN tile at row 3 of index.gpkg") and
 * modality (a cmir_modality: CMIR_PAN/CMIR_IMAGE or CMIR_MS/CMIR_AUDIO; -1
 * for a bad q). */
CMIR_API const char *cmir_hits_query_description(const cmir_hits *h, int q);
CMIR_API int cmir_hits_query_modality(const cmir_hits *h, int q);
/* Hit i: its query, rank (1-based), distance and index row. */
CMIR_API int cmir_hits_query(const cmir_hits *h, int64_t i);
CMIR_API int cmir_hits_rank(const cmir_hits *h, int64_t i);
CMIR_API float cmir_hits_distance(const cmir_hits *h, int64_t i);
CMIR_API int64_t cmir_hits_row(const cmir_hits *h, int64_t i);
/* Attribute a of hit i as stored, NULL when the row has none; tile_id and
 * class as numbers (-1 when absent). */
CMIR_API const char *cmir_hits_attribute(const cmir_hits *h, int64_t i, cmir_hit_attr a);
CMIR_API int64_t cmir_hits_tile_id(const cmir_hits *h, int64_t i);
CMIR_API int cmir_hits_class(const cmir_hits *h, int64_t i);
/* Footprint of hit i: the number of points of its ring (closed: the last
 * point repeats the first; 0 when it has none, e.g. a clip) and in *xy
 * (may be NULL) their coordinates x0, y0, x1, y1, ... in cmir_hits_crs,
 * the index CRS (WKT2, longitude/easting first). */
CMIR_API int cmir_hits_footprint(const cmir_hits *h, int64_t i, const double **xy);
CMIR_API const char *cmir_hits_crs(const cmir_hits *h);

/* Writes one feature per hit to path (atomically: a temporary file beside
 * it, renamed) with OGR driver p.format (default GeoJSON) and
 * p.layer_options: layer "cmir_hits" with fields query, rank, distance,
 * row, tile_id, modality, archive, scene, window, class, class_name,
 * labels, query_desc and the footprint in WGS84 lon/lat. GeoJSON follows
 * RFC 7946 (bbox, counter-clockwise rings) with the queries in the
 * collection's description. */
CMIR_API int cmir_hits_write(const cmir_hits *h, const char *path, cmir_search_params p);
/* The same layer added to an open OGR dataset gdal_dataset (a GDALDatasetH,
 * e.g. of GDAL's Memory driver), with the queries also in the layer's
 * DESCRIPTION metadata item: for programs that hand the hits to OGR. */
CMIR_API int cmir_hits_to_ogr(const cmir_hits *h, void *gdal_dataset, const char *const *layer_options);

/* Writes the query file (.cmirq) of query q against model and index with
 * p's k, target, bbox and max_dist, atomically; paths are written absolute. */
CMIR_API int cmir_query_file_write(const char *path, const char *model, const char *index, const cmir_query *q,
                                   cmir_search_params p);
/* Writes the tile file (.cmirt) of tile `tile` (0-based) of modality
 * (CMIR_PAN or CMIR_MS) of archive, atomically. */
CMIR_API int cmir_tile_file_write(const char *path, const char *archive, int modality, int64_t tile);

/* Loads the model and the index, runs the queries (cmir_search_run) and
 * writes the hits to out_path (cmir_hits_write) and, with p.quicklook, the
 * first query beside its hits as a PNG. Refuses an index built by another
 * model. */
CMIR_API int cmir_search(const char *model_path, const char *index_path, const cmir_query *queries,
                         int n_queries, const char *out_path, cmir_search_params p,
                         cmir_progress_fn progress, void *user);

/* A sharded search under MPI: every rank of the job calls it with the same
 * arguments, index_path being a shard manifest (cmir_index_build_ranks)
 * of as many shards as ranks, or a multiple: rank r opens only its own
 * shards (r, or the r-th run of shards when there are more); the queries are
 * embedded where their data is (row queries by the rank holding the row,
 * raster and spoken queries by rank 0) and sent to every rank; each rank
 * finds its exact top p.k; rank 0 merges them by distance, ties by global
 * row, gets the hits' attributes from their ranks and writes out_path
 * (cmir_hits_write). The hits equal cmir_search's over the merged index
 * (or over the manifest in one process). Not with p.quicklook or a spoken
 * query naming several labels. A failure on any rank (a shard it cannot
 * open, ...) fails every rank with "rank R: message". progress (may be
 * NULL) is called on every rank that gives one: at 0 once the queries are
 * embedded, then after each block of queries this rank has searched. */
CMIR_API int cmir_search_ranks(const char *model_path, const char *index_path, const cmir_query *queries,
                               int n_queries, const char *out_path, cmir_search_params p,
                               cmir_progress_fn progress, void *user);

#ifdef __cplusplus
}
#endif
#endif
