/* Wald mode: a real multispectral raster (several single-band files, one
 * multi-band file or a VRT) becomes a PAN/MS pair by Wald's protocol, with
 * nodata propagated, the georeferencing kept, optional land-cover labels
 * resampled onto the output grid, and Float32 or scaled UInt16 output. */
#include "synth_internal.h"
#include "../geo/gdal_util.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdalwarper.h>
#include <ogr_srs_api.h>

#include <float.h>
#include <stdio.h>
#include <string.h>

typedef struct wald_in {
    GDALDatasetH ds[256];
    int n;
    int w, h;
    double gt[6];
    const char *wkt;
} wald_in;

static int same_crs(const char *a, const char *b)
{
    if (!a[0] || !b[0] || !strcmp(a, b))
        return 1;
    OGRSpatialReferenceH x = OSRNewSpatialReference(a), y = OSRNewSpatialReference(b);
    int same = x && y && OSRIsSame(x, y);
    OSRDestroySpatialReference(x);
    OSRDestroySpatialReference(y);
    return same;
}

static int open_inputs(wald_in *in, const char *const *inputs, int n)
{
    if (n > 256)
        return cmir__error(CMIR_EINVAL, "synth: at most 256 inputs, got %d", n);
    for (int i = 0; i < n; i++) {
        if (!inputs[i])
            return cmir__error(CMIR_EINVAL, "synth: input %d is NULL", i + 1);
        CPLErrorReset();
        GDALDatasetH ds = GDALOpen(inputs[i], GA_ReadOnly);
        if (!ds)
            return cmir__gdal_error(CMIR_ENOTFOUND, inputs[i], NULL);
        in->ds[in->n++] = ds;
        double gt[6];
        if (GDALGetGeoTransform(ds, gt) != CE_None)
            return cmir__error(CMIR_EFORMAT, "%s: has no geotransform", inputs[i]);
        if (gt[2] != 0.0 || gt[4] != 0.0)
            return cmir__error(CMIR_EUNSUPPORTED, "%s: rotated geotransforms are not supported",
                               inputs[i]);
        int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
        const char *wkt = GDALGetProjectionRef(ds);
        if (i == 0) {
            in->w = w;
            in->h = h;
            memcpy(in->gt, gt, sizeof gt);
            in->wkt = wkt ? wkt : "";
            continue;
        }
        if (w != in->w || h != in->h)
            return cmir__error(CMIR_EFORMAT, "%s: size %dx%d differs from %s (%dx%d)", inputs[i], w,
                               h, inputs[0], in->w, in->h);
        for (int k = 0; k < 6; k++)
            if (fabs(gt[k] - in->gt[k]) > 1e-6 * fabs(in->gt[1]))
                return cmir__error(CMIR_EFORMAT, "%s: geotransform differs from %s", inputs[i],
                                   inputs[0]);
        if (!same_crs(wkt ? wkt : "", in->wkt))
            return cmir__error(CMIR_EFORMAT, "%s: CRS differs from %s", inputs[i], inputs[0]);
    }
    return 0;
}

/* Band k (1-based) of the stack of all inputs' bands. */
static GDALRasterBandH stack_band(const wald_in *in, int k)
{
    for (int i = 0; i < in->n; i++) {
        int nb = GDALGetRasterCount(in->ds[i]);
        if (k <= nb)
            return GDALGetRasterBand(in->ds[i], k);
        k -= nb;
    }
    return NULL;
}

