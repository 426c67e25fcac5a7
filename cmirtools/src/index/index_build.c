/* Building, appending to and merging retrieval indexes: tiles of archives
 * embedded with a model, footprints densified and reprojected, features
 * and embedding chunks written to a GeoPackage in one transaction. */
#include "index_internal.h"
#include "cmir/archive.h"
#include "cmir/audio.h"
#include "cmir/model.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cmir_index_params cmir_index_default_params(void)
{
    cmir_index_params p;
    memset(&p, 0, sizeof p);
    p.crs = "EPSG:4326";
    return p;
}

char *cmir__temp_beside(const char *path)
{
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && slash && dot < slash)
        dot = NULL;
    size_t stem = dot ? (size_t)(dot - path) : n;
    char *t = cmir__malloc(n + 48);
    if (t)
        snprintf(t, n + 48, "%.*s.tmp-%ld-%p%s", (int)stem, path, (long)getpid(), (void *)t, dot ? dot : "");
    return t;
}

static OGRFieldDefnH field(const char *name, OGRFieldType t)
{
    return OGR_Fld_Create(name, t);
}

int cmir__index_create_layers(GDALDatasetH ds, const char *path, OGRSpatialReferenceH srs,
                              OGRLayerH *tiles, OGRLayerH *emb, OGRLayerH *meta)
{
    char *opts[] = {"FID=fid", "SPATIAL_INDEX=YES", NULL};
    *tiles = GDALDatasetCreateLayer(ds, "tiles", srs, wkbPolygon, opts);
    *emb = GDALDatasetCreateLayer(ds, "cmir_embeddings", NULL, wkbNone, NULL);
    *meta = GDALDatasetCreateLayer(ds, "cmir_meta", NULL, wkbNone, NULL);
    if (!*tiles || !*emb || !*meta)
        return cmir__gdal_error(CMIR_EIO, path, "cannot create the index layers");
    struct {
        OGRLayerH l;
        const char *name;
        OGRFieldType t;
    } f[] = {{*tiles, "row", OFTInteger64},       {*tiles, "tile_id", OFTInteger64},
             {*tiles, "modality", OFTString},     {*tiles, "archive", OFTString},
             {*tiles, "scene", OFTString},        {*tiles, "window", OFTString},
             {*tiles, "class", OFTInteger},       {*tiles, "class_name", OFTString},
             {*tiles, "labels", OFTString},       {*emb, "first_row", OFTInteger64},
             {*emb, "n_rows", OFTInteger},        {*emb, "dim", OFTInteger},
             {*emb, "data", OFTBinary},           {*emb, "modality", OFTBinary},
             {*meta, "key", OFTString},
             {*meta, "value", OFTString}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        OGRFieldDefnH d = field(f[i].name, f[i].t);
        OGRErr e = OGR_L_CreateField(f[i].l, d, TRUE);
        OGR_Fld_Destroy(d);
        if (e != OGRERR_NONE)
            return cmir__gdal_error(CMIR_EIO, path, "cannot create the index fields");
    }
    return 0;
}

int cmir__index_write_chunk(OGRLayerH emb, const char *path, int64_t first, int64_t n, int dim,
                            const float *v, const uint8_t *mod)
{
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(emb));
    if (!f)
        return CMIR_ENOMEM;
    OGR_F_SetFieldInteger64(f, 0, first);
    OGR_F_SetFieldInteger(f, 1, (int)n);
    OGR_F_SetFieldInteger(f, 2, dim);
    /* float32, little-endian (x86 and ARM Linux are little-endian) */
    OGR_F_SetFieldBinary(f, 3, (int)(n * dim * (int64_t)sizeof(float)), (const void *)v);
    OGR_F_SetFieldBinary(f, 4, (int)n, (const void *)mod);
    OGRErr e = OGR_L_CreateFeature(emb, f);
    OGR_F_Destroy(f);
    return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write embeddings");
}

