/* Tests of search results in memory: cmir_search_run's hits equal a brute
 * force over the index embeddings (rows, distance order, ties by row), the
 * cmir_hits accessors give back what the index stores, the OGR writer and
 * cmir_search write the same file, and the query-list loader's edge cases. */
#include "cmir/index.h"
#include "cmir/model.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_hits_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static const char *A, *M, *IX, *IX2;

static void setup(void)
{
    A = in_dir("a.mat");
    M = in_dir("model.mat");
    IX = in_dir("index.gpkg");
    IX2 = in_dir("twice.gpkg");
    ASSERT_OK(td_make_archive(A, 60, 3));
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 32;
    p.epochs1 = 1;
    p.epochs2 = 5;
    p.unified.d_v = 16;
    ASSERT_OK(cmir_train(A, M, p, NULL, NULL, NULL));
    ASSERT_OK(cmir_index_build(M, &A, 1, IX, cmir_index_default_params(), NULL, NULL, NULL));
    /* every row twice (rows r and r + n share a vector): exact ties */
    const char *parts[2] = {IX, IX};
    ASSERT_OK(cmir_index_merge(parts, 2, IX2, NULL, NULL));
}

/* The k nearest rows to row q by brute force in double: modality target
 * (-1 any), q itself left out, ordered by distance then row. */
static int brute(cmir_index *ix, int64_t q, int target, int k, int64_t *rows, double *dist)
{
    int64_t n = cmir_index_count(ix);
    int d = cmir_index_dim(ix), m = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r == q || (target >= 0 && cmir_index_modality(ix, r) != target))
            continue;
        double s = 0;
        for (int c = 0; c < d; c++) {
            double e = (double)cmir_index_vector(ix, q)[c] - cmir_index_vector(ix, r)[c];
            s += e * e;
        }
        s = sqrt(s);
        int j = m < k ? m++ : k;
        while (j > 0 && (dist[j - 1] > s || (dist[j - 1] == s && rows[j - 1] > r))) {
            if (j < k) {
                dist[j] = dist[j - 1];
                rows[j] = rows[j - 1];
            }
            j--;
        }
        if (j < k) {
            dist[j] = s;
            rows[j] = r;
        }
    }
    return m;
}

/* hits of query qi in h equal the brute force for row q. */
static void check_query(const cmir_hits *h, cmir_index *ix, int qi, int64_t q, int target, int k)
{
    int64_t rows[64];
    double dist[64];
    int m = brute(ix, q, target, k, rows, dist), got = 0;
    for (int64_t i = 0; i < cmir_hits_count(h); i++) {
        if (cmir_hits_query(h, i) != qi)
            continue;
        int r = cmir_hits_rank(h, i) - 1;
        ASSERT_EQ_INT(r, got);
        if (r < 0 || r >= m)
            continue;
        ASSERT_EQ_INT(cmir_hits_row(h, i), rows[r]);
        ASSERT_NEAR(cmir_hits_distance(h, i), dist[r], 1e-4 * (1 + dist[r]));
        if (r > 0) /* ascending distances; equal ones by row */
            ASSERT_TRUE(cmir_hits_distance(h, i - 1) < cmir_hits_distance(h, i) ||
                        (cmir_hits_distance(h, i - 1) == cmir_hits_distance(h, i) &&
                         cmir_hits_row(h, i - 1) < cmir_hits_row(h, i)));
        got++;
    }
    ASSERT_EQ_INT(got, m);
}

