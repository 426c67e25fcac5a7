/* The search tool: cmir_search_run() embeds queries (index rows, raster
 * windows tiled and embedded on the fly, spoken clips) with the model and
 * keeps their nearest index rows in memory (cmir_hits); cmir_search()
 * loads model and index, runs it and writes the hits and a quick-look. */
#include "search_internal.h"
#include "cmir/audio.h"
#include "qgs.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

cmir_search_params cmir_search_default_params(void)
{
    cmir_search_params p;
    memset(&p, 0, sizeof p);
    p.k = 10;
    p.filter = cmir_search_default_filter();
    p.filter.modality = CMIR_TARGET_OTHER;
    p.format = "GeoJSON";
    return p;
}

/* Embeds a raster query: tiles of the model's size from the window's
 * top-left, their codes averaged. *modality from the band count. */
static int embed_raster(cmir_model *m, cmir_exec *ex, const cmir_query *q, const char *const *oo, float *v,
                        int *modality, char *desc, size_t ndesc, float **first, int dims[3])
{
    const cmir_model_info *mi = cmir_model_get_info(m);
    GDALDatasetH ds = cmir__gdal_open_raster_oo(q->raster, oo);
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
    if ((int64_t)nx * ny > CMIR_SEARCH_RASTER_TILES_MAX) {
        GDALClose(ds);
        return cmir__error(CMIR_EINVAL, "%s: the %dx%d window holds %lld %dx%d tiles; a raster query averages at "
                           "most %d (give a smaller window, -srcwin)", q->raster, W, H, (long long)nx * ny, tw, th,
                           CMIR_SEARCH_RASTER_TILES_MAX);
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
        if (!(rc = cmir_model_embed(m, ex, CMIR_AUDIO, one, 1, NULL, code))) {
            memcpy(*lcodes + (size_t)j * d_v, code, sizeof(float) * (size_t)d_v);
            for (int i = 0; i < d_v; i++)
                v[i] = (j ? v[i] : 0.0f) + code[i] / (float)nh;
        }
    }
    *nl = rc || nh < 2 ? 0 : nh;
    if (!rc && nh <= 1)
        rc = cmir_model_embed(m, ex, CMIR_AUDIO, feat, 1, NULL, v);
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
    int64_t n = cmir_index_count(ix), kk = n < 1000000000 ? n : 1000000000;
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
        rc = cmir_model_embed(m, ex, CMIR_AUDIO, feat, 1, NULL, v);
    snprintf(desc, ndesc, "audio %s", path);
    return rc;
}

/* The model (its identity and d_v; model_path: its file, or NULL) and the
 * index belong together. */
int cmir__search_check_ids(const char *model_id, int d_v, cmir_index *ix, const char *model_path)
{
    if (strcmp(model_id, cmir_index_model_id(ix)) != 0)
        return cmir__error(CMIR_EINVAL, "%s was built with model %s, not with %s%s%s%s: rebuild the index with this model",
                           cmir__index_path(ix), cmir_index_model_id(ix), model_id, model_path ? " (" : "",
                           model_path ? model_path : "", model_path ? ")" : "");
    if (cmir_index_dim(ix) != d_v)
        return cmir__error(CMIR_EFORMAT, "%s: dimension %d does not match the model's %d", cmir__index_path(ix),
                           cmir_index_dim(ix), d_v);
    return 0;
}

int cmir__search_check_pair(cmir_model *m, cmir_index *ix, const char *model_path)
{
    const cmir_model_info *mi = cmir_model_get_info(m);
    return cmir__search_check_ids(mi->id, mi->d_v, ix, model_path);
}

const char *cmir__search_row_kind(cmir_model *m, int mod)
{
    static const char *const kinds[2][2] = {{"PAN tile", "MS tile"}, {"image tile", "audio clip"}};
    int speech = cmir_model_get_info(m)->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    return kinds[speech][mod != 0];
}

void cmir__search_row_desc(const char *kind, int64_t row, const char *index_path, char *d, size_t nd)
{
    snprintf(d, nd, "%s at row %lld of %s", kind, (long long)row, index_path);
}

/* Query i's code (dim floats), modality and description (d). first/dims:
 * see embed_raster. */
