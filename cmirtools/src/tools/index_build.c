/* Building, appending to and merging retrieval indexes: tiles of archives
 * embedded with a model, footprints densified and reprojected, features
 * and embedding chunks written to a GeoPackage in one transaction. */
#include "../index/index_tools.h"
#include "cmir/archive.h"
#include "cmir/audio.h"
#include "cmir/model.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cmir_index_params cmir_index_default_params(void)
{
    cmir_index_params p;
    memset(&p, 0, sizeof p);
    p.crs = "EPSG:4326";
    p.n_shards = 1;
    return p;
}

/* ---- building ---- */
typedef struct builder {
    const char *path;
    OGRLayerH tiles, emb, meta;
    OGRLayerH q8;        /* the int8 code table; NULL: no codes written */
    OGRSpatialReferenceH srs;
    int dim;
    int64_t row;         /* next row */
    float *chunk;        /* CMIR_INDEX_CHUNK x dim */
    uint8_t *chunk_mod;  /* CMIR_INDEX_CHUNK */
    int64_t chunk_first, chunk_n;
    /* one cached transformation: from the last tile CRS to the index CRS */
    char *ct_wkt;
    OGRCoordinateTransformationH ct;
    int ct_same;
    /* sharded build: the global 64-tile batch counter and the shard's run */
    int64_t batch, batch_lo, batch_hi;
} builder;

static int flush_chunk(builder *B)
{
    if (!B->chunk_n)
        return 0;
    int rc = cmir__index_write_chunk(B->emb, B->path, B->chunk_first, B->chunk_n, B->dim, B->chunk, B->chunk_mod);
    if (!rc && B->q8)
        rc = cmir__index_write_codes(B->q8, B->path, B->chunk_first, B->chunk_n, B->dim, B->chunk);
    B->chunk_first += B->chunk_n;
    B->chunk_n = 0;
    return rc;
}

/* Footprint of a tile: its pixel extent in its own CRS, each side cut into
 * 16 segments, then transformed into the index CRS. NULL when the tile is
 * not georeferenced or the transformation fails. */
static OGRGeometryH footprint(builder *B, const double gt[6], int w, int h, const char *wkt)
{
    if (!wkt || !*wkt || !isfinite(gt[0]))
        return NULL;
    if (!B->ct_wkt || strcmp(B->ct_wkt, wkt) != 0) {
        if (B->ct)
            OCTDestroyCoordinateTransformation(B->ct);
        B->ct = NULL;
        cmir__free(B->ct_wkt);
        B->ct_wkt = cmir__strdup(wkt);
        OGRSpatialReferenceH s = OSRNewSpatialReference(wkt);
        if (!s)
            return NULL;
        OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
        B->ct_same = OSRIsSame(s, B->srs);
        if (!B->ct_same)
            B->ct = OCTNewCoordinateTransformation(s, B->srs);
        OSRDestroySpatialReference(s);
    }
    if (!B->ct_same && !B->ct)
        return NULL;
    OGRGeometryH ring = OGR_G_CreateGeometry(wkbLinearRing);
    const double px[5] = {0, w, w, 0, 0}, py[5] = {0, 0, h, h, 0};
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < 16; j++) {
            double t = j / 16.0, u = px[s] + (px[s + 1] - px[s]) * t, v = py[s] + (py[s + 1] - py[s]) * t;
            OGR_G_AddPoint_2D(ring, gt[0] + u * gt[1] + v * gt[2], gt[3] + u * gt[4] + v * gt[5]);
        }
    OGR_G_AddPoint_2D(ring, gt[0], gt[3]);
    OGRGeometryH poly = OGR_G_CreateGeometry(wkbPolygon);
    OGR_G_AddGeometryDirectly(poly, ring);
    if (!B->ct_same && OGR_G_Transform(poly, B->ct) != OGRERR_NONE) {
        OGR_G_DestroyGeometry(poly);
        return NULL;
    }
    return poly;
}

/* Appends one embedding row (and its modality) to the current chunk. */
static int add_row(builder *B, int k, const float *v)
{
    memcpy(B->chunk + (size_t)B->chunk_n * B->dim, v, sizeof(float) * (size_t)B->dim);
    B->chunk_mod[B->chunk_n] = (uint8_t)k;
    B->chunk_n++;
    B->row++;
    return B->chunk_n == CMIR_INDEX_CHUNK ? flush_chunk(B) : 0;
}

