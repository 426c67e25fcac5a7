/* The QGIS user's path: query files (.cmirq) and tile files (.cmirt) through GDAL's programs and
 * the key-file reader; cmir_search -cmirq and -qgs (the project, and its map image drawn by GDAL
 * without QGIS); and, in the test_qgis_* cases, QGIS's own qgis_process on them:
 * native:savefeatures of a query file equal to ogr2ogr's, native:rasterlayerstatistics of a tile
 * file equal to gdalinfo -stats, and the project's map rendered by native:rasterize, not blank and
 * drawn by rank. Those cases skip (77) only when /usr/bin/qgis_process.bin is absent.
 * Usage: test_qgis PLUGIN_DIR APPS_DIR [-t CASE | -x CASE]...; CMIR_TEST_KEEP=1 keeps the files. */
#define _DEFAULT_SOURCE /* realpath, mkdtemp */
#include "cmir/index.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <limits.h>
#include <ogr_api.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_TILES 40
#define QGIS_PROCESS "/usr/bin/qgis_process.bin"

static char dir[] = "/tmp/cmir_qgis_XXXXXX";
static char env[4096], apps[1024], A[512], M[512], IX[512];
static double qgis_seconds; /* time spent in qgis_process, reported at the end */

static const char *in_dir(const char *name)
{
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

/* Runs `cmd` in the fixture directory under the plugin environment (stdout and stderr together
 * into *out); the exit status, 1000 + signal when killed. */
static int run(const char *cmd, const char **out)
{
    static char buf[1 << 18];
    char full[8192];
    const int qgis = strstr(cmd, "qgis_process") || strstr(cmd, " -qgs ");
    snprintf(full, sizeof full, "cd '%s' && ASAN_OPTIONS=detect_leaks=%d:exitcode=86 %s %s 2>&1", dir, !qgis, env,
             cmd);
    double t0 = now();
    *out = buf;
    int rc = t_capture(full, buf, sizeof buf);
    if (strstr(cmd, QGIS_PROCESS))
        qgis_seconds += now() - t0;
    return rc;
}

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

/* The command fails as GDAL fails: exit 1, a message naming CMIR and `what`. */
static void fails(const char *cmd, const char *what)
{
    const char *out;
    int rc = run(cmd, &out);
    if (rc != 1 || !strstr(out, "CMIR") || !strstr(out, what)) {
        fprintf(stderr, "FAIL: '%s' exited %d (want 1, CMIR and '%s')\n%.3000s\n", cmd, rc, what, out);
        FAILED_AT();
    }
}


/* In a sanitizer build, the runtimes this test runs with, preloaded into GDAL's programs and QGIS
 * (not instrumented) so that they can load the instrumented plugin: "LD_PRELOAD=..." or "". An
 * ASan report exits 86; leaks are checked except where QGIS runs (run(): its own would fail). */
static void sanitizer_preload(char *pre, size_t n) { t_sanitizer_preload(pre, n, ""); }

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Scene rasters named as the fixture's tiles' SCENE ("scene_0" ... in the fixture directory),
 * covering their tiles: a gradient, so that a map drawn from them is not blank. */
static int write_scenes(void)
{
    GDALDriverH gt = GDALGetDriverByName("GTiff");
    for (int s = 0; s < 4 && gt; s++) {
        GDALDatasetH ds = GDALCreate(gt, in_dir(s == 0 ? "scene_0" : s == 1 ? "scene_1" : s == 2 ? "scene_2" : "scene_3"),
                                     512, 64, 1, GDT_Byte, NULL);
        if (!ds)
            return -1;
        double g[6] = {400000 + s * 10000, 2, 0, 3900000, 0, -2};
        GDALSetGeoTransform(ds, g);
        GDALSetProjection(ds, td_wkt);
        uint8_t row[512];
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 512; x++)
                row[x] = (uint8_t)((x / 2 + y * 2) & 255);
            if (GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, y, 512, 1, row, 512, 1, GDT_Byte, 0, 0) != CE_None)
                return -1;
        }
        GDALClose(ds);
    }
    return gt ? 0 : -1;
}

