/* Tile labels for cmir_tile(): a class raster (warped onto each scene's MS
 * grid with mode resampling) or a polygon layer with a class attribute
 * (rasterised on the fly onto that grid), then majority and multi-label
 * fractions per tile. */
#include "tiling_internal.h"

#include <cpl_string.h>
#include <gdal_alg.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 65535

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_num(const void *a, const void *b)
{
    double x = atof(*(char *const *)a), y = atof(*(char *const *)b);
    return x < y ? -1 : x > y;
}

static int add_name(cmir__labels *L, const char *s, int *cap)
{
    for (int i = 0; i < L->n_classes; i++)
        if (!strcmp(L->names[i], s))
            return 0;
    if (L->n_classes >= MAX_CLASSES)
        return cmir__error(CMIR_EINVAL, "more than %d distinct classes", MAX_CLASSES);
    if (L->n_classes == *cap) {
        int c = *cap ? 2 * *cap : 16;
        char **n = cmir__realloc(L->names, sizeof(char *) * (size_t)c);
        if (!n)
            return CMIR_ENOMEM;
        L->names = n;
        *cap = c;
    }
    if (!(L->names[L->n_classes] = cmir__strdup(s)))
        return CMIR_ENOMEM;
    L->n_classes++;
    return 0;
}

static int open_raster(cmir__labels *L, const char *path, const char *const *oo)
{
    if (!(L->src = cmir__gdal_open_raster_oo(path, oo)))
        return CMIR_EIO;
    double gt[6];
    if (GDALGetGeoTransform(L->src, gt) != CE_None || !GDALGetSpatialRef(L->src))
        return cmir__error(CMIR_EFORMAT, "%s: label raster has no georeferencing", path);
    GDALRasterBandH b = GDALGetRasterBand(L->src, 1);
    char **cats = GDALGetRasterCategoryNames(b);
    int cap = 0, rc = 0;
    if (cats && CSLCount(cats) > 1) {
        /* Category i names value i; value 0 means no class. */
        for (int i = 1; !rc && cats[i]; i++) {
            char def[32];
            snprintf(def, sizeof def, "class_%d", i);
            const char *nm = cats[i][0] ? cats[i] : def;
            /* names must stay unique and positional: add directly */
            if (L->n_classes == cap) {
                cap = cap ? 2 * cap : 16;
                char **n = cmir__realloc(L->names, sizeof(char *) * (size_t)cap);
                if (!n)
                    return CMIR_ENOMEM;
                L->names = n;
            }
            if (!(L->names[L->n_classes] = cmir__strdup(nm)))
                return CMIR_ENOMEM;
            L->n_classes++;
        }
        return rc;
    }
    double mm[2];
    cmir__gdal_quiet_begin();
    CPLErr e = GDALComputeRasterMinMax(b, FALSE, mm);
    cmir__gdal_quiet_end();
    if (e != CE_None)
        return cmir__gdal_error(CMIR_EIO, path, "cannot read the label raster");
    if (mm[0] < 0 || mm[1] > MAX_CLASSES || mm[1] < 1)
        return cmir__error(CMIR_EFORMAT, "%s: label values must be 0 (none) or 1..%d, found %g..%g",
                           path, MAX_CLASSES, mm[0], mm[1]);
    for (int c = 1; c <= (int)mm[1]; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "class_%d", c);
        if ((rc = add_name(L, nm, &cap)))
            return rc;
    }
    return 0;
}

static int open_vector(cmir__labels *L, const cmir_tile_params *p)
{
    const char *path = p->label_vector;
    L->src = cmir__gdal_open(path, GDAL_OF_VECTOR | GDAL_OF_READONLY, p->open_options, "cannot open as a vector layer");
    if (!L->src)
        return cmir_last_error_code();
    L->layer = p->label_layer ? GDALDatasetGetLayerByName(L->src, p->label_layer)
                              : GDALDatasetGetLayer(L->src, 0);
    if (!L->layer)
        return cmir__error(CMIR_ENOTFOUND, "%s: no layer '%s'", path, p->label_layer ? p->label_layer : "(first)");
    OGRFeatureDefnH fd = OGR_L_GetLayerDefn(L->layer);
    L->field = OGR_FD_GetFieldIndex(fd, p->label_field);
    if (L->field < 0)
        return cmir__error(CMIR_ENOTFOUND, "%s: no field '%s' in layer '%s'", path, p->label_field,
                           OGR_L_GetName(L->layer));
    OGRFieldType ft = OGR_Fld_GetType(OGR_FD_GetFieldDefn(fd, L->field));
    if (ft != OFTString && ft != OFTInteger && ft != OFTInteger64)
        return cmir__error(CMIR_EFORMAT, "%s: field '%s' must hold text or integers", path, p->label_field);
    if (!OGR_L_GetSpatialRef(L->layer))
        return cmir__error(CMIR_EFORMAT, "%s: label layer has no coordinate reference system", path);
    int cap = 0, rc = 0;
    OGRFeatureH f;
    OGR_L_ResetReading(L->layer);
    while (!rc && (f = OGR_L_GetNextFeature(L->layer)) != NULL) {
        if (OGR_F_IsFieldSetAndNotNull(f, L->field))
            rc = add_name(L, OGR_F_GetFieldAsString(f, L->field), &cap);
        OGR_F_Destroy(f);
    }
    if (!rc && L->n_classes == 0)
        return cmir__error(CMIR_EFORMAT, "%s: field '%s' holds no value", path, p->label_field);
    if (!rc)
        qsort(L->names, (size_t)L->n_classes, sizeof(char *), ft == OFTString ? cmp_str : cmp_num);
    return rc;
}

