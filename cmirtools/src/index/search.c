/* cmir_search(): queries (index rows, or rasters tiled and embedded on the
 * fly) against an index built with the same model, hits written through
 * OGR (GeoJSON per RFC 7946 by default: WGS84 lon/lat, counter-clockwise
 * rings, bbox) to a temporary file renamed into place. */
#include "index_internal.h"
#include "cmir/audio.h"
#include "cmir/model.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

cmir_search_params cmir_search_default_params(void)
{
    cmir_search_params p;
    memset(&p, 0, sizeof p);
    p.k = 10;
    p.filter = cmir_search_default_filter();
    p.filter.modality = -2; /* -2: the other modality than the query's */
    p.format = "GeoJSON";
    return p;
}

/* Embeds a raster query: tiles of the model's size from the window's
 * top-left, their codes averaged. *modality from the band count. */
static int embed_raster(cmir_model *m, cmir_exec *ex, const cmir_query *q, float *v, int *modality, char *desc,
                        size_t ndesc, float **first, int dims[3])
{
    const cmir_model_info *mi = cmir_model_get_info(m);
    GDALDatasetH ds = cmir__gdal_open_raster(q->raster);
    if (!ds)
        return cmir__failed(CMIR_EIO);
    int nb = GDALGetRasterCount(ds), rc = 0;
    const int speech = mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    int k = nb == mi->pan_bands ? 0 : (nb == mi->ms_bands && !speech ? 1 : -1);
    if (k < 0) {
        GDALClose(ds);
        if (speech)
            return cmir__error(CMIR_EINVAL, "%s: has %d bands; the model's images have %d", q->raster, nb,
                               mi->pan_bands);
        return cmir__error(CMIR_EINVAL, "%s: has %d bands; the model takes %d (PAN) or %d (MS)", q->raster, nb,
                           mi->pan_bands, mi->ms_bands);
    }
    int th = k ? mi->ms_h : mi->pan_h, tw = k ? mi->ms_w : mi->pan_w;
    int x0 = 0, y0 = 0, W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds);
    if (q->has_window) {
        if (q->window[0] < 0 || q->window[1] < 0 || q->window[2] < 1 || q->window[3] < 1 ||
            q->window[0] + q->window[2] > W || q->window[1] + q->window[3] > H) {
            GDALClose(ds);
            return cmir__error(CMIR_EINVAL, "%s: window %d,%d,%d,%d is outside the %dx%d raster", q->raster,
                               q->window[0], q->window[1], q->window[2], q->window[3], W, H);
        }
        x0 = q->window[0];
        y0 = q->window[1];
        W = q->window[2];
        H = q->window[3];
    }
    int nx = W / tw, ny = H / th;
    if (nx < 1 || ny < 1) {
        GDALClose(ds);
        return cmir__error(CMIR_EINVAL, "%s: %dx%d pixels is smaller than one %dx%d %s tile", q->raster, W, H, tw, th,
                           cmir_model_modality_name(m, k));
    }
    size_t per = (size_t)th * tw * nb;
    float *tile = cmir__malloc(sizeof(float) * per), *code = cmir__malloc(sizeof(float) * (size_t)mi->d_v);
    if (!tile || !code)
        rc = CMIR_ENOMEM;
    for (int j = 0; j < mi->d_v; j++)
        v[j] = 0;
    cmir__gdal_quiet_begin();
    for (int ty = 0; !rc && ty < ny; ty++)
        for (int tx = 0; !rc && tx < nx; tx++) {
            if (GDALDatasetRasterIO(ds, GF_Read, x0 + tx * tw, y0 + ty * th, tw, th, tile, tw, th, GDT_Float32, nb, NULL,
                                    (GSpacing)nb * 4, (GSpacing)tw * nb * 4, 4) != CE_None)
                rc = cmir__gdal_error(CMIR_EIO, q->raster, "read failed");
            else if (!(rc = cmir_model_embed(m, ex, k, tile, 1, NULL, code)))
                for (int j = 0; j < mi->d_v; j++)
                    v[j] += code[j] / (float)(nx * ny);
            if (!rc && first && !*first && (*first = cmir__malloc(sizeof(float) * per)) != NULL) {
                memcpy(*first, tile, sizeof(float) * per);
                dims[0] = th;
                dims[1] = tw;
                dims[2] = nb;
            }
        }
    cmir__gdal_quiet_end();
    snprintf(desc, ndesc, "%s %s window %d,%d,%d,%d (%d tile%s)", cmir_model_modality_name(m, k), q->raster, x0, y0, nx * tw, ny * th,
             nx * ny, nx * ny > 1 ? "s, codes averaged" : "");
    *modality = k;
    cmir__free(tile);
    cmir__free(code);
    GDALClose(ds);
    return rc;
}

