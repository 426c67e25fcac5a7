/* cmir_tile on hostile rasters, made here with GDAL's C API (GeoTIFF and
 * VRT files in a temporary directory). Each case either gives a correct
 * archive (tile count and pixel values checked) or a non-zero return with
 * a one-line message naming the file at fault and the problem; a refused
 * run leaves no archive behind. Scenes: PAN 64x64, MS 16x16x4 (ratio 4),
 * tiles of 32 PAN pixels (4 tiles), unless said otherwise.
 *
 * Behaviour per case (GDAL 3.6, measured):
 *
 *  case                                  | result
 *  --------------------------------------+------------------------------------------------
 *  baseline Byte/Byte, UTM 50N           | 4 tiles, values exact
 *  PAN UInt16 / Int16                    | 4 tiles, stored as UInt16 / Int16, values exact
 *  PAN UInt32 / Int32 / Float32 / Float64| 4 tiles, stored as Float32, values exact (< 2^24)
 *  MS  UInt16 / Int16                    | 4 tiles, stored as UInt16 / Int16, values exact
 *  MS  UInt32 / Int32 / Float32 / Float64| 4 tiles, stored as Float32, values exact
 *  antimeridian, EPSG:4326 lon 179.9 to  | 4 tiles, values exact (MS read directly; the
 *    180.1 (PAN and MS)                  |   geotransforms keep longitudes above 180)
 *  polar, EPSG:3031 on the South Pole    | 4 tiles, values exact
 *    (PAN and MS)                        |
 *  polar, PAN EPSG:3031 on the pole, MS  | refused: the MS pixel size is measured at the
 *    EPSG:4326 (lat -90..-89.9)          |   scene centre, the pole, where the transform
 *                                        |   fails ("cannot relate the CRS of <MS> to the
 *                                        |   PAN's", names PAN and MS); the test accepts a
 *                                        |   correct archive too
 *    ... with the ratio (4) given        | the same refusal: the ratio is measured anyway
 *  giant VRT 10,000,000 x 10,000,000 PAN | accepted: nothing of its size is allocated, tiles
 *    (MS 2,500,000^2 x 4)                |   are read one by one (1.6e10 + 9.8e10 of them)
 *                                        |   and the run is cancellable (after 3 s here);
 *                                        |   peak memory grows < 200 MB (GDAL cache 64 MB);
 *                                        |   no size limit refuses it (see the report)
 *  PAN rotated geotransform (gt[2],gt[4])| refused CMIR_EUNSUPPORTED "rotated or south-up
 *                                        |   geotransform", names the PAN
 *  MS rotated 10 degrees, PAN north-up   | 4 tiles, MS warped, values = the constant source
 *  PAN without CRS / MS without CRS      | refused "has no coordinate reference system",
 *                                        |   names the file
 *  PAN without geotransform              | refused "has no georeferencing"
 *  NaN-only Float32 PAN / MS             | refused "no tile passed the nodata and label
 *                                        |   checks; nothing written" (names the archive),
 *                                        |   4 tiles counted as skipped for nodata
 *  nodata-only Byte PAN (nodata 0)       | the same refusal; with keep_nodata 4 tiles,
 *                                        |   label 0, archive nodata 0
 *  zero-size VRT (0 x 0)                 | refused: "cannot open as a raster" / "empty",
 *                                        |   names the file
 *  1-pixel PAN                           | refused "smaller than one 32x32 tile"
 *  1-pixel MS (covers 4 PAN pixels)      | refused: every tile is nodata (names archive)
 *  scene of exactly one tile (32x32)     | 1 tile, values exact
 *  PAN or MS Int8 (GDAL 3.6: Byte +      | refused CMIR_EUNSUPPORTED "holds signed bytes
 *    PIXELTYPE=SIGNEDBYTE)               |   (PIXELTYPE=SIGNEDBYTE)", names the file (a read
 *                                        |   would give 196 for -60); was accepted
 *  PAN CInt16 / MS CFloat32 (complex)    | refused "holds complex samples", names the file;
 *                                        |   was accepted with the real part kept
 *  antimeridian, PAN EPSG:4326 179.9 to  | 4 tiles, MS warped from UTM, values = the MS
 *    180.1, MS UTM zone 60N (same ground)|   constant; was refused "do not overlap" (the
 *                                        |   bounds wrapped to xmin > xmax)
 */