static int embed_query(cmir_model *m, cmir_exec *ex, cmir_index *ix, const cmir_query *q, int i, const char *const *oo,
                       float *code, int *mod, char *d, size_t nd, float **first, int dims[3], float **lcodes, int *nl)
{
    if (q->kind == CMIR_QUERY_ROW) { /* the only kind that reads the index (which may be NULL otherwise) */
        const char *index_path = cmir__index_path(ix);
        if (q->row < 0 || q->row >= cmir_index_count(ix))
            return cmir__error(CMIR_EINVAL, "%s: no row %lld (the index has %lld)", index_path, (long long)q->row,
                               (long long)cmir_index_count(ix));
        memcpy(code, cmir_index_vector(ix, q->row), sizeof(float) * (size_t)cmir_index_dim(ix));
        *mod = cmir_index_modality(ix, q->row);
        cmir__search_row_desc(cmir__search_row_kind(m, *mod), q->row, index_path, d, nd);
        return 0;
    }
    if (q->kind == CMIR_QUERY_RASTER && q->raster)
        return embed_raster(m, ex, q, oo, code, mod, d, nd, first, dims);
    if (q->kind == CMIR_QUERY_AUDIO && q->audio) {
        *mod = 1;
        return embed_audio(m, ex, q->audio, code, d, nd, lcodes, nl);
    }
    return cmir__error(CMIR_EINVAL, "cmir_search: query %d is malformed", i);
}

int cmir__search_embed_query(cmir_model *m, cmir_exec *ex, cmir_index *ix, const cmir_query *q, int i,
                             const char *const *oo, float *code, int *mod, char *d, size_t nd, float **lcodes, int *nl)
{
    int dims[3];
    return embed_query(m, ex, ix, q, i, oo, code, mod, d, nd, NULL, dims, lcodes, nl);
}

int cmir__search_block(int k, int m)
{
    int64_t b = ((int64_t)1 << 22) / ((int64_t)k + 1); /* about 48 MB of hits per block at most */
    b = b < 512 ? b : 512;
    b = b < m ? b : m;
    return b < 1 ? 1 : (int)b;
}

/* Queries [0, m) of codes (m x dim) against ix under F, k hits each into
 * rows/dist (m x k): the queries of each target modality (F.modality, or
 * per query the other one than qmod[i] for CMIR_TARGET_OTHER) go to
 * cmir_index_search together, one pass over the matrix for a block of
 * queries rather than one per query; a query's excluded row excl[i] (-1
 * none) is dropped from its k + 1 nearest. Exact, as one search per query
 * with F.exclude = excl[i] (cmir_knn is exact whatever the block). */
int cmir__search_batch(cmir_index *ix, cmir_exec *ex, const float *codes, int m, const int *qmod,
                       const int64_t *excl, cmir_search_filter F, int k, int64_t *rows, float *dist)
{
    int dim = cmir_index_dim(ix), kk = k + 1, rc = 0;
    int *idx = cmir__malloc(sizeof(int) * (size_t)(m ? m : 1));
    float *sub = cmir__malloc(sizeof(float) * (size_t)(m ? m : 1) * (size_t)dim);
    int64_t *r = cmir__malloc(sizeof(int64_t) * (size_t)(m ? m : 1) * (size_t)kk);
    float *d = cmir__malloc(sizeof(float) * (size_t)(m ? m : 1) * (size_t)kk);
    if (!idx || !sub || !r || !d)
        rc = CMIR_ENOMEM;
    for (int t = CMIR_TARGET_ANY; !rc && t <= CMIR_TARGET_MS; t++) {
        int n = 0;
        for (int i = 0; i < m; i++) {
            int ti = F.modality == CMIR_TARGET_OTHER ? (qmod[i] ? CMIR_TARGET_PAN : CMIR_TARGET_MS) : F.modality;
            if (ti == t) {
                memcpy(sub + (size_t)n * dim, codes + (size_t)i * dim, sizeof(float) * (size_t)dim);
                idx[n++] = i;
            }
        }
        if (!n)
            continue;
        cmir_search_filter G = F;
        G.modality = t;
        G.exclude = -1;
        if ((rc = cmir_index_search(ix, ex, sub, n, kk, &G, r, d)) != 0)
            break;
        for (int j = 0; j < n; j++) {
            int i = idx[j], o = 0;
            for (int s = 0; s < kk && o < k; s++)
                if (r[(size_t)j * kk + s] < 0 || r[(size_t)j * kk + s] != excl[i]) {
                    rows[(size_t)i * k + o] = r[(size_t)j * kk + s];
                    dist[(size_t)i * k + o++] = d[(size_t)j * kk + s];
                }
        }
    }
    cmir__free(idx);
    cmir__free(sub);
    cmir__free(r);
    cmir__free(d);
    return rc;
}

/* cmir_search_run, also giving the first query's first tile (raster
 * queries; *qtile NULL otherwise) for the quick-look when qtile != NULL. */