/* A clip of a speech corpus: a feature without geometry. */
static int add_clip(builder *B, const cmir_audio_corpus *c, int64_t i, int cls, const char *cls_name,
                    const float *v)
{
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(B->tiles));
    if (!f)
        return CMIR_ENOMEM;
    OGR_F_SetFieldInteger64(f, 0, B->row);
    OGR_F_SetFieldInteger64(f, 1, i);
    OGR_F_SetFieldString(f, 2, "audio");
    OGR_F_SetFieldString(f, 3, cmir_audio_corpus_file(c, i));
    OGR_F_SetFieldString(f, 4, cmir_audio_corpus_voice(c, i));
    OGR_F_SetFieldInteger(f, 6, cls);
    OGR_F_SetFieldString(f, 7, cls_name);
    OGR_F_SetFieldString(f, 8, cls_name);
    OGRErr e = OGR_L_CreateFeature(B->tiles, f);
    OGR_F_Destroy(f);
    if (e != OGRERR_NONE)
        return cmir__gdal_error(CMIR_EIO, B->path, "cannot write a clip feature");
    return add_row(B, 1, v);
}

/* Embeds and adds the corpus's clips (labels matched to the model's
 * classes by name), each with its spoken label. A clip the recogniser
 * mishears (sphinx feature: its own label not on the best path) is left
 * out: its code is another label's, so a voice query heard as that label
 * would find it at distance 0 among the right clips and, first in the
 * index, answer its (wrong) label to -target audio -k 1. */
static int add_corpus(builder *B, cmir_model *m, cmir_exec *ex, const char *manifest, float *V)
{
    cmir_audio_params ap;
    cmir_model_audio_params(m, &ap);
    cmir_audio_corpus *c = cmir_audio_corpus_load(manifest, ap, NULL, NULL);
    if (!c)
        return cmir__failed(CMIR_EIO);
    int rc = 0;
    int64_t n = cmir_audio_corpus_count(c);
    for (int64_t s = 0; !rc && s < n; s += 64) {
        int b = (int)(n - s < 64 ? n - s : 64);
        rc = cmir_model_embed(m, ex, CMIR_AUDIO, cmir_audio_corpus_features(c) + (size_t)s * CMIR_AUDIO_FEATURE_DIM, b, NULL,
                              V);
        for (int j = 0; !rc && j < b; j++) {
            const char *l = cmir_audio_corpus_label(c, s + j);
            int cls = cmir_model_class_of(m, l);
            if (!cls)
                rc = cmir__error(CMIR_EINVAL, "%s: clip %s is labelled '%s', which is not a class of the model",
                                 manifest, cmir_audio_corpus_file(c, s + j), l);
            else if (cmir_audio_corpus_heard_own(c, s + j))
                rc = add_clip(B, c, s + j, cls, cmir_model_class_name(m, cls), V + (size_t)j * B->dim);
        }
    }
    cmir_audio_corpus_free(c);
    return rc;
}