static int setup(void)
{
    snprintf(A, sizeof A, "%s", in_dir("a.mat"));
    snprintf(M, sizeof M, "%s", in_dir("model.mat"));
    snprintf(IX, sizeof IX, "%s", in_dir("index.gpkg"));
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 16;
    p.epochs1 = 1;
    p.epochs2 = 5;
    p.unified.d_v = 16;
    int rc = td_make_archive(A, N_TILES, 1);
    if (!rc)
        rc = cmir_train(A, M, p, NULL, NULL, NULL);
    if (!rc)
        rc = cmir_index_build(M, (const char *const[]){A}, 1, IX, cmir_index_default_params(), NULL, NULL, NULL);
    if (!rc && write_scenes() != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "FAIL: fixtures: %s\n", cmir_last_error());
    return rc;
}

/* ---- the key-file reader ---- */
static void test_keyfile_read(void)
{
    write_file(in_dir("k.cmirq"), "CMIR-QUERY 1\r\n# a comment\n\n  model=m.mat \nINDEX=/abs/i.gpkg\nROW=3\n"
                                  "RASTER=/vsizip/x.zip/a.tif\nK=5");
    char **kv = NULL;
    ASSERT_OK(cmir_keyfile_read(in_dir("k.cmirq"), CMIR_QUERY_FILE_MAGIC, &kv));
    REQUIRE(kv != NULL);
    char want[700];
    snprintf(want, sizeof want, "MODEL=%s/m.mat", dir); /* relative to the file's directory */
    const char *expect[] = {want, "INDEX=/abs/i.gpkg", "ROW=3", "RASTER=/vsizip/x.zip/a.tif", "K=5", NULL};
    for (int i = 0; expect[i]; i++) {
        ASSERT_TRUE(kv[i] != NULL && strcmp(kv[i], expect[i]) == 0);
        if (!kv[i])
            break;
    }
    ASSERT_TRUE(kv[5] == NULL);
    cmir_keyfile_free(kv);
    cmir_keyfile_free(NULL);
    /* refused in one line naming the file: wrong magic or version, not KEY=VALUE, binary */
    struct { const char *text, *msg; } bad[] = {{"CMIR-TILE 1\nARCHIVE=a\n", "first line"},
                                                 {"CMIR-QUERY 2\nROW=1\n", "first line"},
                                                 {"CMIR-QUERY 1\nROW 1\n", ":2: expected KEY=VALUE"},
                                                 {"CMIR-QUERY 1\n=1\n", ":2: expected KEY=VALUE"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(in_dir("bad.cmirq"), bad[i].text);
        kv = (char **)1;
        ASSERT_EQ_INT(cmir_keyfile_read(in_dir("bad.cmirq"), CMIR_QUERY_FILE_MAGIC, &kv), CMIR_EFORMAT);
        ASSERT_TRUE(kv == NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), "bad.cmirq") && strstr(cmir_last_error(), bad[i].msg));
    }
    ASSERT_EQ_INT(cmir_keyfile_read(in_dir("missing.cmirq"), CMIR_QUERY_FILE_MAGIC, &kv), CMIR_EIO);
}

/* Hits of a vector source (ogr2ogr to GeoJSON here): rows and ranks in order. */
static int read_rows(const char *path, long long *row, int cap)
{
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
    if (!ds)
        return -1;
    OGRLayerH l = GDALDatasetGetLayer(ds, 0);
    OGRFeatureH f;
    int n = 0;
    while (l && (f = OGR_L_GetNextFeature(l)) != NULL) {
        if (n < cap) {
            row[n] = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "row"));
            ASSERT_EQ_INT(OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "rank")), n + 1);
            ASSERT_TRUE(OGR_F_GetGeometryRef(f) != NULL);
        }
        n++;
        OGR_F_Destroy(f);
    }
    GDALClose(ds);
    return n;
}

