/* Search results in memory (cmir_hits): per hit its query, rank,
 * distance, index row, the row's attributes as stored in the index and its
 * footprint ring in the index CRS; filled by the search tool. */
#include "index_internal.h"

#include <cpl_conv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The attributes copied from the index's "tiles" layer, in this order. */
static const char *const ATTR_NAMES[CMIR_HIT_N_ATTRS] = {"tile_id", "modality", "archive",    "scene",
                                                         "window",  "class",    "class_name", "labels"};

typedef struct hit {
    int query, rank, n_xy;
    float dist;
    int64_t row;
    char *attr[CMIR_HIT_N_ATTRS]; /* as stored, NULL when unset or null */
    double *xy;                  /* n_xy points: x0, y0, x1, y1, ... */
} hit;

struct cmir_hits {
    hit *h;
    int64_t n, cap;
    int n_queries;
    char **desc; /* n_queries: "query i: ..." */
    int *qmod;   /* n_queries */
    char *crs;   /* WKT2 of the footprints' CRS (the index CRS) */
    OGRSpatialReferenceH srs; /* the same, for the writers */
};

const char *cmir__hits_attr_name(int a) { return a >= 0 && a < CMIR_HIT_N_ATTRS ? ATTR_NAMES[a] : NULL; }

cmir_hits *cmir__hits_new(const cmir_index *ix, int n_queries)
{
    cmir_hits *H = cmir__calloc(1, sizeof *H);
    if (!H)
        return NULL;
    H->n_queries = n_queries;
    H->desc = cmir__calloc((size_t)(n_queries > 0 ? n_queries : 1), sizeof *H->desc);
    H->qmod = cmir__calloc((size_t)(n_queries > 0 ? n_queries : 1), sizeof *H->qmod);
    char *wkt = NULL;
    const char *const wkt2[] = {"FORMAT=WKT2_2019", NULL};
    if (ix && ix->srs && (H->srs = OSRClone(ix->srs)) != NULL) {
        OSRSetAxisMappingStrategy(H->srs, OAMS_TRADITIONAL_GIS_ORDER);
        OSRExportToWktEx(H->srs, &wkt, wkt2);
    }
    H->crs = cmir__strdup(wkt ? wkt : "");
    CPLFree(wkt);
    if (!H->desc || !H->qmod || !H->crs || (ix && ix->srs && !H->srs)) {
        cmir_hits_free(H);
        return NULL;
    }
    return H;
}

int cmir__hits_set_query(cmir_hits *H, int q, int modality, const char *desc)
{
    if (!H || q < 0 || q >= H->n_queries)
        return cmir__error(CMIR_EINVAL, "cmir_hits: no query %d", q);
    char *d = cmir__malloc(strlen(desc) + 32);
    if (!d)
        return CMIR_ENOMEM;
    snprintf(d, strlen(desc) + 32, "query %d: %s", q, desc);
    cmir__free(H->desc[q]);
    H->desc[q] = d;
    H->qmod[q] = modality;
    return 0;
}

/* Copies row r's attributes and footprint (exterior ring) into e. */
static int fill_hit(hit *e, cmir_index *ix, int64_t r)
{
    OGRFeatureH src = cmir__index_feature(ix, r);
    if (!src)
        return cmir__gdal_error(CMIR_EFORMAT, ix->path, "missing tile feature");
    int rc = 0;
    for (int j = 0; !rc && j < CMIR_HIT_N_ATTRS; j++) {
        int si = OGR_F_GetFieldIndex(src, ATTR_NAMES[j]);
        if (si >= 0 && OGR_F_IsFieldSetAndNotNull(src, si) &&
            !(e->attr[j] = cmir__strdup(OGR_F_GetFieldAsString(src, si))))
            rc = CMIR_ENOMEM;
    }
    OGRGeometryH g = OGR_F_GetGeometryRef(src);
    OGRGeometryH ring = g && OGR_G_GetGeometryCount(g) > 0 ? OGR_G_GetGeometryRef(g, 0) : NULL;
    int np = ring ? OGR_G_GetPointCount(ring) : 0;
    if (!rc && np > 0) {
        if (!(e->xy = cmir__malloc(sizeof(double) * 2 * (size_t)np)))
            rc = CMIR_ENOMEM;
        for (int i = 0; !rc && i < np; i++) {
            e->xy[2 * i] = OGR_G_GetX(ring, i);
            e->xy[2 * i + 1] = OGR_G_GetY(ring, i);
        }
        if (!rc)
            e->n_xy = np;
    }
    OGR_F_Destroy(src);
    return rc;
}

