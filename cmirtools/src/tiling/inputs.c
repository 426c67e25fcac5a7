/* Checks and geometry of tiling's input rasters: georeferencing, data
 * coverage against claimed size, sample types, extents in another CRS and
 * their overlap (across the antimeridian too). */
#include "tiling_internal.h"

#include <math.h>
#include <ogr_srs_api.h>

void cmir__tl_srs_traditional(OGRSpatialReferenceH s)
{
    if (s)
        OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
}

/* Georeferencing of a raster: geotransform and CRS, both required. */
int cmir__tl_georef(GDALDatasetH ds, const char *path, double gt[6], OGRSpatialReferenceH *srs)
{
    if (GDALGetGeoTransform(ds, gt) != CE_None)
        return cmir__error(CMIR_EFORMAT, "%s: has no georeferencing (no geotransform)", path);
    OGRSpatialReferenceH s = GDALGetSpatialRef(ds);
    if (!s)
        return cmir__error(CMIR_EFORMAT, "%s: has no coordinate reference system", path);
    *srs = OSRClone(s);
    cmir__tl_srs_traditional(*srs);
    return 0;
}

/* Refuses sample types that the archive cannot hold faithfully: complex
 * numbers, and GDAL 3.6's signed bytes (Byte with PIXELTYPE=SIGNEDBYTE,
 * which a read would return as 0..255). */
/* A scene whose size claims far more than it holds (a VRT of 10^6 x 10^6
 * pixels over a small file, a sparse GeoTIFF): by GDAL's data coverage of
 * its first band, fewer pixels with data than one tile is refused before
 * millions of empty windows are read. Drivers that cannot tell pass. */
int cmir__tl_check_coverage(GDALDatasetH ds, const char *path, int ts)
{
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds);
    double pct = 100;
    int st = GDALGetDataCoverageStatus(GDALGetRasterBand(ds, 1), 0, 0, W, H, 0, &pct);
    double px = pct / 100 * W * H;
    if ((st & GDAL_DATA_COVERAGE_STATUS_UNIMPLEMENTED) || !(st & GDAL_DATA_COVERAGE_STATUS_EMPTY) ||
        px >= (double)ts * ts)
        return 0;
    return cmir__error(CMIR_EINVAL, "%s: claims %d x %d pixels but holds data for about %.0f of "
                       "them (GDAL's data coverage), less than one %dx%d tile", path, W, H, px, ts,
                       ts);
}

int cmir__tl_check_sample_type(GDALDatasetH ds, const char *path)
{
    for (int b = 1; b <= GDALGetRasterCount(ds); b++) {
        GDALRasterBandH h = GDALGetRasterBand(ds, b);
        GDALDataType t = GDALGetRasterDataType(h);
        if (GDALDataTypeIsComplex(t))
            return cmir__error(CMIR_EUNSUPPORTED, "%s: band %d holds complex samples (%s); convert them first "
                               "(e.g. gdal_translate -ot Float32 takes the real part)", path, b,
                               GDALGetDataTypeName(t));
        const char *pt = GDALGetMetadataItem(h, "PIXELTYPE", "IMAGE_STRUCTURE");
        if (t == GDT_Byte && pt && EQUAL(pt, "SIGNEDBYTE"))
            return cmir__error(CMIR_EUNSUPPORTED, "%s: band %d holds signed bytes (PIXELTYPE=SIGNEDBYTE); "
                               "convert them first (gdal_translate -ot Int16)", path, b);
    }
    return 0;
}

/* Extent of an input in the PAN CRS: xmin, ymin, xmax, ymax. */
int cmir__tl_extent_in(GDALDatasetH ds, const double gt[6], OGRSpatialReferenceH from,
                     OGRSpatialReferenceH to, double e[4])
{
    double x[4], y[4];
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds);
    const double px[4] = {0, W, 0, W}, py[4] = {0, 0, H, H};
    for (int i = 0; i < 4; i++) {
        x[i] = gt[0] + px[i] * gt[1] + py[i] * gt[2];
        y[i] = gt[3] + px[i] * gt[4] + py[i] * gt[5];
    }
    double xmin = fmin(fmin(x[0], x[1]), fmin(x[2], x[3])), xmax = fmax(fmax(x[0], x[1]), fmax(x[2], x[3]));
    double ymin = fmin(fmin(y[0], y[1]), fmin(y[2], y[3])), ymax = fmax(fmax(y[0], y[1]), fmax(y[2], y[3]));
    if (OSRIsSame(from, to)) {
        e[0] = xmin; e[1] = ymin; e[2] = xmax; e[3] = ymax;
        return 0;
    }
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
    int ok = ct && OCTTransformBounds(ct, xmin, ymin, xmax, ymax, &e[0], &e[1], &e[2], &e[3], 21);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    /* bounds across the antimeridian come back with xmin > xmax: unwrap
     * them eastwards (xmax + 360); overlap tests also try +-360 */
    if (ok && OSRIsGeographic(to) && e[0] > e[2])
        e[2] += 360.0;
    return ok ? 0 : -1;
}

static double overlap_area(const double a[4], const double b[4])
{
    double w = fmin(a[2], b[2]) - fmax(a[0], b[0]), h = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    return w > 0 && h > 0 ? w * h : 0.0;
}

/* The same for extents in a geographic CRS, where b may be a turn of the
 * globe (360 degrees) away from a: the largest of the three. */
double cmir__tl_overlap_area_in(OGRSpatialReferenceH srs, const double a[4], const double b[4])
{
    double best = overlap_area(a, b);
    for (int k = -1; OSRIsGeographic(srs) && k <= 1; k += 2) {
        const double c[4] = {b[0] + 360.0 * k, b[1], b[2] + 360.0 * k, b[3]};
        best = fmax(best, overlap_area(a, c));
    }
    return best;
}
