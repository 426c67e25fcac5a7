/* Tests of the GDAL driver plugin gdal_CMIR.so, driven through GDAL's own programs (gdalinfo,
 * gdal_translate, ogrinfo, ogr2ogr; QGIS's qgis_process: test_qgis.c) against fixtures made here:
 * subdatasets equal to the C reader, pixel-exact GeoTIFF round trip, queries equal to
 * cmir_search, a DSRSID file, /vsizip/, and GDAL errors (not crashes) for bad input.
 * Usage: test_plugin PLUGIN_DIR; CMIR_TEST_KEEP=1 keeps the fixtures. */
#include "cmir/index.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <hdf5.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_TILES 40

static char dir[] = "/tmp/cmir_plugin_XXXXXX";
static char env[4096]; /* prefix of every command: GDAL_DRIVER_PATH, sanitizer preload */
static char A[512], M[512], IX[512], DS[512], DSH5[512], T[512];

static const char *in_dir(const char *name)
{
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Runs `cmd` (stdout and stderr together) under the plugin environment; returns the exit
 * status, or 1000 + signal when it was killed (a crash). The output goes to *out (static). */
static int run(const char *cmd, const char **out)
{
    static char buf[1 << 20];
    char full[8192];
    snprintf(full, sizeof full, "%s %s 2>&1", env, cmd);
    *out = buf;
    return t_capture(full, buf, sizeof buf);
}

/* The command must succeed. */
static const char *ok(const char *cmd)
{
    const char *out;
    int rc = run(cmd, &out);
    if (rc != 0) {
        fprintf(stderr, "FAIL: '%s' exited %d\n%.3000s\n", cmd, rc, out);
        FAILED_AT();
    }
    return out;
}

/* The command must fail as GDAL fails: exit status 1, a message naming CMIR, no crash. */
static void fails(const char *cmd)
{
    const char *out;
    int rc = run(cmd, &out);
    if (rc != 1 || !strstr(out, "CMIR")) {
        fprintf(stderr, "FAIL: '%s' exited %d (want 1 and a CMIR message)\n%.3000s\n", cmd, rc, out);
        FAILED_AT();
    }
}

/* Preloads the sanitizer runtimes this test runs with (an ASan build): GDAL's programs are not
 * instrumented, and the instrumented plugin needs the runtime loaded first. An ASan report or a
 * leak exits 86 and a UBSan report aborts, so neither passes for a clean GDAL error (exit 1). */
static void sanitizer_preload(char *pre, size_t n) { t_sanitizer_preload(pre, n, " ASAN_OPTIONS=detect_leaks=1:exitcode=86"); }

/* ---- fixtures ---- */
static void write_u8(hid_t f, const char *name, int rank, const hsize_t *d, const uint8_t *v)
{
    hid_t sp = H5Screate_simple(rank, d, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(ds);
    H5Sclose(sp);
}

/* The public DSRSID layout as a plain HDF5 file: PAN (N,1,256,256), MUL (N,4,64,64) uint8,
 * LAND_COVER_TYPES (1,N) double; no georeferencing. */
static void write_dsrsid(const char *path)
{
    enum { N = 3 };
    uint8_t *pan = malloc(N * 256 * 256), *ms = malloc(N * 4 * 64 * 64);
    for (size_t i = 0; i < (size_t)N * 256 * 256; i++)
        pan[i] = (uint8_t)(i * 7 + i / 256);
    for (size_t i = 0; i < (size_t)N * 4 * 64 * 64; i++)
        ms[i] = (uint8_t)(i * 3);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dp[4] = {N, 1, 256, 256}, dm[4] = {N, 4, 64, 64}, dl[2] = {1, N};
    write_u8(f, "PAN_IMAGES", 4, dp, pan);
    write_u8(f, "MUL_IMAGES", 4, dm, ms);
    double lab[N] = {3, 1, 8};
    hid_t sp = H5Screate_simple(2, dl, NULL);
    hid_t ds = H5Dcreate2(f, "LAND_COVER_TYPES", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    free(pan);
    free(ms);
}

/* Typed archive: PAN UInt16 with nodata 0, MS Float32 with 3 named bands and nodata -9999,
 * multi-labels, no georeferencing. */
static int write_typed(const char *path)
{
    static const char *cls[3] = {"water", "forest", "field"}, *pb[1] = {"pan"},
                      *mb[3] = {"red", "green", "nir"};
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = 12;
    ap.pan_w = 20;
    ap.ms_h = 3;
    ap.ms_w = 5;
    ap.ms_bands = 3;
    ap.pan_type = CMIR_DT_UINT16;
    ap.ms_type = CMIR_DT_FLOAT32;
    ap.n_classes = 3;
    ap.class_names = cls;
    ap.pan_band_names = pb;
    ap.ms_band_names = mb;
    ap.multilabel = 1;
    ap.pan_nodata = 0;
    ap.ms_nodata = -9999;
    cmir_archive_writer *w = cmir_archive_create(path, ap);
    if (!w)
        return -1;
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        uint16_t pan[12 * 20];
        float ms[3 * 5 * 3];
        for (int k = 0; k < 12 * 20; k++)
            pan[k] = (uint16_t)(k * 257 + i * 1000);
        for (int k = 0; k < 3 * 5 * 3; k++)
            ms[k] = (float)k * 0.37f - 3 + (float)i;
        uint8_t ml[3] = {1, 0, (uint8_t)(i == 1)};
        cmir_tile_record t = {pan, ms, 1, ml, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        rc = cmir_archive_writer_add(w, &t);
    }
    if (rc) {
        cmir_archive_writer_abort(w);
        return rc;
    }
    return cmir_archive_writer_commit(w);
}

static int setup(void)
{
    snprintf(A, sizeof A, "%s", in_dir("a.mat"));
    snprintf(M, sizeof M, "%s", in_dir("model.mat"));
    snprintf(IX, sizeof IX, "%s", in_dir("index.gpkg"));
    snprintf(DS, sizeof DS, "%s", in_dir("dsrsid.mat"));
    snprintf(DSH5, sizeof DSH5, "%s", in_dir("dsrsid.h5"));
    snprintf(T, sizeof T, "%s", in_dir("typed.mat"));
    int rc = td_make_archive(A, N_TILES, 1);
    if (!rc)
        rc = write_typed(T);
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 16;
    p.epochs1 = 1;
    p.epochs2 = 5;
    p.unified.d_v = 16;
    if (!rc)
        rc = cmir_train(A, M, p, NULL, NULL, NULL);
    if (!rc)
        rc = cmir_index_build(M, (const char *const[]){A}, 1, IX, cmir_index_default_params(), NULL, NULL, NULL);
    if (rc) {
        fprintf(stderr, "FAIL: fixtures: %s\n", cmir_last_error());
        return rc;
    }
    write_dsrsid(DS);
    write_dsrsid(DSH5);
    return 0;
}

/* ---- driver metadata ---- */
static void test_format(void)
{
    const char *out = ok("gdalinfo --format CMIR");
    const char *want[] = {"Short Name: CMIR", "Supports: Raster", "Supports: Vector", "subdatasets",
                          "Virtual IO", "<OpenOptionList>", "name=\"MODEL\"", "name=\"INDEX\"",
                          "name=\"ROW\"", "name=\"RASTER\"", "name=\"SRCWIN\"", "name=\"K\"",
                          "name=\"TARGET\"", "name=\"BBOX\"", "name=\"MAX_DIST\"", "CMIR:QUERY",
                          "CMIR:\"file.mat\":PAN:n", "0-based"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        EXPECT_CONTAINS(out, want[i]);
    out = ok("ogrinfo --formats");
    EXPECT_CONTAINS(out, "CMIR -raster,vector-");
}

/* ---- raster side ---- */
static void test_subdataset_list(void)
{
    char cmd[1024], want[2200];
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", A);
    const char *out = ok(cmd);
    EXPECT_CONTAINS(out, "Driver: CMIR/");
    EXPECT_CONTAINS(out, "N_TILES=40");
    snprintf(want, sizeof want, "SUBDATASET_1_NAME=CMIR:\"%s\":PAN:0\n", A);
    EXPECT_CONTAINS(out, want);
    snprintf(want, sizeof want, "SUBDATASET_36_NAME=CMIR:\"%s\":MS:17\n", A);
    EXPECT_CONTAINS(out, want);
    EXPECT_CONTAINS(out, "SUBDATASET_36_DESC=tile 17, MS 8x8x4 Byte, class forest\n");
    snprintf(want, sizeof want, "SUBDATASET_80_NAME=CMIR:\"%s\":MS:39\n", A);
    EXPECT_CONTAINS(out, want);
    ASSERT_TRUE(strstr(out, "SUBDATASET_81_NAME") == NULL);
    EXPECT_CONTAINS(out, "LISTED_TILES=40\n");
    ASSERT_TRUE(strstr(out, "SUBDATASETS_NOTE") == NULL);
    /* A capped list (by default 100 tiles): the first N tiles, and
     * metadata saying how many exist and how to open any of them. */
    snprintf(cmd, sizeof cmd, "gdalinfo -oo MAX_SUBDATASET_TILES=5 '%s'", A);
    out = ok(cmd);
    snprintf(want, sizeof want, "SUBDATASET_10_NAME=CMIR:\"%s\":MS:4\n", A);
    EXPECT_CONTAINS(out, want);
    ASSERT_TRUE(strstr(out, "SUBDATASET_11_NAME") == NULL);
    EXPECT_CONTAINS(out, "N_TILES=40\n");
    EXPECT_CONTAINS(out, "LISTED_TILES=5\n");
    EXPECT_CONTAINS(out, "SUBDATASETS_NOTE=the first 5 of 40 tiles are listed");
    snprintf(want, sizeof want, "TILE_SYNTAX=CMIR:\"%s\":PAN:n or CMIR:\"%s\":MS:n, n = 0 to 39\n",
             A, A);
    EXPECT_CONTAINS(out, want);
    snprintf(cmd, sizeof cmd, "gdalinfo -oo MAX_SUBDATASET_TILES=-1 '%s'", A);
    fails(cmd);
}

/* gdalinfo of a subdataset shows what the C reader returns; gdal_translate writes a GeoTIFF
 * whose pixels, georeferencing, band descriptions and metadata are exactly the archive's. */
static void check_subdataset(cmir_archive *a, cmir_modality m, int64_t tile)
{
    const cmir_archive_info *f = cmir_archive_get_info(a);
    const char *mod = m == CMIR_MS ? "MS" : "PAN";
    int w = m ? f->ms_w : f->pan_w, h = m ? f->ms_h : f->pan_h, nb = m ? f->ms_bands : f->pan_bands;
    char cmd[2048], want[1024];
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\":%s:%lld'", A, mod, (long long)tile);
    const char *out = ok(cmd);
    snprintf(want, sizeof want, "Size is %d, %d\n", w, h);
    EXPECT_CONTAINS(out, want);
    snprintf(want, sizeof want, "Band %d Block=%dx%d Type=Byte", nb, w, h);
    EXPECT_CONTAINS(out, want);
    double gt[6];
    ASSERT_OK(cmir_archive_geotransform(a, m, tile, gt));
    snprintf(want, sizeof want, "Origin = (%.15f,%.15f)\n", gt[0], gt[3]);
    EXPECT_CONTAINS(out, want);
    snprintf(want, sizeof want, "Pixel Size = (%.15f,%.15f)\n", gt[1], gt[5]);
    EXPECT_CONTAINS(out, want);
    EXPECT_CONTAINS(out, "ID[\"EPSG\",32650]]");
    int label = cmir_archive_label(a, tile);
    snprintf(want, sizeof want, "CLASS_NAME=%s\n", cmir_archive_class_name(a, label));
    EXPECT_CONTAINS(out, want);
    snprintf(want, sizeof want, "SCENE=%s\n", cmir_archive_scene(a, tile));
    EXPECT_CONTAINS(out, want);
    double win[4];
    ASSERT_OK(cmir_archive_window(a, m, tile, win));
    snprintf(want, sizeof want, "SOURCE_WINDOW=%g,%g,%g,%g\n", win[0], win[1], win[2], win[3]);
    EXPECT_CONTAINS(out, want);
    snprintf(want, sizeof want, "Description = %s\n", cmir_archive_band_name(a, m, nb - 1));
    EXPECT_CONTAINS(out, want);

    /* gdal_translate to GeoTIFF, read back here with GDAL's GTiff driver */
    const char *tif = in_dir(m == CMIR_MS ? "ms.tif" : "pan.tif");
    snprintf(cmd, sizeof cmd, "gdal_translate -q 'CMIR:\"%s\":%s:%lld' '%s'", A, mod, (long long)tile, tif);
    ok(cmd);
    GDALDatasetH ds = GDALOpen(tif, GA_ReadOnly);
    REQUIRE(ds != NULL);
    ASSERT_TRUE(GDALGetRasterXSize(ds) == w && GDALGetRasterYSize(ds) == h && GDALGetRasterCount(ds) == nb);
    double tgt[6];
    ASSERT_EQ_INT(GDALGetGeoTransform(ds, tgt), CE_None);
    for (int i = 0; i < 6; i++)
        ASSERT_TRUE(tgt[i] == gt[i]);
    OGRSpatialReferenceH want_srs = OSRNewSpatialReference(cmir_archive_crs(a, tile));
    OGRSpatialReferenceH got_srs = GDALGetSpatialRef(ds);
    ASSERT_TRUE(got_srs && OSRIsSame(got_srs, want_srs));
    OSRDestroySpatialReference(want_srs);
    const char *cls = GDALGetMetadataItem(ds, "CLASS_NAME", NULL);
    ASSERT_TRUE(cls && strcmp(cls, cmir_archive_class_name(a, label)) == 0);
    const char *t = GDALGetMetadataItem(ds, "TILE", NULL);
    ASSERT_TRUE(t && atoll(t) == tile);
    uint8_t *ref = malloc((size_t)w * h * nb), *got = malloc((size_t)w * h * nb);
    ASSERT_OK(cmir_archive_read_tile_raw(a, m, tile, ref));
    /* pixel-interleaved like the archive: band fastest */
    ASSERT_EQ_INT(GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, got, w, h, GDT_Byte, nb, NULL, nb, (GSpacing)nb * w, 1),
                  CE_None);
    ASSERT_TRUE(memcmp(ref, got, (size_t)w * h * nb) == 0);
    for (int b = 1; b <= nb; b++)
        ASSERT_TRUE(strcmp(GDALGetDescription(GDALGetRasterBand(ds, b)), cmir_archive_band_name(a, m, b - 1)) == 0);
    free(ref);
    free(got);
    GDALClose(ds);
}

static void test_subdatasets(void)
{
    cmir_archive *a = cmir_archive_open(A);
    REQUIRE(a != NULL);
    check_subdataset(a, CMIR_MS, 17);
    check_subdataset(a, CMIR_PAN, 17);
    check_subdataset(a, CMIR_PAN, 0);
    check_subdataset(a, CMIR_MS, N_TILES - 1);
    cmir_archive_close(a);
    /* unquoted path, and a checksum equal through both spellings */
    char cmd[1024], first[256];
    snprintf(cmd, sizeof cmd, "gdalinfo -checksum 'CMIR:\"%s\":MS:5' | grep Checksum", A);
    snprintf(first, sizeof first, "%s", ok(cmd));
    snprintf(cmd, sizeof cmd, "gdalinfo -checksum 'CMIR:%s:MS:5' | grep Checksum", A);
    ASSERT_TRUE(strcmp(first, ok(cmd)) == 0);
    /* /vsizip/: copied to a local temporary file first */
    const char *zip = in_dir("a.zip");
    char vsi[700];
    snprintf(vsi, sizeof vsi, "/vsizip/%s/a.mat", zip);
    ASSERT_EQ_INT(CPLCopyFile(vsi, A), 0);
    snprintf(cmd, sizeof cmd, "gdalinfo -checksum 'CMIR:\"%s\":MS:5' | grep Checksum", vsi);
    ASSERT_TRUE(strcmp(first, ok(cmd)) == 0);
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", vsi);
    EXPECT_CONTAINS(ok(cmd), "SUBDATASET_80_NAME");
}

/* Types other than Byte, band names, nodata, multi-labels, and no georeferencing. */
static void test_typed(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", T);
    const char *out = ok(cmd);
    EXPECT_CONTAINS(out, "SUBDATASET_3_DESC=tile 1, PAN 12x20x1 UInt16, class water\n");
    EXPECT_CONTAINS(out, "SUBDATASET_4_DESC=tile 1, MS 3x5x3 Float32, class water\n");
    EXPECT_CONTAINS(out, "CLASS_NAMES=water;forest;field\n");
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\":PAN:1'", T);
    out = ok(cmd);
    EXPECT_CONTAINS(out, "Size is 20, 12\n");
    EXPECT_CONTAINS(out, "Band 1 Block=20x12 Type=UInt16");
    EXPECT_CONTAINS(out, "Description = pan\n");
    EXPECT_CONTAINS(out, "NoData Value=0\n");
    EXPECT_CONTAINS(out, "LABELS=water;field\n");
    ASSERT_TRUE(strstr(out, "Origin =") == NULL);
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\":MS:2'", T);
    out = ok(cmd);
    EXPECT_CONTAINS(out, "Size is 5, 3\n");
    EXPECT_CONTAINS(out, "Band 3 Block=5x3 Type=Float32");
    EXPECT_CONTAINS(out, "Description = red\n");
    EXPECT_CONTAINS(out, "Description = nir\n");
    EXPECT_CONTAINS(out, "NoData Value=-9999\n");
    EXPECT_CONTAINS(out, "LABELS=water\n");
    /* pixel-exact through GeoTIFF in both types */
    cmir_archive *a = cmir_archive_open(T);
    if (!a)
        return;
    for (int m = 0; m < 2; m++) {
        const char *tif = in_dir(m ? "typed_ms.tif" : "typed_pan.tif");
        snprintf(cmd, sizeof cmd, "gdal_translate -q 'CMIR:\"%s\":%s:2' '%s'", T, m ? "MS" : "PAN", tif);
        ok(cmd);
        int w = m ? 5 : 20, h = m ? 3 : 12, nb = m ? 3 : 1, sz = m ? 4 : 2;
        GDALDataType dt = m ? GDT_Float32 : GDT_UInt16;
        unsigned char ref[4 * 12 * 20], got[4 * 12 * 20];
        ASSERT_OK(cmir_archive_read_tile_raw(a, (cmir_modality)m, 2, ref));
        GDALDatasetH ds = GDALOpen(tif, GA_ReadOnly);
        ASSERT_TRUE(ds != NULL);
        if (!ds)
            continue;
        ASSERT_EQ_INT(GDALGetRasterDataType(GDALGetRasterBand(ds, 1)), dt);
        ASSERT_EQ_INT(GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, got, w, h, dt, nb, NULL, (GSpacing)nb * sz,
                                          (GSpacing)nb * sz * w, sz),
                      CE_None);
        ASSERT_TRUE(memcmp(ref, got, (size_t)w * h * nb * sz) == 0);
        GDALClose(ds);
    }
    cmir_archive_close(a);
}

