/* Opening an index (metadata, the embedding matrix read once from its
 * BLOB chunks, per-row modality and feature ids) and searching it with the
 * exact GEMM kNN under modality, bounding-box and distance filters. */
#include "index_internal.h"
#include "cmir/knn.h"

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Size of a file through GDAL's virtual file API (so /vsimem/ and other
 * /vsi paths too); -1 when it cannot be told. */
static long long file_size(const char *path)
{
    VSILFILE *f = VSIFOpenL(path, "rb");
    long long n = -1;
    if (f && VSIFSeekL(f, 0, SEEK_END) == 0)
        n = (long long)VSIFTellL(f);
    if (f)
        VSIFCloseL(f);
    return n;
}

cmir_search_filter cmir_search_default_filter(void)
{
    cmir_search_filter f;
    memset(&f, 0, sizeof f);
    f.modality = -1;
    f.max_dist = INFINITY;
    f.exclude = -1;
    return f;
}

void cmir_index_close(cmir_index *ix)
{
    if (!ix)
        return;
    if (ix->ds)
        GDALClose(ix->ds);
    if (ix->srs)
        OSRDestroySpatialReference(ix->srs);
    cmir__free(ix->path);
    cmir__free(ix->model_id);
    cmir__free(ix->crs_wkt);
    if (!ix->into.v) { /* else the arrays are the whole's */
        cmir__free(ix->v);
        cmir__free(ix->norms);
        cmir__free(ix->mod);
    }
    cmir_knn_q8_free(ix->q8);
    cmir__free(ix->fid);
    cmir__free(ix->env);
    for (int p = 0; ix->parts && p < ix->n_parts; p++)
        cmir_index_close(ix->parts[p]);
    cmir__free(ix->parts);
    cmir__free(ix->part_first);
    cmir__free(ix);
}

