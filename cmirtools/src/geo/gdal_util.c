/* GDAL boundary helpers: quiet error handling, error translation with the
 * "gdal" domain prefix, and raster opening. */
#include "gdal_util.h"

#include <cpl_error.h>
#include <string.h>

void cmir__gdal_quiet_begin(void)
{
    CPLErrorReset();
    CPLPushErrorHandler(CPLQuietErrorHandler);
}

void cmir__gdal_quiet_end(void) { CPLPopErrorHandler(); }

int cmir__gdal_error(int code, const char *path, const char *what)
{
    const char *m = CPLGetLastErrorMsg();
    if (!path)
        path = "";
    if (what) {
        if (m && *m)
            return cmir__error(code, "gdal: %s: %s (%s)", path, what, m);
        return cmir__error(code, "gdal: %s: %s", path, what);
    }
    /* GDAL's own words, named by path unless they already name it */
    if (!m || !*m)
        m = "unknown GDAL error";
    if (*path && strstr(m, path))
        return cmir__error(code, "gdal: %s", m);
    return cmir__error(code, "gdal: %s: %s", path, m);
}

GDALDatasetH cmir__gdal_open(const char *path, unsigned flags, const char *const *open_options,
                             const char *what)
{
    cmir__gdal_quiet_begin();
    GDALAllRegister();
    /* VERBOSE_ERROR: GDAL says why ("No such file or directory", "not
     * recognized as a supported file format"), which the message carries */
    GDALDatasetH ds = GDALOpenEx(path, flags | GDAL_OF_VERBOSE_ERROR, NULL, open_options, NULL);
    if (!ds) {
        cmir__gdal_error(CMIR_EIO, path, what);
    } else if (open_options && *open_options && CPLGetLastErrorType() == CE_Warning &&
               strstr(CPLGetLastErrorMsg(), "open option")) {
        /* GDAL only warns about an open option its driver does not know;
         * an option the user asked for that does nothing is refused */
        cmir__gdal_error(CMIR_EINVAL, path, NULL);
        GDALClose(ds);
        ds = NULL;
    }
    cmir__gdal_quiet_end();
    return ds;
}

GDALDatasetH cmir__gdal_open_raster_oo(const char *path, const char *const *open_options)
{
    GDALDatasetH ds = cmir__gdal_open(path, GDAL_OF_RASTER | GDAL_OF_READONLY, open_options,
                                      "cannot open as a raster");
    if (ds && (GDALGetRasterCount(ds) < 1 || GDALGetRasterXSize(ds) < 1 || GDALGetRasterYSize(ds) < 1)) {
        cmir__error(CMIR_EFORMAT, "%s: empty raster (no bands or zero size)", path);
        GDALClose(ds);
        ds = NULL;
    }
    return ds;
}

GDALDatasetH cmir__gdal_open_raster(const char *path) { return cmir__gdal_open_raster_oo(path, NULL); }
