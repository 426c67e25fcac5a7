/* cmir_tile(): PAN-slot scenes (one band, or several such as RGB) and the
 * MS scenes covering them -> co-registered tile pairs in a tile archive.
 * Per scene, the MS data is put on the PAN-aligned MS grid (directly when
 * it already lies on it, else through a warped VRT; without MS scenes the
 * scene itself, reduced by block averaging), labels on the same grid
 * (labels.c), then every tile window is read, checked for nodata,
 * labelled and appended to the archive. */
#include "cmir/tiling.h"
#include "tiling_internal.h"

#include <cpl_string.h>
#include <gdal_utils.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PAN_BANDS 1024 /* PAN-slot bands of a scene */
#define SELF_MS_RATIO 4    /* ratio of the reduced copy made without MS scenes */

typedef struct ms_input {
    const char *path;
    GDALDatasetH ds;
    OGRSpatialReferenceH srs;
    double gt[6];
} ms_input;

/* One PAN scene and its MS data on the PAN-aligned MS grid. */
typedef struct scene {
    const char *path;
    GDALDatasetH pan;
    OGRSpatialReferenceH srs;
    const char *wkt;
    double gt[6];
    int w, h;
    int ratio;
    GDALDatasetH ms;  /* MS dataset read from (an input, or a warped VRT) */
    int ms_owned;     /* ms is our VRT */
    char ms_vsi[64];
    int ms_dx, ms_dy; /* MS-grid origin in ms's pixels */
    int ms_alpha;     /* 1-based alpha band of the VRT, 0 when none */
    const ms_input *ms_first; /* first overlapping input, for windows */
    GDALDatasetH lab; /* labels on the MS grid, or NULL */
} scene;

/* The archive type that holds a GDAL type without loss where possible:
 * Byte -> UINT8, UInt16 -> UINT16, Int16 -> INT16, anything else FLOAT32;
 * and back. */
static cmir_dtype dtype_from_gdal(GDALDataType t)
{
    switch (t) {
    case GDT_Byte: return CMIR_DT_UINT8;
    case GDT_UInt16: return CMIR_DT_UINT16;
    case GDT_Int16: return CMIR_DT_INT16;
    default: return CMIR_DT_FLOAT32;
    }
}

static GDALDataType gdal_from_dtype(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return GDT_Byte;
    case CMIR_DT_UINT16: return GDT_UInt16;
    case CMIR_DT_INT16: return GDT_Int16;
    default: return GDT_Float32;
    }
}


static void scene_release(scene *s)
{
    if (s->ms && s->ms_owned) {
        GDALClose(s->ms);
        VSIUnlink(s->ms_vsi);
    }
    s->ms = NULL;
    s->ms_owned = 0;
    if (s->lab)
        GDALClose(s->lab);
    s->lab = NULL;
}