int cmir__labels_open(cmir__labels *L, const cmir_tile_params *p)
{
    memset(L, 0, sizeof *L);
    if (p->label_raster || p->n_label_rasters > 0) {
        L->kind = 1;
        int n = p->n_label_rasters > 0 ? p->n_label_rasters : 1;
        const char *const *paths = p->n_label_rasters > 0 ? p->label_rasters : &p->label_raster;
        int rc = open_raster(L, paths[0], p->open_options);
        if (rc)
            return rc;
        L->srcs = cmir__calloc((size_t)n, sizeof(GDALDatasetH));
        if (!L->srcs)
            return CMIR_ENOMEM;
        L->srcs[0] = L->src;
        L->n_src = n;
        for (int i = 1; i < n; i++) {
            if (!(L->srcs[i] = cmir__gdal_open_raster_oo(paths[i], p->open_options)))
                return CMIR_EIO;
            double gt[6];
            if (GDALGetGeoTransform(L->srcs[i], gt) != CE_None || !GDALGetSpatialRef(L->srcs[i]))
                return cmir__error(CMIR_EFORMAT, "%s: label raster has no georeferencing", paths[i]);
        }
        return 0;
    }
    if (p->label_vector) {
        L->kind = 2;
        return open_vector(L, p);
    }
    return 0;
}

void cmir__labels_close(cmir__labels *L)
{
    for (int i = 0; i < L->n_classes; i++)
        cmir__free(L->names[i]);
    cmir__free(L->names);
    for (int i = 1; i < L->n_src; i++)
        if (L->srcs[i])
            GDALClose(L->srcs[i]);
    cmir__free(L->srcs);
    if (L->src)
        GDALClose(L->src);
    memset(L, 0, sizeof *L);
}

static int class_of(const cmir__labels *L, const char *v)
{
    for (int i = 0; i < L->n_classes; i++) /* names are unique */
        if (!strcmp(L->names[i], v))
            return i + 1;
    return 0;
}

static int rasterise(cmir__labels *L, const char *scene_path, OGRSpatialReferenceH srs,
                     const char *wkt, const double gt[6], int gw, int gh, GDALDatasetH *out)
{
    GDALDriverH mem = GDALGetDriverByName("MEM");
    GDALDatasetH ds = mem ? GDALCreate(mem, "", gw, gh, 1, GDT_UInt16, NULL) : NULL;
    if (!ds)
        return cmir__gdal_error(CMIR_ENOMEM, scene_path, "cannot create the label grid");
    GDALSetGeoTransform(ds, (double *)gt);
    GDALSetProjection(ds, wkt);
    OGRSpatialReferenceH ls = OSRClone(OGR_L_GetSpatialRef(L->layer));
    OSRSetAxisMappingStrategy(ls, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OSRIsSame(ls, srs) ? NULL : OCTNewCoordinateTransformation(ls, srs);
    int cap = 0, n = 0, rc = 0;
    OGRGeometryH *geoms = NULL;
    double *burn = NULL;
    OGRFeatureH f;
    OGR_L_ResetReading(L->layer);
    while (!rc && (f = OGR_L_GetNextFeature(L->layer)) != NULL) {
        OGRGeometryH g = OGR_F_GetGeometryRef(f);
        if (g && OGR_F_IsFieldSetAndNotNull(f, L->field)) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                OGRGeometryH *ng = cmir__realloc(geoms, sizeof(*ng) * (size_t)cap);
                double *nb = ng ? cmir__realloc(burn, sizeof(double) * (size_t)cap) : NULL;
                if (ng)
                    geoms = ng;
                if (nb)
                    burn = nb;
                if (!ng || !nb)
                    rc = CMIR_ENOMEM;
            }
            if (!rc) {
                OGRGeometryH c = OGR_G_Clone(g);
                if (ct && OGR_G_Transform(c, ct) != OGRERR_NONE) {
                    OGR_G_DestroyGeometry(c); /* outside the scene's CRS domain: skip */
                } else {
                    geoms[n] = c;
                    burn[n] = class_of(L, OGR_F_GetFieldAsString(f, L->field));
                    n++;
                }
            }
        }
        OGR_F_Destroy(f);
    }
    if (!rc && n) {
        int band = 1;
        cmir__gdal_quiet_begin();
        if (GDALRasterizeGeometries(ds, 1, &band, n, geoms, NULL, NULL, burn, NULL, NULL, NULL) != CE_None)
            rc = cmir__gdal_error(CMIR_EIO, scene_path, "cannot rasterise the label polygons");
        cmir__gdal_quiet_end();
    }
    for (int i = 0; i < n; i++)
        OGR_G_DestroyGeometry(geoms[i]);
    cmir__free(geoms);
    cmir__free(burn);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(ls);
    if (rc)
        GDALClose(ds);
    else
        *out = ds;
    return rc;
}