/* ---- query and tile files through GDAL's programs ---- */
static void test_query_file(void)
{
    char cmd[4096];
    /* cmir_search -cmirq writes the query it ran; ogr2ogr of the file gives its hits */
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -model model.mat -index index.gpkg -row 7 -k 6 -target any "
             "-cmirq q7.cmirq hits7.geojson", apps);
    ok(cmd);
    ok("ogr2ogr -f GeoJSON ogr7.geojson q7.cmirq");
    long long a[16], b[16];
    ASSERT_EQ_INT(read_rows(in_dir("hits7.geojson"), a, 16), 6);
    ASSERT_EQ_INT(read_rows(in_dir("ogr7.geojson"), b, 16), 6);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ_INT(a[i], b[i]);
    const char *out = ok("cat q7.cmirq");
    char want[700];
    snprintf(want, sizeof want, "MODEL=%s\n", M);
    ASSERT_TRUE(strstr(out, "CMIR-QUERY 1\n") == out && strstr(out, want) && strstr(out, "ROW=7\n") &&
                strstr(out, "K=6\n") && strstr(out, "TARGET=any\n"));
    /* a hand-written file with relative paths, edited K; open options still win */
    write_file(in_dir("sub.cmirq"), "CMIR-QUERY 1\nMODEL=model.mat\nINDEX=index.gpkg\nROW=7\nK=3\nTARGET=any\n");
    EXPECT_CONTAINS(ok("ogrinfo -ro -so -al sub.cmirq"), "Feature Count: 3");
    EXPECT_CONTAINS(ok("ogrinfo -ro -so -al -oo K=4 sub.cmirq"), "Feature Count: 4");
    /* more than one query is refused before anything is written */
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -model model.mat -index index.gpkg -row 7 -row 8 "
             "-cmirq two.cmirq two.geojson", apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "two.cmirq: a query file holds one query"));
    ASSERT_TRUE(access(in_dir("two.geojson"), F_OK) != 0 && access(in_dir("two.cmirq"), F_OK) != 0);
    /* bad files: GDAL errors naming the problem */
    write_file(in_dir("unk.cmirq"), "CMIR-QUERY 1\nMODEL=model.mat\nINDEX=index.gpkg\nROW=1\nCOLOUR=red\n");
    fails("ogrinfo -ro -so -al unk.cmirq", "unknown key COLOUR");
    write_file(in_dir("noq.cmirq"), "CMIR-QUERY 1\nMODEL=model.mat\nINDEX=index.gpkg\n");
    fails("ogrinfo -ro -so -al noq.cmirq", "needs exactly one of ROW");
    /* a .cmirq without the magic line is not claimed by CMIR */
    write_file(in_dir("plain.cmirq"), "MODEL=model.mat\n");
    ASSERT_TRUE(strstr(ok("gdalinfo --format CMIR"), "cmirq") != NULL);
    ASSERT_EQ_INT(run("ogrinfo -ro -so plain.cmirq", &out), 1);
    ASSERT_TRUE(strstr(out, "CMIR:") == NULL && strstr(out, "with the following drivers"));
}

static void test_tile_file(void)
{
    char cmd[4096], ref[256];
    ASSERT_OK(cmir_tile_file_write(in_dir("t17.cmirt"), "a.mat", CMIR_MS, 17));
    snprintf(cmd, sizeof cmd, "gdalinfo -checksum 'CMIR:\"%s\":MS:17' | grep Checksum", A);
    snprintf(ref, sizeof ref, "%s", ok(cmd));
    ASSERT_TRUE(strstr(ref, "Checksum=") != NULL);
    ASSERT_TRUE(strcmp(ok("gdalinfo -checksum t17.cmirt | grep Checksum"), ref) == 0);
    const char *out = ok("gdalinfo t17.cmirt");
    EXPECT_CONTAINS(out, "Driver: CMIR/");
    EXPECT_CONTAINS(out, "TILE=17");
    EXPECT_CONTAINS(out, "ID[\"EPSG\",32650]]");
    /* relative ARCHIVE, from another directory */
    write_file(in_dir("rel.cmirt"), "CMIR-TILE 1\nARCHIVE=a.mat\nMODALITY=MS\nTILE=17\n");
    snprintf(cmd, sizeof cmd, "env -C / gdalinfo -checksum '%s' | grep Checksum", in_dir("rel.cmirt"));
    ASSERT_TRUE(strcmp(ok(cmd), ref) == 0);
    ok("gdal_translate -q t17.cmirt t17.tif");
    write_file(in_dir("bad.cmirt"), "CMIR-TILE 1\nARCHIVE=a.mat\nMODALITY=SAR\nTILE=1\n");
    fails("gdalinfo bad.cmirt", "MODALITY=PAN or MS");
    write_file(in_dir("far.cmirt"), "CMIR-TILE 1\nARCHIVE=a.mat\nMODALITY=PAN\nTILE=40\n");
    fails("gdalinfo far.cmirt", "CMIR");
    ASSERT_EQ_INT(cmir_tile_file_write(in_dir("x.cmirt"), "a.mat", 7, 1), CMIR_EINVAL);
}