static int load(cmir_index *ix)
{
    const char *path = ix->path;
    /* internal: the handle is the index's own, so a host program's GDAL
     * teardown (GDALDestroy closes every listed dataset) leaves it to
     * cmir_index_close */
    /* SQLite's page cache (2 MB a connection by default) buys nothing for
     * the one sequential read of the BLOBs, and a rank holding shards pays
     * it per shard: 256 KB unless the user chose (OGR_SQLITE_PRAGMA/CACHE) */
    int own_pragma = !CPLGetConfigOption("OGR_SQLITE_PRAGMA", NULL) && !CPLGetConfigOption("OGR_SQLITE_CACHE", NULL);
    if (own_pragma)
        CPLSetThreadLocalConfigOption("OGR_SQLITE_PRAGMA", "cache_size=-256");
    ix->ds = cmir__gdal_open(path, GDAL_OF_VECTOR | GDAL_OF_READONLY | GDAL_OF_INTERNAL, NULL, "cannot open the index");
    if (own_pragma)
        CPLSetThreadLocalConfigOption("OGR_SQLITE_PRAGMA", NULL);
    if (!ix->ds)
        return cmir_last_error_code();
    OGRLayerH meta = GDALDatasetGetLayerByName(ix->ds, "cmir_meta");
    OGRLayerH emb = GDALDatasetGetLayerByName(ix->ds, "cmir_embeddings");
    ix->tiles = GDALDatasetGetLayerByName(ix->ds, "tiles");
    if (!meta || !emb || !ix->tiles)
        return cmir__error(CMIR_EFORMAT, "%s: not a CMIR index (layers tiles, cmir_embeddings, cmir_meta)", path);
    cmir__clear_error(); /* so that an allocation failure below can be told from a missing key */
    char *fmt = cmir__index_get_meta(meta, "format"), *dim = cmir__index_get_meta(meta, "dim");
    char *cnt = cmir__index_get_meta(meta, "count");
    ix->model_id = cmir__index_get_meta(meta, "model_id");
    ix->crs_wkt = cmir__index_get_meta(meta, "crs");
    int rc = 0;
    if (cmir_last_error_code() == CMIR_ENOMEM)
        rc = CMIR_ENOMEM;
    else if (!fmt || strcmp(fmt, CMIR_INDEX_FORMAT) != 0)
        rc = cmir__error(CMIR_EFORMAT, "%s: index format '%s' not supported (this build reads '%s')", path,
                         fmt ? fmt : "(none)", CMIR_INDEX_FORMAT);
    else if (!dim || !cnt || !ix->model_id || atoi(dim) < 1 || atoi(dim) > 4096 || atoll(cnt) < 0 ||
             atoll(cnt) > ((int64_t)1 << 31))
        rc = cmir__error(CMIR_EFORMAT, "%s: damaged index metadata", path);
    if (!rc) {
        ix->dim = atoi(dim);
        ix->n = atoll(cnt);
        /* the chunks must hold n x dim floats: a file too small for them is
         * damaged, and its claim must not size an allocation */
        double need = (double)ix->n * ix->dim * sizeof(float);
        long long size = file_size(path);
        if (size >= 0 && need > (double)size)
            rc = cmir__error(CMIR_EFORMAT, "%s: claims %lld x %d embeddings (%.0f bytes), more than "
                             "the file holds (%lld bytes)", path, (long long)ix->n, ix->dim, need,
                             size);
    }
    cmir__free(fmt);
    cmir__free(dim);
    cmir__free(cnt);
    if (rc)
        return rc;
    const OGRSpatialReferenceH s = OGR_L_GetSpatialRef(ix->tiles);
    ix->srs = s ? OSRClone(s) : OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
    OSRSetAxisMappingStrategy(ix->srs, OAMS_TRADITIONAL_GIS_ORDER);
    size_t N = (size_t)ix->n;
    if (ix->into.v && (ix->into.n != ix->n || ix->into.dim != ix->dim)) /* a shard not as its manifest says */
        return cmir__error(CMIR_EFORMAT, "%s: holds %lld x %d embeddings, the manifest says %lld x %d", path,
                           (long long)ix->n, ix->dim, (long long)ix->into.n, ix->into.dim);
    ix->v = ix->into.v ? ix->into.v : cmir__malloc(sizeof(float) * (N ? N : 1) * (size_t)ix->dim);
    ix->mod = ix->into.v ? ix->into.mod : cmir__malloc(N ? N : 1);
    if (!ix->v || !ix->mod)
        return CMIR_ENOMEM;
    /* 0xFF marks a row no chunk has given yet (modalities are 0 or 1), so
     * that overlapping chunks are told without a byte more per row */
    memset(ix->mod, 0xFF, N);
    /* The matrix and the modalities, from the chunks alone: the tiles layer
     * (footprints, attributes) is not read at all here, so opening costs
     * about one read of the embedding BLOBs. Chunks must tile [0, n). */
    int64_t covered = 0;
    OGRFeatureH f;
    OGR_L_ResetReading(emb);
    while (!rc && (f = OGR_L_GetNextFeature(emb)) != NULL) {
        int64_t first = OGR_F_GetFieldAsInteger64(f, 0);
        int nr = OGR_F_GetFieldAsInteger(f, 1), d = OGR_F_GetFieldAsInteger(f, 2), bytes = 0, mbytes = 0;
        const GByte *data = OGR_F_GetFieldAsBinary(f, 3, &bytes);
        const GByte *mod = OGR_F_GetFieldAsBinary(f, 4, &mbytes);
        int overlap = 0;
        if (d == ix->dim && nr >= 1 && first >= 0 && first + nr <= ix->n)
            for (int j = 0; j < nr && !overlap; j++)
                overlap = ix->mod[first + j] != 0xFF;
        if (d != ix->dim || nr < 1 || first < 0 || first + nr > ix->n || overlap ||
            (int64_t)bytes != (int64_t)nr * d * (int64_t)sizeof(float) || !data || mbytes != nr || !mod)
            rc = cmir__error(CMIR_EFORMAT, "%s: damaged embedding chunk at row %lld", path, (long long)first);
        else {
            memcpy(ix->v + (size_t)first * ix->dim, data, (size_t)bytes);
            for (int j = 0; j < nr; j++)
                ix->mod[first + j] = mod[j] != 0;
            covered += nr;
        }
        OGR_F_Destroy(f);
    }
    cmir__trim_heap(); /* the chunks' BLOB copies, freed, back to the system */
    if (!rc && covered != ix->n)
        rc = cmir__error(CMIR_EFORMAT, "%s: the embedding chunks hold %lld rows, the index %lld", path,
                         (long long)covered, (long long)ix->n);
    if (!rc && OGR_L_GetFeatureCount(ix->tiles, FALSE) != ix->n) /* cheap for GPKG: a stored count */
        rc = cmir__error(CMIR_EFORMAT, "%s: %lld tile features for %lld rows", path,
                         (long long)OGR_L_GetFeatureCount(ix->tiles, FALSE), (long long)ix->n);
    if (!rc) {
        ix->norms = ix->into.lean ? NULL : ix->into.v ? ix->into.norms : cmir__malloc(sizeof(float) * (N ? N : 1));
        if (!ix->norms && !ix->into.lean)
            rc = CMIR_ENOMEM;
        else if (ix->norms ? cmir_knn_norms(ix->v, ix->n, ix->dim, ix->norms)
                           : cmir_knn_norm_max(ix->v, ix->n, ix->dim, &ix->norm_max))
            rc = cmir__error(CMIR_EFORMAT, "%s: the embeddings hold non-finite values", path);
        for (int64_t r = 0; !rc && ix->norms && r < ix->n; r++)
            ix->norm_max = ix->norms[r] > ix->norm_max ? ix->norms[r] : ix->norm_max;
    }
    return rc;
}