static void test_dsrsid(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", DS);
    const char *out = ok(cmd);
    EXPECT_CONTAINS(out, "ARCHIVE_LAYOUT=DSRSID_HDF5");
    EXPECT_CONTAINS(out, "SUBDATASET_6_DESC=tile 2, MS 64x64x4 Byte, class class_8\n");
    snprintf(cmd, sizeof cmd, "gdalinfo -checksum 'CMIR:\"%s\":PAN:1'", DS);
    out = ok(cmd);
    EXPECT_CONTAINS(out, "Size is 256, 256\n");
    EXPECT_CONTAINS(out, "CLASS=1\n");
    EXPECT_CONTAINS(out, "Checksum=");
    ASSERT_TRUE(strstr(out, "Origin =") == NULL);
    ASSERT_TRUE(strstr(out, "Coordinate System is:") == NULL);
    /* a .h5 file stays with GDAL's HDF5 driver; the CMIR: prefix opens it as an archive */
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", DSH5);
    out = ok(cmd);
    ASSERT_TRUE(strstr(out, "Driver: CMIR") == NULL);
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\"'", DSH5);
    EXPECT_CONTAINS(ok(cmd), "SUBDATASET_2_NAME=CMIR:");
    /* the tile archive's pixels through gdal_translate, compared with the reader */
    cmir_archive *a = cmir_archive_open(DS);
    if (!a)
        return;
    snprintf(cmd, sizeof cmd, "gdal_translate -q 'CMIR:\"%s\":MS:2' '%s'", DS, in_dir("ds_ms.tif"));
    ok(cmd);
    uint8_t *ref = malloc(64 * 64 * 4), *got = malloc(64 * 64 * 4);
    ASSERT_OK(cmir_archive_read_tile_raw(a, CMIR_MS, 2, ref));
    GDALDatasetH ds = GDALOpen(in_dir("ds_ms.tif"), GA_ReadOnly);
    ASSERT_TRUE(ds != NULL);
    if (ds) {
        ASSERT_EQ_INT(GDALDatasetRasterIO(ds, GF_Read, 0, 0, 64, 64, got, 64, 64, GDT_Byte, 4, NULL, 4, 4 * 64, 1),
                      CE_None);
        ASSERT_TRUE(memcmp(ref, got, 64 * 64 * 4) == 0);
        GDALClose(ds);
    }
    free(ref);
    free(got);
    cmir_archive_close(a);
}

