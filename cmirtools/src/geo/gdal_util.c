/* GDAL boundary helpers: quiet error handling, error translation with the
 * "gdal" domain prefix, raster opening and type mapping. */
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

cmir_dtype cmir__dtype_from_gdal(GDALDataType t)
{
    switch (t) {
    case GDT_Byte: return CMIR_DT_UINT8;
    case GDT_UInt16: return CMIR_DT_UINT16;
    case GDT_Int16: return CMIR_DT_INT16;
    default: return CMIR_DT_FLOAT32;
    }
}

GDALDataType cmir__gdal_from_dtype(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return GDT_Byte;
    case CMIR_DT_UINT16: return GDT_UInt16;
    case CMIR_DT_INT16: return GDT_Int16;
    default: return GDT_Float32;
    }
}
