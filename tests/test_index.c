/* Tests of the index and search: GeoPackage index read by OGR's own tools,
 * search identical to brute force, RFC 7946 GeoJSON (lon/lat in range, a
 * known footprint equal to its geotransform reprojected), raster queries,
 * the wrong model refused, append, a killed append leaving the index as it
 * was, and shards merged; the int8 codes stored in the index (byte for
 * byte those of cmir_knn_q8_new, hits identical to the float scan and to
 * codes computed in memory, ties included, in shards too, a damaged chunk
 * an error naming the file). */
#include <string.h>
#include "cmir/index.h"
#include "cmir/knn.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_index_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static const char *A, *B, *M, *M2, *IX;

static void setup(void)
{
    A = in_dir("a.mat");
    B = in_dir("b.mat");
    M = in_dir("model.mat");
    M2 = in_dir("model2.mat");
    IX = in_dir("index.gpkg");
    ASSERT_OK(td_make_archive(A, 80, 1));
    ASSERT_OK(td_make_archive(B, 400, 2));
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 32;
    p.epochs1 = 2;
    p.epochs2 = 30;
    p.unified.d_v = 16;
    ASSERT_OK(cmir_train(A, M, p, NULL, NULL, NULL));
    p.seed = 9;
    ASSERT_OK(cmir_train(A, M2, p, NULL, NULL, NULL));
}

static void test_build_and_ogr(void)
{
    int64_t added = 0;
    ASSERT_OK(cmir_index_build(M, &A, 1, IX, cmir_index_default_params(), NULL, NULL, &added));
    ASSERT_EQ_INT(added, 160);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -so %s tiles | grep -q 'Feature Count: 160'", IX);
    ASSERT_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ogr2ogr -f GeoJSON %s %s tiles", in_dir("tiles.geojson"), IX);
    ASSERT_EQ_INT(system(cmd), 0);
    cmir_index *ix = cmir_index_open(IX);
    REQUIRE(ix != NULL);
    ASSERT_EQ_INT(cmir_index_count(ix), 160);
    ASSERT_EQ_INT(cmir_index_dim(ix), 16);
    cmir_model *m = cmir_model_load(M);
    ASSERT_TRUE(strcmp(cmir_index_model_id(ix), cmir_model_get_info(m)->id) == 0);
    cmir_model_free(m);
    cmir_index_close(ix);
}

/* Search equals a brute force in double over the same vectors. */
static void test_search_exact(void)
{
    cmir_index *ix = cmir_index_open(IX);
    if (!ix)
        return;
    int64_t n = cmir_index_count(ix);
    int d = cmir_index_dim(ix), k = 7;
    int64_t rows[7];
    float dist[7];
    int mismatches = 0;
    for (int64_t q = 0; q < n; q += 13) {
        cmir_search_filter f = cmir_search_default_filter();
        f.modality = !cmir_index_modality(ix, q);
        ASSERT_OK(cmir_index_search(ix, NULL, cmir_index_vector(ix, q), 1, k, &f, rows, dist));
        /* brute force */
        double best[7];
        int64_t bid[7];
        for (int j = 0; j < k; j++) {
            best[j] = INFINITY;
            bid[j] = -1;
        }
        for (int64_t r = 0; r < n; r++) {
            if (cmir_index_modality(ix, r) != f.modality)
                continue;
            double s = 0;
            for (int c = 0; c < d; c++) {
                double e = (double)cmir_index_vector(ix, q)[c] - cmir_index_vector(ix, r)[c];
                s += e * e;
            }
            for (int j = 0; j < k; j++)
                if (s < best[j]) {
                    for (int t = k - 1; t > j; t--) {
                        best[t] = best[t - 1];
                        bid[t] = bid[t - 1];
                    }
                    best[j] = s;
                    bid[j] = r;
                    break;
                }
        }
        for (int j = 0; j < k; j++) {
            mismatches += rows[j] != bid[j];
            ASSERT_NEAR(dist[j], sqrt(best[j]), 1e-4 * (1 + sqrt(best[j])));
        }
    }
    ASSERT_EQ_INT(mismatches, 0);
    /* A batch (the int8 scan on VNNI CPUs) answers exactly as single
     * queries (the float path): every row as a query, MS rows kept. */
    int64_t *br = malloc(sizeof(int64_t) * (size_t)n * k);
    float *bd = malloc(sizeof(float) * (size_t)n * k), *qs = malloc(sizeof(float) * (size_t)n * d);
    for (int64_t q = 0; q < n; q++)
        memcpy(qs + q * d, cmir_index_vector(ix, q), sizeof(float) * d);
    cmir_search_filter f = cmir_search_default_filter();
    f.modality = CMIR_TARGET_MS;
    ASSERT_OK(cmir_index_search(ix, NULL, qs, n, k, &f, br, bd));
    int diff = 0;
    for (int64_t q = 0; q < n; q++) {
        ASSERT_OK(cmir_index_search(ix, NULL, qs + q * d, 1, k, &f, rows, dist));
        diff += memcmp(rows, br + q * k, sizeof rows) != 0 || memcmp(dist, bd + q * k, sizeof dist) != 0;
    }
    ASSERT_EQ_INT(diff, 0);
    free(br);
    free(bd);
    free(qs);
    cmir_index_close(ix);
}

