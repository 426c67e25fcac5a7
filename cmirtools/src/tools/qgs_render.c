/* The rasters of the QGIS project written by cmir_search -qgs (the query's
 * tile or window as a GeoTIFF, display ranges of the scenes) and its map
 * image: rendered from the project by qgis_process (native:rasterize, "Convert
 * map to raster") when QGIS is installed, else GDAL's quick-look. */
#define _DEFAULT_SOURCE /* realpath, mkdtemp */
#include "qgs.h"
#include "cmir/archive.h"

#include <cpl_conv.h>
#include <gdal_utils.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes the n x w x nb (band fastest) float tile with gt and wkt to a GeoTIFF at file. */
static int write_tile(const char *file, const char *path, const float *t, int h, int w, int nb, const double gt[6],
                      const char *wkt)
{
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = drv ? GDALCreate(drv, file, w, h, nb, GDT_Float32, NULL) : NULL;
    if (!ds)
        return cmir__gdal_error(CMIR_EIO, path, "cannot create the query's GeoTIFF");
    int rc = 0;
    if (isfinite(gt[0]) && gt[1] != 0)
        GDALSetGeoTransform(ds, (double *)gt);
    if (wkt && *wkt)
        GDALSetProjection(ds, wkt);
    if (GDALDatasetRasterIO(ds, GF_Write, 0, 0, w, h, (void *)t, w, h, GDT_Float32, nb, NULL, (GSpacing)nb * 4,
                            (GSpacing)nb * 4 * w, 4) != CE_None)
        rc = cmir__gdal_error(CMIR_EIO, path, "cannot write the query's GeoTIFF");
    GDALClose(ds);
    return rc;
}

/* The tile behind index row r into file (a GeoTIFF); *made 0 for a clip. */
static int row_raster(cmir_index *ix, int64_t r, const char *root, const char *file, const char *path, int *made)
{
    OGRFeatureH f = cmir__index_feature(ix, r);
    if (!f)
        return cmir__error(CMIR_EFORMAT, "%s: row %lld has no feature", cmir__index_path(ix), (long long)r);
    char ap[4096];
    const char *a0 = OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "archive"));
    snprintf(ap, sizeof ap, "%s%s%s", root && a0[0] != '/' ? root : "", root && a0[0] != '/' ? "/" : "", a0);
    int64_t tile = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "tile_id"));
    const char *mod = OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "modality"));
    cmir_modality m = !strcmp(mod, "MS") ? CMIR_MS : CMIR_PAN;
    *made = strcmp(mod, "audio") != 0;
    OGR_F_Destroy(f);
    if (!*made)
        return 0;
    cmir_archive *a = cmir_archive_open(ap);
    if (!a)
        return cmir__failed(CMIR_EIO);
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    int h = m ? ai->ms_h : ai->pan_h, w = m ? ai->ms_w : ai->pan_w, nb = m ? ai->ms_bands : ai->pan_bands;
    float *t = cmir__malloc(sizeof(float) * (size_t)h * w * nb);
    double gt[6] = {NAN, 0, 0, 0, 0, 0};
    int rc = t ? cmir_archive_read_tile(a, m, tile, t) : CMIR_ENOMEM;
    if (!rc && cmir_archive_geotransform(a, m, tile, gt) != 0)
        gt[0] = NAN; /* no georeferencing: pixel coordinates */
    if (!rc)
        rc = write_tile(file, path, t, h, w, nb, gt, cmir_archive_crs(a, tile));
    cmir__free(t);
    cmir_archive_close(a);
    return rc;
}

/* The raster query's window (or the whole raster) into file. */
static int window_raster(const cmir_query *q, const char *file, const char *path)
{
    char win[4][16];
    const char *argv[] = {"-of", "GTiff", q->has_window ? "-srcwin" : NULL, win[0], win[1], win[2], win[3], NULL};
    for (int i = 0; i < 4; i++)
        snprintf(win[i], sizeof win[i], "%d", q->window[i]);
    GDALDatasetH src = cmir__gdal_open_raster(q->raster);
    if (!src)
        return cmir__failed(CMIR_EIO);
    GDALTranslateOptions *o = GDALTranslateOptionsNew((char **)argv, NULL);
    GDALDatasetH out = o ? GDALTranslate(file, src, o, NULL) : NULL;
    int rc = out ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write the query's window");
    if (out)
        GDALClose(out);
    GDALTranslateOptionsFree(o);
    GDALClose(src);
    return rc;
}