#include "cmir/tiling.h"
#include "test_util.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal_utils.h>
#include <cpl_error.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_hostile_img_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- rasters ---- */
typedef double (*value_fn)(int x, int y, int b);

/* A raster: w x h x nb of type t, geotransform gt (NULL: none), CRS from
 * `srs` ("EPSG:n" or WKT; NULL: none), pixel values f(x, y, band), and a
 * nodata value when has_nd. */
static void make_raster(const char *path, int w, int h, int nb, GDALDataType t, const double *gt, const char *srs,
                        value_fn f, int has_nd, double nd, char **options)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, nb, t, options);
    REQUIRE(ds != NULL);
    if (gt)
        GDALSetGeoTransform(ds, (double *)gt);
    if (srs) {
        OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
        ASSERT_EQ_INT(OSRSetFromUserInput(s, srs), OGRERR_NONE);
        GDALSetSpatialRef(ds, s);
        OSRDestroySpatialReference(s);
    }
    double *row = malloc(sizeof(double) * (size_t)w);
    for (int b = 1; b <= nb; b++) {
        GDALRasterBandH hb = GDALGetRasterBand(ds, b);
        if (has_nd)
            GDALSetRasterNoDataValue(hb, nd);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++)
                row[x] = f(x, y, b);
            ASSERT_EQ_INT(GDALRasterIO(hb, GF_Write, 0, y, w, 1, row, w, 1, GDT_Float64, 0, 0), CE_None);
        }
    }
    free(row);
    GDALClose(ds);
}

/* Values per type: chosen so that a wrong sign, offset or scaling shows. */
static double type_base;
static double pan_typed(int x, int y, int b) { return type_base + (x * 7 + y * 3) % 50; }
static double ms_typed(int x, int y, int b) { return type_base + (x * 5 + y * 11 + b * 13) % 40; }
static double pan_plain(int x, int y, int b) { return 10 + (x * 7 + y * 3) % 50; }
static double ms_plain(int x, int y, int b) { return 20 + (x * 5 + y * 11 + b * 13) % 40; }
static double ms_const(int x, int y, int b) { return 20.0 * b; }
static double all_nan(int x, int y, int b) { return NAN; }
static double all_zero(int x, int y, int b) { return 0; }

/* UTM 50N: PAN 2 m, MS 8 m, same origin. */
static const char *UTM = "EPSG:32650";
static const double pan_gt[6] = {400000, 2, 0, 3900000, 0, -2};
static const double ms_gt[6] = {400000, 8, 0, 3900000, 0, -8};

/* ---- running cmir_tile ---- */
typedef struct outcome {
    int rc;
    char msg[1024];
    cmir_tile_stats st;
} outcome;

static outcome tile_run(const char *pan, const char *ms, const char *archive, cmir_tile_params p)
{
    outcome o;
    memset(&o, 0, sizeof o);
    unlink(archive);
    o.rc = cmir_tile(&pan, 1, &ms, 1, archive, 0, p, NULL, NULL, &o.st);
    snprintf(o.msg, sizeof o.msg, "%s", o.rc ? cmir_last_error() : "");
    return o;
}

static cmir_tile_params small_params(void)
{
    cmir_tile_params p = cmir_tile_default_params();
    p.tile_size = 32;
    return p;
}

/* Refused: non-zero, one line naming `culprit` and saying `what`, and no
 * archive (nor temporary file) left. */
