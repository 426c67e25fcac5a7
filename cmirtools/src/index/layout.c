/* The index's GeoPackage layout for writers (layers, fields, embedding
 * chunks, the cmir_meta table) and the accessors the tools layer uses on
 * an open index. */
#include "index_internal.h"

#include <cpl_conv.h>
#include <stdio.h>
#include <string.h>

const char *cmir__index_path(const cmir_index *ix) { return ix ? ix->path : NULL; }
OGRSpatialReferenceH cmir__index_srs(const cmir_index *ix) { return ix ? ix->srs : NULL; }
const char *cmir__index_crs_wkt(const cmir_index *ix) { return ix ? ix->crs_wkt : NULL; }

static OGRFieldDefnH field(const char *name, OGRFieldType t)
{
    return OGR_Fld_Create(name, t);
}

int cmir__index_create_layers(GDALDatasetH ds, const char *path, OGRSpatialReferenceH srs,
                              OGRLayerH *tiles, OGRLayerH *emb, OGRLayerH *meta)
{
    char *opts[] = {"FID=fid", "SPATIAL_INDEX=YES", NULL};
    *tiles = GDALDatasetCreateLayer(ds, "tiles", srs, wkbPolygon, opts);
    *emb = GDALDatasetCreateLayer(ds, "cmir_embeddings", NULL, wkbNone, NULL);
    *meta = GDALDatasetCreateLayer(ds, "cmir_meta", NULL, wkbNone, NULL);
    if (!*tiles || !*emb || !*meta)
        return cmir__gdal_error(CMIR_EIO, path, "cannot create the index layers");
    struct {
        OGRLayerH l;
        const char *name;
        OGRFieldType t;
    } f[] = {{*tiles, "row", OFTInteger64},       {*tiles, "tile_id", OFTInteger64},
             {*tiles, "modality", OFTString},     {*tiles, "archive", OFTString},
             {*tiles, "scene", OFTString},        {*tiles, "window", OFTString},
             {*tiles, "class", OFTInteger},       {*tiles, "class_name", OFTString},
             {*tiles, "labels", OFTString},       {*emb, "first_row", OFTInteger64},
             {*emb, "n_rows", OFTInteger},        {*emb, "dim", OFTInteger},
             {*emb, "data", OFTBinary},           {*emb, "modality", OFTBinary},
             {*meta, "key", OFTString},
             {*meta, "value", OFTString}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        OGRFieldDefnH d = field(f[i].name, f[i].t);
        OGRErr e = OGR_L_CreateField(f[i].l, d, TRUE);
        OGR_Fld_Destroy(d);
        if (e != OGRERR_NONE)
            return cmir__gdal_error(CMIR_EIO, path, "cannot create the index fields");
    }
    return 0;
}

int cmir__index_write_chunk(OGRLayerH emb, const char *path, int64_t first, int64_t n, int dim,
                            const float *v, const uint8_t *mod)
{
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(emb));
    if (!f)
        return CMIR_ENOMEM;
    OGR_F_SetFieldInteger64(f, 0, first);
    OGR_F_SetFieldInteger(f, 1, (int)n);
    OGR_F_SetFieldInteger(f, 2, dim);
    /* float32, little-endian (x86 and ARM Linux are little-endian) */
    OGR_F_SetFieldBinary(f, 3, (int)(n * dim * (int64_t)sizeof(float)), (const void *)v);
    OGR_F_SetFieldBinary(f, 4, (int)n, (const void *)mod);
    OGRErr e = OGR_L_CreateFeature(emb, f);
    OGR_F_Destroy(f);
    return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write embeddings");
}

int cmir__index_set_meta(OGRLayerH meta, const char *path, const char *key, const char *value)
{
    OGRFeatureH f;
    OGR_L_ResetReading(meta);
    while ((f = OGR_L_GetNextFeature(meta)) != NULL) {
        if (!strcmp(OGR_F_GetFieldAsString(f, 0), key)) {
            OGR_F_SetFieldString(f, 1, value);
            OGRErr e = OGR_L_SetFeature(meta, f);
            OGR_F_Destroy(f);
            return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot update index metadata");
        }
        OGR_F_Destroy(f);
    }
    f = OGR_F_Create(OGR_L_GetLayerDefn(meta));
    OGR_F_SetFieldString(f, 0, key);
    OGR_F_SetFieldString(f, 1, value);
    OGRErr e = OGR_L_CreateFeature(meta, f);
    OGR_F_Destroy(f);
    return e == OGRERR_NONE ? 0 : cmir__gdal_error(CMIR_EIO, path, "cannot write index metadata");
}

char *cmir__index_get_meta(OGRLayerH meta, const char *key)
{
    OGRFeatureH f;
    char *out = NULL;
    OGR_L_ResetReading(meta);
    while (!out && (f = OGR_L_GetNextFeature(meta)) != NULL) {
        if (!strcmp(OGR_F_GetFieldAsString(f, 0), key))
            out = cmir__strdup(OGR_F_GetFieldAsString(f, 1));
        OGR_F_Destroy(f);
    }
    return out;
}