int cmir__hits_add(cmir_hits *H, cmir_index *ix, int q, const int64_t *rows, const float *dist, int k)
{
    int n = 0;
    while (n < k && rows[n] >= 0)
        n++;
    if (H->n + n > H->cap) {
        int64_t cap = H->cap ? H->cap : 16;
        while (cap < H->n + n)
            cap *= 2;
        hit *g = cmir__realloc(H->h, sizeof(hit) * (size_t)cap);
        if (!g)
            return CMIR_ENOMEM;
        H->h = g;
        H->cap = cap;
    }
    for (int r = 0; r < n; r++) {
        hit *e = &H->h[H->n];
        memset(e, 0, sizeof *e);
        e->query = q;
        e->rank = r + 1;
        e->dist = dist[r];
        e->row = rows[r];
        H->n++; /* counted first, so that cmir_hits_free releases a partial one */
        int rc = fill_hit(e, ix, rows[r]);
        if (rc)
            return rc;
    }
    return 0;
}

void cmir_hits_free(cmir_hits *H)
{
    if (!H)
        return;
    for (int64_t i = 0; i < H->n; i++) {
        for (int j = 0; j < CMIR_HIT_N_ATTRS; j++)
            cmir__free(H->h[i].attr[j]);
        cmir__free(H->h[i].xy);
    }
    for (int q = 0; H->desc && q < H->n_queries; q++)
        cmir__free(H->desc[q]);
    cmir__free(H->h);
    cmir__free(H->desc);
    cmir__free(H->qmod);
    cmir__free(H->crs);
    if (H->srs)
        OSRDestroySpatialReference(H->srs);
    cmir__free(H);
}

static const hit *at(const cmir_hits *H, int64_t i) { return H && i >= 0 && i < H->n ? &H->h[i] : NULL; }

int64_t cmir_hits_count(const cmir_hits *H) { return H ? H->n : 0; }
int cmir_hits_query_count(const cmir_hits *H) { return H ? H->n_queries : 0; }
const char *cmir_hits_query_description(const cmir_hits *H, int q)
{
    return H && q >= 0 && q < H->n_queries ? H->desc[q] : NULL;
}
int cmir_hits_query_modality(const cmir_hits *H, int q)
{
    return H && q >= 0 && q < H->n_queries ? H->qmod[q] : -1;
}
const char *cmir_hits_crs(const cmir_hits *H) { return H ? H->crs : NULL; }
OGRSpatialReferenceH cmir__hits_srs(const cmir_hits *H) { return H ? H->srs : NULL; }
int cmir_hits_query(const cmir_hits *H, int64_t i) { return at(H, i) ? at(H, i)->query : -1; }
int cmir_hits_rank(const cmir_hits *H, int64_t i) { return at(H, i) ? at(H, i)->rank : -1; }
int64_t cmir_hits_row(const cmir_hits *H, int64_t i) { return at(H, i) ? at(H, i)->row : -1; }
float cmir_hits_distance(const cmir_hits *H, int64_t i) { return at(H, i) ? at(H, i)->dist : NAN; }
const char *cmir_hits_attribute(const cmir_hits *H, int64_t i, cmir_hit_attr a)
{
    return at(H, i) && (int)a >= 0 && (int)a < CMIR_HIT_N_ATTRS ? at(H, i)->attr[a] : NULL;
}
int64_t cmir_hits_tile_id(const cmir_hits *H, int64_t i)
{
    const char *s = cmir_hits_attribute(H, i, CMIR_HIT_TILE_ID);
    return s ? strtoll(s, NULL, 10) : -1;
}
int cmir_hits_class(const cmir_hits *H, int64_t i)
{
    const char *s = cmir_hits_attribute(H, i, CMIR_HIT_CLASS);
    return s ? atoi(s) : -1;
}
int cmir_hits_footprint(const cmir_hits *H, int64_t i, const double **xy)
{
    const hit *e = at(H, i);
    if (xy)
        *xy = e && e->n_xy ? e->xy : NULL;
    return e ? e->n_xy : 0;
}