static int warp_raster(cmir__labels *L, const char *scene_path, const char *wkt, const double gt[6],
                       int gw, int gh, GDALDatasetH *out)
{
    char te[4][40], ts[2][24];
    snprintf(te[0], sizeof te[0], "%.17g", gt[0]);
    snprintf(te[1], sizeof te[1], "%.17g", gt[3] + gh * gt[5]);
    snprintf(te[2], sizeof te[2], "%.17g", gt[0] + gw * gt[1]);
    snprintf(te[3], sizeof te[3], "%.17g", gt[3]);
    snprintf(ts[0], sizeof ts[0], "%d", gw);
    snprintf(ts[1], sizeof ts[1], "%d", gh);
    const char *argv[] = {"-of", "MEM", "-t_srs", wkt, "-te", te[0], te[1], te[2], te[3], "-ts",
                          ts[0], ts[1], "-r", "mode", "-ot", "UInt16", "-dstnodata", "0", "-q", NULL};
    GDALWarpAppOptions *wo = GDALWarpAppOptionsNew((char **)argv, NULL);
    if (!wo)
        return cmir__gdal_error(CMIR_EINVAL, scene_path, "bad warp options for labels");
    int err = 0;
    cmir__gdal_quiet_begin();
    *out = GDALWarp("", NULL, L->n_src, L->srcs, wo, &err);
    GDALWarpAppOptionsFree(wo);
    int rc = *out ? 0 : cmir__gdal_error(CMIR_EIO, scene_path, "cannot resample the label raster onto the scene");
    cmir__gdal_quiet_end();
    return rc;
}

int cmir__labels_scene(cmir__labels *L, const cmir_tile_params *p, const char *scene_path,
                       OGRSpatialReferenceH srs, const char *wkt, const double pan_gt[6], int gw,
                       int gh, int ratio, GDALDatasetH *out)
{
    (void)p;
    *out = NULL;
    if (!L->kind)
        return 0;
    double gt[6] = {pan_gt[0], pan_gt[1] * ratio, 0, pan_gt[3], 0, pan_gt[5] * ratio};
    if (gw < 1 || gh < 1)
        return cmir__error(CMIR_EINVAL, "%s: scene smaller than one MS pixel", scene_path);
    return L->kind == 1 ? warp_raster(L, scene_path, wkt, gt, gw, gh, out)
                        : rasterise(L, scene_path, srs, wkt, gt, gw, gh, out);
}

int cmir__labels_tile(const cmir__labels *L, GDALDatasetH lab, int x0, int y0, int n,
                      uint16_t *buf, const cmir_tile_params *p, int *label, uint8_t *mlab)
{
    *label = 0;
    cmir__gdal_quiet_begin();
    CPLErr e = GDALRasterIO(GDALGetRasterBand(lab, 1), GF_Read, x0, y0, n, n, buf, n, n, GDT_UInt16, 0, 0);
    int rc = e == CE_None ? 0 : cmir__gdal_error(CMIR_EIO, "labels", "cannot read the label grid");
    cmir__gdal_quiet_end();
    if (rc)
        return rc;
    const int C = L->n_classes;
    int *count = cmir__calloc((size_t)C + 1, sizeof(int));
    if (!count)
        return CMIR_ENOMEM;
    for (int i = 0; i < n * n; i++)
        count[buf[i] <= C ? buf[i] : 0]++;
    int best = 0; /* the most frequent class; ties go to the lower class */
    for (int c = 1; c <= C; c++)
        if (count[c] > (best ? count[best] : 0))
            best = c;
    double npix = (double)n * n;
    if (best && count[best] / npix >= p->label_min_frac)
        *label = best;
    if (mlab)
        for (int c = 1; c <= C; c++)
            mlab[c - 1] = p->multilabel_frac > 0 && count[c] / npix >= p->multilabel_frac;
    cmir__free(count);
    return 0;
}
