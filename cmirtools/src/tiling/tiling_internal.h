/* Internal to tiling: label sources (class raster or polygon layer) put on
 * each scene's MS grid, and per-tile majority / multi-label counting. */
#ifndef CMIR_TILING_INTERNAL_H
#define CMIR_TILING_INTERNAL_H

#include "cmir/tiling.h"
#include "../geo/gdal_util.h"

#include <ogr_api.h>

typedef struct cmir__labels {
    int kind;       /* 0 none, 1 raster, 2 vector */
    int n_classes;  /* C */
    char **names;   /* C class names, owned */
    GDALDatasetH src;   /* the raster (first of n_src) or the vector source */
    GDALDatasetH *srcs; /* all label rasters */
    int n_src;
    OGRLayerH layer;
    int field;
} cmir__labels;

/* Opens the label source named in p (if any) and builds the class table;
 * the same table serves every scene of a run. */
int cmir__labels_open(cmir__labels *L, const cmir_tile_params *p);
void cmir__labels_close(cmir__labels *L);

/* Labels of one scene on its MS grid (gw x gh pixels of `ratio` PAN
 * pixels, origin at the PAN origin): *out is a dataset to read windows
 * from (NULL when the run has no labels); the caller closes it. */
int cmir__labels_scene(cmir__labels *L, const cmir_tile_params *p, const char *scene_path,
                       OGRSpatialReferenceH srs, const char *wkt, const double pan_gt[6], int gw,
                       int gh, int ratio, GDALDatasetH *out);

/* Majority class of the n x n window at (x0, y0) (0 when it covers less
 * than p->label_min_frac) and, when p->multilabel_frac > 0, mlab[c-1] = 1
 * for every class covering at least that fraction. buf holds n*n. */
int cmir__labels_tile(const cmir__labels *L, GDALDatasetH lab, int x0, int y0, int n,
                      uint16_t *buf, const cmir_tile_params *p, int *label, uint8_t *mlab);

/* inputs.c: checks and geometry of input rasters (0 or CMIR_E* with the
 * message naming path). */
void cmir__tl_srs_traditional(OGRSpatialReferenceH s);
int cmir__tl_georef(GDALDatasetH ds, const char *path, double gt[6], OGRSpatialReferenceH *srs);
int cmir__tl_check_coverage(GDALDatasetH ds, const char *path, int ts);
int cmir__tl_check_sample_type(GDALDatasetH ds, const char *path);
/* Extent of an input in CRS `to`: xmin, ymin, xmax, ymax; -1 when it
 * cannot be transformed. */
int cmir__tl_extent_in(GDALDatasetH ds, const double gt[6], OGRSpatialReferenceH from, OGRSpatialReferenceH to,
                       double e[4]);
/* Overlap area of two extents, the largest over +-360 degrees in a
 * geographic CRS. */
double cmir__tl_overlap_area_in(OGRSpatialReferenceH srs, const double a[4], const double b[4]);

#endif