/* Band b of a PNG: its minimum and maximum (a blank image has min == max in every band). */
static void png_range(const char *path, int b, double mm[2])
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    mm[0] = mm[1] = 0;
    if (!ds)
        return;
    GDALComputeRasterMinMax(GDALGetRasterBand(ds, b), FALSE, mm);
    GDALClose(ds);
}

/* The project written by -qgs: layers by relative path, the hits styled by rank, the scenes. */
static void check_project(const char *qgs, int k)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat '%s'", qgs);
    const char *x = ok(cmd);
    const char *want[] = {"<datasource>./p_hits.geojson</datasource>", "<datasource>./p_query.tif</datasource>",
                          "type=\"graduatedSymbol\" attr=\"rank\"", "<authid>EPSG:32650</authid>",
                          "<ProjectionsEnabled type=\"int\">1</ProjectionsEnabled>", "label=\"rank 1\"",
                          "/scene_", "<provider>gdal</provider>"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        EXPECT_CONTAINS(x, want[i]);
    snprintf(cmd, sizeof cmd, "label=\"rank %d\"", k);
    EXPECT_CONTAINS(x, cmd);
    long long r[64];
    ASSERT_EQ_INT(read_rows(in_dir("p_hits.geojson"), r, 64), k);
    EXPECT_CONTAINS(ok("gdalinfo p_query.tif"), "Size is 32, 32");
}

/* -qgs without QGIS: the project, and GDAL's picture of the query beside its hits. */
static void test_qgs_gdal(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q --config CMIR_QGIS_PROCESS NONE -model model.mat "
             "-index index.gpkg -row 3 -k 5 -qgs p.qgs hits.geojson", apps);
    ok(cmd);
    check_project(in_dir("p.qgs"), 5);
    double mm[2];
    png_range(in_dir("p.png"), 1, mm);
    ASSERT_TRUE(mm[1] > mm[0]);
    EXPECT_CONTAINS(ok("gdalinfo p.png"), "Size is 816, 160");
    const char *out; /* the quick-look: query + 5 hits */
    /* an existing project or query file is refused without -overwrite */
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -model model.mat -index index.gpkg -row 3 -qgs p.qgs new.geojson",
             apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "p.qgs: already exists (use -overwrite"));
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -model model.mat -index index.gpkg -row 3 -cmirq q7.cmirq "
             "new.geojson", apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "q7.cmirq: already exists (use -overwrite"));
    ASSERT_TRUE(access(in_dir("new.geojson"), F_OK) != 0);
    /* several queries: the project shows the first one's hits */
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q --config CMIR_QGIS_PROCESS NONE -model model.mat "
             "-index index.gpkg -row 3 -row 9 -k 4 -qgs two.qgs two.geojson", apps);
    ok(cmd);
    EXPECT_CONTAINS(ok("cat two.qgs"), "<datasource>./two_hits.geojson|subset=&quot;query&quot; = 0</datasource>");
    EXPECT_CONTAINS(ok("ogrinfo -ro -so -al two_hits.geojson"), "Feature Count: 8");
    /* a QGIS that cannot be run is an error naming it, and the search writes nothing */
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q --config CMIR_QGIS_PROCESS /nonexistent -model model.mat "
             "-index index.gpkg -row 3 -qgs n.qgs n.geojson", apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "/nonexistent"));
    ASSERT_TRUE(access(in_dir("n.geojson"), F_OK) != 0);
    /* a renderer that fails: its exit status and last line, nothing written */
    write_file(in_dir("fakeqgis"), "#!/bin/sh\necho \"$QT_QPA_PLATFORM $2\"\necho 'boom' >&2\nexit 3\n");
    chmod(in_dir("fakeqgis"), 0755);
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q --config CMIR_QGIS_PROCESS ./fakeqgis -model model.mat "
             "-index index.gpkg -row 3 -qgs f.qgs f.geojson", apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "native:rasterize failed (exit 3): boom"));
    ASSERT_TRUE(access(in_dir("f.geojson"), F_OK) != 0 && access(in_dir("f.png"), F_OK) != 0);
    ASSERT_TRUE(access(in_dir("f.qgs"), F_OK) != 0 && access(in_dir("f_hits.geojson"), F_OK) != 0 &&
                access(in_dir("f_query.tif"), F_OK) != 0);
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -model model.mat -index index.gpkg -row 3 -qgs p.txt o.geojson",
             apps);
    ASSERT_TRUE(run(cmd, &out) != 0 && strstr(out, "ends in .qgs"));
}