static void expect_refused(const char *name, outcome o, const char *archive, const char *culprit, const char *what)
{
    int ok = o.rc != 0 && o.msg[0] && !strchr(o.msg, '\n') && strstr(o.msg, base_of(culprit)) &&
             strstr(o.msg, what) && !exists(archive);
    printf("  %-34s refused (%d): %s\n", name, o.rc, o.msg);
    if (!ok)
        fprintf(stderr, "  %s: expected a one-line refusal naming %s and saying '%s'\n", name, base_of(culprit),
                what);
    ASSERT_TRUE(o.rc != 0);
    ASSERT_TRUE(strchr(o.msg, '\n') == NULL);
    ASSERT_TRUE(strstr(o.msg, base_of(culprit)) != NULL);
    ASSERT_TRUE(strstr(o.msg, what) != NULL);
    ASSERT_TRUE(!exists(archive));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    ASSERT_TRUE(system(cmd) != 0); /* no temporary file left */
}

/* Accepted: n tiles; each tile's PAN equals pan_f over its window and its
 * MS equals ms_f on the MS grid (exact; tol for warped MS). ms_f NULL:
 * MS not checked; ms_direct 0: ms_f is compared at every pixel without
 * coordinates (a constant per band). */
static void expect_tiles(const char *name, outcome o, const char *archive, int n, value_fn pan_f, value_fn ms_f,
                         int ms_direct, double tol, cmir_dtype pan_t, cmir_dtype ms_t)
{
    if (o.rc) {
        fprintf(stderr, "  %s: refused (%d): %s\n", name, o.rc, o.msg);
        ASSERT_EQ_INT(o.rc, 0);
        return;
    }
    cmir_archive *a = cmir_archive_open(archive);
    REQUIRE(a != NULL);
    const cmir_archive_info *in = cmir_archive_get_info(a);
    ASSERT_EQ_INT(in->n_tiles, n);
    ASSERT_EQ_INT(o.st.tiles_written, n);
    ASSERT_EQ_INT(in->pan_type, pan_t);
    ASSERT_EQ_INT(in->ms_type, ms_t);
    int T = in->pan_h, m = in->ms_h, nb = in->ms_bands, bad_pan = 0, bad_ms = 0;
    float *pan = malloc(sizeof(float) * (size_t)T * T), *ms = malloc(sizeof(float) * (size_t)m * m * nb);
    double maxerr = 0;
    for (int64_t i = 0; i < in->n_tiles; i++) {
        double win[4];
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, i, pan));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, i, ms));
        ASSERT_OK(cmir_archive_window(a, CMIR_PAN, i, win));
        int x0 = (int)win[0], y0 = (int)win[1], r = T / m;
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++)
                bad_pan += pan[y * T + x] != (float)pan_f(x0 + x, y0 + y, 1);
        for (int y = 0; ms_f && y < m; y++)
            for (int x = 0; x < m; x++)
                for (int b = 0; b < nb; b++) {
                    double want = ms_direct ? ms_f(x0 / r + x, y0 / r + y, b + 1) : ms_f(0, 0, b + 1);
                    double e = fabs(ms[(y * m + x) * nb + b] - want);
                    maxerr = fmax(maxerr, e);
                    bad_ms += !(e <= tol);
                }
    }
    printf("  %-34s %lld tiles (%s/%s), %d PAN and %d MS values off (MS max error %g)\n", name,
           (long long)in->n_tiles, cmir_dtype_name(in->pan_type), cmir_dtype_name(in->ms_type), bad_pan, bad_ms,
           maxerr);
    ASSERT_EQ_INT(bad_pan, 0);
    ASSERT_EQ_INT(bad_ms, 0);
    free(pan);
    free(ms);
    cmir_archive_close(a);
}

