/* GeoTIFF output of the synth module: rasters written with GDAL's GTiff
 * driver (tiled DEFLATE defaults, user creation options) under temporary
 * names, renamed together once complete; GDAL messages become errors. */
#include "synth_internal.h"
#include "../geo/gdal_util.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const unsigned char cmir__sy_class_rgb[9][3] = {
    {0, 0, 0},       /* 0 unlabelled */
    {0, 170, 170},   /* 1 aquafarm */
    {255, 255, 255}, /* 2 cloud */
    {0, 100, 0},     /* 3 forest */
    {200, 30, 30},   /* 4 high building */
    {250, 150, 110}, /* 5 low building */
    {230, 215, 80},  /* 6 farm land */
    {70, 130, 255},  /* 7 river */
    {0, 20, 140},    /* 8 water */
};

char *cmir__sy_epsg_wkt(int epsg)
{
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    char *wkt = NULL, *out = NULL;
    if (!srs) {
        cmir__error(CMIR_ENOMEM, "synth: cannot create a spatial reference");
        return NULL;
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    if (OSRImportFromEPSG(srs, epsg) != OGRERR_NONE)
        cmir__error(CMIR_EINVAL, "synth: epsg: EPSG:%d is not a CRS known to PROJ", epsg);
    else if (!OSRIsProjected(srs) || fabs(OSRGetLinearUnits(srs, NULL) - 1.0) > 1e-12)
        cmir__error(CMIR_EINVAL, "synth: epsg: EPSG:%d is not a projected CRS in metres", epsg);
    else if (OSRExportToWkt(srs, &wkt) != OGRERR_NONE || !wkt)
        cmir__gdal_error(CMIR_EINVAL, "EPSG", NULL);
    else
        out = cmir__strdup(wkt);
    CPLPopErrorHandler();
    CPLFree(wkt);
    OSRDestroySpatialReference(srs);
    return out;
}

static char *aux_name(const char *path)
{
    size_t n = strlen(path) + 9;
    char *s = cmir__malloc(n);
    if (s)
        snprintf(s, n, "%s.aux.xml", path);
    return s;
}

static void remove_with_aux(const char *path)
{
    unlink(path);
    char *a = aux_name(path);
    if (a) {
        unlink(a);
        cmir__free(a);
    }
}

static char **make_options(const sy_raster *r, const char *const *co)
{
    char **o = NULL;
    o = CSLSetNameValue(o, "TILED", "YES");
    o = CSLSetNameValue(o, "COMPRESS", "DEFLATE");
    if (r->nbands >= 3) /* else GTiff makes 4 Byte bands RGB + alpha */
        o = CSLSetNameValue(o, "PHOTOMETRIC", "MINISBLACK");
    for (int i = 0; co && co[i]; i++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(co[i], &key);
        if (key && val)
            o = CSLSetNameValue(o, key, val);
        CPLFree(key);
    }
    return o;
}

static int fill(GDALDatasetH ds, const sy_raster *r)
{
    if (GDALSetGeoTransform(ds, (double *)r->gt) != CE_None)
        return -1;
    if (r->wkt && GDALSetProjection(ds, r->wkt) != CE_None)
        return -1;
    for (int i = 0; r->metadata && r->metadata[i]; i++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(r->metadata[i], &key);
        if (key && val)
            GDALSetMetadataItem(ds, key, val, NULL);
        CPLFree(key);
    }
    for (int b = 0; b < r->nbands; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        if (r->band_desc && r->band_desc[b])
            GDALSetDescription(band, r->band_desc[b]);
        if (r->color_interp)
            GDALSetRasterColorInterpretation(band, (GDALColorInterp)r->color_interp[b]);
        if (r->has_nodata && GDALSetRasterNoDataValue(band, r->nodata) != CE_None)
            return -1;
        if (r->has_scale) {
            GDALSetRasterScale(band, r->scale);
            GDALSetRasterOffset(band, r->offset);
        }
        if (r->is_class) {
            GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
            const char *names[CMIR_SYNTH_NCLASSES + 2];
            names[0] = "unlabelled";
            for (int c = 0; c <= CMIR_SYNTH_NCLASSES; c++) {
                GDALColorEntry e = {cmir__sy_class_rgb[c][0], cmir__sy_class_rgb[c][1],
                                    cmir__sy_class_rgb[c][2], 255};
                GDALSetColorEntry(ct, c, &e);
                if (c > 0)
                    names[c] = cmir_synth_class_name(c);
            }
            names[CMIR_SYNTH_NCLASSES + 1] = NULL;
            GDALSetRasterColorTable(band, ct);
            GDALDestroyColorTable(ct);
            GDALSetRasterCategoryNames(band, (char **)names);
        }
        if (r->ctable)
            GDALSetRasterColorTable(band, (GDALColorTableH)r->ctable);
        if (r->categories)
            GDALSetRasterCategoryNames(band, r->categories);
    }
    if (GDALDatasetRasterIO(ds, GF_Write, 0, 0, r->w, r->h, (void *)r->data, r->w, r->h,
                            (GDALDataType)r->gdt, r->nbands, NULL, 0, 0, 0) != CE_None)
        return -1;
    return 0;
}

int cmir__sy_check_options(const char *const *co)
{
    if (!co || !co[0])
        return 0;
    if (!GDALGetDriverByName("GTiff"))
        GDALAllRegister();
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    if (!drv)
        return cmir__error(CMIR_EUNSUPPORTED, "gdal: the GTiff driver is not available");
    for (int i = 0; co[i]; i++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(co[i], &key);
        CPLFree(key);
        if (!val)
            return cmir__error(CMIR_EINVAL, "synth: creation option '%s' is not NAME=VALUE", co[i]);
    }
    sy_raster r = {.nbands = 4};
    char **opts = make_options(&r, co);
    CPLPushErrorHandler(CPLQuietErrorHandler);
    CPLErrorReset();
    int ok = GDALValidateCreationOptions(drv, opts);
    int rc = ok ? 0 : cmir__gdal_error(CMIR_EINVAL, "GTiff creation options", NULL);
    CPLPopErrorHandler();
    CSLDestroy(opts);
    return rc;
}

int cmir__sy_write(sy_outset *o, const char *final, const sy_raster *r, const char *const *co)
{
    if (o->n >= 4)
        return cmir__error(CMIR_EINVAL, "synth: too many outputs in one set");
    /* GDAL creates the file itself, so it gets the usual permissions */
    int rc = cmir__atomic_open(&o->af[o->n], final, CMIR__ATOMIC_NAME_ONLY);
    if (rc)
        return rc;
    const char *tmp = o->af[o->n++].tmp;
    if (!GDALGetDriverByName("GTiff"))
        GDALAllRegister();
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    if (!drv)
        return cmir__error(CMIR_EUNSUPPORTED, "gdal: %s: the GTiff driver is not available", final);
    char **opts = make_options(r, co);
    CPLPushErrorHandler(CPLQuietErrorHandler);
    CPLErrorReset();
    GDALDatasetH ds = GDALCreate(drv, tmp, r->w, r->h, r->nbands, (GDALDataType)r->gdt, opts);
    if (!ds) {
        rc = cmir__gdal_error(CMIR_EIO, final, NULL);
    } else {
        if (fill(ds, r) != 0)
            rc = cmir__gdal_error(CMIR_EIO, final, NULL);
        GDALClose(ds);
        if (!rc && CPLGetLastErrorType() == CE_Failure)
            rc = cmir__gdal_error(CMIR_EIO, final, NULL);
    }
    CPLPopErrorHandler();
    CSLDestroy(opts);
    if (rc) /* say which file, not the temporary name */
        return rc;
    return 0;
}

int cmir__sy_commit(sy_outset *o)
{
    /* Refuse before renaming anything when a target cannot be replaced,
     * so that the set is replaced together or not at all. */
    for (int i = 0; i < o->n; i++) {
        struct stat st;
        if (stat(o->af[i].path, &st) == 0 && S_ISDIR(st.st_mode))
            return cmir__error(CMIR_EIO, "%s: is a directory", o->af[i].path);
    }
    for (int i = 0; i < o->n; i++) {
        cmir__atomic_file *af = &o->af[i];
        if (!af->open)
            continue;
        char *ta = aux_name(af->tmp), *fa = aux_name(af->path);
        if (!ta || !fa) {
            cmir__free(ta);
            cmir__free(fa);
            return CMIR_ENOMEM;
        }
        struct stat st;
        int rc = 0;
        if (stat(ta, &st) == 0) {
            if (rename(ta, fa) != 0)
                rc = cmir__error(CMIR_EIO, "%s: cannot rename the temporary file over it: %s", fa,
                                 strerror(errno));
        } else {
            unlink(fa); /* a stale sidecar would describe another raster */
        }
        cmir__free(ta);
        cmir__free(fa);
        if (!rc)
            rc = cmir__atomic_commit(af); /* fsync, rename, directory fsync */
        if (rc)
            return rc;
    }
    return 0;
}

void cmir__sy_outset_clear(sy_outset *o)
{
    for (int i = 0; i < o->n; i++) {
        if (o->af[i].open && o->af[i].tmp)
            remove_with_aux(o->af[i].tmp);
        cmir__atomic_abort(&o->af[i]);
    }
    memset(o, 0, sizeof *o);
}