static void test_geojson(void)
{
    cmir_query q[2] = {{CMIR_QUERY_ROW, 5, NULL, 0, {0}, NULL}, {CMIR_QUERY_ROW, 100, NULL, 0, {0}, NULL}};
    cmir_search_params p = cmir_search_default_params();
    p.k = 4;
    const char *out = in_dir("hits.geojson");
    ASSERT_OK(cmir_search(M, IX, q, 2, out, p, NULL, NULL));
    GDALDatasetH ds = GDALOpenEx(out, GDAL_OF_VECTOR, NULL, NULL, NULL);
    REQUIRE(ds != NULL);
    OGRLayerH l = GDALDatasetGetLayer(ds, 0);
    ASSERT_EQ_INT(OGR_L_GetFeatureCount(l, TRUE), 8);
    ASSERT_TRUE(strstr(GDALGetMetadataItem(l, "DESCRIPTION", NULL), "row 5") != NULL);
    /* The archive's own geometry for the first hit, reprojected by hand. */
    cmir_archive *a = cmir_archive_open(A);
    OGRSpatialReferenceH utm = OSRNewSpatialReference(td_wkt), wgs = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
    OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(utm, wgs);
    OGRFeatureH f;
    int n = 0;
    while ((f = OGR_L_GetNextFeature(l)) != NULL) {
        OGRGeometryH g = OGR_F_GetGeometryRef(f);
        OGRGeometryH ring = OGR_G_GetGeometryRef(g, 0);
        int np = OGR_G_GetPointCount(ring);
        for (int i = 0; i < np; i++) {
            double x = OGR_G_GetX(ring, i), y = OGR_G_GetY(ring, i);
            ASSERT_TRUE(x >= -180 && x <= 180 && y >= -90 && y <= 90);
        }
        /* counter-clockwise exterior ring: positive shoelace area */
        double area2 = 0;
        for (int i = 0; i + 1 < np; i++)
            area2 += OGR_G_GetX(ring, i) * OGR_G_GetY(ring, i + 1) - OGR_G_GetX(ring, i + 1) * OGR_G_GetY(ring, i);
        ASSERT_TRUE(area2 > 0);
        int64_t tile = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "tile_id"));
        int ms = !strcmp(OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "modality")), "MS");
        double gt[6];
        ASSERT_OK(cmir_archive_geotransform(a, ms ? CMIR_MS : CMIR_PAN, tile, gt));
        /* the upper-left corner must be one of the ring's vertices */
        double x = gt[0], y = gt[3];
        OCTTransform(ct, 1, &x, &y, NULL);
        double bestd = 1e9;
        for (int i = 0; i < np; i++)
            bestd = fmin(bestd, hypot(OGR_G_GetX(ring, i) - x, OGR_G_GetY(ring, i) - y));
        ASSERT_LE(bestd, 1e-6);
        /* cross-modal by default */
        int qrow = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "query"));
        ASSERT_EQ_INT(ms, qrow == 0 ? 1 : 0); /* row 5 is PAN, row 100 is MS */
        n++;
        OGR_F_Destroy(f);
    }
    ASSERT_EQ_INT(n, 8);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(utm);
    OSRDestroySpatialReference(wgs);
    cmir_archive_close(a);
    GDALClose(ds);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ogr2ogr -f GPKG %s %s && ogrinfo -ro -so %s cmir_hits | grep -q 'Feature Count: 8'",
             in_dir("hits.gpkg"), out, in_dir("hits.gpkg"));
    ASSERT_EQ_INT(system(cmd), 0);
}