/* ---- cases ---- */
static void test_baseline_and_types(void)
{
    const char *pan = in_dir("pan.tif"), *ms = in_dir("ms.tif"), *arc = in_dir("a.mat");
    make_raster(pan, 64, 64, 1, GDT_Byte, pan_gt, UTM, pan_plain, 0, 0, NULL);
    make_raster(ms, 16, 16, 4, GDT_Byte, ms_gt, UTM, ms_plain, 0, 0, NULL);
    expect_tiles("baseline Byte/Byte", tile_run(pan, ms, arc, small_params()), arc, 4, pan_plain, ms_plain, 1, 0,
                 CMIR_DT_UINT8, CMIR_DT_UINT8);
    static const struct {
        GDALDataType t;
        double base;
        cmir_dtype stored;
    } types[] = {{GDT_UInt16, 1000, CMIR_DT_UINT16}, {GDT_Int16, -1000, CMIR_DT_INT16},
                 {GDT_UInt32, 100000, CMIR_DT_FLOAT32}, {GDT_Int32, -100000, CMIR_DT_FLOAT32},
                 {GDT_Float32, -3.25, CMIR_DT_FLOAT32}, {GDT_Float64, 1e6 + 0.5, CMIR_DT_FLOAT32}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char name[64];
        const char *tp = in_dir("typed.tif");
        type_base = types[i].base;
        /* PAN of the type with a Byte MS, then MS of the type with a Byte PAN */
        make_raster(tp, 64, 64, 1, types[i].t, pan_gt, UTM, pan_typed, 0, 0, NULL);
        snprintf(name, sizeof name, "PAN %s", GDALGetDataTypeName(types[i].t));
        expect_tiles(name, tile_run(tp, ms, arc, small_params()), arc, 4, pan_typed, ms_plain, 1, 0, types[i].stored,
                     CMIR_DT_UINT8);
        make_raster(tp, 16, 16, 4, types[i].t, ms_gt, UTM, ms_typed, 0, 0, NULL);
        snprintf(name, sizeof name, "MS %s", GDALGetDataTypeName(types[i].t));
        expect_tiles(name, tile_run(pan, tp, arc, small_params()), arc, 4, pan_plain, ms_typed, 1, 0, CMIR_DT_UINT8,
                     types[i].stored);
    }
    /* Exactly one tile. */
    const char *p1 = in_dir("pan32.tif"), *m1 = in_dir("ms8.tif");
    make_raster(p1, 32, 32, 1, GDT_Byte, pan_gt, UTM, pan_plain, 0, 0, NULL);
    make_raster(m1, 8, 8, 4, GDT_Byte, ms_gt, UTM, ms_plain, 0, 0, NULL);
    expect_tiles("scene of exactly one tile", tile_run(p1, m1, arc, small_params()), arc, 1, pan_plain, ms_plain, 1,
                 0, CMIR_DT_UINT8, CMIR_DT_UINT8);
}

static void test_antimeridian(void)
{
    const char *pan = in_dir("am_pan.tif"), *ms = in_dir("am_ms.tif"), *arc = in_dir("am.mat");
    const double d = 0.2 / 64; /* 64 PAN pixels span 179.9 .. 180.1 */
    const double pgt[6] = {179.9, d, 0, 10.0, 0, -d}, mgt[6] = {179.9, 4 * d, 0, 10.0, 0, -4 * d};
    make_raster(pan, 64, 64, 1, GDT_Byte, pgt, "EPSG:4326", pan_plain, 0, 0, NULL);
    make_raster(ms, 16, 16, 4, GDT_Byte, mgt, "EPSG:4326", ms_plain, 0, 0, NULL);
    expect_tiles("antimeridian, EPSG:4326 both", tile_run(pan, ms, arc, small_params()), arc, 4, pan_plain, ms_plain,
                 1, 0, CMIR_DT_UINT8, CMIR_DT_UINT8);
    /* The same PAN with its MS in UTM zone 60N (EPSG:32660, central
     * meridian 177E) over the same ground: the MS bounds brought into
     * EPSG:4326 wrap (xmin 179.9 > xmax -179.9) and must still overlap. A
     * constant MS, so that the warp's resampling cannot blur the check. */
    const char *ms_geo = in_dir("am_ms_geo.tif"), *ms_utm = in_dir("am_ms_utm.tif");
    make_raster(ms_geo, 16, 16, 4, GDT_Byte, mgt, "EPSG:4326", ms_const, 0, 0, NULL);
    GDALDatasetH src = GDALOpen(ms_geo, GA_ReadOnly);
    char **wo = NULL;
    wo = CSLAddString(wo, "-t_srs");
    wo = CSLAddString(wo, "EPSG:32660");
    wo = CSLAddString(wo, "-tr");
    wo = CSLAddString(wo, "1400");
    wo = CSLAddString(wo, "1400");
    GDALWarpAppOptions *wopt = GDALWarpAppOptionsNew(wo, NULL);
    GDALDatasetH out = GDALWarp(ms_utm, NULL, 1, &src, wopt, NULL);
    ASSERT_TRUE(out != NULL);
    if (out)
        GDALClose(out);
    GDALWarpAppOptionsFree(wopt);
    CSLDestroy(wo);
    GDALClose(src);
    cmir_tile_params p = small_params();
    p.ratio = 4;
    expect_tiles("antimeridian, MS in UTM 60N", tile_run(pan, ms_utm, arc, p), arc, 4, pan_plain, ms_const, 0, 0,
                 CMIR_DT_UINT8, CMIR_DT_UINT8);
}