/* A sphinx model's spoken query naming several labels ("trees and
 * water"): *lcodes gets the code of each named label alone (the clip's
 * feature with the other named labels' entries zeroed), *nl of them, and v
 * their mean; phrase_search ranks by them. desc gets the labels heard. */
static int embed_phrase(cmir_model *m, cmir_exec *ex, const char *path, const cmir_audio_params *ap,
                        float *feat, float *v, char *desc, size_t ndesc, float **lcodes, int *nl)
{
    int d_v = cmir_model_get_info(m)->d_v, heard[CMIR_AUDIO_FEATURE_DIM], nh = 0, rc;
    float *x = NULL, *code = cmir__malloc(sizeof(float) * (size_t)d_v);
    int64_t n = 0;
    cmir_audio_extractor *ae = code ? cmir_audio_extractor_new(*ap) : NULL;
    if (!code || !ae)
        rc = cmir__failed(CMIR_ENOMEM);
    else if (!(rc = cmir_audio_load(path, *ap, &x, &n)) && !(rc = cmir_audio_extractor_feature(ae, x, n, feat)))
        rc = cmir_audio_extractor_heard(ae, x, n, heard, CMIR_AUDIO_FEATURE_DIM, &nh);
    if (rc == CMIR_EFORMAT && !strncmp(cmir_last_error(), "audio: ", 7)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cmir_last_error() + 7);
        cmir__error(rc, "%s: %s", path, msg);
    }
    size_t at = (size_t)snprintf(desc, ndesc, "audio %s (heard:", path);
    const char *vocab = cmir_model_audio_vocabulary(m);
    for (int j = 0; !rc && j < nh; j++) {
        const char *l = vocab;
        for (int k = 0; k < heard[j] && l; k++)
            l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL;
        size_t len = l ? strcspn(l, "\t\n") : 0;
        if (at < ndesc)
            at += (size_t)snprintf(desc + at, ndesc - at, "%s%.*s", j ? " and " : " ", (int)len, l ? l : "");
    }
    if (at < ndesc)
        snprintf(desc + at, ndesc - at, ")");
    if (!rc && nh > 1 && !(*lcodes = cmir__malloc(sizeof(float) * (size_t)d_v * (size_t)nh)))
        rc = CMIR_ENOMEM;
    for (int j = 0; !rc && nh > 1 && j < nh; j++) {
        float one[CMIR_AUDIO_FEATURE_DIM];
        memcpy(one, feat, sizeof one);
        for (int i = 0; i < nh; i++)
            if (i != j)
                one[heard[i]] = 0.0f;
        if (!(rc = cmir_model_embed(m, ex, 1, one, 1, NULL, code))) {
            memcpy(*lcodes + (size_t)j * d_v, code, sizeof(float) * (size_t)d_v);
            for (int i = 0; i < d_v; i++)
                v[i] = (j ? v[i] : 0.0f) + code[i] / (float)nh;
        }
    }
    *nl = rc || nh < 2 ? 0 : nh;
    if (!rc && nh <= 1)
        rc = cmir_model_embed(m, ex, 1, feat, 1, NULL, v);
    cmir_audio_extractor_free(ae);
    cmir__free(x);
    cmir__free(code);
    return rc;
}

/* A phrase query: the rows passing F near every one of the nl label
 * codes, ranked by their largest distance to any of them (a tile must
 * match all the labels named), ties by row; the k best into rows/dist
 * (-1 past the end). */