/* ---- vector side ---- */
typedef struct hit {
    long long row, tile;
    int rank;
    double dist;
    char mod[8];
} hit;

static int read_hits(const char *path, hit *h, int cap)
{
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    if (!ds)
        return -1;
    OGRLayerH l = GDALDatasetGetLayer(ds, 0);
    OGRFeatureH f;
    int n = 0;
    while (l && (f = OGR_L_GetNextFeature(l)) != NULL) {
        if (n < cap) {
            h[n].row = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "row"));
            h[n].tile = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "tile_id"));
            h[n].rank = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "rank"));
            h[n].dist = OGR_F_GetFieldAsDouble(f, OGR_F_GetFieldIndex(f, "distance"));
            snprintf(h[n].mod, sizeof h[n].mod, "%s", OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "modality")));
            ASSERT_TRUE(OGR_F_GetGeometryRef(f) != NULL);
        }
        n++;
        OGR_F_Destroy(f);
    }
    GDALClose(ds);
    return n;
}

/* ogr2ogr of `source` (+ options) gives the same hits as cmir_search with q and p. */
static void same_hits(const char *source, const char *oo, cmir_query q, cmir_search_params p, int expect_n)
{
    static int k;
    char out[600], ref[600], cmd[4096];
    snprintf(out, sizeof out, "%s", in_dir("ogr_hits.geojson"));
    snprintf(ref, sizeof ref, "%s", in_dir("ref_hits.geojson"));
    unlink(out);
    ASSERT_OK(cmir_search(M, IX, &q, 1, ref, p, NULL, NULL));
    snprintf(cmd, sizeof cmd, "ogr2ogr -f GeoJSON '%s' '%s' %s", out, source, oo);
    ok(cmd);
    hit a[64], b[64];
    int na = read_hits(ref, a, 64), nb = read_hits(out, b, 64);
    ASSERT_EQ_INT(na, expect_n);
    ASSERT_EQ_INT(nb, na);
    for (int i = 0; i < na && i < nb && i < 64; i++) {
        ASSERT_EQ_INT(a[i].row, b[i].row);
        ASSERT_EQ_INT(a[i].tile, b[i].tile);
        ASSERT_EQ_INT(b[i].rank, i + 1);
        ASSERT_TRUE(strcmp(a[i].mod, b[i].mod) == 0);
        ASSERT_NEAR(a[i].dist, b[i].dist, 1e-6 * (1 + a[i].dist));
    }
    k++;
}