int cmir__index_set_meta(OGRLayerH meta, const char *path, const char *key, const char *value)
{
    OGRFeatureH f;
    OGR_L_ResetReading(meta);
    while ((f = OGR_L_GetNextFeature(meta)) != NULL) {
        if (!strcmp(OGR_F_GetFieldAsString(f, 0), key)) {
            OGR_F_SetFieldString(f, 1, value);
            OGRErr e = OGR_L_SetFeature(meta, f);
            OGR_F_Destroy(f);
            return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot update index metadata");
        }
        OGR_F_Destroy(f);
    }
    f = OGR_F_Create(OGR_L_GetLayerDefn(meta));
    OGR_F_SetFieldString(f, 0, key);
    OGR_F_SetFieldString(f, 1, value);
    OGRErr e = OGR_L_CreateFeature(meta, f);
    OGR_F_Destroy(f);
    return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write index metadata");
}

char *cmir__index_get_meta(OGRLayerH meta, const char *key)
{
    OGRFeatureH f;
    char *out = NULL;
    OGR_L_ResetReading(meta);
    while (!out && (f = OGR_L_GetNextFeature(meta)) != NULL) {
        if (!strcmp(OGR_F_GetFieldAsString(f, 0), key))
            out = cmir__strdup(OGR_F_GetFieldAsString(f, 1));
        OGR_F_Destroy(f);
    }
    return out;
}

/* ---- building ---- */
typedef struct builder {
    const char *path;
    OGRLayerH tiles, emb, meta;
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
} builder;