/* ---- QGIS's own qgis_process ---- */
#define NEED_QGIS()                                                                \
    do {                                                                           \
        if (access(QGIS_PROCESS, X_OK) != 0)                                       \
            SKIP("%s absent (Debian package qgis)", QGIS_PROCESS);                 \
    } while (0)
#define QGIS "QT_QPA_PLATFORM=offscreen " QGIS_PROCESS

/* native:savefeatures of a query file: the features ogr2ogr gets from the same file. */
static void test_qgis_savefeatures(void)
{
    NEED_QGIS();
    char cmd[4096];
    write_file(in_dir("q3.cmirq"), "CMIR-QUERY 1\nMODEL=model.mat\nINDEX=index.gpkg\nROW=3\nK=6\n");
    snprintf(cmd, sizeof cmd, QGIS " run native:savefeatures --INPUT='%s' --OUTPUT='%s' --LAYER_NAME=cmir_hits",
             in_dir("q3.cmirq"), in_dir("qgis_q3.gpkg"));
    ok(cmd);
    ok("ogr2ogr -f GPKG ogr_q3.gpkg q3.cmirq");
    /* every attribute and geometry equal, feature by feature (values: QGIS may widen the types) */
    const char *cols = "SELECT rank, distance, \"row\", tile_id, modality, archive, scene, class_name, "
                       "ST_AsText(geom) AS g FROM cmir_hits ORDER BY rank";
    char a[1 << 15];
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -q -dialect SQLite -sql '%s' qgis_q3.gpkg | grep -v '^OGRFeature' | sed 's/ (.*) = / = /'", cols);
    snprintf(a, sizeof a, "%s", ok(cmd));
    snprintf(cmd, sizeof cmd, "ogrinfo -ro -q -dialect SQLite -sql '%s' ogr_q3.gpkg | grep -v '^OGRFeature' | sed 's/ (.*) = / = /'", cols);
    const char *b = ok(cmd);
    ASSERT_TRUE(strstr(a, "rank = 6") != NULL);
    ASSERT_TRUE(strstr(a, "g = POLYGON") != NULL);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "FAIL: qgis_process and ogr2ogr differ\n--- qgis ---\n%.2000s\n--- ogr ---\n%.2000s\n", a, b);
        FAILED_AT();
    }
}

/* native:rasterlayerstatistics of a tile file equal to gdalinfo -stats. */
static void test_qgis_statistics(void)
{
    NEED_QGIS();
    char cmd[4096];
    ASSERT_OK(cmir_tile_file_write(in_dir("t5.cmirt"), A, CMIR_MS, 5));
    for (int b = 1; b <= 4; b += 3) { /* the first and the last band: a qgis_process start costs ~5 s */
        snprintf(cmd, sizeof cmd, QGIS " run native:rasterlayerstatistics --INPUT='%s' --BAND=%d", in_dir("t5.cmirt"),
                 b);
        const char *out = ok(cmd);
        double q[4] = {NAN, NAN, NAN, NAN}; /* min, max, mean, std */
        const char *key[4] = {"\nMIN:", "\nMAX:", "\nMEAN:", "\nSTD_DEV:"};
        for (int i = 0; i < 4; i++) {
            const char *s = strstr(out, key[i]);
            if (s)
                q[i] = atof(s + strlen(key[i]));
        }
        snprintf(cmd, sizeof cmd, "GDAL_PAM_ENABLED=NO gdalinfo -stats t5.cmirt | grep Minimum= | sed -n %dp", b);
        double g[4] = {NAN, NAN, NAN, NAN};
        ASSERT_EQ_INT(sscanf(ok(cmd), " Minimum=%lf, Maximum=%lf, Mean=%lf, StdDev=%lf", &g[0], &g[1], &g[2], &g[3]), 4);
        /* QGIS's is the sample standard deviation (n - 1), GDAL's the population's (n): 8 x 8 pixels */
        g[3] *= sqrt(64.0 / 63.0);
        for (int i = 0; i < 4; i++) /* gdalinfo prints 3 decimals */
            ASSERT_NEAR(q[i], g[i], 0.0006 + 2e-5 * fabs(g[i]));
    }
}