static void test_query(void)
{
    char cmd[4096], oo[2048], src[2048];
    /* ogrinfo lists the layer with the hit fields */
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -al -so CMIR:QUERY -oo MODEL='%s' -oo INDEX='%s' -oo ROW=3", M, IX);
    const char *out = ok(cmd);
    const char *want[] = {"Feature Count: 10", "rank: Integer", "distance: Real", "row: Integer",
                          "tile_id: Integer", "modality: String", "archive: String", "scene: String",
                          "class: Integer", "class_name: String", "labels: String", "Polygon"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        EXPECT_CONTAINS(out, want[i]);
    snprintf(cmd, sizeof cmd, "ogrinfo -so -al CMIR:QUERY -oo MODEL='%s' -oo INDEX='%s' -oo ROW=3 -oo K=2", M, IX);
    EXPECT_CONTAINS(ok(cmd), "Feature Count: 2"); /* also without -ro */

    cmir_query q = {CMIR_QUERY_ROW, 3, NULL, 0, {0}, NULL};
    cmir_search_params p = cmir_search_default_params();
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo ROW=3", M, IX);
    same_hits("CMIR:QUERY", oo, q, p, 10);
    /* the keys in the connection string, as QGIS takes it */
    q.row = 44;
    p.k = 5;
    snprintf(src, sizeof src, "CMIR:QUERY?MODEL=%s&INDEX=%s&ROW=44&K=5", M, IX);
    same_hits(src, "", q, p, 5);
    /* TARGET, BBOX, MAX_DIST */
    p.k = 7;
    p.filter.modality = -1;
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo ROW=44 -oo K=7 -oo TARGET=any", M, IX);
    same_hits("CMIR:QUERY", oo, q, p, 7);
    p.filter.modality = 1;
    p.filter.has_bbox = 1;
    double bb[4] = {115.5, 34.0, 116.2, 36.0};
    memcpy(p.filter.bbox, bb, sizeof bb);
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo ROW=44 -oo K=7 -oo TARGET=ms "
             "-oo BBOX=115.5,34,116.2,36", M, IX);
    hit h[64];
    ASSERT_OK(cmir_search(M, IX, &q, 1, in_dir("bbox.geojson"), p, NULL, NULL));
    int nbox = read_hits(in_dir("bbox.geojson"), h, 64);
    ASSERT_TRUE(nbox > 0);
    same_hits("CMIR:QUERY", oo, q, p, nbox);
    cmir_search_params p2 = cmir_search_default_params();
    p2.k = 20;
    ASSERT_OK(cmir_search(M, IX, &q, 1, in_dir("all.geojson"), p2, NULL, NULL));
    ASSERT_EQ_INT(read_hits(in_dir("all.geojson"), h, 64), 20);
    p2.filter.max_dist = (float)((h[4].dist + h[5].dist) / 2);
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo ROW=44 -oo K=20 -oo MAX_DIST=%.9g", M, IX,
             (double)p2.filter.max_dist);
    same_hits("CMIR:QUERY", oo, q, p2, 5);
    /* a raster query: the PAN GeoTIFF written by gdal_translate, and a window of it */
    cmir_query qr = {CMIR_QUERY_RASTER, 0, in_dir("pan.tif"), 0, {0}, NULL};
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo RASTER='%s' -oo K=4", M, IX, in_dir("pan.tif"));
    p = cmir_search_default_params();
    p.k = 4;
    same_hits("CMIR:QUERY", oo, qr, p, 4);
    qr.has_window = 1;
    int win[4] = {0, 0, 32, 32};
    memcpy(qr.window, win, sizeof win);
    snprintf(oo, sizeof oo, "-oo MODEL='%s' -oo INDEX='%s' -oo RASTER='%s' -oo SRCWIN=0,0,32,32 -oo K=4", M, IX,
             in_dir("pan.tif"));
    same_hits("CMIR:QUERY", oo, qr, p, 4);
    /* two queries on the same files in one process (an OGR VRT of both): the model and the index
     * are loaded once */
    char vrt[600];
    snprintf(vrt, sizeof vrt, "%s", in_dir("two.vrt"));
    FILE *f = fopen(vrt, "w");
    ASSERT_TRUE(f != NULL);
    if (f) {
        fprintf(f, "<OGRVRTDataSource>\n");
        for (int i = 0; i < 2; i++)
            fprintf(f, "<OGRVRTLayer name='q%d'><SrcDataSource>CMIR:QUERY?MODEL=%s&amp;INDEX=%s&amp;ROW=%d"
                       "&amp;K=%d</SrcDataSource><SrcLayer>cmir_hits</SrcLayer></OGRVRTLayer>\n",
                    i, M, IX, i ? 44 : 3, i ? 2 : 4);
        fprintf(f, "</OGRVRTDataSource>\n");
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "ogrinfo --debug on -ro -so -al '%s'", vrt);
    out = ok(cmd);
    EXPECT_CONTAINS(out, "Feature Count: 4");
    EXPECT_CONTAINS(out, "Feature Count: 2");
    const char *first = strstr(out, "CMIR:QUERY: loading model");
    ASSERT_TRUE(first != NULL && strstr(first + 1, "CMIR:QUERY: loading model") == NULL);
    EXPECT_CONTAINS(out, "CMIR:QUERY: model");
    /* no temporary files left behind by the data source */
    snprintf(cmd, sizeof cmd, "TMPDIR='%s' ogrinfo -ro -so -al CMIR:QUERY -oo MODEL='%s' -oo INDEX='%s' -oo ROW=1 && "
             "ls '%s' | grep -c cmir_gdal_", dir, M, IX, dir);
    const char *o2;
    run(cmd, &o2);
    EXPECT_CONTAINS(o2, "\n0\n");
}