static void test_run_equals_brute_force(void)
{
    cmir_model *m = cmir_model_load(M);
    cmir_index *ix = cmir_index_open(IX);
    ASSERT_TRUE(m && ix);
    if (!m || !ix)
        goto end;
    cmir_query q[4] = {{CMIR_QUERY_ROW, 0, NULL, 0, {0}, NULL},
                       {CMIR_QUERY_ROW, 17, NULL, 0, {0}, NULL},
                       {CMIR_QUERY_ROW, 61, NULL, 0, {0}, NULL},
                       {CMIR_QUERY_ROW, 119, NULL, 0, {0}, NULL}};
    cmir_search_params p = cmir_search_default_params();
    p.k = 9;
    cmir_hits *h = NULL;
    ASSERT_OK(cmir_search_run(m, ix, q, 4, p, NULL, NULL, &h));
    ASSERT_EQ_INT(cmir_hits_query_count(h), 4);
    ASSERT_EQ_INT(cmir_hits_count(h), 4 * 9);
    for (int i = 0; i < 4; i++) /* the default target: the other modality */
        check_query(h, ix, i, q[i].row, !cmir_index_modality(ix, q[i].row), p.k);
    cmir_hits_free(h);
    p.filter.modality = CMIR_TARGET_ANY;
    p.k = 30;
    ASSERT_OK(cmir_search_run(m, ix, q, 4, p, NULL, NULL, &h));
    for (int i = 0; i < 4; i++)
        check_query(h, ix, i, q[i].row, -1, p.k);
    cmir_hits_free(h);
    /* k beyond the limit, and no output */
    p.k = CMIR_SEARCH_K_MAX + 1;
    h = (cmir_hits *)1;
    ASSERT_EQ_INT(cmir_search_run(m, ix, q, 1, p, NULL, NULL, &h), CMIR_EINVAL);
    ASSERT_TRUE(h == NULL);
    p.k = 3;
    ASSERT_EQ_INT(cmir_search_run(m, ix, q, 1, p, NULL, NULL, NULL), CMIR_EINVAL);
end:
    cmir_index_close(ix);
    cmir_model_free(m);
}

/* In the doubled index every distance comes twice: ties, broken by row. */
static void test_ties_by_row(void)
{
    cmir_model *m = cmir_model_load(M);
    cmir_index *ix = cmir_index_open(IX2);
    ASSERT_TRUE(m && ix);
    if (!m || !ix)
        goto end;
    int64_t n = cmir_index_count(ix) / 2;
    cmir_query q = {CMIR_QUERY_ROW, 5, NULL, 0, {0}, NULL};
    cmir_search_params p = cmir_search_default_params();
    p.k = 12;
    p.filter.modality = CMIR_TARGET_ANY;
    cmir_hits *h = NULL;
    ASSERT_OK(cmir_search_run(m, ix, &q, 1, p, NULL, NULL, &h));
    ASSERT_EQ_INT(cmir_hits_count(h), 12);
    ASSERT_EQ_INT(cmir_hits_row(h, 0), 5 + n); /* its twin, at distance 0 */
    ASSERT_EQ_INT(cmir_hits_distance(h, 0), 0);
    for (int64_t i = 1; i + 1 < 12; i += 2) {
        ASSERT_EQ_INT(cmir_hits_row(h, i + 1), cmir_hits_row(h, i) + n);
        ASSERT_TRUE(cmir_hits_distance(h, i) == cmir_hits_distance(h, i + 1));
    }
    check_query(h, ix, 0, 5, -1, p.k);
    cmir_hits_free(h);
end:
    cmir_index_close(ix);
    cmir_model_free(m);
}