/* Pixels of the RGB PNG whose colour is exactly rgb. */
static long count_colour(const char *path, const int rgb[3])
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return -1;
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    uint8_t *px = malloc((size_t)w * h * 3);
    long n = -1;
    if (px && GDALDatasetRasterIO(ds, GF_Read, 0, 0, w, h, px, w, h, GDT_Byte, 3, NULL, 3, (GSpacing)w * 3, 1) ==
                  CE_None) {
        n = 0;
        for (size_t i = 0; i < (size_t)w * h; i++)
            n += px[3 * i] == rgb[0] && px[3 * i + 1] == rgb[1] && px[3 * i + 2] == rgb[2];
    }
    free(px);
    GDALClose(ds);
    return n;
}

/* -qgs with QGIS: qgis_process renders the project; the map shows the scenes and the hits'
 * outlines in the colours of rank 1 (red) and of the last rank (blue). */
static void test_qgis_project(void)
{
    NEED_QGIS();
    char cmd[4096];
    unlink(in_dir("p.png"));
    snprintf(cmd, sizeof cmd, "'%s/cmir_search' -q -overwrite -model model.mat -index index.gpkg -row 3 -k 5 "
             "-qgs p.qgs hits.geojson", apps);
    double t0 = now();
    ok(cmd);
    qgis_seconds += now() - t0;
    check_project(in_dir("p.qgs"), 5);
    EXPECT_CONTAINS(ok("gdalinfo p.png"), "Size is 1024, 1024");
    double mm[2];
    for (int b = 1; b <= 3; b++) {
        png_range(in_dir("p.png"), b, mm);
        ASSERT_TRUE(mm[1] > mm[0]);
    }
    const int red[3] = {215, 25, 28}, blue[3] = {44, 123, 182};
    ASSERT_TRUE(count_colour(in_dir("p.png"), red) > 20);
    ASSERT_TRUE(count_colour(in_dir("p.png"), blue) > 20);
    ASSERT_TRUE(access(in_dir("scene_0.aux.xml"), F_OK) != 0); /* nothing left beside the scenes */
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: test_qgis PLUGIN_DIR APPS_DIR [-t CASE | -x CASE]...\n");
        return 2;
    }
    char plugin[PATH_MAX], app_dir[PATH_MAX]; /* absolute: the commands run in the fixture directory */
    if (!realpath(argv[1], plugin) || !realpath(argv[2], app_dir) || strlen(plugin) > 1000 ||
        strlen(app_dir) >= sizeof apps) {
        fprintf(stderr, "test_qgis: %s or %s: no such directory (or its path is too long)\n", argv[1], argv[2]);
        return 2;
    }
    memcpy(apps, app_dir, strlen(app_dir) + 1); /* fits: checked above */
    /* GDAL's programs load the plugin from the build tree (not a system copy) */
    char pre[2200];
    sanitizer_preload(pre, sizeof pre);
    snprintf(env, sizeof env, "GDAL_DRIVER_PATH='%.1000s' %s", plugin, pre);
    CPLSetConfigOption("GDAL_DRIVER_PATH", "disable"); /* this process reads with GDAL's own drivers */
    GDALAllRegister();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (setup() != 0)
        return 1;
    RUN(test_keyfile_read);
    RUN(test_query_file);
    RUN(test_tile_file);
    RUN(test_qgs_gdal);
    RUN(test_qgis_savefeatures);
    RUN(test_qgis_statistics);
    RUN(test_qgis_project);
    if (qgis_seconds > 0)
        printf("test_qgis: %.1f s in qgis_process\n", qgis_seconds);
    if (!t_failures && !getenv("CMIR_TEST_KEEP")) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    TEST_MAIN_END();
}