/* Puts the MS inputs that overlap scene s on its MS grid. */
static int scene_prepare_ms(scene *s, ms_input *ms, int n_ms, const cmir_tile_params *p,
                            const char *resampling)
{
    double pe[4];
    cmir__tl_extent_in(s->pan, s->gt, s->srs, s->srs, pe);
    GDALDatasetH over[256];
    int n_over = 0;
    s->ms_first = NULL;
    for (int i = 0; i < n_ms && n_over < 256; i++) {
        double e[4];
        if (cmir__tl_extent_in(ms[i].ds, ms[i].gt, ms[i].srs, s->srs, e) != 0)
            continue;
        if (cmir__tl_overlap_area_in(s->srs, pe, e) > 0) {
            over[n_over++] = ms[i].ds;
            if (!s->ms_first)
                s->ms_first = &ms[i];
        }
    }
    if (!n_over)
        return cmir__error(CMIR_EINVAL, "%s: PAN and MS do not overlap (no MS scene covers it)", s->path);
    const ms_input *m = s->ms_first;
    /* Ratio from the data: MS pixel size measured in the PAN CRS. */
    double ms_res;
    if (OSRIsSame(m->srs, s->srs) && m->gt[2] == 0 && m->gt[4] == 0) {
        ms_res = fabs(m->gt[1]);
    } else {
        /* One MS pixel at the scene's centre, mapped into the PAN CRS: the
         * square root of its area. */
        double pc[3] = {s->gt[0] + s->w / 2.0 * s->gt[1], 0, 0}, qc[3] = {s->gt[3] + s->h / 2.0 * s->gt[5], 0, 0};
        OGRCoordinateTransformationH to_ms = OCTNewCoordinateTransformation(s->srs, m->srs);
        OGRCoordinateTransformationH to_pan = OCTNewCoordinateTransformation(m->srs, s->srs);
        int ok = to_ms && to_pan && OCTTransform(to_ms, 1, pc, qc, NULL);
        if (ok) {
            pc[1] = pc[0] + m->gt[1]; qc[1] = qc[0] + m->gt[4];
            pc[2] = pc[0] + m->gt[2]; qc[2] = qc[0] + m->gt[5];
            ok = OCTTransform(to_pan, 3, pc, qc, NULL);
        }
        if (to_ms)
            OCTDestroyCoordinateTransformation(to_ms);
        if (to_pan)
            OCTDestroyCoordinateTransformation(to_pan);
        if (!ok)
            return cmir__error(CMIR_EINVAL, "%s: cannot relate the CRS of %s to the PAN's", s->path, m->path);
        double ux = pc[1] - pc[0], uy = qc[1] - qc[0], vx = pc[2] - pc[0], vy = qc[2] - qc[0];
        ms_res = sqrt(fabs(ux * vy - uy * vx));
    }
    double rf = ms_res / fabs(s->gt[1]);
    int r = p->ratio > 0 ? p->ratio : (int)lround(rf);
    if (p->ratio <= 0 && (r < 1 || fabs(rf - r) > 0.05 * r))
        return cmir__error(CMIR_EINVAL,
                           "%s: MS pixels are %.4g times the PAN pixels, not an integer ratio "
                           "(set the ratio explicitly)", s->path, rf);
    if (p->tile_size % r)
        return cmir__error(CMIR_EINVAL, "%s: tile size %d is not a multiple of the PAN/MS ratio %d",
                           s->path, p->tile_size, r);
    s->ratio = r;
    int gw = s->w / r, gh = s->h / r;
    /* Direct reading when the only MS input already lies on the grid. */
    if (n_over == 1 && OSRIsSame(m->srs, s->srs) && m->gt[2] == 0 && m->gt[4] == 0 &&
        fabs(m->gt[1] - r * s->gt[1]) <= 1e-6 * fabs(r * s->gt[1]) &&
        fabs(m->gt[5] - r * s->gt[5]) <= 1e-6 * fabs(r * s->gt[5])) {
        double ox = (s->gt[0] - m->gt[0]) / m->gt[1], oy = (s->gt[3] - m->gt[3]) / m->gt[5];
        if (fabs(ox - lround(ox)) < 1e-3 && fabs(oy - lround(oy)) < 1e-3) {
            s->ms = m->ds;
            s->ms_owned = 0;
            s->ms_dx = (int)lround(ox);
            s->ms_dy = (int)lround(oy);
            s->ms_alpha = 0;
            return 0;
        }
    }
    /* Otherwise a warped VRT of every overlapping input on the grid. */
    char te[4][40], ts[2][24];
    snprintf(te[0], sizeof te[0], "%.17g", s->gt[0]);
    snprintf(te[1], sizeof te[1], "%.17g", s->gt[3] + gh * r * s->gt[5]);
    snprintf(te[2], sizeof te[2], "%.17g", s->gt[0] + gw * r * s->gt[1]);
    snprintf(te[3], sizeof te[3], "%.17g", s->gt[3]);
    snprintf(ts[0], sizeof ts[0], "%d", gw);
    snprintf(ts[1], sizeof ts[1], "%d", gh);
    const char *argv[] = {"-of", "VRT", "-t_srs", s->wkt, "-te", te[0], te[1], te[2], te[3],
                          "-ts", ts[0], ts[1], "-r", resampling, "-dstalpha", "-q", NULL};
    snprintf(s->ms_vsi, sizeof s->ms_vsi, "/vsimem/cmir_tile_ms_%p.vrt", (void *)s);
    GDALWarpAppOptions *wo = GDALWarpAppOptionsNew((char **)argv, NULL);
    if (!wo)
        return cmir__gdal_error(CMIR_EINVAL, s->path, "bad warp options");
    int err = 0;
    cmir__gdal_quiet_begin();
    s->ms = GDALWarp(s->ms_vsi, NULL, n_over, over, wo, &err);
    GDALWarpAppOptionsFree(wo);
    if (!s->ms) {
        int rc = cmir__gdal_error(CMIR_EIO, m->path, "cannot resample the MS scene onto the PAN grid");
        cmir__gdal_quiet_end();
        return rc;
    }
    cmir__gdal_quiet_end();
    s->ms_owned = 1;
    s->ms_dx = s->ms_dy = 0;
    s->ms_alpha = GDALGetRasterCount(s->ms);
    return 0;
}