cmir_index *cmir__index_open_into(const char *path, const cmir__index_into *into)
{
    if (!path) {
        cmir__error(CMIR_EINVAL, "cmir_index_open: NULL path");
        return NULL;
    }
    cmir_index *ix = cmir__calloc(1, sizeof *ix);
    if (!ix || !(ix->path = cmir__strdup(path))) {
        cmir__free(ix);
        return NULL;
    }
    if (into)
        ix->into = *into;
    cmir__gdal_quiet_begin();
    GDALAllRegister();
    int rc = !into && cmir__is_manifest(path) ? cmir__index_open_shards(ix) : load(ix);
    cmir__gdal_quiet_end();
    if (rc) {
        cmir_index_close(ix);
        return NULL;
    }
    return ix;
}

cmir_index *cmir_index_open(const char *path) { return cmir__index_open_into(path, NULL); }

int64_t cmir_index_count(const cmir_index *ix) { return ix ? ix->n : 0; }
int cmir_index_dim(const cmir_index *ix) { return ix ? ix->dim : 0; }
const char *cmir_index_model_id(const cmir_index *ix) { return ix ? ix->model_id : NULL; }
const float *cmir_index_vector(const cmir_index *ix, int64_t r)
{
    return ix && r >= 0 && r < ix->n ? ix->v + (size_t)r * ix->dim : NULL;
}
int cmir_index_modality(const cmir_index *ix, int64_t r) { return ix && r >= 0 && r < ix->n ? ix->mod[r] : -1; }

/* Row -> FID map by a scan of the tiles layer (only for indexes whose FIDs
 * are not row + 1). */
static int build_fid_map(cmir_index *ix)
{
    ix->fid = cmir__malloc(sizeof(int64_t) * (size_t)(ix->n ? ix->n : 1));
    if (!ix->fid)
        return CMIR_ENOMEM;
    for (int64_t r = 0; r < ix->n; r++)
        ix->fid[r] = -1;
    int frow = OGR_FD_GetFieldIndex(OGR_L_GetLayerDefn(ix->tiles), "row");
    OGRFeatureH f;
    OGR_L_ResetReading(ix->tiles);
    while ((f = OGR_L_GetNextFeature(ix->tiles)) != NULL) {
        int64_t r = OGR_F_GetFieldAsInteger64(f, frow);
        if (r >= 0 && r < ix->n)
            ix->fid[r] = OGR_F_GetFID(f);
        OGR_F_Destroy(f);
    }
    return 0;
}