/* A PAN tile written as a GeoTIFF finds what its row in the index finds. */
static void test_raster_query(void)
{
    cmir_archive *a = cmir_archive_open(A);
    float pan[TD_PAN * TD_PAN];
    ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, 9, pan));
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), in_dir("q.tif"), TD_PAN, TD_PAN, 1, GDT_Byte, NULL);
    ASSERT_EQ_INT(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, TD_PAN, TD_PAN, pan, TD_PAN, TD_PAN,
                               GDT_Float32, 0, 0), CE_None);
    GDALClose(ds);
    cmir_archive_close(a);
    cmir_query q = {CMIR_QUERY_RASTER, 0, in_dir("q.tif"), 0, {0}, NULL};
    cmir_search_params p = cmir_search_default_params();
    p.k = 3;
    p.format = "CSV";
    ASSERT_OK(cmir_search(M, IX, &q, 1, in_dir("hits.csv"), p, NULL, NULL));
    /* the same hits (row, tile, modality, in order) as the index's own row
     * of PAN tile 9 (row 9: PAN rows first), whose code was embedded from
     * the archive when the index was built */
    cmir_query qr = {CMIR_QUERY_ROW, 9, NULL, 0, {0}, NULL};
    ASSERT_OK(cmir_search(M, IX, &qr, 1, in_dir("hits_row.csv"), p, NULL, NULL));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test \"$(cut -d, -f2,4-6 %s)\" = \"$(cut -d, -f2,4-6 %s)\" && test $(wc -l < %s) = 4",
             in_dir("hits.csv"), in_dir("hits_row.csv"), in_dir("hits.csv"));
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "head -4 %s %s >&2", in_dir("hits.csv"), in_dir("hits_row.csv"));
        ASSERT_EQ_INT(system(cmd), 0);
        t_failures++;
    }
    /* a raster smaller than a tile is refused */
    q.has_window = 1;
    int w[4] = {0, 0, 10, 10};
    memcpy(q.window, w, sizeof w);
    ASSERT_EQ_INT(cmir_search(M, IX, &q, 1, in_dir("x.geojson"), p, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "smaller than one") != NULL);
}

static void test_wrong_model(void)
{
    cmir_query q = {CMIR_QUERY_ROW, 1, NULL, 0, {0}, NULL};
    ASSERT_EQ_INT(cmir_search(M2, IX, &q, 1, in_dir("x.geojson"), cmir_search_default_params(), NULL, NULL),
                  CMIR_EINVAL);
    printf("  other model: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "was built with model") != NULL);
    ASSERT_TRUE(access(in_dir("x.geojson"), F_OK) != 0);
    cmir_index_params p = cmir_index_default_params();
    p.append = 1;
    ASSERT_EQ_INT(cmir_index_build(M2, &B, 1, IX, p, NULL, NULL, NULL), CMIR_EINVAL);
}

static int die_halfway(double frac, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    if (frac > 0.5)
        kill(getpid(), SIGKILL);
    return 0;
}

static void test_append_and_kill(void)
{
    cmir_index_params p = cmir_index_default_params();
    p.append = 1;
    /* killed halfway through an append: the index is as it was */
    pid_t pid = fork();
    if (pid == 0) {
        cmir_index_build(M, &B, 1, IX, p, die_halfway, NULL, NULL);
        _exit(0); /* not reached */
    }
    int st;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    cmir_index *ix = cmir_index_open(IX);
    ASSERT_TRUE(ix != NULL);
    ASSERT_EQ_INT(cmir_index_count(ix), 160);
    cmir_index_close(ix);
    /* a full append */
    int64_t added;
    ASSERT_OK(cmir_index_build(M, &B, 1, IX, p, NULL, NULL, &added));
    ASSERT_EQ_INT(added, 800);
    ix = cmir_index_open(IX);
    ASSERT_TRUE(ix && cmir_index_count(ix) == 960);
    cmir_index_close(ix);
}

static void test_merge(void)
{
    const char *s1 = in_dir("s1.gpkg"), *s2 = in_dir("s2.gpkg"), *mg = in_dir("merged.gpkg");
    ASSERT_OK(cmir_index_build(M, &A, 1, s1, cmir_index_default_params(), NULL, NULL, NULL));
    ASSERT_OK(cmir_index_build(M, &B, 1, s2, cmir_index_default_params(), NULL, NULL, NULL));
    const char *parts[2] = {s1, s2};
    ASSERT_OK(cmir_index_merge(parts, 2, mg, NULL, NULL));
    cmir_index *a = cmir_index_open(IX), *b = cmir_index_open(mg);
    ASSERT_TRUE(a && b);
    if (a && b) {
        ASSERT_EQ_INT(cmir_index_count(b), 960);
        /* same rows, same vectors, same answers as the appended index */
        ASSERT_EQ_INT(memcmp(cmir_index_vector(a, 0), cmir_index_vector(b, 0), sizeof(float) * 16 * 960), 0);
    }
    cmir_index_close(a);
    cmir_index_close(b);
    /* features whose FID is not row + 1 (edited by another tool) are still
     * found: the row -> FID map is built by a scan */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ogrinfo -q %s -sql \"UPDATE tiles SET fid = fid + 1000000 WHERE row < 500\" "
             "> /dev/null 2>&1", mg);
    ASSERT_EQ_INT(system(cmd), 0);
    cmir_query q = {CMIR_QUERY_ROW, 10, NULL, 0, {0}, NULL}; /* its hits have moved FIDs */
    cmir_search_params sp = cmir_search_default_params();
    sp.k = 5;
    sp.filter.modality = -1;
    ASSERT_OK(cmir_search(M, mg, &q, 1, in_dir("fid.geojson"), sp, NULL, NULL));
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -al -q %s | grep -c 'rank (Integer)' | grep -qx 5", in_dir("fid.geojson"));
    ASSERT_EQ_INT(system(cmd), 0);
    /* shards of different models do not merge */
    ASSERT_OK(cmir_index_build(M2, &A, 1, in_dir("s3.gpkg"), cmir_index_default_params(), NULL, NULL, NULL));
    const char *bad[2] = {s1, in_dir("s3.gpkg")};
    ASSERT_EQ_INT(cmir_index_merge(bad, 2, in_dir("bad.gpkg"), NULL, NULL), CMIR_EINVAL);
}

