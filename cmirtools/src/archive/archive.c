/* Tile-archive reader: opens CMIR archives and the public DSRSID layouts
 * (MATLAB v7.3 or plain HDF5), validates every variable's shape, type and
 * values, and reads tile i as one hyperslab transposed to H x W x bands. */
#include "archive_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const IMG[2] = {"PAN_IMAGES", "MUL_IMAGES"};
static const char *const NAMES_VAR[3] = {"CLASS_NAMES", "PAN_BAND_NAMES", "MS_BAND_NAMES"};

int cmir_dtype_size(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return 1;
    case CMIR_DT_UINT16: case CMIR_DT_INT16: return 2;
    case CMIR_DT_FLOAT32: return 4;
    default: return 0;
    }
}

const char *cmir_dtype_name(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return "Byte";
    case CMIR_DT_UINT16: return "UInt16";
    case CMIR_DT_INT16: return "Int16";
    case CMIR_DT_FLOAT32: return "Float32";
    default: return "Unknown";
    }
}

/* ---- opening ---- */
static void archive_free(cmir_archive *a)
{
    for (int m = 0; m < 2; m++) {
        cmir__h5_close(a->mspace[m]);
        cmir__h5_close(a->fspace[m]);
        cmir__h5_close(a->ds[m]);
    }
    cmir__h5_close(a->file);
    cmir__artab_free(&a->t);
    for (int k = 0; k < 3; k++)
        cmir__strtab_free(&a->names[k]);
    cmir__free(a->scratch);
    cmir__ar_chunkio_free(&a->io);
    cmir__free(a->path);
    cmir__free(a);
}

/* Pixel type of a dataset; float64 is read as float32. */
static int image_type(hid_t ds, cmir_dtype *out)
{
    hid_t ty = H5Dget_type(ds);
    H5T_class_t c = ty < 0 ? H5T_NO_CLASS : H5Tget_class(ty);
    size_t sz = ty < 0 ? 0 : H5Tget_size(ty);
    H5T_sign_t sg = c == H5T_INTEGER ? H5Tget_sign(ty) : H5T_SGN_ERROR;
    cmir__h5_close(ty);
    if (c == H5T_INTEGER && sz == 1 && sg == H5T_SGN_NONE)
        *out = CMIR_DT_UINT8;
    else if (c == H5T_INTEGER && sz == 2 && sg == H5T_SGN_NONE)
        *out = CMIR_DT_UINT16;
    else if (c == H5T_INTEGER && sz == 2 && sg == H5T_SGN_2)
        *out = CMIR_DT_INT16;
    else if (c == H5T_FLOAT && (sz == 4 || sz == 8))
        *out = CMIR_DT_FLOAT32;
    else
        return -1;
    return 0;
}

