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

GDALDatasetH cmir__gdal_open_raster(const char *path)
{
    cmir__gdal_quiet_begin();
    GDALAllRegister();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        cmir__gdal_error(CMIR_EIO, path, "cannot open as a raster");
    } else if (GDALGetRasterCount(ds) < 1 || GDALGetRasterXSize(ds) < 1 ||
               GDALGetRasterYSize(ds) < 1) {
        cmir__error(CMIR_EFORMAT, "%s: empty raster (no bands or zero size)", path);
        GDALClose(ds);
        ds = NULL;
    }
    cmir__gdal_quiet_end();
    return ds;
}