static int add_tile(builder *B, const cmir_archive *a, const char *apath, int k, int64_t t, const float *v,
                    const char *modality)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(B->tiles));
    if (!f)
        return CMIR_ENOMEM;
    char win[128] = "", labels[2048] = "";
    double w[4], gt[6];
    if (!cmir_archive_window(a, k ? CMIR_MS : CMIR_PAN, t, w))
        snprintf(win, sizeof win, "%.10g,%.10g,%.10g,%.10g", w[0], w[1], w[2], w[3]);
    int label = cmir_archive_label(a, t);
    uint8_t ml[1024];
    if (ai->n_classes <= 1024 && !cmir_archive_multilabel(a, t, ml))
        for (int c = 0; c < ai->n_classes; c++)
            if (ml[c] && strlen(labels) + strlen(cmir_archive_class_name(a, c + 1)) + 2 < sizeof labels)
                snprintf(labels + strlen(labels), sizeof labels - strlen(labels), "%s%s", labels[0] ? ";" : "",
                         cmir_archive_class_name(a, c + 1));
    /* the file the window is in: an MS row's MS scene when the archive records it */
    const char *scene = k ? cmir_archive_source(a, CMIR_MS, t) : NULL;
    if (!scene)
        scene = cmir_archive_scene(a, t);
    OGR_F_SetFieldInteger64(f, 0, B->row);
    OGR_F_SetFieldInteger64(f, 1, t);
    OGR_F_SetFieldString(f, 2, modality);
    OGR_F_SetFieldString(f, 3, apath);
    if (scene)
        OGR_F_SetFieldString(f, 4, scene);
    if (win[0])
        OGR_F_SetFieldString(f, 5, win);
    OGR_F_SetFieldInteger(f, 6, label);
    if (label > 0)
        OGR_F_SetFieldString(f, 7, cmir_archive_class_name(a, label));
    OGR_F_SetFieldString(f, 8, labels);
    if (!cmir_archive_geotransform(a, k ? CMIR_MS : CMIR_PAN, t, gt)) {
        OGRGeometryH g = footprint(B, gt, k ? ai->ms_w : ai->pan_w, k ? ai->ms_h : ai->pan_h, cmir_archive_crs(a, t));
        if (g)
            OGR_F_SetGeometryDirectly(f, g);
    }
    OGRErr e = OGR_L_CreateFeature(B->tiles, f);
    OGR_F_Destroy(f);
    if (e != OGRERR_NONE)
        return cmir__gdal_error(CMIR_EIO, B->path, "cannot write a tile feature");
    return add_row(B, k, v);
}

static int check_fit(const cmir_model_info *mi, const cmir_archive_info *ai, const char *apath)
{
    if (mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH) {
        if (mi->pan_h != ai->pan_h || mi->pan_w != ai->pan_w || mi->pan_bands != ai->pan_bands)
            return cmir__error(CMIR_EINVAL, "%s: image tiles are %dx%dx%d, the model expects %dx%dx%d", apath,
                               ai->pan_h, ai->pan_w, ai->pan_bands, mi->pan_h, mi->pan_w, mi->pan_bands);
        return 0;
    }
    if (mi->pan_h != ai->pan_h || mi->pan_w != ai->pan_w || mi->pan_bands != ai->pan_bands ||
        mi->ms_h != ai->ms_h || mi->ms_w != ai->ms_w || mi->ms_bands != ai->ms_bands)
        return cmir__error(CMIR_EINVAL,
                           "%s: tiles are %dx%dx%d PAN / %dx%dx%d MS, the model expects %dx%dx%d / %dx%dx%d",
                           apath, ai->pan_h, ai->pan_w, ai->pan_bands, ai->ms_h, ai->ms_w, ai->ms_bands,
                           mi->pan_h, mi->pan_w, mi->pan_bands, mi->ms_h, mi->ms_w, mi->ms_bands);
    return 0;
}

/* One appender at a time (cmir__lock_for_append): the lock covers one
 * byte at INDEX_LOCK_BYTE, outside SQLite's own lock range (1 GiB +
 * 0..511), and is taken before the stored row count is read; without it,
 * an appender that read the count while another was still writing would
 * number its rows after a stale count. */
#define INDEX_LOCK_BYTE 0x7fff0000L

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void builder_release(builder *B)
{
    if (B->ct)
        OCTDestroyCoordinateTransformation(B->ct);
    cmir__free(B->ct_wkt);
    if (B->srs)
        OSRDestroySpatialReference(B->srs);
    cmir__free(B->chunk);
    cmir__free(B->chunk_mod);
}

/* Opens an existing index for an append with model mi: its layers, row
 * count and CRS; the model identity must match. */