/* Sample types the archive cannot hold are refused, naming the file. */
static void test_refused_types(void)
{
    const char *pan = in_dir("pan.tif"), *ms = in_dir("ms.tif"), *arc = in_dir("t.mat"), *bad = in_dir("bad.tif");
    make_raster(pan, 64, 64, 1, GDT_Byte, pan_gt, UTM, pan_plain, 0, 0, NULL);
    make_raster(ms, 16, 16, 4, GDT_Byte, ms_gt, UTM, ms_plain, 0, 0, NULL);
    make_raster(bad, 64, 64, 1, GDT_CInt16, pan_gt, UTM, pan_plain, 0, 0, NULL);
    expect_refused("PAN CInt16", tile_run(bad, ms, arc, small_params()), arc, bad, "complex samples");
    make_raster(bad, 16, 16, 4, GDT_CFloat32, ms_gt, UTM, ms_plain, 0, 0, NULL);
    expect_refused("MS CFloat32", tile_run(pan, bad, arc, small_params()), arc, bad, "complex samples");
    char **signed_opt = CSLAddString(NULL, "PIXELTYPE=SIGNEDBYTE");
    make_raster(bad, 64, 64, 1, GDT_Byte, pan_gt, UTM, pan_plain, 0, 0, signed_opt);
    expect_refused("PAN Int8 (SIGNEDBYTE)", tile_run(bad, ms, arc, small_params()), arc, bad, "signed bytes");
    make_raster(bad, 16, 16, 4, GDT_Byte, ms_gt, UTM, ms_plain, 0, 0, signed_opt);
    expect_refused("MS Int8 (SIGNEDBYTE)", tile_run(pan, bad, arc, small_params()), arc, bad, "signed bytes");
    CSLDestroy(signed_opt);
}