/* Labels resampled onto the class grid: values 1..255, 0 = nodata. */
static int read_labels(const cmir_synth_params *p, const wald_in *in, int cw, int ch,
                       const double cgt[6], uint8_t *cls, GDALColorTableH *ct, char ***cats)
{
    CPLErrorReset();
    GDALDatasetH lab = GDALOpen(p->labels, GA_ReadOnly);
    if (!lab)
        return cmir__gdal_error(CMIR_ENOTFOUND, p->labels, NULL);
    int rc = 0;
    GDALDatasetH dst = NULL;
    float *buf = NULL;
    double lgt[6];
    if (GDALGetRasterCount(lab) < 1 || GDALGetGeoTransform(lab, lgt) != CE_None) {
        rc = cmir__error(CMIR_EFORMAT, "%s: labels need one band and a geotransform", p->labels);
        goto done;
    }
    const char *lwkt = GDALGetProjectionRef(lab);
    GDALDriverH mem = GDALGetDriverByName("MEM");
    dst = mem ? GDALCreate(mem, "", cw, ch, 1, GDT_Float32, NULL) : NULL;
    buf = cmir__malloc(sizeof(float) * (size_t)cw * (size_t)ch);
    if (!dst || !buf) {
        rc = dst ? CMIR_ENOMEM : cmir__gdal_error(CMIR_EIO, "MEM", NULL);
        goto done;
    }
    GDALSetGeoTransform(dst, (double *)cgt);
    GDALSetProjection(dst, in->wkt);
    GDALRasterBandH db = GDALGetRasterBand(dst, 1);
    GDALSetRasterNoDataValue(db, -3.0e38);
    GDALFillRaster(db, -3.0e38, 0);
    /* Mode when a class pixel spans several label pixels, else nearest. */
    double area_c = fabs(cgt[1] * cgt[5]), area_l = fabs(lgt[1] * lgt[5]);
    GDALResampleAlg alg = area_c > 1.5 * area_l ? GRA_Mode : GRA_NearestNeighbour;
    const char *src_wkt = (lwkt && lwkt[0]) ? NULL : in->wkt; /* none: assume the inputs' CRS */
    if (GDALReprojectImage(lab, src_wkt, dst, in->wkt, alg, 0.0, 0.0, NULL, NULL, NULL) != CE_None) {
        rc = cmir__gdal_error(CMIR_EIO, p->labels, NULL);
        goto done;
    }
    if (GDALRasterIO(db, GF_Read, 0, 0, cw, ch, buf, cw, ch, GDT_Float32, 0, 0) != CE_None) {
        rc = cmir__gdal_error(CMIR_EIO, p->labels, NULL);
        goto done;
    }
    for (size_t i = 0; i < (size_t)cw * (size_t)ch; i++) {
        float v = buf[i];
        cls[i] = (isfinite(v) && v >= 0.5f && v < 255.5f) ? (uint8_t)(v + 0.5f) : 0;
    }
    GDALRasterBandH lb = GDALGetRasterBand(lab, 1);
    if (GDALGetRasterColorTable(lb))
        *ct = GDALCloneColorTable(GDALGetRasterColorTable(lb));
    if (GDALGetRasterCategoryNames(lb))
        *cats = CSLDuplicate(GDALGetRasterCategoryNames(lb));
done:
    cmir__free(buf);
    if (dst)
        GDALClose(dst);
    GDALClose(lab);
    return rc;
}

static int cancelled(cmir_progress_fn progress, void *user, double f, const char *msg)
{
    if (progress && progress(f, msg, user))
        return cmir__error(CMIR_ECANCEL, "synth: cancelled by the progress callback");
    return 0;
}

/* Everything allocated by one run, released in one place. */
typedef struct wald_mem {
    float *x[4], *pan, *ms;
    uint8_t *valid, *msvalid, *cls;
    void *pan_out, *ms_out;
} wald_mem;

static void wald_mem_free(wald_mem *m)
{
    for (int b = 0; b < 4; b++)
        cmir__free(m->x[b]);
    cmir__free(m->pan);
    cmir__free(m->ms);
    cmir__free(m->valid);
    cmir__free(m->msvalid);
    cmir__free(m->cls);
    cmir__free(m->pan_out);
    cmir__free(m->ms_out);
}

/* The blue, green, red and NIR bands (1-based over the stacked inputs). */
static int pick_bands(const cmir_synth_params *p, const wald_in *in, const char *const *inputs, int bands[4])
{
    int total = 0;
    for (int i = 0; i < in->n; i++)
        total += GDALGetRasterCount(in->ds[i]);
    for (int b = 0; b < 4; b++)
        bands[b] = b + 1;
    if (p->bands[0] || p->bands[1] || p->bands[2] || p->bands[3])
        memcpy(bands, p->bands, sizeof(int) * 4);
    else if (total != 4) /* guessing would silently take the wrong bands */
        return cmir__error(CMIR_EINVAL,
                           "%s: the inputs hold %d band%s; say which are blue, green, red and "
                           "NIR (bands)",
                           inputs[0], total, total == 1 ? "" : "s");
    for (int b = 0; b < 4; b++)
        if (bands[b] > total)
            return cmir__error(CMIR_EINVAL,
                               "%s: band %d does not exist (the inputs hold %d band%s; choose "
                               "blue, green, red and NIR with bands)",
                               inputs[0], bands[b], total, total == 1 ? "" : "s");
    return 0;
}

/* The output grids: PAN w x h (the input cut to a multiple of r), MS ow x oh. */
typedef struct wald_grid {
    int r, w, h, ow, oh;
    size_t plane, oplane;
} wald_grid;