static int open_images(cmir_archive *a, int m)
{
    const char *name = IMG[m], *path = a->path;
    int rank = 0, rc;
    hsize_t d[4];
    cmir_dtype t;
    if ((rc = cmir__h5_open_array(a->file, path, name, &a->ds[m], &rank, d)))
        return rc;
    if (rank != 4)
        return cmir__error(CMIR_EFORMAT, "%s: '%s' has %d dimensions, expected 4 (H x W x bands x N)",
                           path, name, rank);
    if (d[3] < 1 || d[3] > CMIR__AR_MAX_SIDE || d[2] < 1 || d[2] > CMIR__AR_MAX_SIDE)
        return cmir__error(CMIR_EFORMAT, "%s: '%s' has %llu x %llu pixel tiles (1 to %d supported)",
                           path, name, (unsigned long long)d[3], (unsigned long long)d[2],
                           CMIR__AR_MAX_SIDE);
    if (d[1] < 1 || d[1] > CMIR__AR_MAX_BANDS)
        return cmir__error(CMIR_EFORMAT, "%s: '%s' has %llu bands (1 to %d supported)", path, name,
                           (unsigned long long)d[1], CMIR__AR_MAX_BANDS);
    if (d[0] > (hsize_t)CMIR__AR_MAX_TILES)
        return cmir__error(CMIR_EFORMAT, "%s: '%s' holds %llu tiles (at most 2^31 supported)", path,
                           name, (unsigned long long)d[0]);
    if (image_type(a->ds[m], &t))
        return cmir__error(CMIR_EFORMAT,
                           "%s: '%s' has an unsupported pixel type (uint8, uint16, int16, single or "
                           "double expected)", path, name);
    if (m == 0) {
        a->info.pan_h = (int)d[3];
        a->info.pan_w = (int)d[2];
        a->info.pan_bands = (int)d[1];
        a->info.pan_type = t;
        a->info.n_tiles = (int64_t)d[0];
    } else {
        a->info.ms_h = (int)d[3];
        a->info.ms_w = (int)d[2];
        a->info.ms_bands = (int)d[1];
        a->info.ms_type = t;
    }
    /* the claimed tiles against what the file stores of them */
    hid_t fty = H5Dget_type(a->ds[m]);
    size_t es = fty < 0 ? 0 : H5Tget_size(fty);
    cmir__h5_close(fty);
    hsize_t tile = d[1] * d[2] * d[3] * (hsize_t)es; /* < 2^45 by the limits above */
    hsize_t bytes = tile && d[0] > ((hsize_t)-1) / tile ? (hsize_t)-1 : d[0] * tile;
    if ((rc = cmir__h5_check_stored(a->ds[m], path, name, d[0], "tiles", bytes)))
        return rc;
    hsize_t count[4] = {1, d[1], d[2], d[3]};
    if ((a->fspace[m] = H5Dget_space(a->ds[m])) < 0 ||
        (a->mspace[m] = H5Screate_simple(4, count, NULL)) < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot read the size of '%s'", name);
    if (m == 1 && (int64_t)d[0] != a->info.n_tiles)
        return cmir__error(CMIR_EFORMAT, "%s: PAN_IMAGES holds %lld tiles but MUL_IMAGES %llu", path,
                           (long long)a->info.n_tiles, (unsigned long long)d[0]);
    return cmir__ar_chunk_plan(a->ds[m], t, &a->fmt[m]);
}

/* Reads `name` as an N x width table (MATLAB width x N, HDF5 dims (N,
 * width); for width 1 any vector of N). Absent: *out = NULL, returns 0. */
static int read_table(cmir_archive *a, const char *name, int width, double **out)
{
    int64_t n = a->info.n_tiles;
    int rank = 0, rc, e = cmir__h5_exists(a->file, name);
    hsize_t d[4] = {1, 1, 1, 1};
    hid_t ds;
    *out = NULL;
    if (e < 0)
        return cmir__h5_error(CMIR_EFORMAT, a->path, "cannot look up '%s'", name);
    if (!e)
        return 0;
    if ((rc = cmir__h5_open_array(a->file, a->path, name, &ds, &rank, d)))
        return rc;
    int ok;
    if (width == 1) {
        hsize_t total = 1;
        int big = 0;
        for (int i = 0; i < rank; i++) {
            total *= d[i];
            big += d[i] != 1;
        }
        ok = total == (hsize_t)n && big <= 1;
    } else {
        ok = rank == 2 && d[0] == (hsize_t)n && d[1] == (hsize_t)width;
    }
    if (!ok) {
        char got[80] = "";
        for (int i = rank - 1; i >= 0; i--) /* MATLAB order */
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu",
                     i == rank - 1 ? "" : " x ", (unsigned long long)d[i]);
        if (width == 1)
            rc = cmir__error(CMIR_EFORMAT, "%s: '%s' is %s, expected a vector of %lld (one per tile)",
                             a->path, name, rank ? got : "a scalar", (long long)n);
        else
            rc = cmir__error(CMIR_EFORMAT, "%s: '%s' is %s, expected %d x %lld", a->path, name,
                             rank ? got : "a scalar", width, (long long)n);
    } else if ((rc = cmir__h5_check_array(ds, a->path, name))) {
        /* message set */
    } else if (!(*out = cmir__malloc(sizeof(double) * (size_t)(n * width > 0 ? n * width : 1)))) {
        rc = CMIR_ENOMEM;
    } else if (n > 0) {
        rc = cmir__h5_read_all(ds, a->path, name, H5T_NATIVE_DOUBLE, *out);
    }
    cmir__h5_close(ds);
    if (rc) {
        cmir__free(*out);
        *out = NULL;
    }
    return rc;
}