static int open_append(builder *B, const char *path, const cmir_model_info *mi, const char *model_path,
                       GDALDatasetH *ds, OGRLayerH *meta)
{
    if (!(*ds = cmir__gdal_open(path, GDAL_OF_VECTOR | GDAL_OF_UPDATE, NULL, "cannot open the index for update")))
        return cmir_last_error_code();
    B->tiles = GDALDatasetGetLayerByName(*ds, "tiles");
    B->emb = GDALDatasetGetLayerByName(*ds, "cmir_embeddings");
    *meta = GDALDatasetGetLayerByName(*ds, "cmir_meta");
    if (!B->tiles || !B->emb || !*meta)
        return cmir__error(CMIR_EFORMAT, "%s: not a CMIR index", path);
    B->q8 = cmir__index_codes_layer(*ds, *meta); /* codes for the new rows where the index has codes */
    int rc = 0;
    char *id = cmir__index_get_meta(*meta, "model_id"), *cnt = cmir__index_get_meta(*meta, "count");
    if (!id || strcmp(id, mi->id) != 0)
        rc = cmir__error(CMIR_EINVAL, "%s: built with model %s, cannot append with model %s (%s)", path,
                         id ? id : "(unknown)", mi->id, model_path);
    if (!rc) {
        B->row = B->chunk_first = cnt ? atoll(cnt) : 0;
        B->srs = OSRClone(OGR_L_GetSpatialRef(B->tiles));
        OSRSetAxisMappingStrategy(B->srs, OAMS_TRADITIONAL_GIS_ORDER);
    }
    cmir__free(id);
    cmir__free(cnt);
    return rc;
}

/* Creates a new index as af's temporary file, in CRS crs (NULL: WGS84),
 * with the int8 code table when codes. */
static int create_new(builder *B, const char *path, const char *crs, int codes, cmir__atomic_file *af,
                      GDALDatasetH *ds, OGRLayerH *meta)
{
    const char *def = crs ? crs : "EPSG:4326";
    if (!(B->srs = OSRNewSpatialReference(NULL)))
        return CMIR_ENOMEM;
    if (OSRSetFromUserInput(B->srs, def) != OGRERR_NONE)
        return cmir__error(CMIR_EINVAL, "%s: unknown CRS '%s'", path, def);
    OSRSetAxisMappingStrategy(B->srs, OAMS_TRADITIONAL_GIS_ORDER);
    GDALDriverH drv = GDALGetDriverByName("GPKG");
    if (!drv)
        return cmir__error(CMIR_EUNSUPPORTED, "GDAL has no GPKG driver");
    int rc = cmir__atomic_open(af, path, CMIR__ATOMIC_NAME_ONLY);
    if (!rc && !(*ds = GDALCreate(drv, af->tmp, 0, 0, 0, GDT_Unknown, NULL)))
        rc = cmir__gdal_error(CMIR_EIO, path, "cannot create the index");
    if (!rc)
        rc = cmir__index_create_layers(*ds, path, B->srs, &B->tiles, &B->emb, meta);
    if (!rc && codes)
        rc = cmir__index_create_codes(*ds, path, *meta, &B->q8);
    return rc;
}

/* The row count and, for a new index, format, model identity, dimension
 * and CRS definition. */
static int write_meta(builder *B, OGRLayerH meta, int is_new, const char *model_id, const char *crs_wkt)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)B->row);
    int rc = cmir__index_set_meta(meta, B->path, "count", buf);
    snprintf(buf, sizeof buf, "%d", B->dim);
    if (!rc && is_new)
        rc = cmir__index_set_meta(meta, B->path, "format", CMIR_INDEX_FORMAT);
    if (!rc && is_new)
        rc = cmir__index_set_meta(meta, B->path, "model_id", model_id);
    if (!rc && is_new)
        rc = cmir__index_set_meta(meta, B->path, "dim", buf);
    if (!rc && is_new)
        rc = cmir__index_set_meta(meta, B->path, "crs", crs_wkt ? crs_wkt : "");
    return rc;
}

/* Commits (or on rc, rolls back) the transaction, closes ds, and renames a
 * new index into place (af zeroed for an append). */
static int finish(GDALDatasetH ds, cmir__atomic_file *af, const char *path, int rc)
{
    if (ds) {
        if (!rc && GDALDatasetCommitTransaction(ds) != OGRERR_NONE)
            rc = cmir__gdal_error(CMIR_EIO, path, "cannot commit the transaction");
        else if (rc)
            GDALDatasetRollbackTransaction(ds);
        GDALClose(ds);
    }
    if (rc)
        cmir__atomic_abort(af);
    else if (af->open)
        rc = cmir__atomic_commit(af);
    return rc;
}