OGRFeatureH cmir__index_feature(cmir_index *ix, int64_t r)
{
    if (r < 0 || r >= ix->n)
        return NULL;
    if (ix->parts)
        return cmir__index_shard_feature(ix, r);
    int frow = OGR_FD_GetFieldIndex(OGR_L_GetLayerDefn(ix->tiles), "row");
    if (!ix->fid) {
        OGRFeatureH f = OGR_L_GetFeature(ix->tiles, r + 1);
        if (f && OGR_F_GetFieldAsInteger64(f, frow) == r)
            return f;
        if (f)
            OGR_F_Destroy(f);
        if (build_fid_map(ix))
            return NULL;
    }
    return ix->fid[r] >= 0 ? OGR_L_GetFeature(ix->tiles, ix->fid[r]) : NULL;
}

/* Envelopes of every footprint in the index CRS (NaN when none). */
int cmir__index_load_envelopes(cmir_index *ix)
{
    if (ix->env)
        return 0;
    ix->env = cmir__malloc(sizeof(double) * 4 * (size_t)(ix->n ? ix->n : 1));
    if (!ix->env)
        return CMIR_ENOMEM;
    if (ix->parts)
        return cmir__index_shard_envelopes(ix);
    for (int64_t r = 0; r < ix->n * 4; r++)
        ix->env[r] = NAN;
    OGRFeatureDefnH fd = OGR_L_GetLayerDefn(ix->tiles);
    int frow = OGR_FD_GetFieldIndex(fd, "row");
    OGRFeatureH f;
    OGR_L_ResetReading(ix->tiles);
    while ((f = OGR_L_GetNextFeature(ix->tiles)) != NULL) {
        int64_t r = OGR_F_GetFieldAsInteger64(f, frow);
        OGRGeometryH g = OGR_F_GetGeometryRef(f);
        if (g && r >= 0 && r < ix->n) {
            OGREnvelope e;
            OGR_G_GetEnvelope(g, &e);
            ix->env[r * 4 + 0] = e.MinX;
            ix->env[r * 4 + 1] = e.MinY;
            ix->env[r * 4 + 2] = e.MaxX;
            ix->env[r * 4 + 3] = e.MaxY;
        }
        OGR_F_Destroy(f);
    }
    return 0;
}

/* box (minx, miny, maxx, maxy in srs; NULL srs: the index CRS) into the
 * index CRS as bb. */
static int box_in_index_crs(const cmir_index *ix, const double box[4], OGRSpatialReferenceH srs, const char *what,
                            double bb[4])
{
    if (!srs || OSRIsSame(srs, ix->srs)) {
        memcpy(bb, box, sizeof(double) * 4);
        return 0;
    }
    int rc = 0;
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(srs, ix->srs);
    if (!ct || !OCTTransformBounds(ct, box[0], box[1], box[2], box[3], &bb[0], &bb[1], &bb[2], &bb[3], 21))
        rc = cmir__error(CMIR_EINVAL, "%s: cannot express the %s in the index CRS", ix->path, what);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    return rc;
}

/* The filter's boxes (-bbox in WGS84, -spat in spat_srs or the index CRS)
 * in the index CRS, intersected into bb. */
static int filter_box(cmir_index *ix, const cmir_search_filter *F, double bb[4])
{
    double b2[4];
    cmir__gdal_quiet_begin();
    int rc = cmir__index_load_envelopes(ix);
    if (!rc && F->has_bbox) {
        OGRSpatialReferenceH w = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
        OSRSetAxisMappingStrategy(w, OAMS_TRADITIONAL_GIS_ORDER);
        rc = box_in_index_crs(ix, F->bbox, w, "bounding box", bb);
        OSRDestroySpatialReference(w);
    }
    if (!rc && F->has_spat) {
        OGRSpatialReferenceH s = NULL;
        if (F->spat_srs && *F->spat_srs) {
            s = OSRNewSpatialReference(NULL);
            OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
            if (OSRSetFromUserInput(s, F->spat_srs) != OGRERR_NONE)
                rc = cmir__gdal_error(CMIR_EINVAL, F->spat_srs, "not a CRS (spat_srs)");
        }
        if (!rc)
            rc = box_in_index_crs(ix, F->spat, s, "spatial filter (spat)", F->has_bbox ? b2 : bb);
        if (!rc && F->has_bbox) {
            bb[0] = fmax(bb[0], b2[0]);
            bb[1] = fmax(bb[1], b2[1]);
            bb[2] = fmin(bb[2], b2[2]);
            bb[3] = fmin(bb[3], b2[3]);
        }
        if (s)
            OSRDestroySpatialReference(s);
    }
    cmir__gdal_quiet_end();
    return rc;
}