static void test_polar(void)
{
    const char *pan = in_dir("pole_pan.tif"), *ms = in_dir("pole_ms.tif"), *arc = in_dir("pole.mat");
    /* 640 m squares centred on the South Pole, EPSG:3031. */
    const double pgt[6] = {-320, 10, 0, 320, 0, -10}, mgt[6] = {-320, 40, 0, 320, 0, -40};
    make_raster(pan, 64, 64, 1, GDT_Byte, pgt, "EPSG:3031", pan_plain, 0, 0, NULL);
    make_raster(ms, 16, 16, 4, GDT_Byte, mgt, "EPSG:3031", ms_plain, 0, 0, NULL);
    expect_tiles("polar, EPSG:3031 both", tile_run(pan, ms, arc, small_params()), arc, 4, pan_plain, ms_plain, 1, 0,
                 CMIR_DT_UINT8, CMIR_DT_UINT8);
    /* MS in geographic coordinates around the pole: every longitude,
     * latitudes -90 .. -89.9. The MS pixel size in the PAN's CRS is
     * measured at the scene centre, the pole itself: refused; with the
     * ratio given, warped. */
    const char *gms = in_dir("pole_ms_4326.tif");
    const double ggt[6] = {-180, 0.5, 0, -89.9, 0, -0.001};
    make_raster(gms, 720, 100, 4, GDT_Byte, ggt, "EPSG:4326", ms_const, 0, 0, NULL);
    outcome o = tile_run(pan, gms, arc, small_params());
    if (o.rc)
        expect_refused("polar, MS EPSG:4326, ratio measured", o, arc, pan, "pole_ms_4326.tif");
    else
        expect_tiles("polar, MS EPSG:4326, ratio measured", o, arc, 4, pan_plain, ms_const, 0, 1e-3, CMIR_DT_UINT8,
                     CMIR_DT_UINT8);
    /* Today the ratio is measured even when it is given, so this is
     * refused too; a correct archive would be as good. */
    cmir_tile_params p = small_params();
    p.ratio = 4;
    o = tile_run(pan, gms, arc, p);
    if (o.rc)
        expect_refused("polar, MS EPSG:4326, ratio 4 given", o, arc, pan, "pole_ms_4326.tif");
    else
        expect_tiles("polar, MS EPSG:4326, ratio 4 given", o, arc, 4, pan_plain, ms_const, 0, 1e-3, CMIR_DT_UINT8,
                     CMIR_DT_UINT8);
}

/* ---- the giant VRT, in a child process with a deadline ---- */
static double t_start;
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double last_frac;
static int cancel_after(double frac, const char *msg, void *user)
{
    last_frac = frac;
    return now() - t_start > 3.0; /* 3 s of tiling, then cancel */
}

static void write_giant_vrt(const char *path, const char *src, int64_t size, int nb, double px)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "<VRTDataset rasterXSize=\"%lld\" rasterYSize=\"%lld\">\n  <SRS>EPSG:32650</SRS>\n"
               "  <GeoTransform>400000, %g, 0, 3900000, 0, -%g</GeoTransform>\n",
            (long long)size, (long long)size, px, px);
    for (int b = 1; b <= nb; b++)
        fprintf(f, "  <VRTRasterBand dataType=\"Byte\" band=\"%d\"><SimpleSource>"
                   "<SourceFilename relativeToVRT=\"0\">%s</SourceFilename><SourceBand>%d</SourceBand>"
                   "</SimpleSource></VRTRasterBand>\n",
                b, src, b);
    fputs("</VRTDataset>\n", f);
    fclose(f);
}