/* ---- the int8 codes stored in the index ---- */

/* Every query of qs (m x d) against path with the given scan, k hits. */
static int scan_hits(const char *path, int scan, const float *qs, int64_t m, int k, int64_t *rows, float *dist)
{
    cmir_index *ix = cmir_index_open(path);
    if (!ix)
        return -1000;
    int rc = cmir_index_set_scan(ix, scan);
    if (!rc)
        rc = cmir_index_search(ix, NULL, qs, m, k, NULL, rows, dist);
    cmir_index_close(ix);
    return rc;
}

/* Hits of path (int8 scan) identical, ids and distances, to want. */
static void same_hits(const char *what, const char *path, const float *qs, int64_t m, const int64_t *want_r,
                      const float *want_d)
{
    int64_t *r = malloc(sizeof(int64_t) * (size_t)m * 9);
    float *d = malloc(sizeof(float) * (size_t)m * 9);
    int rc = scan_hits(path, CMIR_SCAN_INT8, qs, m, 9, r, d);
    ASSERT_OK(rc);
    int same = !rc && !memcmp(r, want_r, sizeof(int64_t) * (size_t)m * 9) && !memcmp(d, want_d, sizeof(float) * (size_t)m * 9);
    if (!same)
        fprintf(stderr, "FAIL: %s: hits differ from the float scan\n", what);
    ASSERT_TRUE(same);
    free(r);
    free(d);
}

static void sql(const char *path, const char *stmt)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ogrinfo -q %s -sql \"%s\" > /dev/null 2>&1", path, stmt);
    ASSERT_EQ_INT(system(cmd), 0);
}

static int has_codes(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -so %s cmir_q8 2>/dev/null | grep -q 'Feature Count: [1-9]'", path);
    return system(cmd) == 0;
}

/* The codes an index stores are those cmir_knn_q8_new makes of its
 * matrix, byte for byte (read back with OGR, as any GeoPackage reader). */