static int flush_chunk(builder *B)
{
    if (!B->chunk_n)
        return 0;
    int rc = cmir__index_write_chunk(B->emb, B->path, B->chunk_first, B->chunk_n, B->dim, B->chunk, B->chunk_mod);
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

/* Embeds and adds every clip of the corpus (labels matched to the model's
 * classes by name). */
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
        rc = cmir_model_embed(m, ex, 1, cmir_audio_corpus_features(c) + (size_t)s * CMIR_AUDIO_FEATURE_DIM, b, NULL,
                              V);
        for (int j = 0; !rc && j < b; j++) {
            const char *l = cmir_audio_corpus_label(c, s + j);
            int cls = cmir_model_class_of(m, l);
            if (!cls)
                rc = cmir__error(CMIR_EINVAL, "%s: clip %s is labelled '%s', which is not a class of the model",
                                 manifest, cmir_audio_corpus_file(c, s + j), l);
            else
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
    const char *scene = cmir_archive_scene(a, t);
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

int cmir_index_build(const char *model_path, const char *const *archives, int n_archives,
                     const char *index_path, cmir_index_params p, cmir_progress_fn progress,
                     void *user, int64_t *n_added)
{
    if (!model_path || (!archives && n_archives > 0) || n_archives < 0 || (n_archives < 1 && !p.speech_manifest) ||
        !index_path || p.threads < 0)
        return cmir__error(CMIR_EINVAL, "cmir_index_build: need a model, archives and an index path");
    builder B;
    memset(&B, 0, sizeof B);
    B.path = index_path;
    int rc = 0, appending = p.append && file_exists(index_path);
    char *tmp = NULL;
    GDALDatasetH ds = NULL;
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
    const int speech = mi && mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    if (!rc && p.speech_manifest && !speech)
        rc = cmir__error(CMIR_EINVAL, "%s is not an image-speech model: it cannot index clips", model_path);
    int64_t total = 0, done = 0;
    for (int i = 0; !rc && i < n_archives; i++) {
        if (!(arch[i] = cmir_archive_open(archives[i])))
            rc = cmir__failed(CMIR_EIO);
        else if (!(rc = check_fit(mi, cmir_archive_get_info(arch[i]), archives[i])))
            total += (speech ? 1 : 2) * cmir_archive_get_info(arch[i])->n_tiles;
    }
    if (!rc) {
        B.dim = mi->d_v;
        B.chunk = cmir__malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * B.dim);
        B.chunk_mod = cmir__malloc(CMIR_INDEX_CHUNK);
        size_t per = (size_t)mi->pan_h * mi->pan_w * mi->pan_bands;
        size_t per2 = (size_t)mi->ms_h * mi->ms_w * mi->ms_bands;
        raw = cmir__malloc(sizeof(float) * 64 * (per > per2 ? per : per2));
        V = cmir__malloc(sizeof(float) * 64 * (size_t)B.dim);
        if (!B.chunk || !B.chunk_mod || !raw || !V)
            rc = CMIR_ENOMEM;
    }
    OGRLayerH meta = NULL;
    int lock_fd = -1;
    if (!rc && appending)
        rc = cmir__lock_for_append(index_path, INDEX_LOCK_BYTE, 1, "index", &lock_fd);
    cmir__gdal_quiet_begin();
    GDALAllRegister(); /* callers need not have registered GDAL's drivers */
    if (!rc && appending) {
        ds = GDALOpenEx(index_path, GDAL_OF_VECTOR | GDAL_OF_UPDATE, NULL, NULL, NULL);
        if (!ds)
            rc = cmir__gdal_error(CMIR_EIO, index_path, "cannot open the index for update");
        if (!rc) {
            B.tiles = GDALDatasetGetLayerByName(ds, "tiles");
            B.emb = GDALDatasetGetLayerByName(ds, "cmir_embeddings");
            meta = GDALDatasetGetLayerByName(ds, "cmir_meta");
            if (!B.tiles || !B.emb || !meta)
                rc = cmir__error(CMIR_EFORMAT, "%s: not a CMIR index", index_path);
        }
        char *id = rc ? NULL : cmir__index_get_meta(meta, "model_id");
        char *cnt = rc ? NULL : cmir__index_get_meta(meta, "count");
        if (!rc && (!id || strcmp(id, mi->id) != 0))
            rc = cmir__error(CMIR_EINVAL, "%s: built with model %s, cannot append with model %s (%s)", index_path,
                             id ? id : "(unknown)", mi->id, model_path);
        if (!rc) {
            B.row = B.chunk_first = cnt ? atoll(cnt) : 0;
            B.srs = OSRClone(OGR_L_GetSpatialRef(B.tiles));
            OSRSetAxisMappingStrategy(B.srs, OAMS_TRADITIONAL_GIS_ORDER);
        }
        cmir__free(id);
        cmir__free(cnt);
    } else if (!rc) {
        B.srs = OSRNewSpatialReference(NULL);
        if (OSRSetFromUserInput(B.srs, p.crs ? p.crs : "EPSG:4326") != OGRERR_NONE)
            rc = cmir__error(CMIR_EINVAL, "%s: unknown CRS '%s'", index_path, p.crs);
        OSRSetAxisMappingStrategy(B.srs, OAMS_TRADITIONAL_GIS_ORDER);
        tmp = rc ? NULL : cmir__temp_beside(index_path);
        GDALDriverH drv = GDALGetDriverByName("GPKG");
        if (!rc && (!tmp || !drv))
            rc = tmp ? cmir__error(CMIR_EUNSUPPORTED, "GDAL has no GPKG driver") : CMIR_ENOMEM;
        if (!rc && !(ds = GDALCreate(drv, tmp, 0, 0, 0, GDT_Unknown, NULL)))
            rc = cmir__gdal_error(CMIR_EIO, index_path, "cannot create the index");
        if (!rc)
            rc = cmir__index_create_layers(ds, index_path, B.srs, &B.tiles, &B.emb, &meta);
    }
    if (!rc && GDALDatasetStartTransaction(ds, FALSE) != OGRERR_NONE)
        rc = cmir__gdal_error(CMIR_EIO, index_path, "cannot start a transaction");
    int64_t first = B.row;
    for (int i = 0; !rc && i < n_archives; i++) {
        const cmir_archive_info *ai = cmir_archive_get_info(arch[i]);
        for (int k = 0; !rc && k < (speech ? 1 : 2); k++) {
            size_t per = k ? (size_t)ai->ms_h * ai->ms_w * ai->ms_bands : (size_t)ai->pan_h * ai->pan_w * ai->pan_bands;
            for (int64_t s = 0; !rc && s < ai->n_tiles; s += 64) {
                int n = (int)(ai->n_tiles - s < 64 ? ai->n_tiles - s : 64);
                for (int j = 0; !rc && j < n; j++)
                    rc = cmir_archive_read_tile(arch[i], k ? CMIR_MS : CMIR_PAN, s + j, raw + per * j);
                if (!rc)
                    rc = cmir_model_embed(m, ex, k, raw, n, NULL, V);
                for (int j = 0; !rc && j < n; j++)
                    rc = add_tile(&B, arch[i], archives[i], k, s + j, V + (size_t)j * B.dim,
                                  cmir_model_modality_name(m, k));
                done += n;
                if (!rc && progress && progress((double)done / (double)total, NULL, user))
                    rc = cmir__error(CMIR_ECANCEL, "cancelled");
            }
        }
    }
    if (!rc && p.speech_manifest)
        rc = add_corpus(&B, m, ex, p.speech_manifest, V);
    if (!rc)
        rc = flush_chunk(&B);
    if (!rc) {
        char buf[64], *wkt = NULL;
        snprintf(buf, sizeof buf, "%lld", (long long)B.row);
        rc = cmir__index_set_meta(meta, index_path, "count", buf);
        if (!rc && !appending) {
            snprintf(buf, sizeof buf, "%d", B.dim);
            OSRExportToWkt(B.srs, &wkt);
            rc = cmir__index_set_meta(meta, index_path, "format", CMIR_INDEX_FORMAT);
            if (!rc)
                rc = cmir__index_set_meta(meta, index_path, "model_id", mi->id);
            if (!rc)
                rc = cmir__index_set_meta(meta, index_path, "dim", buf);
            if (!rc)
                rc = cmir__index_set_meta(meta, index_path, "crs", wkt ? wkt : "");
            CPLFree(wkt);
        }
    }
    if (ds) {
        if (!rc && GDALDatasetCommitTransaction(ds) != OGRERR_NONE)
            rc = cmir__gdal_error(CMIR_EIO, index_path, "cannot commit the transaction");
        else if (rc)
            GDALDatasetRollbackTransaction(ds);
        GDALClose(ds);
    }
    cmir__gdal_quiet_end();
    if (lock_fd >= 0)
        close(lock_fd); /* after the commit: releases the append lock */
    if (tmp) {
        if (!rc && rename(tmp, index_path) != 0)
            rc = cmir__error(CMIR_EIO, "%s: cannot rename the new index into place", index_path);
        if (rc)
            unlink(tmp);
        cmir__free(tmp);
    }
    if (n_added)
        *n_added = rc ? 0 : B.row - first;
    if (B.ct)
        OCTDestroyCoordinateTransformation(B.ct);
    cmir__free(B.ct_wkt);
    if (B.srs)
        OSRDestroySpatialReference(B.srs);
    for (int i = 0; arch && i < n_archives; i++)
        cmir_archive_close(arch[i]);
    cmir__free(arch);
    cmir__free(B.chunk);
    cmir__free(B.chunk_mod);
    cmir__free(raw);
    cmir__free(V);
    cmir_model_free(m);
    cmir_exec_free(ex);
    return rc;
}

/* ---- merging shards ---- */
int cmir_index_merge(const char *const *parts, int n_parts, const char *out, cmir_progress_fn progress,
                     void *user)
{
    if (!parts || n_parts < 1 || !out)
        return cmir__error(CMIR_EINVAL, "cmir_index_merge: need parts and an output");
    int rc = 0;
    cmir_index *first = cmir_index_open(parts[0]);
    if (!first)
        return cmir__failed(CMIR_EFORMAT);
    builder B;
    memset(&B, 0, sizeof B);
    B.path = out;
    B.dim = first->dim;
    B.srs = OSRClone(first->srs);
    char *tmp = cmir__temp_beside(out);
    GDALDatasetH ds = NULL;
    OGRLayerH meta = NULL;
    cmir__gdal_quiet_begin();
    GDALDriverH drv = GDALGetDriverByName("GPKG");
    if (!tmp)
        rc = CMIR_ENOMEM;
    else if (!(ds = GDALCreate(drv, tmp, 0, 0, 0, GDT_Unknown, NULL)))
        rc = cmir__gdal_error(CMIR_EIO, out, "cannot create the index");
    if (!rc)
        rc = cmir__index_create_layers(ds, out, B.srs, &B.tiles, &B.emb, &meta);
    if (!rc && GDALDatasetStartTransaction(ds, FALSE) != OGRERR_NONE)
        rc = cmir__gdal_error(CMIR_EIO, out, "cannot start a transaction");
    for (int i = 0; !rc && i < n_parts; i++) {
        cmir_index *ix = i ? cmir_index_open(parts[i]) : first;
        if (!ix) {
            rc = cmir__failed(CMIR_EFORMAT);
            break;
        }
        if (strcmp(ix->model_id, first->model_id) != 0 || ix->dim != first->dim)
            rc = cmir__error(CMIR_EINVAL, "%s: built with model %s, %s with %s: cannot merge", parts[i], ix->model_id,
                             parts[0], first->model_id);
        else if (!OSRIsSame(ix->srs, first->srs))
            rc = cmir__error(CMIR_EINVAL, "%s: its CRS differs from %s's", parts[i], parts[0]);
        for (int64_t r = 0; !rc && r < ix->n; r++) {
            OGRFeatureH f = cmir__index_feature(ix, r);
            if (!f) {
                rc = cmir__error(CMIR_EFORMAT, "%s: row %lld has no feature", parts[i], (long long)r);
                break;
            }
            OGRFeatureH g = OGR_F_Create(OGR_L_GetLayerDefn(B.tiles));
            OGR_F_SetFrom(g, f, TRUE);
            OGR_F_SetFID(g, OGRNullFID);
            OGR_F_SetFieldInteger64(g, OGR_F_GetFieldIndex(g, "row"), B.row);
            OGRErr e = OGR_L_CreateFeature(B.tiles, g);
            OGR_F_Destroy(g);
            OGR_F_Destroy(f);
            if (e != OGRERR_NONE)
                rc = cmir__gdal_error(CMIR_EIO, out, "cannot write a tile feature");
            if (!B.chunk && !(B.chunk = cmir__malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * B.dim)))
                rc = CMIR_ENOMEM;
            if (!B.chunk_mod && !(B.chunk_mod = cmir__malloc(CMIR_INDEX_CHUNK)))
                rc = CMIR_ENOMEM;
            if (!rc) {
                memcpy(B.chunk + (size_t)B.chunk_n * B.dim, ix->v + (size_t)r * B.dim, sizeof(float) * (size_t)B.dim);
                B.chunk_mod[B.chunk_n] = ix->mod[r];
                B.chunk_n++;
                B.row++;
                if (B.chunk_n == CMIR_INDEX_CHUNK)
                    rc = flush_chunk(&B);
            }
        }
        if (ix != first)
            cmir_index_close(ix);
        if (!rc && progress && progress((double)(i + 1) / n_parts, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    if (!rc)
        rc = flush_chunk(&B);
    if (!rc) {
        char buf[64];
        snprintf(buf, sizeof buf, "%lld", (long long)B.row);
        rc = cmir__index_set_meta(meta, out, "count", buf);
        snprintf(buf, sizeof buf, "%d", B.dim);
        if (!rc) rc = cmir__index_set_meta(meta, out, "format", CMIR_INDEX_FORMAT);
        if (!rc) rc = cmir__index_set_meta(meta, out, "model_id", first->model_id);
        if (!rc) rc = cmir__index_set_meta(meta, out, "dim", buf);
        if (!rc) rc = cmir__index_set_meta(meta, out, "crs", first->crs_wkt ? first->crs_wkt : "");
    }
    if (ds) {
        if (!rc && GDALDatasetCommitTransaction(ds) != OGRERR_NONE)
            rc = cmir__gdal_error(CMIR_EIO, out, "cannot commit the transaction");
        GDALClose(ds);
    }
    cmir__gdal_quiet_end();
    if (tmp) {
        if (!rc && rename(tmp, out) != 0)
            rc = cmir__error(CMIR_EIO, "%s: cannot rename the merged index into place", out);
        if (rc)
            unlink(tmp);
    }
    cmir__free(tmp);
    cmir__free(B.chunk);
    cmir__free(B.chunk_mod);
    OSRDestroySpatialReference(B.srs);
    cmir_index_close(first);
    return rc;
}