/* Reads a window of `ds` that may reach outside it: outside pixels are
 * zero and flagged in `valid` (1 = inside). Pixel-interleaved, bands in
 * `bands` order, type t. */
static int read_clipped(GDALDatasetH ds, const char *path, int x0, int y0, int n, int nb,
                        int *bands, GDALDataType t, void *buf, uint8_t *valid)
{
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds), es = GDALGetDataTypeSizeBytes(t);
    int ax = x0 < 0 ? 0 : x0, ay = y0 < 0 ? 0 : y0;
    int bx = x0 + n > W ? W : x0 + n, by = y0 + n > H ? H : y0 + n;
    memset(buf, 0, (size_t)n * n * nb * es);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
            valid[(size_t)y * n + x] = (x0 + x >= ax && x0 + x < bx && y0 + y >= ay && y0 + y < by);
    if (bx <= ax || by <= ay)
        return 0;
    unsigned char *dst = (unsigned char *)buf + ((size_t)(ay - y0) * n + (ax - x0)) * nb * es;
    cmir__gdal_quiet_begin();
    CPLErr e = GDALDatasetRasterIO(ds, GF_Read, ax, ay, bx - ax, by - ay, dst, bx - ax, by - ay, t,
                                   nb, bands, (GSpacing)nb * es, (GSpacing)n * nb * es, es);
    int rc = e == CE_None ? 0 : cmir__gdal_error(CMIR_EIO, path, "read failed");
    cmir__gdal_quiet_end();
    return rc;
}

/* Clears valid[] where band `band`'s mask (or an alpha band) says
 * nodata, and where float pixels are not finite. */
static int apply_mask(GDALDatasetH ds, const char *path, int x0, int y0, int n, int band,
                      int alpha, uint8_t *valid, uint8_t *tmp)
{
    GDALRasterBandH b = alpha ? GDALGetRasterBand(ds, alpha) : GDALGetMaskBand(GDALGetRasterBand(ds, band));
    if (!alpha && (GDALGetMaskFlags(GDALGetRasterBand(ds, band)) & GMF_ALL_VALID))
        return 0;
    int W = GDALGetRasterXSize(ds), H = GDALGetRasterYSize(ds);
    int ax = x0 < 0 ? 0 : x0, ay = y0 < 0 ? 0 : y0;
    int bx = x0 + n > W ? W : x0 + n, by = y0 + n > H ? H : y0 + n;
    if (bx <= ax || by <= ay)
        return 0;
    cmir__gdal_quiet_begin();
    CPLErr e = GDALRasterIO(b, GF_Read, ax, ay, bx - ax, by - ay, tmp, bx - ax, by - ay, GDT_Byte, 0, 0);
    int rc = e == CE_None ? 0 : cmir__gdal_error(CMIR_EIO, path, "reading the nodata mask failed");
    cmir__gdal_quiet_end();
    if (rc)
        return rc;
    for (int y = ay; y < by; y++)
        for (int x = ax; x < bx; x++)
            if (!tmp[(size_t)(y - ay) * (bx - ax) + (x - ax)])
                valid[(size_t)(y - y0) * n + (x - x0)] = 0;
    return 0;
}

static void finite_mask(const float *v, int npix, int nb, uint8_t *valid)
{
    for (int i = 0; i < npix; i++)
        for (int b = 0; b < nb; b++)
            if (!isfinite(v[(size_t)i * nb + b]))
                valid[i] = 0;
}

static double invalid_frac(const uint8_t *valid, int npix)
{
    int bad = 0;
    for (int i = 0; i < npix; i++)
        bad += !valid[i];
    return (double)bad / npix;
}