int cmir__qgs_query_raster(cmir_index *ix, const cmir_query *q0, const char *root, const char *path, int *made)
{
    *made = 0;
    if (q0->kind == CMIR_QUERY_AUDIO)
        return 0;
    cmir__atomic_file af;
    int rc = cmir__atomic_open(&af, path, CMIR__ATOMIC_NAME_ONLY);
    if (rc)
        return rc;
    cmir__gdal_quiet_begin();
    if (q0->kind == CMIR_QUERY_ROW)
        rc = row_raster(ix, q0->row, root, af.tmp, path, made);
    else {
        rc = window_raster(q0, af.tmp, path);
        *made = 1;
    }
    cmir__gdal_quiet_end();
    if (rc || !*made) {
        cmir__atomic_abort(&af);
        *made = 0;
        return rc;
    }
    return cmir__atomic_commit(&af);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The 2% and 98% values of band b over a decimated read (at most 256 x 256). */
static void band_range(GDALDatasetH ds, int b, double *lo, double *hi)
{
    GDALRasterBandH band = GDALGetRasterBand(ds, b);
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds), bw = w < 256 ? w : 256, bh = h < 256 ? h : 256;
    int has_nd = 0, n = 0;
    double nd = GDALGetRasterNoDataValue(band, &has_nd);
    double *v = malloc(sizeof(double) * (size_t)bw * bh);
    *lo = 0;
    *hi = 255;
    if (!v || GDALRasterIO(band, GF_Read, 0, 0, w, h, v, bw, bh, GDT_Float64, 0, 0) != CE_None) {
        free(v);
        return;
    }
    for (int i = 0; i < bw * bh; i++)
        if (isfinite(v[i]) && !(has_nd && v[i] == nd))
            v[n++] = v[i];
    if (n) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        *lo = v[(size_t)(0.02 * (n - 1))];
        *hi = v[(size_t)(0.98 * (n - 1))];
        if (*hi <= *lo)
            *hi = *lo + 1;
    }
    free(v);
}

void cmir__qgs_raster_clear(cmir__qgs_raster *r)
{
    CPLFree(r->wkt);
    r->wkt = NULL;
}

int cmir__qgs_describe(cmir__qgs_raster *r)
{
    cmir__gdal_quiet_begin();
    CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO"); /* no .aux.xml beside the user's scenes */
    GDALDatasetH ds = GDALOpenEx(r->path, GDAL_OF_RASTER, NULL, NULL, NULL);
    int rc = ds ? 0 : cmir__gdal_error(CMIR_EIO, r->path, "cannot open as a raster");
    if (ds) {
        r->bands = GDALGetRasterCount(ds);
        for (int c = 0; c < (r->bands >= 3 ? 3 : 1); c++) /* red, green, blue of blue-green-red-NIR */
            band_range(ds, r->bands >= 3 ? 3 - c : 1, &r->lo[c], &r->hi[c]);
        double gt[6];
        int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
        if (GDALGetGeoTransform(ds, gt) != CE_None) {
            double id[6] = {0, 1, 0, 0, 0, -1}; /* GDAL's default: pixels, north up */
            memcpy(gt, id, sizeof gt);
        }
        r->ext[0] = fmin(gt[0], gt[0] + w * gt[1]);
        r->ext[2] = fmax(gt[0], gt[0] + w * gt[1]);
        r->ext[1] = fmin(gt[3], gt[3] + h * gt[5]);
        r->ext[3] = fmax(gt[3], gt[3] + h * gt[5]);
        OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
        const char *opts[] = {"FORMAT=WKT2_2019", NULL};
        r->wkt = NULL;
        r->authid[0] = '\0';
        if (srs && OSRExportToWktEx(srs, &r->wkt, opts) != OGRERR_NONE)
            r->wkt = NULL;
        if (srs && OSRGetAuthorityName(srs, NULL) && OSRGetAuthorityCode(srs, NULL))
            snprintf(r->authid, sizeof r->authid, "%s:%s", OSRGetAuthorityName(srs, NULL),
                     OSRGetAuthorityCode(srs, NULL));
        GDALClose(ds);
    }
    CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", NULL);
    cmir__gdal_quiet_end();
    return rc;
}

#define QGIS_TIMEOUT_S 600 /* a qgis_process still rendering after this is killed (it takes ~5 s) */

/* qgis_process to run: config option CMIR_QGIS_PROCESS (a path, or NONE),
 * else Debian's /usr/bin/qgis_process.bin or /usr/local/bin's; NULL: none. */