/* Opens the archives (each must fit the model) and allocates the chunk
 * and batch buffers (raw: 64 tiles, V: 64 codes). *total: tiles to embed. */
static int open_inputs(builder *B, const cmir_model_info *mi, const char *const *archives, int n, cmir_archive **arch,
                       float **raw, float **V, int64_t *total)
{
    const int speech = mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    for (int i = 0; i < n; i++) {
        if (!(arch[i] = cmir_archive_open(archives[i])))
            return cmir__failed(CMIR_EIO);
        int rc = check_fit(mi, cmir_archive_get_info(arch[i]), archives[i]);
        if (rc)
            return rc;
        *total += (speech ? 1 : 2) * cmir_archive_get_info(arch[i])->n_tiles;
    }
    B->dim = mi->d_v;
    B->chunk = cmir__malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * B->dim);
    B->chunk_mod = cmir__malloc(CMIR_INDEX_CHUNK);
    size_t per = (size_t)mi->pan_h * mi->pan_w * mi->pan_bands, per2 = (size_t)mi->ms_h * mi->ms_w * mi->ms_bands;
    *raw = cmir__malloc(sizeof(float) * 64 * (per > per2 ? per : per2));
    *V = cmir__malloc(sizeof(float) * 64 * (size_t)B->dim);
    return B->chunk && B->chunk_mod && *raw && *V ? 0 : CMIR_ENOMEM;
}

/* Embeds every tile of archive a (both modalities, or images only for an
 * image-speech model) in batches of 64 and adds them. */
static int add_archive(builder *B, cmir_model *m, cmir_exec *ex, cmir_archive *a, const char *apath, float *raw,
                       float *V, int64_t *done, int64_t total, cmir_progress_fn progress, void *user)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    const int speech = cmir_model_get_info(m)->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    int rc = 0;
    for (int k = 0; !rc && k < (speech ? 1 : 2); k++) {
        size_t per = k ? (size_t)ai->ms_h * ai->ms_w * ai->ms_bands : (size_t)ai->pan_h * ai->pan_w * ai->pan_bands;
        for (int64_t s = 0; !rc && s < ai->n_tiles; s += 64) {
            int n = (int)(ai->n_tiles - s < 64 ? ai->n_tiles - s : 64);
            int64_t b = B->batch++;
            if (b < B->batch_lo || b >= B->batch_hi)
                continue; /* another shard's batch */
            for (int j = 0; !rc && j < n; j++)
                rc = cmir_archive_read_tile(a, k ? CMIR_MS : CMIR_PAN, s + j, raw + per * j);
            if (!rc)
                rc = cmir_model_embed(m, ex, k, raw, n, NULL, V);
            for (int j = 0; !rc && j < n; j++)
                rc = add_tile(B, a, apath, k, s + j, V + (size_t)j * B->dim, cmir_model_modality_name(m, k));
            *done += n;
            if (!rc && progress && progress((double)*done / (double)total, NULL, user))
                rc = cmir__error(CMIR_ECANCEL, "cancelled");
        }
    }
    return rc;
}

int cmir_index_check_params(cmir_index_params p)
{
    if (p.threads < 0)
        return cmir__error(CMIR_EINVAL, "cmir_index_params.threads: must be >= 0, got %d", p.threads);
    if (p.n_shards < 1)
        return cmir__error(CMIR_EINVAL, "cmir_index_params.n_shards: must be >= 1, got %d", p.n_shards);
    if (p.shard < 0 || p.shard >= p.n_shards)
        return cmir__error(CMIR_EINVAL, "cmir_index_params.shard: must be in 0..%d, got %d", p.n_shards - 1, p.shard);
    if (p.n_shards > 1 && (p.append || p.speech_manifest))
        return cmir__error(CMIR_EINVAL, "cmir_index_params.n_shards: a sharded build cannot append or index clips");
    return 0;
}