/* ---- hits between processes (a sharded search under MPI) ----
 * A record: per attribute a uint32 length (UINT32_MAX: none) and its
 * bytes, then an int32 point count and its x, y doubles (host byte order:
 * the ranks of one job share an architecture). */
static int put(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n)
            c *= 2;
        char *g = cmir__realloc(*buf, c);
        if (!g)
            return CMIR_ENOMEM;
        *buf = g;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

int cmir__hits_pack(cmir_index *ix, int64_t r, char **buf, size_t *len, size_t *cap)
{
    hit e;
    memset(&e, 0, sizeof e);
    int rc = fill_hit(&e, ix, r);
    for (int j = 0; !rc && j < CMIR_HIT_N_ATTRS; j++) {
        uint32_t n = e.attr[j] ? (uint32_t)strlen(e.attr[j]) : UINT32_MAX;
        rc = put(buf, len, cap, &n, sizeof n);
        if (!rc && e.attr[j])
            rc = put(buf, len, cap, e.attr[j], n);
    }
    int32_t np = e.n_xy;
    if (!rc)
        rc = put(buf, len, cap, &np, sizeof np);
    if (!rc && np)
        rc = put(buf, len, cap, e.xy, sizeof(double) * 2 * (size_t)np);
    for (int j = 0; j < CMIR_HIT_N_ATTRS; j++)
        cmir__free(e.attr[j]);
    cmir__free(e.xy);
    return rc;
}

static int get(const char *buf, size_t len, size_t *at, void *p, size_t n)
{
    if (n > len - *at)
        return cmir__error(CMIR_EFORMAT, "cmir_hits: a packed hit is truncated");
    memcpy(p, buf + *at, n);
    *at += n;
    return 0;
}

int cmir__hits_add_packed(cmir_hits *H, int q, float d, int64_t row, const char *buf, size_t len, size_t *at)
{
    if (H->n == H->cap) { /* room for one, through cmir__hits_add's growth */
        int64_t cap = H->cap ? 2 * H->cap : 16;
        hit *g = cmir__realloc(H->h, sizeof(hit) * (size_t)cap);
        if (!g)
            return CMIR_ENOMEM;
        H->h = g;
        H->cap = cap;
    }
    hit *e = &H->h[H->n];
    memset(e, 0, sizeof *e);
    e->query = q;
    e->rank = H->n && H->h[H->n - 1].query == q ? H->h[H->n - 1].rank + 1 : 1;
    e->dist = d;
    e->row = row;
    H->n++; /* counted first, so that cmir_hits_free releases a partial one */
    int rc = 0;
    for (int j = 0; !rc && j < CMIR_HIT_N_ATTRS; j++) {
        uint32_t n = 0;
        rc = get(buf, len, at, &n, sizeof n);
        if (!rc && n != UINT32_MAX) {
            if (n > len - *at)
                rc = cmir__error(CMIR_EFORMAT, "cmir_hits: a packed hit is truncated");
            else if (!(e->attr[j] = cmir__malloc((size_t)n + 1)))
                rc = CMIR_ENOMEM;
            else {
                memcpy(e->attr[j], buf + *at, n);
                e->attr[j][n] = '\0';
                *at += n;
            }
        }
    }
    int32_t np = 0;
    if (!rc)
        rc = get(buf, len, at, &np, sizeof np);
    if (!rc && (np < 0 || (size_t)np > (len - *at) / (2 * sizeof(double))))
        rc = cmir__error(CMIR_EFORMAT, "cmir_hits: a packed hit is truncated");
    if (!rc && np) {
        if (!(e->xy = cmir__malloc(sizeof(double) * 2 * (size_t)np)))
            rc = CMIR_ENOMEM;
        else if (!(rc = get(buf, len, at, e->xy, sizeof(double) * 2 * (size_t)np)))
            e->n_xy = np;
    }
    return rc;
}