/* Reads the four bands; a pixel is valid when no band is nodata/NaN.
 * *nd0 is the first band's nodata value when it has one (*has_nd0). */
static int read_bands(const wald_in *in, const char *path, const int bands[4], const wald_grid *g, wald_mem *m,
                      cmir_progress_fn progress, void *user, int *has_nd0, double *nd0)
{
    const int w = g->w, h = g->h;
    const size_t plane = g->plane, oplane = g->oplane;
    for (int b = 0; b < 4; b++)
        if (!(m->x[b] = cmir__malloc(sizeof(float) * plane)))
            return CMIR_ENOMEM;
    m->pan = cmir__malloc(sizeof(float) * plane);
    m->ms = cmir__malloc(sizeof(float) * 4 * oplane);
    m->valid = cmir__malloc(plane);
    m->msvalid = cmir__malloc(oplane);
    if (!m->pan || !m->ms || !m->valid || !m->msvalid)
        return CMIR_ENOMEM;
    memset(m->valid, 1, plane);
    int rc;
    for (int b = 0; b < 4; b++) {
        GDALRasterBandH band = stack_band(in, bands[b]);
        CPLErrorReset();
        if (GDALRasterIO(band, GF_Read, 0, 0, w, h, m->x[b], w, h, GDT_Float32, 0, 0) != CE_None)
            return cmir__gdal_error(CMIR_EIO, path, NULL);
        int has;
        double nd = GDALGetRasterNoDataValue(band, &has);
        if (b == 0 && has) {
            *has_nd0 = 1;
            *nd0 = nd;
        }
        float ndf = (float)nd;
        for (size_t i = 0; i < plane; i++)
            if (isnan(m->x[b][i]) || (has && m->x[b][i] == ndf))
                m->valid[i] = 0;
        if ((rc = cancelled(progress, user, 0.1 * (b + 1), "reading")))
            return rc;
    }
    return 0;
}

/* PAN = the weighted band sum (weights wp) of the valid pixels; *lo, *hi:
 * the range of their band values (lo > hi when there is none). */
static void make_pan(const wald_grid *g, wald_mem *m, const float wp[4], float *lo, float *hi)
{
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (size_t i = 0; i < g->plane; i++) {
        if (!m->valid[i])
            continue;
        m->pan[i] = wp[0] * m->x[0][i] + wp[1] * m->x[1][i] + wp[2] * m->x[2][i] + wp[3] * m->x[3][i];
        for (int b = 0; b < 4; b++) {
            *lo = fminf(*lo, m->x[b][i]);
            *hi = fmaxf(*hi, m->x[b][i]);
        }
    }
}

/* MS = each band blurred by the MTF and decimated by r. */
static int make_ms(const cmir_synth_params *p, const wald_grid *g, wald_mem *m, cmir_progress_fn progress,
                   void *user)
{
    double sigma = cmir__sy_mtf_sigma(p->mtf, g->r);
    int threads = cmir__sy_threads(p), rc;
    for (int b = 0; b < 4; b++) {
        if ((rc = cmir__sy_degrade(m->x[b], m->valid, g->w, g->h, g->r, sigma, threads,
                                   m->ms + (size_t)b * g->oplane, m->msvalid)))
            return rc;
        if ((rc = cancelled(progress, user, 0.5 + 0.1 * (b + 1), "MTF blur and decimation")))
            return rc;
    }
    return 0;
}

/* Output samples: Float32 with nodata, or UInt16 scaled to [lo, hi] with 0
 * as nodata (value = offset + scale * q). */
typedef struct wald_out {
    int u16;
    double lo, nodata, scale, offset;
} wald_out;

static int quantise(const wald_grid *g, wald_mem *m, const wald_out *q)
{
    size_t es = q->u16 ? 2 : 4;
    m->pan_out = cmir__malloc(es * g->plane);
    m->ms_out = cmir__malloc(es * 4 * g->oplane);
    if (!m->pan_out || !m->ms_out)
        return CMIR_ENOMEM;
    const int u16 = q->u16;
    const double lo = q->lo, scale = q->scale, nodata = q->nodata;
#define STORE(dst, i, v, ok)                                                                  \
    do {                                                                                      \
        if (u16) {                                                                            \
            double q_ = ok ? 1.0 + floor(((double)(v) - lo) / scale + 0.5) : 0.0;             \
            ((uint16_t *)(dst))[i] = (uint16_t)(q_ < 0 ? 0 : q_ > 65535 ? 65535 : q_);        \
        } else {                                                                              \
            ((float *)(dst))[i] = ok ? (float)(v) : (float)nodata;                            \
        }                                                                                     \
    } while (0)
    for (size_t i = 0; i < g->plane; i++)
        STORE(m->pan_out, i, m->pan[i], m->valid[i]);
    for (int b = 0; b < 4; b++)
        for (size_t i = 0; i < g->oplane; i++)
            STORE(m->ms_out, (size_t)b * g->oplane + i, m->ms[(size_t)b * g->oplane + i], m->msvalid[i]);
#undef STORE
    return 0;
}

