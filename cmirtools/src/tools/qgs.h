/* The search tool's QGIS project (cmir_search -qgs), private to tools:
 * qgs.c writes the project and its files, qgs_render.c the layers' rasters
 * and the map image (qgis_process, or GDAL's quick-look). */
#ifndef CMIR_TOOLS_QGS_H
#define CMIR_TOOLS_QGS_H

#include "../index/index_tools.h"

#include <limits.h>

#define CMIR_QGS_MAX_SCENES 8

/* A raster layer of the project: its file, band count, display ranges
 * (2%-98%) of the bands shown, CRS and extent in it. */
typedef struct cmir__qgs_raster {
    char path[PATH_MAX + 32];
    char name[256];
    int bands;
    double lo[3], hi[3];
    char *wkt;      /* WKT2 of its CRS (owned), NULL when none */
    char authid[64];
    double ext[4];  /* minx, miny, maxx, maxy in its CRS */
} cmir__qgs_raster;

/* Writes project p.qgs for query 0 of H (q0, its first tile qtile h x w x nb
 * or NULL) and the files beside it: <base>_query.tif, <base>_hits.geojson
 * and the map image <base>.png. */
int cmir__qgs_write(cmir_index *ix, const cmir_hits *H, const cmir_query *q0, const float *qtile,
                    const int qdims[3], cmir_search_params p);

/* qgs_render.c: the query's raster (atomically, to path): the index row's
 * tile or the raster window; *made 0 (nothing written) for audio. */
int cmir__qgs_query_raster(cmir_index *ix, const cmir_query *q0, const char *root, const char *path, int *made);
/* Fills r from the raster at path (r->path set by the caller). */
int cmir__qgs_describe(cmir__qgs_raster *r);
void cmir__qgs_raster_clear(cmir__qgs_raster *r);
/* Renders project qgs into png over extent ext (minx, miny, maxx, maxy in
 * the project CRS authid/wkt): by qgis_process when found, else the GDAL
 * quick-look of query 0 (rows[0..k), qtile...). *by: "qgis" or "gdal". */
int cmir__qgs_render(const char *qgs, const char *png, const double ext[4], const char *authid,
                     cmir_index *ix, const cmir_query *q0, const float *qtile, const int qdims[3],
                     const int64_t *rows, int k, const char *root, const char **by);

#endif