/* Every accessor against the index's own feature, read through OGR. */
static void test_accessors(void)
{
    cmir_model *m = cmir_model_load(M);
    cmir_index *ix = cmir_index_open(IX);
    GDALDatasetH ds = GDALOpenEx(IX, GDAL_OF_VECTOR, NULL, NULL, NULL);
    OGRLayerH tiles = ds ? GDALDatasetGetLayerByName(ds, "tiles") : NULL;
    ASSERT_TRUE(m && ix && tiles);
    if (!m || !ix || !tiles)
        goto end;
    cmir_query q[2] = {{CMIR_QUERY_ROW, 3, NULL, 0, {0}, NULL}, {CMIR_QUERY_ROW, 70, NULL, 0, {0}, NULL}};
    cmir_search_params p = cmir_search_default_params();
    p.k = 5;
    cmir_hits *h = NULL;
    ASSERT_OK(cmir_search_run(m, ix, q, 2, p, NULL, NULL, &h));
    const char *names[CMIR_HIT_N_ATTRS] = {"tile_id", "modality", "archive",    "scene",
                                           "window",  "class",    "class_name", "labels"};
    for (int64_t i = 0; i < cmir_hits_count(h); i++) {
        OGRFeatureH f = OGR_L_GetFeature(tiles, cmir_hits_row(h, i) + 1);
        ASSERT_TRUE(f != NULL);
        if (!f)
            continue;
        ASSERT_EQ_INT(OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "row")), cmir_hits_row(h, i));
        for (int a = 0; a < CMIR_HIT_N_ATTRS; a++) {
            int fi = OGR_F_GetFieldIndex(f, names[a]);
            const char *v = cmir_hits_attribute(h, i, (cmir_hit_attr)a);
            if (OGR_F_IsFieldSetAndNotNull(f, fi))
                ASSERT_TRUE(v && strcmp(v, OGR_F_GetFieldAsString(f, fi)) == 0);
            else
                ASSERT_TRUE(v == NULL);
        }
        ASSERT_EQ_INT(cmir_hits_tile_id(h, i), OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "tile_id")));
        ASSERT_EQ_INT(cmir_hits_class(h, i), OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "class")));
        ASSERT_EQ_INT(cmir_hits_query_modality(h, cmir_hits_query(h, i)),
                      cmir_index_modality(ix, q[cmir_hits_query(h, i)].row));
        const double *xy = NULL;
        int np = cmir_hits_footprint(h, i, &xy);
        OGRGeometryH ring = OGR_G_GetGeometryRef(OGR_F_GetGeometryRef(f), 0);
        ASSERT_TRUE(ring != NULL && np == OGR_G_GetPointCount(ring) && np >= 4);
        for (int k = 0; ring && xy && k < np && k < OGR_G_GetPointCount(ring); k++)
            ASSERT_TRUE(xy[2 * k] == OGR_G_GetX(ring, k) && xy[2 * k + 1] == OGR_G_GetY(ring, k));
        ASSERT_TRUE(xy && xy[0] == xy[2 * np - 2] && xy[1] == xy[2 * np - 1]); /* closed */
        OGR_F_Destroy(f);
    }
    /* the footprints' CRS is the index's */
    OGRSpatialReferenceH s = OSRNewSpatialReference(cmir_hits_crs(h));
    if (s) /* the coordinates are x = longitude/easting first */
        OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    ASSERT_TRUE(s && OSRIsSame(s, OGR_L_GetSpatialRef(tiles)));
    if (s)
        OSRDestroySpatialReference(s);
    ASSERT_TRUE(strncmp(cmir_hits_query_description(h, 1), "query 1: ", 9) == 0);
    ASSERT_TRUE(strstr(cmir_hits_query_description(h, 1), "at row 70 of ") != NULL);
    /* out of range */
    ASSERT_EQ_INT(cmir_hits_row(h, -1), -1);
    ASSERT_EQ_INT(cmir_hits_rank(h, cmir_hits_count(h)), -1);
    ASSERT_EQ_INT(cmir_hits_query(h, cmir_hits_count(h)), -1);
    ASSERT_TRUE(isnan(cmir_hits_distance(h, 1000)));
    ASSERT_TRUE(cmir_hits_attribute(h, 0, CMIR_HIT_N_ATTRS) == NULL);
    ASSERT_TRUE(cmir_hits_attribute(h, 0, (cmir_hit_attr)-1) == NULL);
    ASSERT_TRUE(cmir_hits_query_description(h, 2) == NULL);
    ASSERT_EQ_INT(cmir_hits_footprint(h, -5, NULL), 0);
    ASSERT_EQ_INT(cmir_hits_count(NULL), 0);
    cmir_hits_free(h);
    cmir_hits_free(NULL); /* a no-op */
end:
    if (ds)
        GDALClose(ds);
    cmir_index_close(ix);
    cmir_model_free(m);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = malloc(1 << 22);
    *n = b ? fread(b, 1, 1 << 22, f) : 0;
    fclose(f);
    return b;
}

/* cmir_hits_write gives cmir_search's file byte for byte (GeoJSON and CSV),
 * and cmir_hits_to_ogr a layer with the same features. */