/* ---- errors: GDAL errors with a CMIR message, never a crash ---- */
static void test_errors(void)
{
    char cmd[4096];
    const char *bad[] = {"CMIR:", "CMIR:\"", "CMIR:\"%s", "CMIR:\"%s\":XS:1", "CMIR:\"%s\":PAN:",
                         "CMIR:\"%s\":PAN:-1", "CMIR:\"%s\":MS:40", "CMIR:\"%s\":PAN:99999999999999999999",
                         "CMIR:\"%s\":PAN:1x", "CMIR:%s:MS:-1", "CMIR:%s:PAN:", "CMIR:\"%s.missing\":PAN:0",
                         "CMIR:\"%s.missing\"", "CMIR:QUERY"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char conn[1024];
        snprintf(conn, sizeof conn, bad[i], A);
        snprintf(cmd, sizeof cmd, "gdalinfo '%s'", conn);
        fails(cmd);
    }
    /* a file that is no archive, through the prefix; a model file named .mat stays unclaimed */
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\"'", IX);
    fails(cmd);
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\":PAN:0'", M);
    fails(cmd);
    /* damaged archive: the HDF5 signature and .mat extension, then garbage */
    FILE *f = fopen(in_dir("bad.mat"), "wb");
    fwrite("\x89HDF\r\n\x1a\n", 1, 8, f);
    for (int i = 0; i < 2000; i++)
        fputc(i * 37, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "gdalinfo 'CMIR:\"%s\":PAN:0'", in_dir("bad.mat"));
    fails(cmd);
    const char *out;
    snprintf(cmd, sizeof cmd, "gdalinfo '%s'", in_dir("bad.mat"));
    ASSERT_EQ_INT(run(cmd, &out), 1); /* not recognised: no crash */
    /* queries */
    const char *qbad[] = {
        "-oo INDEX='%2$s' -oo ROW=1",                        /* no model */
        "-oo MODEL='%1$s' -oo ROW=1",                        /* no index */
        "-oo MODEL='%1$s' -oo INDEX='%2$s'",                 /* no query */
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo RASTER=x.tif",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=abc",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=100000",  /* out of range */
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo K=0",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo TARGET=sar",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo BBOX=1,2,3",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo MAX_DIST=far",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo ROW=1 -oo SRCWIN=0,0,8,8",
        "-oo MODEL='%1$s' -oo INDEX='%2$s' -oo RASTER=/nonexistent.tif",
        "-oo MODEL='%1$s.missing' -oo INDEX='%2$s' -oo ROW=1",
        "-oo MODEL='%1$s' -oo INDEX='%2$s.missing' -oo ROW=1",
        "-oo MODEL='%3$s' -oo INDEX='%2$s' -oo ROW=1",       /* not a model */
    };
    for (size_t i = 0; i < sizeof qbad / sizeof *qbad; i++) {
        char oo[2048];
        snprintf(oo, sizeof oo, qbad[i], M, IX, A);
        snprintf(cmd, sizeof cmd, "ogrinfo -ro -so -al CMIR:QUERY %s", oo);
        fails(cmd);
    }
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -so -al 'CMIR:QUERY?MODEL=%s&INDEX=%s&ROW=1&COLOUR=red'", M, IX);
    fails(cmd);
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -so -al 'CMIR:QUERY?MODEL=%s&INDEX=%s&ROW'", M, IX);
    fails(cmd);
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -so -al 'CMIR:\"%s\"'", A);
    fails(cmd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_plugin PLUGIN_DIR\n");
        return 2;
    }
    char plugin[1024], pre[3000];
    snprintf(plugin, sizeof plugin, "%s/gdal_CMIR.so", argv[1]);
    if (access(plugin, R_OK) != 0) {
        fprintf(stderr, "FAIL: %s not built\n", plugin);
        return 1;
    }
    sanitizer_preload(pre, sizeof pre);
    snprintf(env, sizeof env, "GDAL_DRIVER_PATH='%s' %s", argv[1], pre);
    /* this process reads GeoTIFF/GeoJSON with GDAL's own drivers, never loading the plugin */
    CPLSetConfigOption("GDAL_DRIVER_PATH", "disable");
    GDALAllRegister();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (setup() != 0)
        return 1;
    test_format();
    test_subdataset_list();
    test_subdatasets();
    test_typed();
    test_dsrsid();
    test_query();
    test_errors();
    if (!t_failures && !getenv("CMIR_TEST_KEEP")) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", dir);
    } else {
        fprintf(stderr, "fixtures kept in %s\n", dir);
    }
    printf("test_plugin: %s\n", t_failures ? "FAILED" : "all passed");
    return t_failures ? 1 : 0;
}