/* PREFIX_pan.tif, PREFIX_ms.tif and (with labels) PREFIX_class.tif into o,
 * then commits them. */
static int write_outputs(const cmir_synth_params *p, const wald_in *in, const wald_grid *g, wald_mem *m,
                         const wald_out *q, const char *prov, const char *prefix, sy_outset *o,
                         GDALColorTableH ct, char **cats)
{
    double pgt[6], mgt[6];
    memcpy(pgt, in->gt, sizeof pgt);
    memcpy(mgt, in->gt, sizeof mgt);
    mgt[1] *= g->r;
    mgt[5] *= g->r;
    int at_pan = p->class_res == CMIR_SYNTH_CLASS_AT_PAN;
    char *meta[2] = {(char *)prov, NULL};
    static const char *const pan_desc[1] = {"PAN"};
    static const char *const ms_desc[4] = {"Blue", "Green", "Red", "NIR"};
    static const char *const cls_desc[1] = {"class"};
    static const int pan_ci[1] = {GCI_GrayIndex};
    static const int ms_ci[4] = {GCI_BlueBand, GCI_GreenBand, GCI_RedBand, GCI_Undefined};
    int gdt = q->u16 ? GDT_UInt16 : GDT_Float32;
    sy_raster pr = {.w = g->w, .h = g->h, .nbands = 1, .gdt = gdt, .data = m->pan_out, .wkt = in->wkt,
                    .band_desc = pan_desc, .color_interp = pan_ci, .has_nodata = 1,
                    .nodata = q->nodata, .has_scale = q->u16, .scale = q->scale, .offset = q->offset,
                    .metadata = meta};
    sy_raster mr = pr;
    mr.w = g->ow;
    mr.h = g->oh;
    mr.nbands = 4;
    mr.data = m->ms_out;
    mr.band_desc = ms_desc;
    mr.color_interp = ms_ci;
    memcpy(pr.gt, pgt, sizeof pgt);
    memcpy(mr.gt, mgt, sizeof mgt);
    size_t pl = strlen(prefix) + 16;
    char *name = cmir__malloc(pl);
    if (!name)
        return CMIR_ENOMEM;
    snprintf(name, pl, "%s_pan.tif", prefix);
    int rc = cmir__sy_write(o, name, &pr, p->creation_options);
    if (!rc) {
        snprintf(name, pl, "%s_ms.tif", prefix);
        rc = cmir__sy_write(o, name, &mr, p->creation_options);
    }
    if (!rc && m->cls) {
        sy_raster cr = {.w = at_pan ? g->w : g->ow, .h = at_pan ? g->h : g->oh, .nbands = 1, .gdt = GDT_Byte,
                        .data = m->cls, .wkt = in->wkt, .band_desc = cls_desc, .has_nodata = 1, .nodata = 0,
                        .ctable = ct, .categories = cats, .metadata = meta};
        memcpy(cr.gt, at_pan ? pgt : mgt, sizeof cr.gt);
        snprintf(name, pl, "%s_class.tif", prefix);
        rc = cmir__sy_write(o, name, &cr, p->creation_options);
    }
    cmir__free(name);
    if (!rc)
        rc = cmir__sy_commit(o);
    return rc;
}