static int run(cmir_model *m, cmir_index *ix, const cmir_query *queries, int n_queries, cmir_search_params p,
               cmir_progress_fn progress, void *user, cmir_hits **out, float **qtile, int qdims[3])
{
    int rc = cmir__search_check_pair(m, ix, NULL), dim = cmir_index_dim(ix);
    if (!rc)
        rc = cmir_index_set_scan(ix, p.scan);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    cmir_exec *ex = rc ? NULL : cmir_exec_new(ep);
    cmir_hits *H = rc ? NULL : cmir__hits_new(ix, n_queries);
    float *codes = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)dim * (size_t)n_queries);
    int *qmod = rc ? NULL : cmir__malloc(sizeof(int) * (size_t)n_queries);
    int *pn = rc ? NULL : cmir__calloc((size_t)n_queries, sizeof(int)); /* labels of a phrase query */
    float **pcodes = rc ? NULL : cmir__calloc((size_t)n_queries, sizeof(float *));
    const int blk = cmir__search_block(p.k, n_queries);
    int64_t *rows = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)p.k * (size_t)blk);
    float *dist = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)p.k * (size_t)blk);
    int64_t *excl = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)n_queries);
    if (!rc && (!ex || !H || !codes || !qmod || !pn || !pcodes || !rows || !dist || !excl))
        rc = CMIR_ENOMEM;
    cmir__gdal_quiet_begin();
    /* every query embedded and described first: a bad one fails the search
     * before any is run */
    for (int i = 0; !rc && i < n_queries; i++) {
        char d[1024];
        rc = embed_query(m, ex, ix, &queries[i], i, p.open_options, codes + (size_t)i * dim, &qmod[i], d, sizeof d,
                         i == 0 ? qtile : NULL, qdims, &pcodes[i], &pn[i]);
        if (!rc)
            rc = cmir__hits_set_query(H, i, qmod[i], d);
    }
    for (int i = 0; !rc && i < n_queries; i++)
        excl[i] = queries[i].kind == CMIR_QUERY_ROW ? queries[i].row : p.filter.exclude;
    if (!rc && progress && progress(0.0, NULL, user)) /* every query embedded: the search starts */
        rc = cmir__error(CMIR_ECANCEL, "cancelled");
    /* blocks of queries, each target modality of a block in one pass over
     * the matrix; progress and cancellation between blocks */
    for (int b = 0; !rc && b < n_queries; b += blk) {
        int nb = n_queries - b < blk ? n_queries - b : blk;
        rc = cmir__search_batch(ix, ex, codes + (size_t)b * dim, nb, qmod + b, excl + b, p.filter, p.k, rows, dist);
        for (int i = b; !rc && i < b + nb; i++) {
            int64_t *r = rows + (size_t)(i - b) * p.k;
            float *d = dist + (size_t)(i - b) * p.k;
            if (pn[i] > 1) { /* a phrase: ranked by its labels' codes */
                cmir_search_filter F = p.filter;
                if (F.modality == CMIR_TARGET_OTHER)
                    F.modality = qmod[i] ? CMIR_TARGET_PAN : CMIR_TARGET_MS;
                F.exclude = excl[i];
                rc = phrase_search(ix, ex, pcodes[i], pn[i], dim, p.k, &F, r, d);
            }
            if (!rc)
                rc = cmir__hits_add(H, ix, i, r, d, p.k);
        }
        if (!rc && progress && progress((double)(b + nb) / n_queries, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    cmir__gdal_quiet_end();
    cmir__free(codes);
    cmir__free(qmod);
    for (int i = 0; pcodes && i < n_queries; i++)
        cmir__free(pcodes[i]);
    cmir__free(pcodes);
    cmir__free(pn);
    cmir__free(excl);
    cmir__free(rows);
    cmir__free(dist);
    cmir_exec_free(ex);
    if (rc)
        cmir_hits_free(H);
    *out = rc ? NULL : H;
    return rc;
}

int cmir_search_check_params(cmir_search_params p)
{
    const char *who = "cmir_search_params";
    if (p.scan < CMIR_SCAN_AUTO || p.scan > CMIR_SCAN_INT8)
        return cmir__error(CMIR_EINVAL, "%s.scan: must be CMIR_SCAN_AUTO, _FLOAT or _INT8, got %d", who, p.scan);
    if (p.k < 1 || p.k > CMIR_SEARCH_K_MAX)
        return cmir__error(CMIR_EINVAL, "%s.k: must be in 1..%d, got %d", who, CMIR_SEARCH_K_MAX, p.k);
    if (p.filter.modality < CMIR_TARGET_OTHER || p.filter.modality > CMIR_TARGET_MS)
        return cmir__error(CMIR_EINVAL, "%s.filter.modality: must be a cmir_target (-2..1), got %d", who,
                           (int)p.filter.modality);
    if (p.filter.has_spat && !(p.filter.spat[0] <= p.filter.spat[2] && p.filter.spat[1] <= p.filter.spat[3]))
        return cmir__error(CMIR_EINVAL, "%s.filter.spat: want xmin ymin xmax ymax with xmin <= xmax and ymin <= ymax, "
                           "got %g %g %g %g", who, p.filter.spat[0], p.filter.spat[1], p.filter.spat[2],
                           p.filter.spat[3]);
    if (p.threads < 0)
        return cmir__error(CMIR_EINVAL, "%s.threads: must be >= 0, got %d", who, p.threads);
    return 0;
}

int cmir_search_run(cmir_model *model, cmir_index *index, const cmir_query *queries, int n_queries,
                    cmir_search_params p, cmir_progress_fn progress, void *user, cmir_hits **out)
{
    if (out)
        *out = NULL;
    if (!model || !index || !queries || n_queries < 1 || !out)
        return cmir__error(CMIR_EINVAL, "cmir_search_run: need a model, an index, queries and an output");
    if (cmir_search_check_params(p))
        return CMIR_EINVAL;
    return run(model, index, queries, n_queries, p, progress, user, out, NULL, NULL);
}

/* The quick-look of query 0: its tile (qtile, or its index row) beside its
 * hits' tiles. */
static int quicklook(cmir_index *ix, const cmir_hits *H, const cmir_query *q0, const float *qtile,
                     const int qdims[3], cmir_search_params p)
{
    int64_t *rows = cmir__malloc(sizeof(int64_t) * (size_t)p.k);
    if (!rows)
        return CMIR_ENOMEM;
    for (int r = 0; r < p.k; r++)
        rows[r] = -1;
    for (int64_t i = 0; i < cmir_hits_count(H) && cmir_hits_query(H, i) == 0; i++)
        rows[cmir_hits_rank(H, i) - 1] = cmir_hits_row(H, i);
    cmir__gdal_quiet_begin();
    int rc = cmir__quicklook(ix, p.archive_root, qtile, qdims[0], qdims[1], qdims[2],
                             q0->kind == CMIR_QUERY_ROW ? q0->row : -1, rows, p.k, p.quicklook);
    cmir__gdal_quiet_end();
    cmir__free(rows);
    return rc;
}

/* The hits to out_path (a temporary file renamed once the quick-look, if
 * any, is written too; /vsi paths are written in place). */
static int write_outputs(cmir_index *ix, const cmir_hits *H, const cmir_query *q0, const float *qtile,
                         const int qdims[3], const char *out_path, cmir_search_params p)
{
    const int vsi = !strncmp(out_path, "/vsi", 4);
    cmir__atomic_file af;
    memset(&af, 0, sizeof af);
    af.fd = -1;
    int rc = vsi ? 0 : cmir__atomic_open(&af, out_path, CMIR__ATOMIC_NAME_ONLY);
    cmir__gdal_quiet_begin();
    if (!rc)
        rc = cmir__hits_write_file(H, vsi ? out_path : af.tmp, out_path, p);
    cmir__gdal_quiet_end();
    if (!rc && p.quicklook)
        rc = quicklook(ix, H, q0, qtile, qdims, p);
    if (rc)
        cmir__atomic_abort(&af);
    else if (!vsi)
        rc = cmir__atomic_commit(&af);
    return rc;
}

int cmir_search(const char *model_path, const char *index_path, const cmir_query *queries, int n_queries,
                const char *out_path, cmir_search_params p, cmir_progress_fn progress, void *user)
{
    if (!model_path || !index_path || !queries || n_queries < 1 || !out_path)
        return cmir__error(CMIR_EINVAL, "cmir_search: need a model, an index, queries and an output");
    if (cmir_search_check_params(p))
        return CMIR_EINVAL;
    if (p.query_file && n_queries != 1)
        return cmir__error(CMIR_EINVAL, "%s: a query file holds one query, not %d", p.query_file, n_queries);
    int rc = 0;
    cmir_model *m = cmir_model_load(model_path);
    cmir_index *ix = m ? cmir_index_open(index_path) : NULL;
    cmir_hits *H = NULL;
    float *qtile = NULL; /* first query's first tile, for the quick-look */
    int qdims[3] = {0, 0, 0};
    const char *fmt = p.format ? p.format : "GeoJSON";
    if (!m || !ix)
        rc = cmir__failed(CMIR_EFORMAT);
    else if (!(rc = cmir__search_check_pair(m, ix, model_path)) && !GDALGetDriverByName(fmt))
        rc = cmir__error(CMIR_EINVAL, "%s: unknown output format '%s' (see --formats)", out_path, fmt);
    if (!rc)
        rc = run(m, ix, queries, n_queries, p, progress, user, &H, p.quicklook || p.qgs ? &qtile : NULL, qdims);
    if (!rc && p.query_file)
        rc = cmir_query_file_write(p.query_file, model_path, index_path, &queries[0], p);
    if (!rc && p.qgs)
        rc = cmir__qgs_write(ix, H, &queries[0], qtile, qdims, p);
    if (!rc)
        rc = write_outputs(ix, H, &queries[0], qtile, qdims, out_path, p);
    cmir__free(qtile);
    cmir_hits_free(H);
    cmir_index_close(ix);
    cmir_model_free(m);
    return rc;
}
