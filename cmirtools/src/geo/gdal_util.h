/* geo's exported internal API (not installed): opening rasters with GDAL's
 * messages captured as one-line "gdal: file: problem" errors. Modules above
 * geo (tiling, index) include it; it knows nothing of archives. */
#ifndef CMIR_GDAL_UTIL_H
#define CMIR_GDAL_UTIL_H

#include "../base/internal.h"

#include <gdal.h>

/* Silences GDAL's stderr printing for the calling thread until
 * cmir__gdal_quiet_end(); pairs must nest. */
void cmir__gdal_quiet_begin(void);
void cmir__gdal_quiet_end(void);

/* The one bridge from GDAL's errors to cmir__error: records
 * "gdal: <path>: <what> (<GDAL's last message>)" and returns code. With
 * what NULL it records "gdal: <path>: <GDAL's message>", or only GDAL's
 * message when that already names path. */
int cmir__gdal_error(int code, const char *path, const char *what);

/* Opens a raster read-only (quietly); NULL with the error set, GDAL's own
 * reason included ("No such file or directory", "not recognized as a
 * supported file format"). Checks it has at least one band and a non-empty
 * size. */
GDALDatasetH cmir__gdal_open_raster(const char *path);
/* The same with GDAL open options (NULL-terminated NAME=VALUE, as
 * GDALOpenEx takes them, e.g. from -oo; NULL for none). */
GDALDatasetH cmir__gdal_open_raster_oo(const char *path, const char *const *open_options);
/* Opens any dataset with GDALOpenEx(flags | GDAL_OF_VERBOSE_ERROR, ...,
 * open_options), quietly; NULL with "gdal: path: what (GDAL's reason)". */
GDALDatasetH cmir__gdal_open(const char *path, unsigned flags, const char *const *open_options,
                             const char *what);

#endif