/* Peak memory growth allowed while tiling the giant VRT (its pixels would
 * be 10^14 bytes): AddressSanitizer keeps up to 256 MB of freed memory in
 * quarantine, so a sanitizer build gets more. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_LIMIT_MB 600
#else
#define RSS_LIMIT_MB 200
#endif

static void test_giant_vrt(void)
{
    const char *pan = in_dir("pan.tif"), *ms = in_dir("ms.tif"), *arc = in_dir("giant.mat");
    const char *gp = in_dir("giant_pan.vrt"), *gm = in_dir("giant_ms.vrt");
    write_giant_vrt(gp, pan, 10000000, 1, 2);
    write_giant_vrt(gm, ms, 2500000, 4, 8);
    int fd[2];
    ASSERT_EQ_INT(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        CPLSetConfigOption("GDAL_CACHEMAX", "64"); /* GDAL's block cache: 64 MB, not 5% of the RAM */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long rss0 = ru.ru_maxrss;
        close(fd[0]);
        cmir_tile_params p = small_params();
        cmir_tile_stats st = {0};
        t_start = now();
        int rc = cmir_tile(&gp, 1, &gm, 1, arc, 0, p, cancel_after, NULL, &st);
        getrusage(RUSAGE_SELF, &ru);
        dprintf(fd[1], "%d %lld %.3g %ld %.1f %s\n", rc, (long long)st.tiles_written, last_frac,
                (ru.ru_maxrss - rss0) / 1024, now() - t_start, rc ? cmir_last_error() : "");
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    /* The child must come back (cancelled) within a minute. */
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && waited < 600) {
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        waited++;
    }
    if (waited >= 600) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "  giant VRT: cmir_tile neither refused it nor came back to its progress callback in 60 s\n");
        ASSERT_TRUE(0);
    }
    char line[1200] = "";
    ssize_t got = read(fd[0], line, sizeof line - 1);
    close(fd[0]);
    line[got > 0 ? got : 0] = 0;
    int rc = 0;
    long long tiles = 0;
    long rss_mb = -1;
    double frac = 0, secs = 0;
    int nf = sscanf(line, "%d %lld %lg %ld %lg", &rc, &tiles, &frac, &rss_mb, &secs);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ_INT(nf, 5);
    const char *msg = strchr(line, '\n') ? line : line;
    if (rc == CMIR_ECANCEL) {
        printf("  %-34s accepted: %lld tiles in %.1f s (%.2g of the whole), then cancelled; peak memory +%ld MB\n",
               "giant VRT 10,000,000^2", tiles, secs, frac, rss_mb);
        ASSERT_TRUE(tiles > 0);
        ASSERT_LE(rss_mb, RSS_LIMIT_MB);
        ASSERT_TRUE(!exists(arc));
    } else {
        /* A refusal must name the file and come before any allocation. */
        printf("  %-34s refused (%d): %s", "giant VRT 10,000,000^2", rc, msg);
        ASSERT_TRUE(rc != 0);
        ASSERT_TRUE(strstr(line, "giant_") != NULL);
        ASSERT_LE(rss_mb, RSS_LIMIT_MB);
    }
}

static void test_georef(void)
{
    const char *pan = in_dir("pan.tif"), *ms = in_dir("ms.tif"), *arc = in_dir("g.mat");
    const char *rp = in_dir("rotated_pan.tif"), *rm = in_dir("rotated_ms.tif");
    const double rgt[6] = {400000, 2, 0.3, 3900000, 0.3, -2};
    make_raster(rp, 64, 64, 1, GDT_Byte, rgt, UTM, pan_plain, 0, 0, NULL);
    expect_refused("PAN rotated geotransform", tile_run(rp, ms, arc, small_params()), arc, rp,
                   "rotated or south-up geotransform");
    /* MS rotated by 10 degrees around the PAN's ground, with margin. */
    const double a = 10 * 3.14159265358979 / 180, c = cos(a) * 8, s = sin(a) * 8;
    const double mgt[6] = {400000 - 40, c, s, 3900000 + 40 + 30, s, -c};
    make_raster(rm, 40, 40, 4, GDT_Byte, mgt, UTM, ms_const, 0, 0, NULL);
    expect_tiles("MS rotated 10 degrees", tile_run(pan, rm, arc, small_params()), arc, 4, pan_plain, ms_const, 0, 1e-3,
                 CMIR_DT_UINT8, CMIR_DT_UINT8);
    const char *np = in_dir("nocrs_pan.tif"), *nm = in_dir("nocrs_ms.tif"), *ng = in_dir("nogt_pan.tif");
    make_raster(np, 64, 64, 1, GDT_Byte, pan_gt, NULL, pan_plain, 0, 0, NULL);
    make_raster(nm, 16, 16, 4, GDT_Byte, ms_gt, NULL, ms_plain, 0, 0, NULL);
    make_raster(ng, 64, 64, 1, GDT_Byte, NULL, NULL, pan_plain, 0, 0, NULL);
    expect_refused("PAN without CRS", tile_run(np, ms, arc, small_params()), arc, np,
                   "has no coordinate reference system");
    expect_refused("MS without CRS", tile_run(pan, nm, arc, small_params()), arc, nm,
                   "has no coordinate reference system");
    expect_refused("PAN without geotransform", tile_run(ng, ms, arc, small_params()), arc, ng,
                   "has no georeferencing");
}