int cmir_index_set_scan(cmir_index *ix, int scan)
{
    if (!ix || scan < CMIR_SCAN_AUTO || scan > CMIR_SCAN_INT8)
        return cmir__error(CMIR_EINVAL, "cmir_index_set_scan: %s", ix ? "scan must be CMIR_SCAN_AUTO, _FLOAT or _INT8"
                                                                      : "no index");
    ix->scan = scan;
    if (scan == CMIR_SCAN_FLOAT) { /* the codes' memory back */
        cmir_knn_q8_free(ix->q8);
        ix->q8 = NULL;
        ix->q8_tried = 0;
    }
    return 0;
}

int cmir_index_search(cmir_index *ix, cmir_exec *ex, const float *q, int64_t m, int k,
                      const cmir_search_filter *f, int64_t *rows, float *dist)
{
    if (!ix || !q || m < 0 || k < 1 || !rows)
        return cmir__error(CMIR_EINVAL, "cmir_index_search: bad arguments");
    cmir_search_filter F = f ? *f : cmir_search_default_filter();
    uint8_t *mask = NULL;
    int rc = 0;
    const int boxed = F.has_bbox || F.has_spat;
    /* a modality alone is the modality bytes themselves: no n-byte mask */
    const int by_mod = F.modality >= 0 && !boxed && F.exclude < 0;
    if (!by_mod && (F.modality >= 0 || boxed || F.exclude >= 0)) {
        mask = cmir__malloc((size_t)(ix->n ? ix->n : 1));
        if (!mask)
            return CMIR_ENOMEM;
        double bb[4] = {0, 0, 0, 0};
        if (boxed)
            rc = filter_box(ix, &F, bb);
        for (int64_t r = 0; !rc && r < ix->n; r++) {
            int keep = (F.modality < 0 || ix->mod[r] == F.modality) && r != F.exclude;
            if (keep && boxed) {
                const double *e = ix->env + r * 4;
                keep = isfinite(e[0]) && e[0] <= bb[2] && e[2] >= bb[0] && e[1] <= bb[3] && e[3] >= bb[1];
            }
            mask[r] = (uint8_t)keep;
        }
    }
    if (!rc) {
        cmir_knn_params kp = cmir_knn_default_params();
        kp.mask = by_mod ? ix->mod : mask;
        kp.mask_value = by_mod ? F.modality : -1;
        kp.squared = 0;
        kp.max_dist = F.max_dist;
        kp.db_norms = ix->norms;
        kp.db_norm_max = ix->norms ? 0.0f : ix->norm_max; /* lean: each tile's norms in the scan */
        /* Batches (8 queries per thread or more) take the int8 scan on VNNI
         * CPUs: the same hits, 3.7x the float32 q/s on 10^6 x 64 (bench/
         * README.md); its codes (dim + 16 bytes per row) are loaded from the
         * index (quantised where it stores none) by the first such search
         * (like the envelopes, by the first bbox search). Fewer queries keep
         * the float path, which splits the rows over threads; so does a
         * failed build (the answer is the same), but not a damaged code
         * table: that is the file's error, as a damaged embedding chunk. */
        int batch = ix->scan == CMIR_SCAN_INT8 || (ix->scan == CMIR_SCAN_AUTO && m >= 8 * (int64_t)cmir_exec_threads(ex));
        if (batch && !ix->q8 && !ix->q8_tried) {
            ix->q8_tried = 1;
            if (ix->dim <= 4096 && cmir_knn_q8_vnni() && cmir__index_codes(ix, &ix->q8) == CMIR_EFORMAT) {
                ix->q8_tried = 0; /* each such search says so */
                rc = CMIR_EFORMAT;
            }
        }
        if (!rc && batch && ix->q8)
            rc = cmir_knn_q8_search(ex, ix->q8, ix->v, ix->n, q, m, ix->dim, k, kp, rows, dist);
        else if (!rc)
            rc = cmir_knn(ex, ix->v, ix->n, q, m, ix->dim, k, kp, rows, dist);
    }
    cmir__free(mask);
    return rc;
}