typedef struct { float d; int64_t r; } scored;
static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->r > y->r) - (x->r < y->r);
}
static int phrase_search(cmir_index *ix, cmir_exec *ex, const float *codes, int nl, int dim, int k,
                         const cmir_search_filter *F, int64_t *rows, float *dist)
{
    int64_t n = ix->n, kk = n < 1000000000 ? n : 1000000000;
    int64_t *r = cmir__malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    float *d = cmir__malloc(sizeof(float) * (size_t)(n ? n : 1));
    scored *w = cmir__calloc((size_t)(n ? n : 1), sizeof(scored));
    int *cnt = cmir__calloc((size_t)(n ? n : 1), sizeof(int));
    int rc = r && d && w && cnt ? 0 : CMIR_ENOMEM;
    for (int j = 0; !rc && j < nl && n > 0; j++) {
        rc = cmir_index_search(ix, ex, codes + (size_t)j * dim, 1, (int)kk, F, r, d);
        for (int64_t t = 0; !rc && t < kk && r[t] >= 0; t++) {
            w[r[t]].d = cnt[r[t]]++ ? fmaxf(w[r[t]].d, d[t]) : d[t];
            w[r[t]].r = r[t];
        }
    }
    int64_t m = 0;
    for (int64_t t = 0; !rc && t < n; t++)
        if (cnt[t] == nl)
            w[m++] = w[t];
    if (!rc)
        qsort(w, (size_t)m, sizeof *w, by_score);
    for (int t = 0; !rc && t < k; t++) {
        rows[t] = t < m ? w[t].r : -1;
        dist[t] = t < m ? w[t].d : 0.0f;
    }
    cmir__free(r);
    cmir__free(d);
    cmir__free(w);
    cmir__free(cnt);
    return rc;
}

/* Embeds a spoken query: the clip feature of the file, modality 1; a
 * phrase of several labels also gives *lcodes and *nl (embed_phrase). */
static int embed_audio(cmir_model *m, cmir_exec *ex, const char *path, float *v, char *desc, size_t ndesc,
                       float **lcodes, int *nl)
{
    if (cmir_model_get_info(m)->scenario != CMIR_SCENARIO_IMAGE_SPEECH)
        return cmir__error(CMIR_EINVAL, "%s: an audio query needs an image-speech model (cmir_train -speech)", path);
    float feat[CMIR_AUDIO_FEATURE_DIM];
    cmir_audio_params ap;
    cmir_model_audio_params(m, &ap);
    if (ap.feature == CMIR_AUDIO_FEATURE_SPHINX)
        return embed_phrase(m, ex, path, &ap, feat, v, desc, ndesc, lcodes, nl);
    int rc = cmir_audio_clip_feature(path, ap, feat);
    if (!rc)
        rc = cmir_model_embed(m, ex, 1, feat, 1, NULL, v);
    snprintf(desc, ndesc, "audio %s", path);
    return rc;
}

static int is_geojson(const char *fmt) { return !strcasecmp(fmt, "GeoJSON"); }