/* Window of the MS tile in the first MS input's own pixels. */
static void ms_window(const scene *s, int tx, int ty, int T, double win[4])
{
    const ms_input *m = s->ms_first;
    double cx[4], cy[4];
    const double px[4] = {tx, tx + T, tx, tx + T}, py[4] = {ty, ty, ty + T, ty + T};
    for (int i = 0; i < 4; i++) {
        cx[i] = s->gt[0] + px[i] * s->gt[1];
        cy[i] = s->gt[3] + py[i] * s->gt[5];
    }
    if (!OSRIsSame(m->srs, s->srs)) {
        OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(s->srs, m->srs);
        if (!ct || !OCTTransform(ct, 4, cx, cy, NULL)) {
            for (int i = 0; i < 4; i++)
                win[i] = NAN;
            if (ct)
                OCTDestroyCoordinateTransformation(ct);
            return;
        }
        OCTDestroyCoordinateTransformation(ct);
    }
    double inv[6];
    if (!GDALInvGeoTransform((double *)m->gt, inv)) {
        for (int i = 0; i < 4; i++)
            win[i] = NAN;
        return;
    }
    double xmin = 1e300, ymin = 1e300, xmax = -1e300, ymax = -1e300;
    for (int i = 0; i < 4; i++) {
        double u = inv[0] + cx[i] * inv[1] + cy[i] * inv[2], v = inv[3] + cx[i] * inv[4] + cy[i] * inv[5];
        xmin = fmin(xmin, u); xmax = fmax(xmax, u); ymin = fmin(ymin, v); ymax = fmax(ymax, v);
    }
    win[0] = xmin; win[1] = ymin; win[2] = xmax - xmin; win[3] = ymax - ymin;
}

typedef struct run {
    const cmir_tile_params *p;
    cmir_tile_stats st;
    cmir_archive_writer *w;
    cmir_dtype pan_t, ms_t;
    int pan_nb, *pan_bands; /* PAN-slot bands: all of the scene's, 1..pan_nb */
    int nb, *bands;
    cmir__labels labels;
    /* per-tile buffers */
    void *pan_buf, *ms_buf;
    uint8_t *pv, *mv, *tmp, *mlab, *pv_band, *pv_any;
    uint16_t *lab;
    int64_t done, total;
    cmir_progress_fn progress;
    void *user;
} run;

/* PAN-slot validity: a pixel is nodata when every band's mask says so (as
 * GDAL's warper treats multi-band nodata), so the reduced MS copy and the
 * PAN tile agree. */
static int pan_mask(run *R, const scene *s, int x0, int y0, int n)
{
    if (R->pan_nb == 1)
        return apply_mask(s->pan, s->path, x0, y0, n, 1, 0, R->pv, R->tmp);
    size_t np = (size_t)n * n;
    memset(R->pv_any, 0, np);
    for (int b = 1; b <= R->pan_nb; b++) {
        memcpy(R->pv_band, R->pv, np);
        int rc = apply_mask(s->pan, s->path, x0, y0, n, b, 0, R->pv_band, R->tmp);
        if (rc)
            return rc;
        for (size_t i = 0; i < np; i++)
            R->pv_any[i] |= R->pv_band[i];
    }
    memcpy(R->pv, R->pv_any, np);
    return 0;
}