static void test_writer(void)
{
    cmir_query q[2] = {{CMIR_QUERY_ROW, 8, NULL, 0, {0}, NULL}, {CMIR_QUERY_ROW, 90, NULL, 0, {0}, NULL}};
    const char *fmts[2] = {"GeoJSON", "CSV"};
    const char *lco[] = {"GEOMETRY=AS_WKT", NULL};
    cmir_model *m = cmir_model_load(M);
    cmir_index *ix = cmir_index_open(IX);
    ASSERT_TRUE(m && ix);
    if (!m || !ix)
        goto end;
    for (int f = 0; f < 2; f++) {
        cmir_search_params p = cmir_search_default_params();
        p.k = 6;
        p.format = fmts[f];
        p.layer_options = f ? lco : NULL;
        const char *a = in_dir(f ? "search.csv" : "search.geojson"), *b = in_dir(f ? "hits.csv" : "hits.geojson");
        ASSERT_OK(cmir_search(M, IX, q, 2, a, p, NULL, NULL));
        cmir_hits *h = NULL;
        ASSERT_OK(cmir_search_run(m, ix, q, 2, p, NULL, NULL, &h));
        ASSERT_OK(cmir_hits_write(h, b, p));
        size_t na = 0, nb = 0;
        char *ta = slurp(a, &na), *tb = slurp(b, &nb);
        ASSERT_TRUE(ta && tb && na > 100 && na == nb && memcmp(ta, tb, na) == 0);
        if (!f && ta) {
            ta[na < (1 << 22) ? na : (1 << 22) - 1] = '\0';
            ASSERT_TRUE(strstr(ta, "\"description\": \"query 0: ") != NULL);
            ASSERT_TRUE(strstr(ta, "\"query_desc\": \"query 1: ") != NULL);
        }
        free(ta);
        free(tb);
        if (!f) { /* the in-memory layer: the same rows, ranks and attributes */
            GDALDatasetH mem = GDALCreate(GDALGetDriverByName("Memory"), "", 0, 0, 0, GDT_Unknown, NULL);
            ASSERT_OK(cmir_hits_to_ogr(h, mem, NULL));
            OGRLayerH l = GDALDatasetGetLayerByName(mem, "cmir_hits");
            ASSERT_TRUE(l && OGR_L_GetFeatureCount(l, TRUE) == cmir_hits_count(h));
            ASSERT_TRUE(l && strstr(GDALGetMetadataItem(l, "DESCRIPTION", NULL), "query 1: ") != NULL);
            OGRFeatureH g;
            for (int64_t i = 0; l && (g = OGR_L_GetNextFeature(l)) != NULL; i++) {
                ASSERT_EQ_INT(OGR_F_GetFieldAsInteger64(g, OGR_F_GetFieldIndex(g, "row")), cmir_hits_row(h, i));
                ASSERT_EQ_INT(OGR_F_GetFieldAsInteger(g, OGR_F_GetFieldIndex(g, "rank")), cmir_hits_rank(h, i));
                ASSERT_TRUE(strcmp(OGR_F_GetFieldAsString(g, OGR_F_GetFieldIndex(g, "scene")),
                                   cmir_hits_attribute(h, i, CMIR_HIT_SCENE)) == 0);
                ASSERT_TRUE(OGR_F_GetGeometryRef(g) != NULL);
                OGR_F_Destroy(g);
            }
            GDALClose(mem);
        }
        cmir_hits_free(h);
    }
    /* a bad format: nothing written */
    cmir_search_params p = cmir_search_default_params();
    p.format = "NoSuchDriver";
    cmir_hits *h = NULL;
    ASSERT_OK(cmir_search_run(m, ix, q, 1, p, NULL, NULL, &h));
    ASSERT_EQ_INT(cmir_hits_write(h, in_dir("bad.geojson"), p), CMIR_EINVAL);
    ASSERT_TRUE(access(in_dir("bad.geojson"), F_OK) != 0);
    cmir_hits_free(h);
end:
    cmir_index_close(ix);
    cmir_model_free(m);
}

/* ---- query lists ---- */
static const char *write_file(const char *name, const char *text, size_t n)
{
    const char *p = in_dir(name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(text, 1, n, f);
        fclose(f);
    }
    return p;
}

/* Loads text; expects n queries (or, n < 0, a refusal naming `want`). */
static cmir_query_list *load(const char *text, size_t len, int n, const char *want)
{
    const char *p = write_file("list.txt", text, len);
    cmir_query_list *l = (cmir_query_list *)1;
    int rc = cmir_query_list_load(p, &l);
    if (n < 0) {
        ASSERT_TRUE(rc != 0 && l == NULL);
        if (!strstr(cmir_last_error(), want) || !strstr(cmir_last_error(), p)) {
            fprintf(stderr, "  message: %s (want %s)\n", cmir_last_error(), want);
            FAILED_AT();
        }
        return NULL;
    }
    ASSERT_OK(rc);
    ASSERT_EQ_INT(cmir_query_list_count(l), n);
    return rc ? NULL : l;
}