int cmir_index_build(const char *model_path, const char *const *archives, int n_archives,
                     const char *index_path, cmir_index_params p, cmir_progress_fn progress,
                     void *user, int64_t *n_added)
{
    if (!model_path || (!archives && n_archives > 0) || n_archives < 0 || (n_archives < 1 && !p.speech_manifest) ||
        !index_path)
        return cmir__error(CMIR_EINVAL, "cmir_index_build: need a model, archives and an index path");
    if (cmir_index_check_params(p))
        return CMIR_EINVAL;
    builder B;
    memset(&B, 0, sizeof B);
    B.path = index_path;
    int rc = 0, appending = p.append && file_exists(index_path), lock_fd = -1;
    cmir__atomic_file af;
    memset(&af, 0, sizeof af);
    af.fd = -1; /* "not open": abort is then a no-op */
    GDALDatasetH ds = NULL;
    OGRLayerH meta = NULL;
    cmir_archive **arch = cmir__calloc((size_t)n_archives, sizeof *arch);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_model *m = cmir_model_load(model_path);
    float *raw = NULL, *V = NULL;
    if (!m)
        rc = cmir__failed(CMIR_EFORMAT);
    else if (!arch || !ex)
        rc = CMIR_ENOMEM;
    const cmir_model_info *mi = m ? cmir_model_get_info(m) : NULL;
    if (!rc && p.speech_manifest && mi->scenario != CMIR_SCENARIO_IMAGE_SPEECH)
        rc = cmir__error(CMIR_EINVAL, "%s is not an image-speech model: it cannot index clips", model_path);
    int64_t total = 0, done = 0;
    if (!rc)
        rc = open_inputs(&B, mi, archives, n_archives, arch, &raw, &V, &total);
    B.batch_hi = INT64_MAX;
    if (!rc && p.n_shards > 1) {
        int64_t nb = 0;
        for (int i = 0; i < n_archives; i++)
            nb += (mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH ? 1 : 2) * ((cmir_archive_get_info(arch[i])->n_tiles + 63) / 64);
        B.batch_lo = nb * p.shard / p.n_shards;
        B.batch_hi = nb * (p.shard + 1) / p.n_shards;
        total = total * (B.batch_hi - B.batch_lo) / (nb ? nb : 1) + 1;
    }
    if (!rc && appending)
        rc = cmir__lock_for_append(index_path, INDEX_LOCK_BYTE, 1, "index", &lock_fd);
    cmir__gdal_quiet_begin();
    GDALAllRegister(); /* callers need not have registered GDAL's drivers */
    if (!rc)
        rc = appending ? open_append(&B, index_path, mi, model_path, &ds, &meta)
                       : create_new(&B, index_path, p.crs, !p.no_codes, &af, &ds, &meta);
    if (!rc && GDALDatasetStartTransaction(ds, FALSE) != OGRERR_NONE)
        rc = cmir__gdal_error(CMIR_EIO, index_path, "cannot start a transaction");
    int64_t first = B.row;
    for (int i = 0; !rc && i < n_archives; i++)
        rc = add_archive(&B, m, ex, arch[i], archives[i], raw, V, &done, total, progress, user);
    if (!rc && p.speech_manifest)
        rc = add_corpus(&B, m, ex, p.speech_manifest, V);
    if (!rc)
        rc = flush_chunk(&B);
    if (!rc) {
        char *wkt = NULL;
        if (!appending)
            OSRExportToWkt(B.srs, &wkt);
        rc = write_meta(&B, meta, !appending, mi->id, wkt);
        CPLFree(wkt);
    }
    rc = finish(ds, &af, index_path, rc);
    cmir__gdal_quiet_end();
    if (lock_fd >= 0)
        close(lock_fd); /* after the commit: releases the append lock */
    if (n_added)
        *n_added = rc ? 0 : B.row - first;
    builder_release(&B);
    for (int i = 0; arch && i < n_archives; i++)
        cmir_archive_close(arch[i]);
    cmir__free(arch);
    cmir__free(raw);
    cmir__free(V);
    cmir_model_free(m);
    cmir_exec_free(ex);
    return rc;
}

/* ---- merging shards ---- */

/* Copies every row of part ix (its feature, renumbered, and its
 * embedding) to the merged index. */
