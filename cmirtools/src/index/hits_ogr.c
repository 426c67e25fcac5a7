/* The OGR writer of search results: cmir_hits as layer "cmir_hits" of any
 * OGR dataset (footprints in WGS84 lon/lat or -t_srs; GeoJSON per RFC 7946 with the
 * queries in its description), to a file written atomically. */
#include "index_internal.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <string.h>
#include <strings.h>

/* The queries' descriptions joined by "; " (cmir__free), or NULL. */
static char *joined_descriptions(const cmir_hits *h)
{
    size_t len = 1;
    int nq = cmir_hits_query_count(h);
    for (int i = 0; i < nq; i++)
        len += strlen(cmir_hits_query_description(h, i)) + 2;
    char *j = cmir__malloc(len);
    if (!j)
        return NULL;
    j[0] = '\0';
    for (int i = 0; i < nq; i++) {
        if (i)
            strcat(j, "; ");
        strcat(j, cmir_hits_query_description(h, i));
    }
    return j;
}

static OGRLayerH create_layer(const cmir_hits *h, GDALDatasetH ds, const char *path, OGRSpatialReferenceH srs,
                              int wgs84, const char *const *layer_options, int *rc)
{
    GDALDriverH drv = GDALGetDatasetDriver(ds);
    char **opts = NULL, *joined = NULL;
    if (drv && !strcasecmp(GDALGetDriverShortName(drv), "GeoJSON")) {
        if (!(joined = joined_descriptions(h))) {
            *rc = CMIR_ENOMEM;
            return NULL;
        }
        if (wgs84) /* RFC 7946 is WGS84 only; GDAL writes another CRS as a "crs" member */
            opts = CSLSetNameValue(opts, "RFC7946", "YES");
        opts = CSLSetNameValue(opts, "WRITE_BBOX", "YES");
        opts = CSLSetNameValue(opts, "DESCRIPTION", joined);
    }
    for (int i = 0; layer_options && layer_options[i]; i++)
        opts = CSLAddString(opts, layer_options[i]);
    OGRLayerH lyr = GDALDatasetCreateLayer(ds, "cmir_hits", srs, wkbPolygon, opts);
    CSLDestroy(opts);
    cmir__free(joined);
    if (!lyr) {
        *rc = cmir__gdal_error(CMIR_EIO, path, "cannot create the output layer");
        return NULL;
    }
    static const char *const fn[] = {"query", "rank", "distance", "row", "tile_id", "modality", "archive",
                                     "scene", "window", "class", "class_name", "labels", "query_desc"};
    static const OGRFieldType ft[] = {OFTInteger, OFTInteger, OFTReal,   OFTInteger64, OFTInteger64,
                                      OFTString,  OFTString,  OFTString, OFTString,    OFTInteger,
                                      OFTString,  OFTString,  OFTString};
    for (size_t i = 0; i < sizeof fn / sizeof *fn; i++) {
        OGRFieldDefnH d = OGR_Fld_Create(fn[i], ft[i]);
        OGRErr e = OGR_L_CreateField(lyr, d, TRUE);
        OGR_Fld_Destroy(d);
        if (e != OGRERR_NONE) {
            *rc = cmir__gdal_error(CMIR_EIO, path, "cannot create the output fields");
            return NULL;
        }
    }
    return lyr;
}

/* Hit i as a feature of lyr; its footprint transformed by ct (NULL: as is). */
static int write_hit(const cmir_hits *h, int64_t i, OGRLayerH lyr, OGRCoordinateTransformationH ct,
                     const char *path)
{
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(lyr));
    if (!f)
        return CMIR_ENOMEM;
    OGR_F_SetFieldInteger(f, 0, cmir_hits_query(h, i));
    OGR_F_SetFieldInteger(f, 1, cmir_hits_rank(h, i));
    OGR_F_SetFieldDouble(f, 2, cmir_hits_distance(h, i));
    OGR_F_SetFieldInteger64(f, 3, cmir_hits_row(h, i));
    for (int j = 0; j < CMIR_HIT_N_ATTRS; j++) {
        const char *v = cmir_hits_attribute(h, i, (cmir_hit_attr)j);
        if (v)
            OGR_F_SetFieldString(f, 4 + j, v);
    }
    OGR_F_SetFieldString(f, 4 + CMIR_HIT_N_ATTRS, cmir_hits_query_description(h, cmir_hits_query(h, i)));
    const double *xy;
    int np = cmir_hits_footprint(h, i, &xy);
    if (np > 0) {
        OGRGeometryH ring = OGR_G_CreateGeometry(wkbLinearRing), poly = OGR_G_CreateGeometry(wkbPolygon);
        for (int p = 0; p < np; p++)
            OGR_G_AddPoint_2D(ring, xy[2 * p], xy[2 * p + 1]);
        OGR_G_AddGeometryDirectly(poly, ring);
        /* footprints were densified when the index was built */
        if (ct && OGR_G_Transform(poly, ct) != OGRERR_NONE)
            OGR_G_DestroyGeometry(poly);
        else
            OGR_F_SetGeometryDirectly(f, poly);
    }
    OGRErr e = OGR_L_CreateFeature(lyr, f);
    OGR_F_Destroy(f);
    return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write a hit");
}