static void test_codes_stored(void)
{
    ASSERT_TRUE(has_codes(IX)); /* built and appended with codes */
    cmir_index *ix = cmir_index_open(IX);
    REQUIRE(ix != NULL);
    int64_t n = cmir_index_count(ix);
    int d = cmir_index_dim(ix);
    cmir_knn_q8 *qx = NULL;
    ASSERT_OK(cmir_knn_q8_new(cmir_index_vector(ix, 0), n, d, &qx));
    size_t rb = cmir_knn_q8_record_bytes(d);
    unsigned char *want = malloc(rb * (size_t)n);
    ASSERT_OK(cmir_knn_q8_get_rows(qx, 0, n, want));
    cmir_knn_q8_free(qx);
    cmir_index_close(ix);
    GDALDatasetH ds = GDALOpenEx(IX, GDAL_OF_VECTOR | GDAL_OF_READONLY, NULL, NULL, NULL);
    REQUIRE(ds != NULL);
    OGRLayerH l = GDALDatasetGetLayerByName(ds, "cmir_q8");
    REQUIRE(l != NULL);
    OGRFeatureH f;
    int64_t covered = 0, bad = 0;
    while ((f = OGR_L_GetNextFeature(l)) != NULL) {
        int64_t first = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "first_row"));
        int nr = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "n_rows")), bytes = 0;
        const GByte *b = OGR_F_GetFieldAsBinary(f, OGR_F_GetFieldIndex(f, "data"), &bytes);
        bad += first < 0 || first + nr > n || (size_t)bytes != rb * nr || memcmp(b, want + rb * first, rb * nr);
        covered += nr;
        OGR_F_Destroy(f);
    }
    GDALClose(ds);
    ASSERT_EQ_INT(covered, n);
    ASSERT_EQ_INT(bad, 0);
    free(want);
}

/* Stored codes, codes quantised in memory (an index without them, as
 * older builds wrote, or of another code format) and the float scan give
 * identical hits, on an index whose every row is there twice (exact ties);
 * shards carry codes, and a manifest of shards (one of them without codes)
 * answers as the single index; a damaged code chunk is an error naming
 * the file, the float scan still answers. */
static void test_codes_search(void)
{
    const char *s1 = in_dir("s1.gpkg"), *dup = in_dir("dup.gpkg"), *old = in_dir("old.gpkg");
    const char *parts[2] = {s1, s1};
    ASSERT_OK(cmir_index_merge(parts, 2, dup, NULL, NULL));
    ASSERT_TRUE(has_codes(dup));
    cmir_index_params np = cmir_index_default_params();
    np.no_codes = 1;
    const char *ab[2] = {A, A};
    ASSERT_OK(cmir_index_build(M, ab, 2, old, np, NULL, NULL, NULL)); /* the same rows, no codes */
    ASSERT_TRUE(!has_codes(old));
    cmir_index *ix = cmir_index_open(dup);
    REQUIRE(ix != NULL);
    int64_t m = cmir_index_count(ix);
    int d = cmir_index_dim(ix);
    float *qs = malloc(sizeof(float) * (size_t)m * d);
    memcpy(qs, cmir_index_vector(ix, 0), sizeof(float) * (size_t)m * d);
    cmir_index_close(ix);
    int64_t *fr = malloc(sizeof(int64_t) * (size_t)m * 9);
    float *fd = malloc(sizeof(float) * (size_t)m * 9);
    ASSERT_OK(scan_hits(dup, CMIR_SCAN_FLOAT, qs, m, 9, fr, fd));
    ASSERT_TRUE(fr[1] == 160 && fd[0] == 0.0f && fd[1] == 0.0f); /* row 0 ties with its copy */
    same_hits("stored codes", dup, qs, m, fr, fd);
    same_hits("no codes (quantised in memory)", old, qs, m, fr, fd);
    cmir_index_params ap = cmir_index_default_params();
    ap.append = 1; /* an append to an index without codes writes none */
    ASSERT_OK(cmir_index_build(M, &A, 1, old, ap, NULL, NULL, NULL));
    ASSERT_TRUE(!has_codes(old));
    /* codes of another format are not read: quantised instead */
    const char *other = in_dir("other.gpkg");
    ASSERT_OK(cmir_index_merge(parts, 2, other, NULL, NULL));
    sql(other, "UPDATE cmir_meta SET value = 'cmir-q8 0' WHERE key = 'q8_format'");
    same_hits("codes of another format", other, qs, m, fr, fd);
    /* shards: each carries its codes; a manifest of three, the middle one
     * built without codes, answers as the single index */
    char man[4096];
    int len = snprintf(man, sizeof man, "cmir-shards 1\n");
    int64_t first = 0;
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "sh%d.gpkg", s);
        cmir_index_params sp = cmir_index_default_params();
        sp.n_shards = 3;
        sp.shard = s;
        sp.no_codes = s == 1;
        ASSERT_OK(cmir_index_build(M, ab, 2, in_dir(name), sp, NULL, NULL, NULL));
        ASSERT_EQ_INT(has_codes(in_dir(name)), s != 1);
        cmir_index *p = cmir_index_open(in_dir(name));
        REQUIRE(p != NULL);
        len += snprintf(man + len, sizeof man - (size_t)len, "shard %lld %lld %s\n", (long long)first,
                        (long long)cmir_index_count(p), name);
        first += cmir_index_count(p);
        cmir_index_close(p);
    }
    ASSERT_EQ_INT(first, m);
    FILE *mf = fopen(in_dir("shards.txt"), "w");
    REQUIRE(mf != NULL);
    fputs(man, mf);
    fclose(mf);
    same_hits("a manifest of shards with codes (and one without)", in_dir("shards.txt"), qs, m, fr, fd);
    /* damage: a code byte, then a check that no longer matches */
    if (cmir_knn_q8_vnni()) { /* elsewhere the codes are never read */
        sql(dup, "UPDATE cmir_q8 SET data = CAST(substr(data, 1, 20) || X'FFFFFFFF' || substr(data, 25) AS BLOB) "
                 "WHERE first_row = 0"); /* row 0's xl: NaN */
        int64_t r[9];
        float dd[9];
        ASSERT_EQ_INT(scan_hits(dup, CMIR_SCAN_INT8, qs, 1, 9, r, dd), CMIR_EFORMAT);
        EXPECT_CONTAINS(cmir_last_error(), "dup.gpkg: damaged int8 code chunk at row 0");
        ASSERT_OK(scan_hits(dup, CMIR_SCAN_FLOAT, qs, 1, 9, r, dd));
        ASSERT_TRUE(r[0] == fr[0] && dd[1] == fd[1]);
        cmir_search_params sp = cmir_search_default_params();
        sp.scan = CMIR_SCAN_INT8;
        cmir_query q = {CMIR_QUERY_ROW, 10, NULL, 0, {0}, NULL};
        ASSERT_EQ_INT(cmir_search(M, dup, &q, 1, in_dir("dmg.geojson"), sp, NULL, NULL), CMIR_EFORMAT);
        EXPECT_CONTAINS(cmir_last_error(), "dup.gpkg: damaged int8 code chunk");
        sql(other, "UPDATE cmir_meta SET value = 'cmir-q8 1' WHERE key = 'q8_format'");
        same_hits("codes of this format again", other, qs, m, fr, fd);
        sql(other, "UPDATE cmir_q8 SET checksum = checksum + 1");
        ASSERT_EQ_INT(scan_hits(other, CMIR_SCAN_INT8, qs, 1, 9, r, dd), CMIR_EFORMAT);
        EXPECT_CONTAINS(cmir_last_error(), "other.gpkg: damaged int8 code chunk at row 0");
    }
    free(qs);
    free(fr);
    free(fd);
}