static void test_empty_scenes(void)
{
    const char *pan = in_dir("pan.tif"), *ms = in_dir("ms.tif"), *arc = in_dir("e.mat");
    const char *nanp = in_dir("nan_pan.tif"), *nanm = in_dir("nan_ms.tif"), *ndp = in_dir("nodata_pan.tif");
    make_raster(nanp, 64, 64, 1, GDT_Float32, pan_gt, UTM, all_nan, 0, 0, NULL);
    make_raster(nanm, 16, 16, 4, GDT_Float32, ms_gt, UTM, all_nan, 0, 0, NULL);
    make_raster(ndp, 64, 64, 1, GDT_Byte, pan_gt, UTM, all_zero, 1, 0, NULL);
    outcome o = tile_run(nanp, ms, arc, small_params());
    expect_refused("NaN-only PAN", o, arc, arc, "no tile passed the nodata");
    ASSERT_EQ_INT(o.st.skipped_nodata, 4);
    o = tile_run(pan, nanm, arc, small_params());
    expect_refused("NaN-only MS", o, arc, arc, "no tile passed the nodata");
    ASSERT_EQ_INT(o.st.skipped_nodata, 4);
    o = tile_run(ndp, ms, arc, small_params());
    expect_refused("nodata-only PAN", o, arc, arc, "no tile passed the nodata");
    ASSERT_EQ_INT(o.st.skipped_nodata, 4);
    cmir_tile_params p = small_params();
    p.keep_nodata = 1;
    o = tile_run(ndp, ms, arc, p);
    expect_tiles("nodata-only PAN, keep_nodata", o, arc, 4, all_zero, ms_plain, 1, 0, CMIR_DT_UINT8, CMIR_DT_UINT8);
    cmir_archive *a = cmir_archive_open(arc);
    if (a) {
        double nd = -1;
        ASSERT_OK(cmir_archive_nodata(a, CMIR_PAN, &nd));
        ASSERT_EQ_INT(nd, 0);
        for (int64_t i = 0; i < cmir_archive_get_info(a)->n_tiles; i++)
            ASSERT_EQ_INT(cmir_archive_label(a, i), 0);
        cmir_archive_close(a);
    }
    /* Zero-size and one-pixel scenes. */
    const char *zero = in_dir("zero.vrt");
    FILE *f = fopen(zero, "w");
    fputs("<VRTDataset rasterXSize=\"0\" rasterYSize=\"0\"><SRS>EPSG:32650</SRS>"
          "<GeoTransform>400000, 2, 0, 3900000, 0, -2</GeoTransform>"
          "<VRTRasterBand dataType=\"Byte\" band=\"1\"/></VRTDataset>\n",
          f);
    fclose(f);
    o = tile_run(zero, ms, arc, small_params());
    ASSERT_TRUE(strstr(o.msg, "cannot open as a raster") || strstr(o.msg, "empty raster"));
    expect_refused("zero-size VRT", o, arc, zero, "raster");
    const char *p1 = in_dir("pan1.tif"), *m1 = in_dir("ms1.tif");
    make_raster(p1, 1, 1, 1, GDT_Byte, pan_gt, UTM, pan_plain, 0, 0, NULL);
    make_raster(m1, 1, 1, 4, GDT_Byte, ms_gt, UTM, ms_plain, 0, 0, NULL);
    expect_refused("1-pixel PAN", tile_run(p1, ms, arc, small_params()), arc, p1, "smaller than one 32x32 tile");
    o = tile_run(pan, m1, arc, small_params());
    expect_refused("1-pixel MS", o, arc, arc, "no tile passed the nodata");
    ASSERT_EQ_INT(o.st.skipped_nodata, 4);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    RUN(test_baseline_and_types);
    RUN(test_antimeridian);
    RUN(test_refused_types);
    RUN(test_polar);
    RUN(test_georef);
    RUN(test_empty_scenes);
    RUN(test_giant_vrt);
    CPLPopErrorHandler();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