/* The output CRS: t_srs, or WGS84 lon/lat; NULL with the error set. */
static OGRSpatialReferenceH output_srs(const char *t_srs, int *wgs84)
{
    OGRSpatialReferenceH wgs = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG), s = wgs;
    OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);
    if (t_srs && *t_srs) {
        s = OSRNewSpatialReference(NULL);
        OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
        if (OSRSetFromUserInput(s, t_srs) != OGRERR_NONE) {
            cmir__gdal_error(CMIR_EINVAL, t_srs, "not a CRS (t_srs)");
            OSRDestroySpatialReference(s);
            s = NULL;
        }
    }
    *wgs84 = s && OSRIsSame(s, wgs);
    if (s != wgs)
        OSRDestroySpatialReference(wgs);
    return s;
}

int cmir__hits_fill(const cmir_hits *h, GDALDatasetH ds, const char *path, const char *const *layer_options,
                    const char *t_srs)
{
    int rc = 0, wgs84 = 0;
    OGRSpatialReferenceH dst = output_srs(t_srs, &wgs84), src = cmir__hits_srs(h);
    if (!dst)
        return CMIR_EINVAL;
    OGRCoordinateTransformationH ct = src && !OSRIsSame(dst, src) ? OCTNewCoordinateTransformation(src, dst) : NULL;
    if (src && !ct && !OSRIsSame(dst, src))
        rc = cmir__gdal_error(CMIR_EINVAL, t_srs, "cannot transform the footprints into this CRS (t_srs)");
    OGRLayerH lyr = rc ? NULL : create_layer(h, ds, path, dst, wgs84, layer_options, &rc);
    for (int64_t i = 0; !rc && i < cmir_hits_count(h); i++)
        rc = write_hit(h, i, lyr, ct, path);
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(dst);
    return rc;
}

int cmir__hits_write_file(const cmir_hits *h, const char *file, const char *path, cmir_search_params p)
{
    const char *fmt = p.format ? p.format : "GeoJSON";
    GDALDriverH drv = GDALGetDriverByName(fmt);
    if (!drv)
        return cmir__error(CMIR_EINVAL, "%s: unknown output format '%s' (see --formats)", path, fmt);
    GDALDatasetH out = GDALCreate(drv, file, 0, 0, 0, GDT_Unknown, NULL);
    if (!out)
        return cmir__gdal_error(CMIR_EIO, path, "cannot create the output");
    int rc = cmir__hits_fill(h, out, path, p.layer_options, p.t_srs);
    GDALClose(out);
    return rc;
}

int cmir_hits_write(const cmir_hits *h, const char *path, cmir_search_params p)
{
    if (!h || !path)
        return cmir__error(CMIR_EINVAL, "cmir_hits_write: need hits and an output path");
    cmir__atomic_file af;
    int rc = cmir__atomic_open(&af, path, CMIR__ATOMIC_NAME_ONLY);
    if (rc)
        return rc;
    cmir__gdal_quiet_begin();
    rc = cmir__hits_write_file(h, af.tmp, path, p);
    cmir__gdal_quiet_end();
    if (rc)
        cmir__atomic_abort(&af);
    else
        rc = cmir__atomic_commit(&af);
    return rc;
}

int cmir_hits_to_ogr(const cmir_hits *h, void *gdal_dataset, const char *const *layer_options)
{
    if (!h || !gdal_dataset)
        return cmir__error(CMIR_EINVAL, "cmir_hits_to_ogr: need hits and a dataset");
    cmir__gdal_quiet_begin();
    int rc = cmir__hits_fill(h, (GDALDatasetH)gdal_dataset, GDALGetDescription(gdal_dataset), layer_options, NULL);
    OGRLayerH lyr = rc ? NULL : GDALDatasetGetLayerByName((GDALDatasetH)gdal_dataset, "cmir_hits");
    char *joined = lyr ? joined_descriptions(h) : NULL;
    if (lyr && !joined)
        rc = CMIR_ENOMEM;
    else if (lyr && GDALSetMetadataItem((GDALMajorObjectH)lyr, "DESCRIPTION", joined, NULL) != CE_None)
        rc = cmir__gdal_error(CMIR_EIO, GDALGetDescription(gdal_dataset), "cannot describe the layer");
    cmir__free(joined);
    cmir__gdal_quiet_end();
    return rc;
}