int cmir_search(const char *model_path, const char *index_path, const cmir_query *queries, int n_queries,
                const char *out_path, cmir_search_params p, cmir_progress_fn progress, void *user)
{
    if (!model_path || !index_path || !queries || n_queries < 1 || !out_path || p.k < 1 || p.k > 100000)
        return cmir__error(CMIR_EINVAL, "cmir_search: need a model, an index, queries, an output and 1 <= k <= 100000");
    int rc = 0;
    cmir_exec_params ep = cmir_exec_default_params();
    ep.n_threads = p.threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_model *m = cmir_model_load(model_path);
    cmir_index *ix = m ? cmir_index_open(index_path) : NULL;
    if (!ex)
        rc = CMIR_ENOMEM;
    else if (!m || !ix)
        rc = cmir__failed(CMIR_EFORMAT);
    else if (strcmp(cmir_model_get_info(m)->id, ix->model_id) != 0)
        rc = cmir__error(CMIR_EINVAL, "%s was built with model %s, not with %s (%s): rebuild the index with this model",
                         index_path, ix->model_id, cmir_model_get_info(m)->id, model_path);
    else if (ix->dim != cmir_model_get_info(m)->d_v)
        rc = cmir__error(CMIR_EFORMAT, "%s: dimension %d does not match the model's %d", index_path, ix->dim,
                         cmir_model_get_info(m)->d_v);
    int dim = ix ? ix->dim : 0;
    float *v = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)dim);
    int64_t *rows = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)p.k);
    float *dist = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)p.k);
    if (!rc && (!v || !rows || !dist))
        rc = CMIR_ENOMEM;
    /* output */
    char *tmp = rc ? NULL : cmir__temp_beside(out_path);
    if (!rc && !tmp)
        rc = CMIR_ENOMEM;
    GDALDatasetH out = NULL;
    OGRLayerH lyr = NULL;
    OGRSpatialReferenceH wgs = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
    OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = NULL;
    char **desc_all = NULL;
    float *qtile = NULL; /* first query's first tile, for the quick-look */
    int qdims[3] = {0, 0, 0};
    cmir__gdal_quiet_begin();
    if (!rc) {
        GDALDriverH drv = GDALGetDriverByName(p.format ? p.format : "GeoJSON");
        if (!drv)
            rc = cmir__error(CMIR_EINVAL, "%s: unknown output format '%s' (see --formats)", out_path, p.format);
        else if (!(out = GDALCreate(drv, tmp, 0, 0, 0, GDT_Unknown, NULL)))
            rc = cmir__gdal_error(CMIR_EIO, out_path, "cannot create the output");
        if (!rc && !OSRIsSame(wgs, ix->srs))
            ct = OCTNewCoordinateTransformation(ix->srs, wgs);
    }
    /* queries: embed and describe first (the description goes in the layer
     * metadata, which GeoJSON writes at creation) */
    float *codes = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)dim * (size_t)n_queries);
    int *qmod = rc ? NULL : cmir__malloc(sizeof(int) * (size_t)n_queries);
    int *pn = rc ? NULL : cmir__calloc((size_t)n_queries, sizeof(int)); /* labels of a phrase query */
    float **pcodes = rc ? NULL : cmir__calloc((size_t)n_queries, sizeof(float *));
    if (!rc && (!codes || !qmod || !pn || !pcodes))
        rc = CMIR_ENOMEM;
    for (int i = 0; !rc && i < n_queries; i++) {
        char d[1024];
        const cmir_query *q = &queries[i];
        if (q->kind == CMIR_QUERY_ROW) {
            if (q->row < 0 || q->row >= ix->n) {
                rc = cmir__error(CMIR_EINVAL, "%s: no row %lld (the index has %lld)", index_path, (long long)q->row,
                                 (long long)ix->n);
                break;
            }
            memcpy(codes + (size_t)i * dim, ix->v + (size_t)q->row * dim, sizeof(float) * (size_t)dim);
            qmod[i] = ix->mod[q->row];
            snprintf(d, sizeof d, "%s %s at row %lld of %s", cmir_model_modality_name(m, qmod[i]),
                     cmir_model_get_info(m)->scenario == CMIR_SCENARIO_IMAGE_SPEECH && qmod[i] ? "clip" : "tile",
                     (long long)q->row, index_path);
        } else if (q->kind == CMIR_QUERY_RASTER && q->raster) {
            rc = embed_raster(m, ex, q, codes + (size_t)i * dim, &qmod[i], d, sizeof d, i == 0 ? &qtile : NULL,
                              qdims);
        } else if (q->kind == CMIR_QUERY_AUDIO && q->audio) {
            rc = embed_audio(m, ex, q->audio, codes + (size_t)i * dim, d, sizeof d, &pcodes[i], &pn[i]);
            qmod[i] = 1;
        } else {
            rc = cmir__error(CMIR_EINVAL, "cmir_search: query %d is malformed", i);
        }
        if (!rc) {
            char line[1200];
            snprintf(line, sizeof line, "query %d: %s", i, d);
            desc_all = CSLAddString(desc_all, line);
        }
    }
    if (!rc) {
        char *joined = NULL;
        size_t len = 1;
        for (int i = 0; desc_all && desc_all[i]; i++)
            len += strlen(desc_all[i]) + 2;
        joined = CPLMalloc(len);
        joined[0] = '\0';
        for (int i = 0; desc_all && desc_all[i]; i++) {
            if (i)
                strcat(joined, "; ");
            strcat(joined, desc_all[i]);
        }
        char **opts = NULL;
        if (is_geojson(p.format ? p.format : "GeoJSON")) {
            opts = CSLSetNameValue(opts, "RFC7946", "YES");
            opts = CSLSetNameValue(opts, "WRITE_BBOX", "YES");
            opts = CSLSetNameValue(opts, "DESCRIPTION", joined);
        }
        for (int i = 0; p.layer_options && p.layer_options[i]; i++)
            opts = CSLAddString(opts, p.layer_options[i]);
        lyr = GDALDatasetCreateLayer(out, "cmir_hits", wgs, wkbPolygon, opts);
        CSLDestroy(opts);
        CPLFree(joined);
        if (!lyr)
            rc = cmir__gdal_error(CMIR_EIO, out_path, "cannot create the output layer");
        const char *fn[] = {"query", "rank", "distance", "row", "tile_id", "modality", "archive", "scene", "window",
                            "class", "class_name", "labels", "query_desc"};
        OGRFieldType ft[] = {OFTInteger, OFTInteger, OFTReal, OFTInteger64, OFTInteger64, OFTString, OFTString,
                             OFTString, OFTString, OFTInteger, OFTString, OFTString, OFTString};
        for (size_t i = 0; !rc && i < sizeof fn / sizeof *fn; i++) {
            OGRFieldDefnH d = OGR_Fld_Create(fn[i], ft[i]);
            if (OGR_L_CreateField(lyr, d, TRUE) != OGRERR_NONE)
                rc = cmir__gdal_error(CMIR_EIO, out_path, "cannot create the output fields");
            OGR_Fld_Destroy(d);
        }
    }
    for (int i = 0; !rc && i < n_queries; i++) {
        cmir_search_filter F = p.filter;
        if (F.modality == -2)
            F.modality = !qmod[i];
        if (queries[i].kind == CMIR_QUERY_ROW)
            F.exclude = queries[i].row;
        if (pn[i] > 1)
            rc = phrase_search(ix, ex, pcodes[i], pn[i], dim, p.k, &F, rows, dist);
        else
            rc = cmir_index_search(ix, ex, codes + (size_t)i * dim, 1, p.k, &F, rows, dist);
        if (rc)
            break;
        for (int r = 0; !rc && r < p.k && rows[r] >= 0; r++) {
            OGRFeatureH src = cmir__index_feature(ix, rows[r]);
            if (!src) {
                rc = cmir__gdal_error(CMIR_EFORMAT, index_path, "missing tile feature");
                break;
            }
            OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(lyr));
            OGR_F_SetFieldInteger(f, 0, i);
            OGR_F_SetFieldInteger(f, 1, r + 1);
            OGR_F_SetFieldDouble(f, 2, dist[r]);
            OGR_F_SetFieldInteger64(f, 3, rows[r]);
            const char *names[] = {"tile_id", "modality", "archive", "scene", "window", "class", "class_name", "labels"};
            for (int j = 0; j < 8; j++) {
                int si = OGR_F_GetFieldIndex(src, names[j]);
                if (si >= 0 && OGR_F_IsFieldSetAndNotNull(src, si))
                    OGR_F_SetFieldString(f, 4 + j, OGR_F_GetFieldAsString(src, si));
            }
            OGR_F_SetFieldString(f, 12, desc_all[i]);
            OGRGeometryH g = OGR_F_GetGeometryRef(src);
            if (g) {
                OGRGeometryH c = OGR_G_Clone(g);
                /* footprints were densified when the index was built */
                if (ct && OGR_G_Transform(c, ct) != OGRERR_NONE) {
                    OGR_G_DestroyGeometry(c);
                    c = NULL;
                }
                if (c)
                    OGR_F_SetGeometryDirectly(f, c);
            }
            if (OGR_L_CreateFeature(lyr, f) != OGRERR_NONE)
                rc = cmir__gdal_error(CMIR_EIO, out_path, "cannot write a hit");
            OGR_F_Destroy(f);
            OGR_F_Destroy(src);
        }
        if (!rc && i == 0 && p.quicklook)
            rc = cmir__quicklook(ix, p.archive_root, qtile, qdims[0], qdims[1], qdims[2],
                                 queries[0].kind == CMIR_QUERY_ROW ? queries[0].row : -1, rows, p.k, p.quicklook);
        if (!rc && progress && progress((double)(i + 1) / n_queries, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    if (out)
        GDALClose(out);
    cmir__free(qtile);
    cmir__gdal_quiet_end();
    if (tmp) { /* VSI calls: out_path may be a /vsimem/ path */
        if (!rc && VSIRename(tmp, out_path) != 0)
            rc = cmir__error(CMIR_EIO, "%s: cannot rename the result into place", out_path);
        if (rc)
            VSIUnlink(tmp);
        cmir__free(tmp);
    }
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(wgs);
    CSLDestroy(desc_all);
    cmir__free(codes);
    cmir__free(qmod);
    for (int i = 0; pcodes && i < n_queries; i++)
        cmir__free(pcodes[i]);
    cmir__free(pcodes);
    cmir__free(pn);
    cmir__free(v);
    cmir__free(rows);
    cmir__free(dist);
    cmir_index_close(ix);
    cmir_model_free(m);
    cmir_exec_free(ex);
    return rc;
}