static int tile_scene(run *R, scene *s)
{
    const cmir_tile_params *p = R->p;
    const int T = p->tile_size, S = p->stride > 0 ? p->stride : T, r = s->ratio, n = T / r;
    if (S % r)
        return cmir__error(CMIR_EINVAL, "%s: stride %d is not a multiple of the PAN/MS ratio %d", s->path, S, r);
    GDALDataType pt = gdal_from_dtype(R->pan_t), mt = gdal_from_dtype(R->ms_t);
    int rc = 0;
    double pan_gt[6], ms_gt[6], pw[4], mw[4];
    for (int ty = 0; !rc && ty + T <= s->h; ty += S) {
        for (int tx = 0; !rc && tx + T <= s->w; tx += S) {
            R->done++;
            if (R->progress && R->progress((double)R->done / (double)R->total, NULL, R->user))
                return cmir__error(CMIR_ECANCEL, "cancelled");
            /* PAN window */
            if ((rc = read_clipped(s->pan, s->path, tx, ty, T, R->pan_nb, R->pan_bands, pt, R->pan_buf,
                                   R->pv)) ||
                (rc = pan_mask(R, s, tx, ty, T)))
                break;
            if (R->pan_t == CMIR_DT_FLOAT32)
                finite_mask(R->pan_buf, T * T, R->pan_nb, R->pv);
            /* MS window on the grid */
            int mx = tx / r + s->ms_dx, my = ty / r + s->ms_dy;
            if ((rc = read_clipped(s->ms, s->ms_first->path, mx, my, n, R->nb, R->bands, mt, R->ms_buf, R->mv)) ||
                (rc = apply_mask(s->ms, s->ms_first->path, mx, my, n, R->bands[0], s->ms_alpha, R->mv, R->tmp)))
                break;
            if (R->ms_t == CMIR_DT_FLOAT32)
                finite_mask(R->ms_buf, n * n, R->nb, R->mv);
            double bad = fmax(invalid_frac(R->pv, T * T), invalid_frac(R->mv, n * n));
            int label = 0;
            if (bad > p->nodata_frac && !p->keep_nodata) {
                R->st.skipped_nodata++;
                continue;
            }
            if (s->lab) {
                if ((rc = cmir__labels_tile(&R->labels, s->lab, tx / r, ty / r, n, R->lab, p, &label, R->mlab)))
                    break;
                /* a multi-label tile without a majority class is labelled */
                int any = 0;
                for (int c = 0; R->mlab && c < R->labels.n_classes && !any; c++)
                    any = R->mlab[c] != 0;
                if (!label && !any && p->skip_unlabelled) {
                    R->st.skipped_unlabelled++;
                    continue;
                }
            }
            if (bad > p->nodata_frac)
                label = 0;
            pan_gt[0] = s->gt[0] + tx * s->gt[1];
            pan_gt[1] = s->gt[1];
            pan_gt[2] = 0;
            pan_gt[3] = s->gt[3] + ty * s->gt[5];
            pan_gt[4] = 0;
            pan_gt[5] = s->gt[5];
            memcpy(ms_gt, pan_gt, sizeof ms_gt);
            ms_gt[1] *= r;
            ms_gt[5] *= r;
            pw[0] = tx; pw[1] = ty; pw[2] = T; pw[3] = T;
            ms_window(s, tx, ty, T, mw);
            cmir_tile_record rec = {R->pan_buf, R->ms_buf, label,
                                    R->labels.n_classes && p->multilabel_frac > 0 ? R->mlab : NULL,
                                    pan_gt, ms_gt, s->wkt, s->path, pw, mw, s->ms_first->path};
            if ((rc = cmir_archive_writer_add(R->w, &rec)))
                break;
            R->st.tiles_written++;
        }
    }
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Band names of `bands` of ds (at most 1024): description, else colour
 * interpretation ("Red", ...), else "band_<b>". Strings live in ds or buf. */
static void band_names(GDALDatasetH ds, const int *bands, int nb, const char **names,
                       char (*buf)[32])
{
    for (int b = 0; b < nb && b < 1024; b++) {
        GDALRasterBandH hb = GDALGetRasterBand(ds, bands[b]);
        const char *d = GDALGetDescription(hb);
        GDALColorInterp ci = GDALGetRasterColorInterpretation(hb);
        if (d && *d)
            names[b] = d;
        else if (ci != GCI_Undefined && ci != GCI_GrayIndex)
            names[b] = GDALGetColorInterpretationName(ci);
        else {
            snprintf(buf[b], sizeof buf[b], "band_%d", bands[b]);
            names[b] = buf[b];
        }
    }
}

/* The archive to write: new, or the existing one when appending (whose
 * sizes, types and classes must match this run). */
static int open_writer(run *R, const char *path, int append, const scene *s0, const ms_input *m0)
{
    const cmir_tile_params *p = R->p;
    int n = p->tile_size / s0->ratio;
    if (append && file_exists(path)) {
        cmir_archive *a = cmir_archive_open(path);
        if (!a)
            return CMIR_EFORMAT;
        const cmir_archive_info *inf = cmir_archive_get_info(a);
        int rc = 0;
        if (inf->pan_bands != R->pan_nb)
            rc = cmir__error(CMIR_EINVAL,
                             "%s: cannot append: the archive holds %d-band PAN-slot tiles, %s has %d band%s",
                             path, inf->pan_bands, s0->path, R->pan_nb, R->pan_nb == 1 ? "" : "s");
        else if (inf->pan_h != p->tile_size || inf->pan_w != p->tile_size || inf->ms_h != n ||
                 inf->ms_w != n || inf->ms_bands != R->nb)
            rc = cmir__error(CMIR_EINVAL,
                             "%s: cannot append: the archive holds %dx%d PAN / %dx%dx%d MS tiles, "
                             "this run makes %dx%d / %dx%dx%d", path, inf->pan_h, inf->pan_w,
                             inf->ms_h, inf->ms_w, inf->ms_bands, p->tile_size, p->tile_size, n, n, R->nb);
        else if (R->labels.n_classes && inf->n_classes != R->labels.n_classes)
            rc = cmir__error(CMIR_EINVAL, "%s: cannot append: the archive has %d classes, the labels %d",
                             path, inf->n_classes, R->labels.n_classes);
        for (int c = 1; !rc && c <= R->labels.n_classes; c++)
            if (strcmp(cmir_archive_class_name(a, c), R->labels.names[c - 1]) != 0)
                rc = cmir__error(CMIR_EINVAL, "%s: cannot append: class %d is '%s' in the archive, '%s' here",
                                 path, c, cmir_archive_class_name(a, c), R->labels.names[c - 1]);
        R->pan_t = inf->pan_type;
        R->ms_t = inf->ms_type;
        cmir_archive_close(a);
        if (rc)
            return rc;
        R->w = cmir_archive_append(path);
        return R->w ? 0 : CMIR_EIO;
    }
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = p->tile_size;
    ap.pan_bands = R->pan_nb;
    ap.ms_h = ap.ms_w = n;
    ap.ms_bands = R->nb;
    ap.pan_type = R->pan_t;
    ap.ms_type = R->ms_t;
    ap.n_classes = R->labels.n_classes;
    ap.class_names = (const char *const *)R->labels.names;
    ap.multilabel = R->labels.n_classes && p->multilabel_frac > 0;
    ap.deflate = p->deflate;
    int has;
    double nd = GDALGetRasterNoDataValue(GDALGetRasterBand(s0->pan, 1), &has);
    ap.pan_nodata = has ? nd : NAN;
    nd = GDALGetRasterNoDataValue(GDALGetRasterBand(m0->ds, R->bands[0]), &has);
    ap.ms_nodata = has ? nd : NAN;
    /* Band names: description, else colour interpretation; a single-band
     * PAN slot is "PAN". */
    const char **names = cmir__malloc(sizeof(char *) * 2048);
    char(*buf)[32] = cmir__malloc(sizeof(char[32]) * 2048);
    if (!names || !buf) {
        cmir__free(names);
        cmir__free(buf);
        return CMIR_ENOMEM;
    }
    band_names(m0->ds, R->bands, R->nb, names + 1024, buf + 1024);
    if (R->pan_nb == 1)
        names[0] = "PAN";
    else
        band_names(s0->pan, R->pan_bands, R->pan_nb, names, buf);
    ap.ms_band_names = names + 1024;
    ap.pan_band_names = names;
    R->w = cmir_archive_create(path, ap);
    cmir__free(names);
    cmir__free(buf);
    return R->w ? 0 : CMIR_EIO;
}

/* Opens and checks the MS inputs; fills R's MS band selection. */
static int open_ms(run *R, ms_input *ms, const char *const *ms_paths, int n_ms, int self_ms)
{
    const cmir_tile_params *p = R->p;
    int rc = 0;
    for (int i = 0; !rc && i < n_ms; i++) {
        ms[i].path = ms_paths[i];
        if (!(ms[i].ds = cmir__gdal_open_raster_oo(ms_paths[i], p->open_options)))
            rc = cmir__failed(CMIR_EIO);
        else
            rc = cmir__tl_georef(ms[i].ds, ms_paths[i], ms[i].gt, &ms[i].srs);
        if (!rc && !self_ms && GDALGetRasterCount(ms[i].ds) != GDALGetRasterCount(ms[0].ds))
            rc = cmir__error(CMIR_EINVAL, "%s: has %d bands but %s has %d", ms_paths[i],
                             GDALGetRasterCount(ms[i].ds), ms_paths[0], GDALGetRasterCount(ms[0].ds));
    }
    if (rc)
        return rc;
    int nb_in = GDALGetRasterCount(ms[0].ds);
    R->nb = p->ms_bands ? p->n_ms_bands : nb_in;
    R->bands = cmir__malloc(sizeof(int) * (size_t)(R->nb > 0 ? R->nb : 1));
    if (!R->bands)
        return CMIR_ENOMEM;
    for (int b = 0; b < R->nb; b++) {
        R->bands[b] = p->ms_bands ? p->ms_bands[b] : b + 1;
        if (R->bands[b] < 1 || R->bands[b] > nb_in)
            return cmir__error(CMIR_EINVAL, "%s: has %d bands, band %d was asked for", ms_paths[0], nb_in,
                               R->bands[b]);
    }
    return R->nb < 1 ? cmir__error(CMIR_EINVAL, "cmir_tile: no MS band selected") : 0;
}

/* Opens and checks the PAN-slot scenes; counts the tiles (progress) and
 * fills R's PAN-slot bands. */
static int open_pan(run *R, scene *sc, const char *const *pan_paths, int n_pan)
{
    const cmir_tile_params *p = R->p;
    int rc = 0;
    for (int i = 0; !rc && i < n_pan; i++) {
        scene *s = &sc[i];
        s->path = pan_paths[i];
        if (!(s->pan = cmir__gdal_open_raster_oo(s->path, p->open_options)))
            return cmir__failed(CMIR_EIO);
        if ((rc = cmir__tl_georef(s->pan, s->path, s->gt, &s->srs)))
            return rc;
        if (i > 0 && GDALGetRasterCount(s->pan) != GDALGetRasterCount(sc[0].pan))
            rc = cmir__error(CMIR_EINVAL, "%s: has %d bands but %s has %d (the PAN-slot scenes of a run "
                             "must agree)", s->path, GDALGetRasterCount(s->pan), sc[0].path,
                             GDALGetRasterCount(sc[0].pan));
        else if (s->gt[2] != 0 || s->gt[4] != 0 || s->gt[1] <= 0 || s->gt[5] >= 0)
            rc = cmir__error(CMIR_EUNSUPPORTED, "%s: rotated or south-up geotransform (not supported; "
                             "gdalwarp it to a north-up grid first)", s->path);
        else
            rc = cmir__tl_check_coverage(s->pan, s->path, p->tile_size);
        s->wkt = GDALGetProjectionRef(s->pan);
        s->w = GDALGetRasterXSize(s->pan);
        s->h = GDALGetRasterYSize(s->pan);
        int S = p->stride > 0 ? p->stride : p->tile_size;
        if (s->w >= p->tile_size && s->h >= p->tile_size)
            R->total += (int64_t)((s->w - p->tile_size) / S + 1) * ((s->h - p->tile_size) / S + 1);
    }
    if (rc)
        return rc;
    R->pan_nb = GDALGetRasterCount(sc[0].pan);
    if (R->pan_nb < 1 || R->pan_nb > MAX_PAN_BANDS)
        return cmir__error(CMIR_EINVAL, "%s: has %d bands (1..%d are supported)", sc[0].path, R->pan_nb,
                           MAX_PAN_BANDS);
    if (!(R->pan_bands = cmir__malloc(sizeof(int) * (size_t)R->pan_nb)))
        return CMIR_ENOMEM;
    for (int b = 0; b < R->pan_nb; b++)
        R->pan_bands[b] = b + 1;
    return 0;
}

/* The per-tile buffers, once the first scene gives the sizes. */
static int alloc_tile_buffers(run *R, int T, int n)
{
    size_t px = (size_t)T * T;
    R->pan_buf = cmir__malloc(px * 4 * (size_t)R->pan_nb);
    R->ms_buf = cmir__malloc((size_t)n * n * R->nb * 4);
    R->pv = cmir__malloc(px);
    R->mv = cmir__malloc(px);
    R->tmp = cmir__malloc(px);
    R->pv_band = cmir__malloc(px);
    R->pv_any = cmir__malloc(px);
    R->lab = cmir__malloc(px * sizeof(uint16_t));
    R->mlab = cmir__malloc((size_t)R->labels.n_classes + 1);
    if (!R->pan_buf || !R->ms_buf || !R->pv || !R->mv || !R->tmp || !R->lab || !R->mlab || !R->pv_band ||
        !R->pv_any)
        return CMIR_ENOMEM;
    return 0;
}

/* Every scene in turn: its MS data and labels on the MS grid, then its
 * tiles; the archive is opened at the first scene. */
static int tile_scenes(run *R, scene *sc, int n_pan, ms_input *ms, int n_ms, int self_ms, const char *resampling,
                       const char *archive_path, int append)
{
    const cmir_tile_params *p = R->p;
    int rc = 0;
    for (int i = 0; !rc && i < n_pan; i++) {
        scene *s = &sc[i];
        if ((rc = self_ms ? scene_prepare_ms(s, &ms[i], 1, p, resampling)
                          : scene_prepare_ms(s, ms, n_ms, p, resampling)))
            break;
        if (!R->w) { /* first scene: sizes known, open the archive and buffers */
            if ((rc = open_writer(R, archive_path, append, s, s->ms_first)) ||
                (rc = alloc_tile_buffers(R, p->tile_size, p->tile_size / s->ratio)))
                break;
        } else if (p->tile_size / s->ratio != p->tile_size / sc[0].ratio) {
            rc = cmir__error(CMIR_EINVAL, "%s: PAN/MS ratio %d differs from the first scene's %d", s->path,
                             s->ratio, sc[0].ratio);
            break;
        }
        if ((rc = cmir__labels_scene(&R->labels, p, s->path, s->srs, s->wkt, s->gt, s->w / s->ratio,
                                     s->h / s->ratio, s->ratio, &s->lab)))
            break;
        rc = tile_scene(R, s);
        R->st.ratio = s->ratio;
        scene_release(s);
    }
    return rc;
}

static void release_all(run *R, scene *sc, int n_pan, ms_input *ms, int n_ms)
{
    for (int i = 0; sc && i < n_pan; i++) {
        scene_release(&sc[i]);
        if (sc[i].pan)
            GDALClose(sc[i].pan);
        if (sc[i].srs)
            OSRDestroySpatialReference(sc[i].srs);
    }
    for (int i = 0; ms && i < n_ms; i++) {
        if (ms[i].ds)
            GDALClose(ms[i].ds);
        if (ms[i].srs)
            OSRDestroySpatialReference(ms[i].srs);
    }
    cmir__labels_close(&R->labels);
    cmir__free(ms);
    cmir__free(sc);
    cmir__free(R->bands);
    cmir__free(R->pan_bands);
    cmir__free(R->pv_band);
    cmir__free(R->pv_any);
    cmir__free(R->pan_buf);
    cmir__free(R->ms_buf);
    cmir__free(R->pv);
    cmir__free(R->mv);
    cmir__free(R->tmp);
    cmir__free(R->lab);
    cmir__free(R->mlab);
}

int cmir_tile(const char *const *pan_paths, int n_pan, const char *const *ms_paths, int n_ms,
              const char *archive_path, int append, cmir_tile_params p, cmir_progress_fn progress,
              void *user, cmir_tile_stats *stats)
{
    if (!pan_paths || n_pan < 1 || n_ms < 0 || (n_ms > 0 && !ms_paths) || !archive_path)
        return cmir__error(CMIR_EINVAL, "cmir_tile: need at least one PAN scene and an archive path");
    int rc = cmir_tile_check_params(p);
    if (rc)
        return rc;
    /* Without MS scenes each PAN-slot scene is its own MS source, reduced
     * by `ratio` (default 4) with block averaging. */
    const int self_ms = n_ms == 0;
    if (self_ms) {
        ms_paths = pan_paths;
        n_ms = n_pan;
        if (p.ratio <= 0)
            p.ratio = SELF_MS_RATIO;
    }
    const char *resampling = p.resampling ? p.resampling : self_ms ? "average" : "bilinear";
    run R;
    memset(&R, 0, sizeof R);
    R.p = &p;
    R.progress = progress;
    R.user = user;
    ms_input *ms = cmir__calloc((size_t)n_ms, sizeof *ms);
    scene *sc = cmir__calloc((size_t)n_pan, sizeof *sc);
    if (!ms || !sc)
        rc = CMIR_ENOMEM;
    /* Open and check every input before writing anything. */
    if (!rc)
        rc = open_ms(&R, ms, ms_paths, n_ms, self_ms);
    if (!rc)
        rc = open_pan(&R, sc, pan_paths, n_pan);
    if (!rc)
        rc = cmir__labels_open(&R.labels, &p);
    for (int i = 0; !rc && i < n_pan + n_ms; i++) {
        GDALDatasetH ds = i < n_pan ? sc[i].pan : ms[i - n_pan].ds;
        rc = cmir__tl_check_sample_type(ds, i < n_pan ? sc[i].path : ms[i - n_pan].path);
    }
    if (!rc) {
        R.pan_t = dtype_from_gdal(GDALGetRasterDataType(GDALGetRasterBand(sc[0].pan, 1)));
        R.ms_t = dtype_from_gdal(GDALGetRasterDataType(GDALGetRasterBand(ms[0].ds, R.bands[0])));
    }
    if (R.total == 0 && !rc)
        rc = cmir__error(CMIR_EINVAL, "%s: smaller than one %dx%d tile", pan_paths[0], p.tile_size, p.tile_size);
    if (!rc)
        rc = tile_scenes(&R, sc, n_pan, ms, n_ms, self_ms, resampling, archive_path, append);
    R.st.n_classes = R.labels.n_classes;
    if (R.w) {
        if (!rc && R.st.tiles_written == 0)
            rc = cmir__error(CMIR_EINVAL, "%s: no tile passed the nodata and label checks; nothing written",
                             archive_path);
        if (rc)
            cmir_archive_writer_abort(R.w);
        else
            rc = cmir_archive_writer_commit(R.w);
    }
    if (!rc && progress)
        progress(1.0, NULL, user);
    release_all(&R, sc, n_pan, ms, n_ms);
    if (stats)
        *stats = R.st;
    return rc;
}