/* Integer-valued doubles in [0, hi] to int32; NULL src gives zeros. */
static int to_index(cmir_archive *a, const char *name, const double *src, int64_t hi,
                    const char *what, int32_t **out)
{
    int64_t n = a->info.n_tiles;
    *out = cmir__calloc((size_t)(n ? n : 1), sizeof(int32_t));
    if (!*out)
        return CMIR_ENOMEM;
    for (int64_t i = 0; src && i < n; i++) {
        double x = src[i];
        if (!(x >= 0 && x <= (double)hi) || x != floor(x))
            return cmir__error(CMIR_EFORMAT, "%s: %s of tile %lld is %g, expected %s 0..%lld",
                               a->path, name, (long long)i, x, what, (long long)hi);
        (*out)[i] = (int32_t)x;
    }
    return 0;
}

static int read_names(cmir_archive *a, int k, int rows)
{
    int e = cmir__h5_exists(a->file, NAMES_VAR[k]), rc;
    if (e < 0)
        return cmir__h5_error(CMIR_EFORMAT, a->path, "cannot look up '%s'", NAMES_VAR[k]);
    if (e && (rc = cmir__h5_read_chars(a->file, a->path, NAMES_VAR[k], &a->names[k])))
        return rc;
    a->named[k] = a->names[k].n > 0;
    if (a->named[k] && rows >= 0 && a->names[k].n != rows)
        return cmir__error(CMIR_EFORMAT, "%s: %s has %d rows, expected %d (one per band)", a->path,
                           NAMES_VAR[k], a->names[k].n, rows);
    if (a->names[k].n > CMIR__AR_MAX_CLASSES)
        return cmir__error(CMIR_EFORMAT, "%s: %s has %d rows (at most %d supported)", a->path,
                           NAMES_VAR[k], a->names[k].n, CMIR__AR_MAX_CLASSES);
    return 0;
}

/* Names that the file does not record: "class_<c>", "band_<b+1>". */
static int default_names(cmir_archive *a, int k, int count)
{
    char buf[32];
    int rc = 0;
    for (int i = 0; !a->named[k] && !rc && i < count; i++) {
        snprintf(buf, sizeof buf, "%s_%d", k ? "band" : "class", i + 1);
        rc = cmir__strtab_push(&a->names[k], buf);
    }
    return rc;
}

static int load_labels(cmir_archive *a)
{
    int64_t n = a->info.n_tiles;
    double *v = NULL;
    int rc, maxl = 0, C;
    if ((rc = read_table(a, "LAND_COVER_TYPES", 1, &v)) ||
        (rc = to_index(a, "LAND_COVER_TYPES", v, CMIR__AR_MAX_CLASSES, "a class", &a->t.label)) ||
        (rc = read_names(a, 0, -1)))
        goto done;
    for (int64_t i = 0; i < n; i++)
        if (a->t.label[i] > maxl)
            maxl = a->t.label[i];
    C = a->named[0] ? a->names[0].n : maxl;
    cmir__free(v);
    v = NULL;
    int e = cmir__h5_exists(a->file, "MULTI_LABELS");
    if (e < 0) {
        rc = cmir__h5_error(CMIR_EFORMAT, a->path, "cannot look up 'MULTI_LABELS'");
        goto done;
    }
    if (e) {
        /* Its width gives C when no names do. */
        hid_t ds;
        int rank = 0;
        hsize_t d[4] = {0, 0, 0, 0};
        if ((rc = cmir__h5_open_array(a->file, a->path, "MULTI_LABELS", &ds, &rank, d)))
            goto done;
        cmir__h5_close(ds);
        if (!a->named[0] && rank == 2 && d[1] > (hsize_t)C && d[1] <= CMIR__AR_MAX_CLASSES)
            C = (int)d[1];
        if (C < 1) {
            rc = cmir__error(CMIR_EFORMAT, "%s: MULTI_LABELS has no classes", a->path);
            goto done;
        }
        if ((rc = read_table(a, "MULTI_LABELS", C, &v)))
            goto done;
        if (!(a->t.multi = cmir__malloc((size_t)(n * C > 0 ? n * C : 1)))) {
            rc = CMIR_ENOMEM;
            goto done;
        }
        for (int64_t k = 0; k < n * C; k++) {
            if (v[k] != 0 && v[k] != 1) {
                rc = cmir__error(CMIR_EFORMAT, "%s: MULTI_LABELS of tile %lld holds %g (0 or 1 expected)",
                                 a->path, (long long)(k / C), v[k]);
                goto done;
            }
            a->t.multi[k] = (uint8_t)v[k];
        }
        a->info.has_multilabel = 1;
    }
    if (maxl > C) {
        for (int64_t i = 0; i < n; i++)
            if (a->t.label[i] > C) {
                rc = cmir__error(CMIR_EFORMAT, "%s: tile %lld has label %d but CLASS_NAMES names %d classes",
                                 a->path, (long long)i, a->t.label[i], C);
                goto done;
            }
    }
    a->info.n_classes = C;
    rc = default_names(a, 0, C);
done:
    cmir__free(v);
    return rc;
}