static const char *find_qgis(int *err)
{
    const char *c = CPLGetConfigOption("CMIR_QGIS_PROCESS", NULL);
    *err = 0;
    if (c && EQUAL(c, "NONE"))
        return NULL;
    if (c) {
        if (access(c, X_OK) != 0)
            *err = cmir__error(CMIR_EINVAL, "CMIR_QGIS_PROCESS=%s: not an executable program", c);
        return c;
    }
    static const char *const known[] = {"/usr/bin/qgis_process.bin", "/usr/local/bin/qgis_process.bin",
                                        "/usr/bin/qgis_process", "/usr/local/bin/qgis_process"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (access(known[i], X_OK) == 0)
            return known[i];
    return NULL;
}

/* The last non-blank line of the log (for a one-line message). */
static void last_line(const char *log, char *out, size_t n)
{
    FILE *f = fopen(log, "r");
    char line[512];
    out[0] = '\0';
    while (f && fgets(line, sizeof line, f))
        if (line[strspn(line, " \t\r\n")])
            snprintf(out, n, "%.*s", (int)strcspn(line, "\r\n"), line);
    if (f)
        fclose(f);
}

/* qgis_process run native:rasterize on the project, the GeoTIFF to png. */
static int render_qgis(const char *qgis, const char *qgs, const char *png, const double e[4], const char *authid)
{
    const char *base = CPLGetConfigOption("CPL_TMPDIR", getenv("TMPDIR"));
    char dir[4096], tif[4200], log[4200], a[4][4400], msg[512];
    snprintf(dir, sizeof dir, "%s/cmir_qgs_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return cmir__error(CMIR_EIO, "%s: cannot create a temporary directory", dir);
    snprintf(tif, sizeof tif, "%s/map.tif", dir);
    snprintf(log, sizeof log, "%s/qgis_process.log", dir);
    double upp = fmax(e[2] - e[0], e[3] - e[1]) / 1024.0;
    snprintf(a[0], sizeof a[0], "--PROJECT_PATH=%s", qgs);
    snprintf(a[1], sizeof a[1], "--EXTENT=%.17g,%.17g,%.17g,%.17g%s%s%s", e[0], e[2], e[1], e[3],
             *authid ? " [" : "", authid, *authid ? "]" : "");
    snprintf(a[2], sizeof a[2], "--MAP_UNITS_PER_PIXEL=%.17g", upp > 0 ? upp : 1.0);
    snprintf(a[3], sizeof a[3], "--OUTPUT=%s", tif);
    const char *argv[] = {qgis, "run", "native:rasterize", a[0], a[1], a[2], "--TILE_SIZE=1024",
                          "--EXTENT_BUFFER=0", "--MAKE_BACKGROUND_TRANSPARENT=0", a[3], NULL};
    /* no display needed; no .aux.xml statistics left beside the user's scenes by QGIS */
    const char *env[] = {"QT_QPA_PLATFORM=offscreen", "GDAL_PAM_ENABLED=NO", NULL};
    int status = 0, rc = cmir__spawn(argv, env, log, QGIS_TIMEOUT_S, &status);
    if (!rc && (status != 0 || access(tif, R_OK) != 0)) {
        last_line(log, msg, sizeof msg);
        rc = cmir__error(CMIR_EIO, "%s: %s run native:rasterize failed (exit %d): %s", png, qgis, status, msg);
    }
    cmir__atomic_file af;
    if (!rc && !(rc = cmir__atomic_open(&af, png, CMIR__ATOMIC_NAME_ONLY))) {
        const char *targv[] = {"-of", "PNG", "-co", "WORLDFILE=NO", NULL};
        cmir__gdal_quiet_begin();
        CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO");
        GDALDatasetH src = GDALOpen(tif, GA_ReadOnly);
        GDALTranslateOptions *o = GDALTranslateOptionsNew((char **)targv, NULL);
        GDALDatasetH out = src && o ? GDALTranslate(af.tmp, src, o, NULL) : NULL;
        if (!out)
            rc = cmir__gdal_error(CMIR_EIO, png, "cannot write the map image");
        else
            GDALClose(out);
        GDALTranslateOptionsFree(o);
        if (src)
            GDALClose(src);
        CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", NULL);
        cmir__gdal_quiet_end();
        rc = rc ? (cmir__atomic_abort(&af), rc) : cmir__atomic_commit(&af);
    }
    unlink(tif);
    unlink(log);
    rmdir(dir);
    return rc;
}

int cmir__qgs_render(const char *qgs, const char *png, const double ext[4], const char *authid,
                     cmir_index *ix, const cmir_query *q0, const float *qtile, const int qdims[3],
                     const int64_t *rows, int k, const char *root, const char **by)
{
    int err;
    const char *qgis = find_qgis(&err);
    if (err)
        return err;
    if (qgis) {
        *by = "qgis";
        return render_qgis(qgis, qgs, png, ext, authid);
    }
    *by = "gdal";
    cmir__gdal_quiet_begin();
    int rc = cmir__quicklook(ix, root, qtile, qdims[0], qdims[1], qdims[2],
                             q0->kind == CMIR_QUERY_ROW ? q0->row : -1, rows, k, png);
    cmir__gdal_quiet_end();
    return rc;
}