static void test_check_params(void)
{
    cmir_index_params ip = cmir_index_default_params();
    ASSERT_OK(cmir_index_check_params(ip));
    ip.threads = -2;
    REFUSES(cmir_index_check_params(ip), "cmir_index_params.threads: must be >= 0, got -2");
    const char *A = "/nonexistent.mat";
    REFUSES(cmir_index_build("/nonexistent.cmir", &A, 1, "/nonexistent.gpkg", ip, NULL, NULL, NULL),
            "cmir_index_params.threads");
    cmir_search_params p = cmir_search_default_params();
    ASSERT_OK(cmir_search_check_params(p));
    p.k = 0;
    REFUSES(cmir_search_check_params(p), "cmir_search_params.k: must be in 1..");
    p.k = CMIR_SEARCH_K_MAX + 1;
    REFUSES(cmir_search_check_params(p), "cmir_search_params.k");
    cmir_query q;
    memset(&q, 0, sizeof q);
    REFUSES(cmir_search("/nonexistent.cmir", "/nonexistent.gpkg", &q, 1, "/tmp/x.geojson", p, NULL, NULL),
            "cmir_search_params.k");
    p = cmir_search_default_params();
    p.filter.modality = (cmir_target)5;
    REFUSES(cmir_search_check_params(p), "cmir_search_params.filter.modality");
    p = cmir_search_default_params();
    p.threads = -1;
    REFUSES(cmir_search_check_params(p), "cmir_search_params.threads");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir))
        return 1;
    GDALAllRegister();
    RUN(setup);
    RUN(test_build_and_ogr);
    RUN(test_search_exact);
    RUN(test_geojson);
    RUN(test_raster_query);
    RUN(test_wrong_model);
    RUN(test_append_and_kill);
    RUN(test_merge);
    RUN(test_codes_stored);
    RUN(test_codes_search);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    RUN(test_check_params);
    TEST_MAIN_END();
}
