/* Index mode: land-cover classes of a real multispectral raster from
 * spectral indices, a label source for scenes that have none: water
 * (NDWI > 0), cloud (very bright, little vegetation), then the land split
 * into terciles of NDVI (built or bare, sparse and dense vegetation). */
#include "synth_internal.h"

#include <cpl_string.h>
#include <gdal.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOUD_SD 3.0 /* brightness above mean + CLOUD_SD deviations (of valid pixels) */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The classes of the w*h pixels of bands v[0..3] (blue, green, red, NIR;
 * NaN = nodata) into cls (0 = nodata). */
static int classify(float *const v[4], size_t n, uint8_t *cls)
{
    double s = 0, s2 = 0;
    size_t nv = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        int ok = isfinite(v[0][i]) && isfinite(v[1][i]) && isfinite(v[2][i]) && isfinite(v[3][i]) &&
                 (v[0][i] != 0 || v[1][i] != 0 || v[2][i] != 0 || v[3][i] != 0); /* DN 0 in every band: fill */
        cls[i] = ok ? 255 : 0;
        if (ok) {
            double b = (v[0][i] + v[1][i] + v[2][i]) / 3.0;
            s += b;
            s2 += b * b;
            nv++;
        }
    }
    if (!nv)
        return cmir__error(CMIR_EINVAL, "no valid pixel in the four bands");
    double mu = s / (double)nv, sd = sqrt(fmax(0, s2 / (double)nv - mu * mu));
    float *ndvi = cmir__malloc(sizeof(float) * n);
    if (!ndvi)
        return CMIR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!cls[i])
            continue;
        double g = v[1][i], r = v[2][i], nir = v[3][i], b = (v[0][i] + g + r) / 3.0;
        double nd = (nir - r) / fmax(1e-12, fabs(nir + r)), nw = (g - nir) / fmax(1e-12, fabs(g + nir));
        if (nw > 0)
            cls[i] = 1;
        else if (b > mu + CLOUD_SD * sd && nd < 0.2)
            cls[i] = 2;
        else
            ndvi[nl++] = (float)nd;
    }
    float t1 = 0, t2 = 0;
    if (nl) {
        float *srt = cmir__malloc(sizeof(float) * nl);
        if (!srt) {
            cmir__free(ndvi);
            return CMIR_ENOMEM;
        }
        memcpy(srt, ndvi, sizeof(float) * nl);
        qsort(srt, nl, sizeof(float), cmp_float);
        t1 = srt[nl / 3];
        t2 = srt[2 * nl / 3];
        cmir__free(srt);
    }
    for (size_t i = 0, k = 0; i < n; i++)
        if (cls[i] == 255) {
            float nd = ndvi[k++];
            cls[i] = nd < t1 ? 3 : nd < t2 ? 4 : 5;
        }
    cmir__free(ndvi);
    return 0;
}

int cmir_synth_index_classes(const char *ms_path, const int bands[4], const char *out_path,
                             const char *const *creation_options)
{
    GDALAllRegister();
    GDALDatasetH ds = GDALOpen(ms_path, GA_ReadOnly);
    if (!ds)
        return cmir__error(CMIR_EIO, "%s: cannot open (%s)", ms_path, CPLGetLastErrorMsg());
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds), nb = GDALGetRasterCount(ds);
    size_t n = (size_t)w * (size_t)h;
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++)
        if (bands[k] < 1 || bands[k] > nb)
            rc = cmir__error(CMIR_EINVAL, "%s: band %d asked, the raster has %d", ms_path, bands[k], nb);
    float *v[4] = {NULL, NULL, NULL, NULL};
    uint8_t *cls = rc ? NULL : cmir__malloc(n);
    if (!rc && !cls)
        rc = CMIR_ENOMEM;
    for (int k = 0; k < 4 && !rc; k++) {
        GDALRasterBandH b = GDALGetRasterBand(ds, bands[k]);
        if (!(v[k] = cmir__malloc(sizeof(float) * n)))
            rc = CMIR_ENOMEM;
        else if (GDALRasterIO(b, GF_Read, 0, 0, w, h, v[k], w, h, GDT_Float32, 0, 0) != CE_None)
            rc = cmir__error(CMIR_EIO, "%s: cannot read band %d (%s)", ms_path, bands[k], CPLGetLastErrorMsg());
        int has = 0;
        double nd = rc ? 0 : GDALGetRasterNoDataValue(b, &has);
        for (size_t i = 0; !rc && has && i < n; i++)
            if (v[k][i] == (float)nd)
                v[k][i] = NAN;
    }
    if (!rc)
        rc = classify(v, n, cls);
    if (!rc) {
        static const char *const desc[1] = {"class"};
        char *cats[] = {"", "water", "cloud", "built or bare", "sparse vegetation", "dense vegetation", NULL};
        char *meta[2] = {"CMIR_LABELS=spectral indices: NDWI > 0 water; bright and NDVI < 0.2 cloud; NDVI terciles",
                         NULL};
        sy_raster r = {.w = w, .h = h, .nbands = 1, .gdt = GDT_Byte, .data = cls, .wkt = GDALGetProjectionRef(ds),
                       .band_desc = desc, .has_nodata = 1, .nodata = 0, .categories = cats, .metadata = meta};
        if (GDALGetGeoTransform(ds, r.gt) != CE_None)
            rc = cmir__error(CMIR_EINVAL, "%s: no geotransform", ms_path);
        sy_outset o;
        memset(&o, 0, sizeof o);
        if (!rc)
            rc = cmir__sy_write(&o, out_path, &r, creation_options);
        if (!rc)
            rc = cmir__sy_commit(&o);
        cmir__sy_outset_clear(&o);
    }
    for (int k = 0; k < 4; k++)
        cmir__free(v[k]);
    cmir__free(cls);
    GDALClose(ds);
    return rc;
}