static int merge_part(builder *B, cmir_index *ix, const char *part)
{
    int rc = 0;
    for (int64_t r = 0; !rc && r < cmir_index_count(ix); r++) {
        OGRFeatureH f = cmir__index_feature(ix, r);
        if (!f)
            return cmir__error(CMIR_EFORMAT, "%s: row %lld has no feature", part, (long long)r);
        OGRFeatureH g = OGR_F_Create(OGR_L_GetLayerDefn(B->tiles));
        OGR_F_SetFrom(g, f, TRUE);
        OGR_F_SetFID(g, OGRNullFID);
        OGR_F_SetFieldInteger64(g, OGR_F_GetFieldIndex(g, "row"), B->row);
        OGRErr e = OGR_L_CreateFeature(B->tiles, g);
        OGR_F_Destroy(g);
        OGR_F_Destroy(f);
        if (e != OGRERR_NONE)
            return cmir__gdal_error(CMIR_EIO, B->path, "cannot write a tile feature");
        rc = add_row(B, cmir_index_modality(ix, r), cmir_index_vector(ix, r));
    }
    return rc;
}

int cmir_index_merge(const char *const *parts, int n_parts, const char *out, cmir_progress_fn progress,
                     void *user)
{
    if (!parts || n_parts < 1 || !out)
        return cmir__error(CMIR_EINVAL, "cmir_index_merge: need parts and an output");
    cmir_index *first = cmir_index_open(parts[0]);
    if (!first)
        return cmir__failed(CMIR_EFORMAT);
    builder B;
    memset(&B, 0, sizeof B);
    B.path = out;
    B.dim = cmir_index_dim(first);
    B.srs = OSRClone(cmir__index_srs(first));
    B.chunk = cmir__malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * B.dim);
    B.chunk_mod = cmir__malloc(CMIR_INDEX_CHUNK);
    cmir__atomic_file af;
    memset(&af, 0, sizeof af);
    af.fd = -1; /* "not open": abort is then a no-op */
    GDALDatasetH ds = NULL;
    OGRLayerH meta = NULL;
    int rc = B.srs && B.chunk && B.chunk_mod ? 0 : CMIR_ENOMEM;
    cmir__gdal_quiet_begin();
    GDALDriverH drv = GDALGetDriverByName("GPKG");
    if (!rc)
        rc = cmir__atomic_open(&af, out, CMIR__ATOMIC_NAME_ONLY);
    if (!rc && !(ds = GDALCreate(drv, af.tmp, 0, 0, 0, GDT_Unknown, NULL)))
        rc = cmir__gdal_error(CMIR_EIO, out, "cannot create the index");
    if (!rc)
        rc = cmir__index_create_layers(ds, out, B.srs, &B.tiles, &B.emb, &meta);
    /* the merged index stores codes when its first part does (a sharded
     * build's shards: as its params said) */
    if (!rc && cmir__index_stores_codes(first))
        rc = cmir__index_create_codes(ds, out, meta, &B.q8);
    if (!rc && GDALDatasetStartTransaction(ds, FALSE) != OGRERR_NONE)
        rc = cmir__gdal_error(CMIR_EIO, out, "cannot start a transaction");
    for (int i = 0; !rc && i < n_parts; i++) {
        cmir_index *ix = i ? cmir_index_open(parts[i]) : first;
        if (!ix)
            rc = cmir__failed(CMIR_EFORMAT);
        else if (strcmp(cmir_index_model_id(ix), cmir_index_model_id(first)) != 0 || cmir_index_dim(ix) != B.dim)
            rc = cmir__error(CMIR_EINVAL, "%s: built with model %s, %s with %s: cannot merge", parts[i],
                             cmir_index_model_id(ix), parts[0], cmir_index_model_id(first));
        else if (!OSRIsSame(cmir__index_srs(ix), B.srs))
            rc = cmir__error(CMIR_EINVAL, "%s: its CRS differs from %s's", parts[i], parts[0]);
        if (!rc)
            rc = merge_part(&B, ix, parts[i]);
        if (ix != first)
            cmir_index_close(ix);
        if (!rc && progress && progress((double)(i + 1) / n_parts, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    if (!rc)
        rc = flush_chunk(&B);
    if (!rc)
        rc = write_meta(&B, meta, 1, cmir_index_model_id(first), cmir__index_crs_wkt(first));
    rc = finish(ds, &af, out, rc);
    cmir__gdal_quiet_end();
    builder_release(&B);
    cmir_index_close(first);
    return rc;
}