#define LOAD(text, n, want) load(text, sizeof text - 1, n, want)

static void test_query_list(void)
{
    cmir_query_list *l = LOAD("# queries\r\nrow 3\r\n\r\n  raster scene.tif\nraster b.tif\t1 2 3 4\n"
                              "   # indented comment\naudio water.wav", 4, NULL);
    const cmir_query *q = cmir_query_list_queries(l);
    if (l) {
        ASSERT_EQ_INT(q[0].kind, CMIR_QUERY_ROW);
        ASSERT_EQ_INT(q[0].row, 3);
        ASSERT_EQ_INT(q[1].kind, CMIR_QUERY_RASTER);
        ASSERT_TRUE(strcmp(q[1].raster, "scene.tif") == 0 && !q[1].has_window);
        ASSERT_TRUE(strcmp(q[2].raster, "b.tif") == 0 && q[2].has_window && q[2].window[3] == 4);
        ASSERT_EQ_INT(q[3].kind, CMIR_QUERY_AUDIO);
        ASSERT_TRUE(strcmp(q[3].audio, "water.wav") == 0);
    }
    cmir_query_list_free(l);
    /* a window takes exactly four whole numbers */
    l = LOAD("raster x.tif 0 8 32 16\n", 1, NULL);
    if (l) {
        q = cmir_query_list_queries(l);
        ASSERT_TRUE(q[0].has_window && q[0].window[0] == 0 && q[0].window[1] == 8 && q[0].window[2] == 32 &&
                    q[0].window[3] == 16);
    }
    cmir_query_list_free(l);
    l = LOAD("row 9223372036854775807\n", 1, NULL); /* INT64_MAX: the search says it is out of range */
    cmir_query_list_free(l);
    LOAD("row 1\nrow 5x\n", -1, ":2: expected 'row N'");
    LOAD("row -1\n", -1, ":1:");
    LOAD("row 9223372036854775808\n", -1, ":1:");
    LOAD("row\n", -1, ":1:");
    LOAD("row 1 2\n", -1, ":1:");
    LOAD("raster f.tif 1 2 3\n", -1, ":1:");
    LOAD("raster f.tif 1 2 3 4 5\n", -1, ":1:");
    LOAD("raster f.tif 1 2 3 x\n", -1, ":1:");
    LOAD("raster a b.tif\n", -1, ":1:"); /* names have no blanks */
    LOAD("raster f.tif 0 0 99999999999 1\n", -1, ":1:");
    LOAD("audio\n", -1, ":1:");
    LOAD("audio a.wav b.wav\n", -1, ":1:");
    LOAD("ROW 1\n", -1, ":1:");
    LOAD("x\n", -1, ":1:");
    LOAD("row 1\nrow 2\n\xff\xfe\n", -1, ":3:");
    LOAD("row 1\nrow\0 2\n", -1, ":2: a NUL byte");
    LOAD("", -1, "no queries");
    LOAD("# only a comment\n\n   \n", -1, "no queries");
    /* a missing file and a directory */
    l = (cmir_query_list *)1;
    ASSERT_TRUE(cmir_query_list_load(in_dir("missing.txt"), &l) != 0 && l == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "missing.txt") != NULL);
    ASSERT_TRUE(cmir_query_list_load(dir, &l) != 0 && l == NULL);
    ASSERT_EQ_INT(cmir_query_list_load(NULL, &l), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_query_list_count(NULL), 0);
    cmir_query_list_free(NULL); /* a no-op */
    /* long names and many lines, past any fixed buffer */
    size_t big = 200000;
    char *t = malloc(big + 64);
    if (t) {
        memcpy(t, "raster ", 7);
        memset(t + 7, 'n', 100000);
        size_t o = 7 + 100000;
        t[o++] = '\n';
        while (o + 6 < big) {
            memcpy(t + o, "row 7\n", 6);
            o += 6;
        }
        l = load(t, o, 1 + (int)((o - 100008) / 6), NULL);
        if (l)
            ASSERT_EQ_INT(strlen(cmir_query_list_queries(l)[0].raster), 100000);
        cmir_query_list_free(l);
        free(t);
    }
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    GDALAllRegister();
    RUN(test_query_list);
    RUN(setup);
    RUN(test_run_equals_brute_force);
    RUN(test_ties_by_row);
    RUN(test_accessors);
    RUN(test_writer);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