static int wald_run(const cmir_synth_params *p, wald_in *in, const char *const *inputs,
                    int n_inputs, const char *prefix, cmir_progress_fn progress, void *user,
                    wald_mem *m, sy_outset *o, GDALColorTableH *ct, char ***cats)
{
    int rc, bands[4];
    if ((rc = open_inputs(in, inputs, n_inputs)) || (rc = pick_bands(p, in, inputs, bands)))
        return rc;
    wald_grid g;
    g.r = p->ratio;
    g.ow = in->w / g.r;
    g.oh = in->h / g.r;
    g.w = g.ow * g.r;
    g.h = g.oh * g.r;
    if (g.ow < 1 || g.oh < 1)
        return cmir__error(CMIR_EINVAL, "%s: %dx%d pixels is smaller than the ratio %d", inputs[0],
                           in->w, in->h, g.r);
    g.plane = (size_t)g.w * (size_t)g.h;
    g.oplane = (size_t)g.ow * (size_t)g.oh;
    int has_nd0 = 0;
    double nd0 = -99999.0;
    if ((rc = read_bands(in, inputs[0], bands, &g, m, progress, user, &has_nd0, &nd0)))
        return rc;
    float wp[4], lo, hi;
    cmir__sy_pan_weights(p, wp);
    make_pan(&g, m, wp, &lo, &hi);
    if (lo > hi)
        return cmir__error(CMIR_EFORMAT, "%s: no valid pixel in the selected bands", inputs[0]);
    if ((rc = make_ms(p, &g, m, progress, user)))
        return rc;
    wald_out q;
    q.u16 = p->wald_type == CMIR_SYNTH_UINT16;
    q.lo = lo;
    q.nodata = q.u16 ? 0.0 : (has_nd0 ? nd0 : -99999.0);
    q.scale = hi > lo ? ((double)hi - lo) / 65534.0 : 1.0;
    q.offset = (double)lo - q.scale;
    if ((rc = quantise(&g, m, &q)))
        return rc;
    int at_pan = p->class_res == CMIR_SYNTH_CLASS_AT_PAN;
    if (p->labels) {
        int cw = at_pan ? g.w : g.ow, ch = at_pan ? g.h : g.oh;
        double lgt[6];
        memcpy(lgt, in->gt, sizeof lgt);
        lgt[1] *= at_pan ? 1 : g.r;
        lgt[5] *= at_pan ? 1 : g.r;
        if (!(m->cls = cmir__malloc((size_t)cw * (size_t)ch)))
            return CMIR_ENOMEM;
        if ((rc = read_labels(p, in, cw, ch, lgt, m->cls, ct, cats)))
            return rc;
    }
    if ((rc = cancelled(progress, user, 0.95, "writing")))
        return rc;
    char prov[512];
    snprintf(prov, sizeof prov,
             "CMIR_SYNTH=cmir_synth %s wald ratio=%d mtf=%g bands=%d,%d,%d,%d pan_weights=%g,%g,%g,%g",
             cmir_version(), g.r, p->mtf, bands[0], bands[1], bands[2], bands[3], wp[0], wp[1], wp[2], wp[3]);
    return write_outputs(p, in, &g, m, &q, prov, prefix, o, *ct, *cats);
}

int cmir_synth_wald(const cmir_synth_params *p, const char *const *inputs, int n_inputs,
                    const char *prefix, cmir_progress_fn progress, void *user)
{
    int rc;
    if ((rc = cmir_synth_check_params(p)))
        return rc;
    if (!inputs || n_inputs < 1)
        return cmir__error(CMIR_EINVAL, "synth: Wald mode needs at least one input raster");
    if (!prefix || !*prefix)
        return cmir__error(CMIR_EINVAL, "synth: Wald mode needs an output prefix");
    if (GDALGetDriverCount() == 0)
        GDALAllRegister();
    if ((rc = cmir__sy_check_options(p->creation_options)))
        return rc;
    wald_in in;
    wald_mem m;
    sy_outset o;
    GDALColorTableH ct = NULL;
    char **cats = NULL;
    memset(&in, 0, sizeof in);
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    /* The directory of the prefix is made when missing (removed again,
     * if still empty, when the run fails). */
    char *pdir = cmir__strdup(prefix);
    if (!pdir)
        return CMIR_ENOMEM;
    char *slash = strrchr(pdir, '/');
    ptrdiff_t made = -1;
    if (slash && slash > pdir) {
        *slash = '\0';
        if ((rc = cmir__sy_make_dirs(pdir, &made))) {
            cmir__free(pdir);
            return rc;
        }
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    rc = wald_run(p, &in, inputs, n_inputs, prefix, progress, user, &m, &o, &ct, &cats);
    CPLPopErrorHandler();
    if (!rc && progress)
        progress(1.0, "done", user);
    cmir__sy_outset_clear(&o); /* temporary files first: then the directory is empty */
    if (rc)
        cmir__sy_unmake_dirs(pdir, made);
    cmir__free(pdir);
    wald_mem_free(&m);
    for (int i = 0; i < in.n; i++)
        GDALClose(in.ds[i]);
    if (ct)
        GDALDestroyColorTable(ct);
    CSLDestroy(cats);
    return rc;
}