/* TILE_CRS/CRS_WKT or TILE_SCENE/SCENE_NAMES. */
static int load_index(cmir_archive *a, const char *idx_name, const char *tab_name,
                      cmir__strtab *tab, int32_t **out)
{
    double *v = NULL;
    int rc, e = cmir__h5_exists(a->file, tab_name);
    if (e < 0)
        return cmir__h5_error(CMIR_EFORMAT, a->path, "cannot look up '%s'", tab_name);
    if (e && (rc = cmir__h5_read_chars(a->file, a->path, tab_name, tab)))
        return rc;
    if ((rc = read_table(a, idx_name, 1, &v)))
        return rc;
    if (v)
        rc = to_index(a, idx_name, v, tab->n, "a row number", out);
    cmir__free(v);
    return rc;
}

static int open_impl(cmir_archive *a, const char *path)
{
    int rc;
    if (!(a->path = cmir__strdup(path)))
        return CMIR_ENOMEM;
    a->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a->file < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot open as an HDF5 or MATLAB v7.3 file");
    int fmt = cmir__h5_exists(a->file, "CMIR_FORMAT"), pan = cmir__h5_exists(a->file, IMG[0]);
    int ms = cmir__h5_exists(a->file, IMG[1]), lab = cmir__h5_exists(a->file, "LAND_COVER_TYPES");
    if (fmt < 0 || pan < 0 || ms < 0 || lab < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot list the variables");
    if (fmt) {
        cmir__strtab f = {0};
        rc = cmir__h5_read_chars(a->file, path, "CMIR_FORMAT", &f);
        if (!rc && (f.n != 1 || strcmp(f.s[0], CMIR__AR_FORMAT) != 0)) {
            const char *got = f.n ? f.s[0] : "";
            if (strncmp(got, CMIR__AR_FORMAT_PREFIX, strlen(CMIR__AR_FORMAT_PREFIX)) == 0)
                rc = cmir__error(CMIR_EUNSUPPORTED, "%s: archive format '%s' is newer than this build ('%s')",
                                 path, got, CMIR__AR_FORMAT);
            else
                rc = cmir__error(CMIR_EFORMAT, "%s: CMIR_FORMAT is '%.60s', expected '%s'", path, got,
                                 CMIR__AR_FORMAT);
        }
        cmir__strtab_free(&f);
        if (rc)
            return rc;
        a->info.layout = CMIR_LAYOUT_CMIR;
    } else if (pan || ms || lab) {
        char head[20] = "";
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(head, 1, 19, f) : 0;
        if (f)
            fclose(f);
        a->info.layout = got == 19 && memcmp(head, "MATLAB 7.3 MAT-file", 19) == 0
                             ? CMIR_LAYOUT_DSRSID_MAT73
                             : CMIR_LAYOUT_DSRSID_HDF5;
    } else {
        return cmir__error(CMIR_EFORMAT, "%s: not a tile archive (no CMIR_FORMAT, PAN_IMAGES or "
                           "MUL_IMAGES variable)", path);
    }
    if (!pan || !ms)
        return cmir__error(CMIR_EFORMAT, "%s: variable '%s' is missing", path, IMG[pan ? 1 : 0]);
    if ((rc = open_images(a, 0)) || (rc = open_images(a, 1)) || (rc = load_labels(a)))
        return rc;
    static const char *const GT[2] = {"PAN_GEOTRANSFORM", "MUL_GEOTRANSFORM"};
    static const char *const WIN[2] = {"PAN_WINDOW", "MUL_WINDOW"};
    for (int m = 0; m < 2; m++)
        if ((rc = read_table(a, GT[m], 6, &a->t.gt[m])) || (rc = read_table(a, WIN[m], 4, &a->t.win[m])))
            return rc;
    a->info.has_georef = a->t.gt[0] && a->t.gt[1];
    if ((rc = load_index(a, "TILE_CRS", "CRS_WKT", &a->t.crs_wkt, &a->t.crs)) ||
        (rc = load_index(a, "TILE_SCENE", "SCENE_NAMES", &a->t.scenes, &a->t.scene)) ||
        (rc = load_index(a, "MUL_SCENE", "MUL_SCENE_NAMES", &a->t.ms_scenes, &a->t.ms_scene)) ||
        (rc = read_names(a, 1, a->info.pan_bands)) || (rc = read_names(a, 2, a->info.ms_bands)) ||
        (rc = default_names(a, 1, a->info.pan_bands)) ||
        (rc = default_names(a, 2, a->info.ms_bands)))
        return rc;
    a->nodata[0] = a->nodata[1] = NAN;
    if ((rc = cmir__h5_exists(a->file, "NODATA")) < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot look up 'NODATA'");
    if (rc) {
        hid_t ds;
        int rank = 0;
        hsize_t d[4] = {0, 0, 0, 0}, total = 1;
        if ((rc = cmir__h5_open_array(a->file, path, "NODATA", &ds, &rank, d)))
            return rc;
        for (int i = 0; i < rank; i++)
            total *= d[i];
        if (total != 2)
            rc = cmir__error(CMIR_EFORMAT, "%s: NODATA holds %llu values, expected 2 (PAN, MS)",
                             path, (unsigned long long)total);
        else
            rc = cmir__h5_read_all(ds, path, "NODATA", H5T_NATIVE_DOUBLE, a->nodata);
        cmir__h5_close(ds);
        if (rc)
            return rc;
    }
    a->t.n = a->t.cap = a->info.n_tiles;
    return 0;
}

cmir_archive *cmir_archive_open(const char *path)
{
    struct stat st;
    if (!path) {
        cmir__error(CMIR_EINVAL, "cmir_archive_open: NULL path");
        return NULL;
    }
    if (cmir__stat_regular(path, &st))
        return NULL;
    cmir_archive *a = cmir__calloc(1, sizeof *a);
    if (!a) {
        cmir__ar_oom(CMIR_ENOMEM, path);
        return NULL;
    }
    a->file = -1;
    for (int m = 0; m < 2; m++)
        a->ds[m] = a->fspace[m] = a->mspace[m] = -1;
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    int rc = open_impl(a, path);
    if (rc) {
        cmir__ar_oom(rc, path);
        archive_free(a);
    }
    cmir__h5_restore(&q);
    return rc ? NULL : a;
}

void cmir_archive_close(cmir_archive *a)
{
    if (!a)
        return;
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    archive_free(a);
    cmir__h5_restore(&q);
}

const cmir_archive_info *cmir_archive_get_info(const cmir_archive *a)
{
    if (!a) {
        cmir__error(CMIR_EINVAL, "cmir_archive_get_info: NULL archive");
        return NULL;
    }
    return &a->info;
}

/* ---- tiles ---- */
static int check_tile(const cmir_archive *a, int m, int64_t i, const char *fn)
{
    if (!a)
        return cmir__error(CMIR_EINVAL, "%s: NULL archive", fn);
    if (m != CMIR_PAN && m != CMIR_MS)
        return cmir__error(CMIR_EINVAL, "%s: %s: invalid modality %d", fn, a->path, m);
    if (i < 0 || i >= a->info.n_tiles)
        return cmir__error(CMIR_EINVAL, "%s: %s: tile %lld out of range (the archive holds %lld)",
                           fn, a->path, (long long)i, (long long)a->info.n_tiles);
    return 0;
}

static void tile_dims(const cmir_archive *a, int m, size_t *h, size_t *w, size_t *b)
{
    const cmir_archive_info *f = &a->info;
    *h = (size_t)(m == 0 ? f->pan_h : f->ms_h);
    *w = (size_t)(m == 0 ? f->pan_w : f->ms_w);
    *b = (size_t)(m == 0 ? f->pan_bands : f->ms_bands);
}

/* Reads the stored tile (HDF5 order bands x W x H) into a->scratch. */
static int read_stored(cmir_archive *a, int m, int64_t i)
{
    size_t h, w, b;
    cmir_dtype t = m == 0 ? a->info.pan_type : a->info.ms_type;
    tile_dims(a, m, &h, &w, &b);
    size_t bytes = h * w * b * (size_t)cmir_dtype_size(t);
    if (a->scratch_size < bytes) {
        cmir__free(a->scratch);
        a->scratch_size = 0;
        if (!(a->scratch = cmir__malloc(bytes)))
            return cmir__ar_oom(CMIR_ENOMEM, a->path);
        a->scratch_size = bytes;
    }
    hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, count[4] = {1, b, w, h};
    int rc = 1;
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    /* one tile per chunk, ours: H5Dread_chunk and libdeflate (1: not stored,
     * HDF5's own path gives the fill values) */
    if (a->fmt[m].direct && a->fmt[m].bytes == bytes &&
        (rc = cmir__ar_read_chunk(&a->io, a->ds[m], &a->fmt[m], (hsize_t)i, a->scratch)) < 0) {
        rc = cmir__h5_error(rc, a->path, "cannot read tile %lld of %s: %s", (long long)i, IMG[m],
                            cmir_last_error());
        cmir__h5_restore(&q);
        return rc;
    }
    if (rc == 0) {
        cmir__h5_restore(&q);
        return 0;
    }
    rc = 0;
    if (H5Sselect_hyperslab(a->fspace[m], H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(a->ds[m], cmir__h5_memtype(t), a->mspace[m], a->fspace[m], H5P_DEFAULT,
                a->scratch) < 0)
        rc = cmir__h5_error(CMIR_EIO, a->path, "cannot read tile %lld of %s", (long long)i, IMG[m]);
    cmir__h5_restore(&q);
    return rc;
}

/* src[b][w][h] -> dst[h][w][b], converting TS to TD. */
#define FROM_HDF(TS, TD)                                                                 \
    do {                                                                                 \
        const TS *s_ = (const TS *)src;                                                  \
        TD *d_ = (TD *)dst;                                                              \
        for (size_t b_ = 0; b_ < nb; b_++)                                               \
            for (size_t w_ = 0; w_ < nw; w_++) {                                         \
                const TS *c_ = s_ + (b_ * nw + w_) * nh;                                 \
                TD *o_ = d_ + w_ * nb + b_;                                              \
                for (size_t h_ = 0; h_ < nh; h_++)                                       \
                    o_[h_ * nw * nb] = (TD)c_[h_];                                       \
            }                                                                            \
    } while (0)

/* The checks and the read that both tile readers start with: tile i of
 * modality m into a->scratch, its dimensions into nh, nw, nb. */
static int load_tile(cmir_archive *a, cmir_modality m, int64_t i, const void *out, const char *fn, size_t *nh,
                     size_t *nw, size_t *nb)
{
    int rc = check_tile(a, m, i, fn);
    if (rc)
        return rc;
    if (!out)
        return cmir__error(CMIR_EINVAL, "%s: NULL output", fn);
    if ((rc = read_stored(a, m, i)))
        return rc;
    tile_dims(a, m, nh, nw, nb);
    return 0;
}

int cmir_archive_read_tile(cmir_archive *a, cmir_modality m, int64_t i, float *out)
{
    size_t nh, nw, nb;
    int rc = load_tile(a, m, i, out, "cmir_archive_read_tile", &nh, &nw, &nb);
    if (rc)
        return rc;
    const void *src = a->scratch;
    void *dst = out;
    switch (m == 0 ? a->info.pan_type : a->info.ms_type) {
    case CMIR_DT_UINT8: FROM_HDF(uint8_t, float); break;
    case CMIR_DT_UINT16: FROM_HDF(uint16_t, float); break;
    case CMIR_DT_INT16: FROM_HDF(int16_t, float); break;
    default: FROM_HDF(float, float); break;
    }
    return 0;
}

int cmir_archive_read_tile_raw(cmir_archive *a, cmir_modality m, int64_t i, void *out)
{
    size_t nh, nw, nb;
    int rc = load_tile(a, m, i, out, "cmir_archive_read_tile_raw", &nh, &nw, &nb);
    if (rc)
        return rc;
    const void *src = a->scratch;
    void *dst = out;
    switch (cmir_dtype_size(m == 0 ? a->info.pan_type : a->info.ms_type)) {
    case 1: FROM_HDF(uint8_t, uint8_t); break;
    case 2: FROM_HDF(uint16_t, uint16_t); break;
    default: FROM_HDF(uint32_t, uint32_t); break;
    }
    return 0;
}

/* ---- labels, names, georeferencing ---- */
int cmir_archive_label(const cmir_archive *a, int64_t i)
{
    int rc = check_tile(a, CMIR_PAN, i, "cmir_archive_label");
    return rc ? rc : a->t.label[i];
}

int cmir_archive_multilabel(const cmir_archive *a, int64_t i, uint8_t *out)
{
    int rc = check_tile(a, CMIR_PAN, i, "cmir_archive_multilabel");
    int C = a ? a->info.n_classes : 0;
    if (rc)
        return rc;
    if (!out)
        return cmir__error(CMIR_EINVAL, "cmir_archive_multilabel: NULL output");
    for (int c = 0; c < C; c++)
        out[c] = a->t.multi ? a->t.multi[i * C + c] : (uint8_t)(a->t.label[i] == c + 1);
    return 0;
}

const char *cmir_archive_class_name(const cmir_archive *a, int c)
{
    if (!a || c < 1 || c > a->info.n_classes) {
        cmir__error(CMIR_EINVAL, "cmir_archive_class_name: class %d out of range (1..%d)", c,
                    a ? a->info.n_classes : 0);
        return NULL;
    }
    return a->names[0].s[c - 1];
}

const char *cmir_archive_band_name(const cmir_archive *a, cmir_modality m, int b)
{
    int nb = !a ? 0 : m == CMIR_PAN ? a->info.pan_bands : m == CMIR_MS ? a->info.ms_bands : 0;
    if (b < 0 || b >= nb) {
        cmir__error(CMIR_EINVAL, "cmir_archive_band_name: band %d out of range (0..%d)", b, nb - 1);
        return NULL;
    }
    return a->names[1 + m].s[b];
}

/* Row i of a per-tile table of width k, or ENOTFOUND when not recorded. */
static int get_row(const cmir_archive *a, int m, int64_t i, const double *tab, int k,
                   const char *what, const char *fn, double *out)
{
    int rc = check_tile(a, m, i, fn);
    if (rc)
        return rc;
    if (!out)
        return cmir__error(CMIR_EINVAL, "%s: NULL output", fn);
    if (!tab || isnan(tab[i * k]))
        return cmir__error(CMIR_ENOTFOUND, "%s: no %s recorded for tile %lld", a->path, what,
                           (long long)i);
    memcpy(out, tab + i * k, sizeof(double) * (size_t)k);
    return 0;
}

int cmir_archive_geotransform(const cmir_archive *a, cmir_modality m, int64_t i, double gt[6])
{
    int ok = a && (m == CMIR_PAN || m == CMIR_MS);
    return get_row(a, m, i, ok ? a->t.gt[m] : NULL, 6, "geotransform", "cmir_archive_geotransform", gt);
}

int cmir_archive_window(const cmir_archive *a, cmir_modality m, int64_t i, double win[4])
{
    int ok = a && (m == CMIR_PAN || m == CMIR_MS);
    return get_row(a, m, i, ok ? a->t.win[m] : NULL, 4, "pixel window", "cmir_archive_window", win);
}

static const char *lookup(const cmir_archive *a, int64_t i, const int32_t *idx,
                          const cmir__strtab *tab, const char *what, const char *fn)
{
    if (check_tile(a, CMIR_PAN, i, fn))
        return NULL;
    if (!idx || idx[i] == 0) {
        cmir__error(CMIR_ENOTFOUND, "%s: no %s recorded for tile %lld", a->path, what, (long long)i);
        return NULL;
    }
    return tab->s[idx[i] - 1];
}

const char *cmir_archive_crs(const cmir_archive *a, int64_t i)
{
    return lookup(a, i, a ? a->t.crs : NULL, a ? &a->t.crs_wkt : NULL, "CRS", "cmir_archive_crs");
}

const char *cmir_archive_scene(const cmir_archive *a, int64_t i)
{
    return lookup(a, i, a ? a->t.scene : NULL, a ? &a->t.scenes : NULL, "scene",
                  "cmir_archive_scene");
}

const char *cmir_archive_source(const cmir_archive *a, cmir_modality m, int64_t i)
{
    if (m == CMIR_MS)
        return lookup(a, i, a ? a->t.ms_scene : NULL, a ? &a->t.ms_scenes : NULL, "MS scene",
                      "cmir_archive_source");
    return cmir_archive_scene(a, i);
}

int cmir_archive_nodata(const cmir_archive *a, cmir_modality m, double *value)
{
    if (!a || !value || (m != CMIR_PAN && m != CMIR_MS))
        return cmir__error(CMIR_EINVAL, "cmir_archive_nodata: invalid argument");
    if (isnan(a->nodata[m]))
        return cmir__error(CMIR_ENOTFOUND, "%s: no %s nodata value", a->path, m ? "MS" : "PAN");
    *value = a->nodata[m];
    return 0;
}
