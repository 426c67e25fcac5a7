/* Tile-archive writer: creates or appends to a CMIR archive (MATLAB v7.3
 * through HDF5, one chunk per tile) in a temporary file beside the target,
 * then writes MATLAB's header, fsyncs and renames it over the target. */
#include "archive_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

static const char *const IMG[2] = {"PAN_IMAGES", "MUL_IMAGES"};
static const char *const NAMES_VAR[3] = {"CLASS_NAMES", "PAN_BAND_NAMES", "MS_BAND_NAMES"};
/* The small variables, written from memory at every commit. */
static const char *const SMALL[] = {
    "LAND_COVER_TYPES", "MULTI_LABELS", "PAN_GEOTRANSFORM", "MUL_GEOTRANSFORM", "PAN_WINDOW",
    "MUL_WINDOW",       "TILE_CRS",     "CRS_WKT",          "TILE_SCENE",       "SCENE_NAMES",
    "NODATA",           "CLASS_NAMES",  "PAN_BAND_NAMES",   "MS_BAND_NAMES",    "CMIR_FORMAT",
    "MUL_SCENE",        "MUL_SCENE_NAMES"};
/* Distinct CRSs or scenes one archive may name. */
#define MAX_TABLE (1 << 20)

struct cmir_archive_writer {
    char *path;
    cmir__atomic_file af; /* the temporary file, renamed over path at commit */
    hid_t file, ds[2], fspace[2], mspace[2];
    int h[2], w[2], b[2];
    cmir_dtype type[2];
    int n_classes, multilabel;
    double nodata[2];
    cmir__strtab names[3];
    int named[3];
    cmir__artab t; /* every array allocated (multi only with multilabel) */
    hsize_t extent; /* of the image datasets along N (>= t.n) */
    void *buf[2];   /* one tile in HDF5 order */
    int failed;
    int last_crs, last_scene, last_ms_scene;
    int lock_fd; /* append: the archive, locked (flock) until commit/abort */
    cmir__chunkfmt fmt[2]; /* direct: tiles go through libdeflate and H5Dwrite_chunk */
    cmir__chunkio io;
    int zlib; /* params.deflate_zlib: HDF5's own filter instead */
};

cmir_archive_params cmir_archive_default_params(void)
{
    cmir_archive_params p;
    memset(&p, 0, sizeof p);
    p.pan_h = p.pan_w = 256;
    p.pan_bands = 1;
    p.ms_h = p.ms_w = 64;
    p.ms_bands = 4;
    p.pan_type = p.ms_type = CMIR_DT_UINT8;
    p.deflate = 1;
    p.pan_nodata = p.ms_nodata = NAN;
    return p;
}

static void close_ids(cmir_archive_writer *w)
{
    for (int m = 0; m < 2; m++) {
        cmir__h5_close(w->mspace[m]);
        cmir__h5_close(w->fspace[m]);
        cmir__h5_close(w->ds[m]);
        w->mspace[m] = w->fspace[m] = w->ds[m] = -1;
    }
}

static void writer_free(cmir_archive_writer *w)
{
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    close_ids(w);
    cmir__h5_close(w->file);
    cmir__h5_restore(&q);
    cmir__atomic_abort(&w->af);
    cmir__free(w->path);
    for (int k = 0; k < 3; k++)
        cmir__strtab_free(&w->names[k]);
    cmir__artab_free(&w->t);
    cmir__free(w->buf[0]);
    cmir__free(w->buf[1]);
    cmir__ar_chunkio_free(&w->io);
    if (w->lock_fd >= 0)
        close(w->lock_fd); /* releases the append lock */
    cmir__free(w);
}

static cmir_archive_writer *writer_new(const char *path)
{
    cmir_archive_writer *w = cmir__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->file = -1;
    w->lock_fd = -1;
    w->af.fd = -1;
    for (int m = 0; m < 2; m++)
        w->ds[m] = w->fspace[m] = w->mspace[m] = -1;
    if (!(w->path = cmir__strdup(path))) {
        cmir__free(w);
        return NULL;
    }
    return w;
}

static size_t tile_bytes(const cmir_archive_writer *w, int m)
{
    return (size_t)w->h[m] * (size_t)w->w[m] * (size_t)w->b[m] * (size_t)cmir_dtype_size(w->type[m]);
}

/* Grows every per-tile array to hold `need` tiles. */
static int grow(cmir_archive_writer *w, int64_t need)
{
    cmir__artab *t = &w->t;
    if (need <= t->cap)
        return 0;
    int64_t cap = t->cap < 256 ? 256 : t->cap;
    while (cap < need)
        cap *= 2;
    size_t n = (size_t)cap, C = (size_t)w->n_classes;
    void *p;
#define GROW(field, bytes)                                                                     \
    do {                                                                                       \
        if (!(p = cmir__realloc(t->field, (bytes))))                                           \
            return CMIR_ENOMEM;                                                                \
        t->field = p;                                                                          \
    } while (0)
    GROW(label, n * sizeof(int32_t));
    GROW(crs, n * sizeof(int32_t));
    GROW(scene, n * sizeof(int32_t));
    GROW(ms_scene, n * sizeof(int32_t));
    for (int m = 0; m < 2; m++) {
        GROW(gt[m], n * 6 * sizeof(double));
        GROW(win[m], n * 4 * sizeof(double));
    }
    if (w->multilabel)
        GROW(multi, n * C);
#undef GROW
    t->cap = cap;
    return 0;
}

/* The temporary file beside the target; *fd is its descriptor, which the
 * caller closes (HDF5 reopens the file by name). */
static int make_tmp(cmir_archive_writer *w, int *fd)
{
    int rc = cmir__atomic_open(&w->af, w->path, 0);
    *fd = w->af.fd;
    w->af.fd = -1; /* handed to the caller */
    return rc;
}

/* HDF5 access list closing every object with the file, so that commit
 * really closes it before writing the header. */
static hid_t strong_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

static int open_spaces(cmir_archive_writer *w, int m)
{
    hsize_t count[4] = {1, (hsize_t)w->b[m], (hsize_t)w->w[m], (hsize_t)w->h[m]};
    cmir__h5_close(w->fspace[m]);
    if ((w->fspace[m] = H5Dget_space(w->ds[m])) < 0 ||
        (w->mspace[m] < 0 && (w->mspace[m] = H5Screate_simple(4, count, NULL)) < 0))
        return cmir__h5_error(CMIR_EIO, w->path, "cannot get the dataspace of '%s'", IMG[m]);
    return 0;
}

/* ---- create ---- */
int cmir_archive_check_params(cmir_archive_params p)
{
    const char *who = "cmir_archive_params";
    const char *sname[4] = {"pan_h", "pan_w", "ms_h", "ms_w"};
    const int side[4] = {p.pan_h, p.pan_w, p.ms_h, p.ms_w};
    for (int k = 0; k < 4; k++)
        if (side[k] < 1 || side[k] > CMIR__AR_MAX_SIDE)
            return cmir__error(CMIR_EINVAL, "%s.%s: tile side must be in 1..%d, got %d", who, sname[k],
                               CMIR__AR_MAX_SIDE, side[k]);
    if (p.pan_bands < 1 || p.pan_bands > CMIR__AR_MAX_BANDS)
        return cmir__error(CMIR_EINVAL, "%s.pan_bands: must be in 1..%d, got %d", who, CMIR__AR_MAX_BANDS,
                           p.pan_bands);
    if (p.ms_bands < 1 || p.ms_bands > CMIR__AR_MAX_BANDS)
        return cmir__error(CMIR_EINVAL, "%s.ms_bands: must be in 1..%d, got %d", who, CMIR__AR_MAX_BANDS,
                           p.ms_bands);
    if (!cmir_dtype_size(p.pan_type))
        return cmir__error(CMIR_EINVAL, "%s.pan_type: unknown pixel type %d", who, (int)p.pan_type);
    if (!cmir_dtype_size(p.ms_type))
        return cmir__error(CMIR_EINVAL, "%s.ms_type: unknown pixel type %d", who, (int)p.ms_type);
    if ((double)p.pan_h * p.pan_w * p.pan_bands * cmir_dtype_size(p.pan_type) > 2147483647.0)
        return cmir__error(CMIR_EINVAL, "%s.pan_h: a PAN tile over 2 GiB does not fit one HDF5 chunk", who);
    if ((double)p.ms_h * p.ms_w * p.ms_bands * cmir_dtype_size(p.ms_type) > 2147483647.0)
        return cmir__error(CMIR_EINVAL, "%s.ms_h: an MS tile over 2 GiB does not fit one HDF5 chunk", who);
    if (p.n_classes < 0 || p.n_classes > CMIR__AR_MAX_CLASSES)
        return cmir__error(CMIR_EINVAL, "%s.n_classes: must be in 0..%d, got %d", who, CMIR__AR_MAX_CLASSES,
                           p.n_classes);
    if (p.multilabel && p.n_classes == 0)
        return cmir__error(CMIR_EINVAL, "%s.multilabel: needs n_classes > 0, got multilabel %d", who,
                           p.multilabel);
    if (p.deflate < 0 || p.deflate > 9)
        return cmir__error(CMIR_EINVAL, "%s.deflate: must be in 0..9, got %d", who, p.deflate);
    if (p.deflate_zlib != 0 && p.deflate_zlib != 1)
        return cmir__error(CMIR_EINVAL, "%s.deflate_zlib: must be 0 or 1, got %d", who,
                           p.deflate_zlib);
    return 0;
}

static int copy_names(cmir_archive_writer *w, int k, const char *const *names, int count)
{
    char buf[32];
    int rc = 0;
    for (int i = 0; !rc && i < count; i++) {
        if (names && !names[i])
            return cmir__error(CMIR_EINVAL, "cmir_archive_create: %s: name %d of %s is NULL",
                               w->path, i, NAMES_VAR[k]);
        snprintf(buf, sizeof buf, "class_%d", i + 1);
        rc = cmir__strtab_push(&w->names[k], names ? names[i] : buf);
    }
    w->named[k] = count > 0 && (names != NULL || k == 0); /* C survives a reopen */
    return rc;
}

static int create_images(cmir_archive_writer *w, int m, int deflate)
{
    hsize_t dims[4] = {0, (hsize_t)w->b[m], (hsize_t)w->w[m], (hsize_t)w->h[m]};
    hsize_t maxd[4] = {H5S_UNLIMITED, dims[1], dims[2], dims[3]};
    hsize_t chunk[4] = {1, dims[1], dims[2], dims[3]};
    hid_t sp = H5Screate_simple(4, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = 0;
    if (sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 4, chunk) < 0 ||
        (deflate > 0 && cmir_dtype_size(w->type[m]) == 2 && H5Pset_shuffle(dcpl) < 0) ||
        (deflate > 0 && H5Pset_deflate(dcpl, (unsigned)deflate) < 0) ||
        (w->ds[m] = H5Dcreate2(w->file, IMG[m], cmir__h5_filetype(w->type[m]), sp, H5P_DEFAULT,
                               dcpl, H5P_DEFAULT)) < 0)
        rc = cmir__h5_error(CMIR_EIO, w->path, "cannot create variable '%s'", IMG[m]);
    else if (!(rc = cmir__h5_set_class(w->ds[m], w->path, cmir__mat_class(w->type[m]))))
        rc = open_spaces(w, m);
    if (!rc)
        rc = cmir__ar_chunk_plan(w->ds[m], w->type[m], &w->fmt[m]);
    cmir__h5_close(dcpl);
    cmir__h5_close(sp);
    return rc;
}

static int create_file(cmir_archive_writer *w, int deflate)
{
    int fd, rc;
    if ((rc = make_tmp(w, &fd)))
        return rc;
    fchmod(fd, 0644);
    close(fd);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = strong_fapl();
    if (fcpl < 0 || fapl < 0 || H5Pset_userblock(fcpl, 512) < 0 ||
        (w->file = H5Fcreate(w->af.tmp, H5F_ACC_TRUNC, fcpl, fapl)) < 0)
        rc = cmir__h5_error(CMIR_EIO, w->path, "cannot create the temporary file");
    cmir__h5_close(fapl);
    cmir__h5_close(fcpl);
    if (!rc && !(rc = create_images(w, 0, deflate)))
        rc = create_images(w, 1, deflate);
    return rc;
}

cmir_archive_writer *cmir_archive_create(const char *path, cmir_archive_params p)
{
    if (!path) {
        cmir__error(CMIR_EINVAL, "cmir_archive_create: NULL path");
        return NULL;
    }
    if (cmir_archive_check_params(p)) {
        char pre[64 + 4096];
        snprintf(pre, sizeof pre, "cmir_archive_create: %s", path);
        cmir__error_prefix(pre);
        return NULL;
    }
    cmir_archive_writer *w = writer_new(path);
    if (!w) {
        cmir__ar_oom(CMIR_ENOMEM, path);
        return NULL;
    }
    w->h[0] = p.pan_h, w->w[0] = p.pan_w, w->b[0] = p.pan_bands, w->type[0] = p.pan_type;
    w->h[1] = p.ms_h, w->w[1] = p.ms_w, w->b[1] = p.ms_bands, w->type[1] = p.ms_type;
    w->n_classes = p.n_classes;
    w->multilabel = p.multilabel;
    w->nodata[0] = p.pan_nodata;
    w->nodata[1] = p.ms_nodata;
    w->zlib = p.deflate_zlib;
    int rc;
    if ((rc = copy_names(w, 0, p.class_names, p.n_classes)) ||
        (rc = copy_names(w, 1, p.pan_band_names, p.pan_band_names ? p.pan_bands : 0)) ||
        (rc = copy_names(w, 2, p.ms_band_names, p.ms_band_names ? p.ms_bands : 0)) ||
        (rc = grow(w, 1)) || !(w->buf[0] = cmir__malloc(tile_bytes(w, 0))) ||
        !(w->buf[1] = cmir__malloc(tile_bytes(w, 1)))) {
        cmir__ar_oom(rc ? rc : CMIR_ENOMEM, path);
        writer_free(w);
        return NULL;
    }
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    rc = create_file(w, p.deflate);
    cmir__h5_restore(&q);
    if (rc) {
        cmir__ar_oom(rc, path);
        writer_free(w);
        return NULL;
    }
    return w;
}

/* ---- append ---- */
static int copy_file(int src, int dst, const char *path)
{
    if (ioctl(dst, FICLONE, src) == 0)
        return 0;
    size_t cap = (size_t)1 << 20;
    char *buf = cmir__malloc(cap);
    if (!buf)
        return CMIR_ENOMEM;
    int rc = 0;
    for (;;) {
        ssize_t n = read(src, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cmir__error(CMIR_EIO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t k = write(dst, buf + off, (size_t)(n - off));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = cmir__error(CMIR_EIO, "%s: cannot write the temporary copy: %s", path,
                                 k < 0 ? strerror(errno) : "short write");
                break;
            }
            off += k;
        }
        if (rc)
            break;
    }
    cmir__free(buf);
    return rc;
}

/* The image datasets must be chunked one tile per chunk and unlimited in N. */
static int open_for_append(cmir_archive_writer *w, int m)
{
    hsize_t chunk[4] = {0, 0, 0, 0}, maxd[4] = {0, 0, 0, 0};
    hid_t dcpl = -1;
    int rc = 0;
    if ((w->ds[m] = H5Dopen2(w->file, IMG[m], H5P_DEFAULT)) < 0 ||
        (dcpl = H5Dget_create_plist(w->ds[m])) < 0 || (rc = open_spaces(w, m)))
        rc = rc ? rc : cmir__h5_error(CMIR_EIO, w->path, "cannot open '%s' of the copy", IMG[m]);
    else if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 4, chunk) != 4 ||
             chunk[0] != 1 || H5Sget_simple_extent_dims(w->fspace[m], NULL, maxd) != 4 ||
             maxd[0] != H5S_UNLIMITED)
        rc = cmir__error(CMIR_EUNSUPPORTED, "%s: '%s' cannot grow (not chunked one tile per chunk "
                         "with unlimited N); write a new archive instead", w->path, IMG[m]);
    else
        rc = cmir__ar_chunk_plan(w->ds[m], w->type[m], &w->fmt[m]);
    cmir__h5_close(dcpl);
    return rc;
}

static int open_copy(cmir_archive_writer *w)
{
    struct stat st;
    int fd = -1, src = open(w->path, O_RDONLY), rc = 0;
    if (src < 0 || fstat(src, &st) != 0)
        rc = cmir__error(CMIR_EIO, "%s: %s", w->path, strerror(errno));
    else if (!(rc = make_tmp(w, &fd)))
        rc = copy_file(src, fd, w->path);
    if (!rc) {
        fchmod(fd, st.st_mode & 07777);
        if (close(fd) != 0)
            rc = cmir__error(CMIR_EIO, "%s: cannot write the temporary copy: %s", w->path,
                             strerror(errno));
        fd = -1;
    }
    if (fd >= 0)
        close(fd);
    if (src >= 0)
        close(src);
    if (rc)
        return rc;
    hid_t fapl = strong_fapl();
    if (fapl < 0 || (w->file = H5Fopen(w->af.tmp, H5F_ACC_RDWR, fapl)) < 0)
        rc = cmir__h5_error(CMIR_EIO, w->path, "cannot open the temporary copy for writing");
    cmir__h5_close(fapl);
    if (rc || (rc = open_for_append(w, 0)) || (rc = open_for_append(w, 1)))
        return rc;
    w->extent = (hsize_t)w->t.n;
    /* Dropped now so that new chunks can reuse their space; rewritten at
     * commit. */
    for (size_t k = 0; k < sizeof SMALL / sizeof SMALL[0]; k++) {
        int e = cmir__h5_exists(w->file, SMALL[k]);
        if (e < 0 || (e > 0 && H5Ldelete(w->file, SMALL[k], H5P_DEFAULT) < 0))
            return cmir__h5_error(CMIR_EIO, w->path, "cannot replace '%s'", SMALL[k]);
    }
    return 0;
}

/* Takes the reader's tables; the arrays the file lacks are filled in. */
static int take_tables(cmir_archive_writer *w, cmir_archive *a)
{
    const cmir_archive_info *f = &a->info;
    w->h[0] = f->pan_h, w->w[0] = f->pan_w, w->b[0] = f->pan_bands, w->type[0] = f->pan_type;
    w->h[1] = f->ms_h, w->w[1] = f->ms_w, w->b[1] = f->ms_bands, w->type[1] = f->ms_type;
    w->n_classes = f->n_classes;
    w->multilabel = f->has_multilabel;
    w->nodata[0] = a->nodata[0];
    w->nodata[1] = a->nodata[1];
    for (int k = 0; k < 3; k++) {
        w->names[k] = a->names[k];
        w->named[k] = a->named[k] || k == 0;
        memset(&a->names[k], 0, sizeof a->names[k]);
    }
    w->t = a->t;
    memset(&a->t, 0, sizeof a->t);
    int64_t n = w->t.n;
    size_t cnt = (size_t)(n ? n : 1);
    for (int m = 0; m < 2; m++) {
        if (!w->t.gt[m] && (w->t.gt[m] = cmir__malloc(cnt * 6 * sizeof(double))))
            for (int64_t k = 0; k < n * 6; k++)
                w->t.gt[m][k] = NAN;
        if (!w->t.win[m] && (w->t.win[m] = cmir__malloc(cnt * 4 * sizeof(double))))
            for (int64_t k = 0; k < n * 4; k++)
                w->t.win[m][k] = NAN;
        if (!w->t.gt[m] || !w->t.win[m])
            return CMIR_ENOMEM;
    }
    if ((!w->t.crs && !(w->t.crs = cmir__calloc(cnt, sizeof(int32_t)))) ||
        (!w->t.scene && !(w->t.scene = cmir__calloc(cnt, sizeof(int32_t)))) ||
        (!w->t.ms_scene && !(w->t.ms_scene = cmir__calloc(cnt, sizeof(int32_t)))))
        return CMIR_ENOMEM;
    if (!(w->buf[0] = cmir__malloc(tile_bytes(w, 0))) || !(w->buf[1] = cmir__malloc(tile_bytes(w, 1))))
        return CMIR_ENOMEM;
    return grow(w, n + 1);
}


cmir_archive_writer *cmir_archive_append(const char *path)
{
    if (!path) {
        cmir__error(CMIR_EINVAL, "cmir_archive_append: NULL path");
        return NULL;
    }
    int lock_fd = -1;
    /* the whole file, taken before it is read (independent of the flock()
     * HDF5 takes when it opens it) */
    if (cmir__lock_for_append(path, 0, 0, "archive", &lock_fd))
        return NULL;
    cmir_archive *a = cmir_archive_open(path);
    if (!a) {
        close(lock_fd);
        return NULL;
    }
    if (a->info.layout != CMIR_LAYOUT_CMIR) {
        cmir__error(CMIR_EUNSUPPORTED, "%s: cannot append to a DSRSID-layout file (read-only); "
                    "write a new CMIR archive from its tiles instead", path);
        cmir_archive_close(a);
        close(lock_fd);
        return NULL;
    }
    cmir_archive_writer *w = writer_new(path);
    if (w)
        w->lock_fd = lock_fd;
    else
        close(lock_fd);
    int rc = w ? take_tables(w, a) : CMIR_ENOMEM;
    cmir_archive_close(a);
    if (!rc) {
        cmir__h5quiet q;
        cmir__h5_quiet(&q);
        rc = open_copy(w);
        cmir__h5_restore(&q);
    }
    if (rc) {
        cmir__ar_oom(rc, path);
        if (w)
            writer_free(w);
        return NULL;
    }
    return w;
}

/* ---- adding tiles ---- */
static int intern(cmir__strtab *t, const char *s, int *last, int32_t *idx, const char *what,
                  const char *path)
{
    *idx = 0;
    if (!s || !*s)
        return 0;
    if (*last > 0 && strcmp(t->s[*last - 1], s) == 0) {
        *idx = *last;
        return 0;
    }
    for (int k = 0; k < t->n; k++)
        if (strcmp(t->s[k], s) == 0) {
            *idx = *last = k + 1;
            return 0;
        }
    if (t->n >= MAX_TABLE)
        return cmir__error(CMIR_EINVAL, "%s: more than %d distinct %s", path, MAX_TABLE, what);
    int rc = cmir__strtab_push(t, s);
    if (!rc)
        *idx = *last = t->n;
    return rc;
}

/* row-major src[h][w][b] -> dst[b][w][h] (HDF5 order of one chunk). */
#define TO_HDF(T)                                                                        \
    do {                                                                                 \
        const T *s_ = (const T *)src;                                                    \
        T *d_ = (T *)dst;                                                                \
        for (size_t b_ = 0; b_ < nb; b_++)                                               \
            for (size_t w_ = 0; w_ < nw; w_++) {                                         \
                const T *c_ = s_ + w_ * nb + b_;                                         \
                T *o_ = d_ + (b_ * nw + w_) * nh;                                        \
                for (size_t h_ = 0; h_ < nh; h_++)                                       \
                    o_[h_] = c_[h_ * nw * nb];                                           \
            }                                                                            \
    } while (0)

static int write_pixels(cmir_archive_writer *w, int64_t i, const cmir_tile_record *r)
{
    if ((hsize_t)i >= w->extent) {
        hsize_t ext = w->extent < 1024 ? 1024 : w->extent + w->extent / 4;
        for (int m = 0; m < 2; m++) {
            hsize_t dims[4] = {ext, (hsize_t)w->b[m], (hsize_t)w->w[m], (hsize_t)w->h[m]};
            int rc;
            if (H5Dset_extent(w->ds[m], dims) < 0)
                return cmir__h5_error(CMIR_EIO, w->path, "cannot extend '%s'", IMG[m]);
            if ((rc = open_spaces(w, m)))
                return rc;
        }
        w->extent = ext;
    }
    for (int m = 0; m < 2; m++) {
        size_t nh = (size_t)w->h[m], nw = (size_t)w->w[m], nb = (size_t)w->b[m];
        const void *src = m ? r->ms : r->pan;
        void *dst = w->buf[m];
        switch (cmir_dtype_size(w->type[m])) {
        case 1: TO_HDF(uint8_t); break;
        case 2: TO_HDF(uint16_t); break;
        default: TO_HDF(uint32_t); break;
        }
        if (w->fmt[m].direct && !w->zlib) { /* libdeflate + H5Dwrite_chunk */
            int rc = cmir__ar_write_chunk(&w->io, w->ds[m], &w->fmt[m], (hsize_t)i, dst);
            if (rc)
                return cmir__h5_error(rc, w->path, "cannot write tile %lld of '%s': %s",
                                      (long long)i, IMG[m], cmir_last_error());
            continue;
        }
        hsize_t start[4] = {(hsize_t)i, 0, 0, 0}, count[4] = {1, nb, nw, nh};
        if (H5Sselect_hyperslab(w->fspace[m], H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(w->ds[m], cmir__h5_memtype(w->type[m]), w->mspace[m], w->fspace[m],
                     H5P_DEFAULT, dst) < 0)
            return cmir__h5_error(CMIR_EIO, w->path, "cannot write tile %lld of '%s'",
                                  (long long)i, IMG[m]);
    }
    return 0;
}

int cmir_archive_writer_add(cmir_archive_writer *w, const cmir_tile_record *r)
{
    if (!w || !r || !r->pan || !r->ms)
        return cmir__error(CMIR_EINVAL, "cmir_archive_writer_add: NULL argument");
    if (w->failed)
        return cmir__error(w->failed, "%s: the writer failed earlier; abort it", w->path);
    int C = w->n_classes, rc;
    int64_t n = w->t.n;
    if (r->label < 0 || r->label > C)
        return cmir__error(CMIR_EINVAL, "%s: label %d out of range 0..%d", w->path, r->label, C);
    for (int c = 0; w->multilabel && r->multilabel && c < C; c++)
        if (r->multilabel[c] > 1)
            return cmir__error(CMIR_EINVAL, "%s: multi-label entry %d is %d (0 or 1 expected)",
                               w->path, c, r->multilabel[c]);
    if (n >= CMIR__AR_MAX_TILES)
        return cmir__error(CMIR_EINVAL, "%s: the archive is full (2^31 tiles)", w->path);
    int32_t ci, si, msi;
    if ((rc = grow(w, n + 1)) ||
        (rc = intern(&w->t.crs_wkt, r->crs_wkt, &w->last_crs, &ci, "CRSs", w->path)) ||
        (rc = intern(&w->t.scenes, r->scene, &w->last_scene, &si, "scenes", w->path)) ||
        (rc = intern(&w->t.ms_scenes, r->ms_scene, &w->last_ms_scene, &msi, "MS scenes", w->path)))
        return cmir__ar_oom(rc, w->path);
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    rc = write_pixels(w, n, r);
    cmir__h5_restore(&q);
    if (rc)
        return w->failed = rc;
    cmir__artab *t = &w->t;
    t->label[n] = r->label;
    for (int c = 0; w->multilabel && c < C; c++)
        t->multi[n * C + c] = r->multilabel ? r->multilabel[c] : (uint8_t)(r->label == c + 1);
    const double *gt[2] = {r->pan_gt, r->ms_gt}, *win[2] = {r->pan_window, r->ms_window};
    for (int m = 0; m < 2; m++) {
        for (int k = 0; k < 6; k++)
            t->gt[m][n * 6 + k] = gt[m] ? gt[m][k] : NAN;
        for (int k = 0; k < 4; k++)
            t->win[m][n * 4 + k] = win[m] ? win[m][k] : NAN;
    }
    t->crs[n] = ci;
    t->scene[n] = si;
    t->ms_scene[n] = msi;
    t->n = n + 1;
    return 0;
}

int64_t cmir_archive_writer_count(const cmir_archive_writer *w)
{
    if (!w)
        return cmir__error(CMIR_EINVAL, "cmir_archive_writer_count: NULL writer");
    return w->t.n;
}

/* ---- commit ---- */
static int any_recorded(const double *a, int64_t n, int k)
{
    for (int64_t i = 0; i < n; i++)
        if (!isnan(a[i * k]))
            return 1;
    return 0;
}

static int write_doubles(cmir_archive_writer *w, const char *name, hsize_t d0, hsize_t d1,
                         const double *v)
{
    hsize_t d[2] = {d0, d1};
    return cmir__h5_write_array(w->file, w->path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                "double", 2, d, v);
}

/* Per-tile index vector (labels, CRS rows, scene rows) as N x 1 double. */
static int write_index(cmir_archive_writer *w, const char *name, const int32_t *v, double *tmp)
{
    for (int64_t i = 0; i < w->t.n; i++)
        tmp[i] = v[i];
    return write_doubles(w, name, 1, (hsize_t)w->t.n, tmp);
}

static int finish(cmir_archive_writer *w)
{
    cmir__artab *t = &w->t;
    hsize_t n = (hsize_t)t->n;
    int rc = 0;
    for (int m = 0; m < 2; m++) {
        hsize_t dims[4] = {n, (hsize_t)w->b[m], (hsize_t)w->w[m], (hsize_t)w->h[m]};
        if (H5Dset_extent(w->ds[m], dims) < 0)
            return cmir__h5_error(CMIR_EIO, w->path, "cannot set the size of '%s'", IMG[m]);
    }
    double *tmp = cmir__malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!tmp)
        return CMIR_ENOMEM;
    int gt = any_recorded(t->gt[0], t->n, 6) || any_recorded(t->gt[1], t->n, 6);
    int win = any_recorded(t->win[0], t->n, 4) || any_recorded(t->win[1], t->n, 4);
    hsize_t md[2] = {n, (hsize_t)w->n_classes};
    double nd[2] = {w->nodata[0], w->nodata[1]};
    cmir__strtab fmt = {0};
    if ((rc = write_index(w, "LAND_COVER_TYPES", t->label, tmp)) ||
        (w->multilabel && (rc = cmir__h5_write_array(w->file, w->path, "MULTI_LABELS", H5T_STD_U8LE,
                                                     H5T_NATIVE_UINT8, "uint8", 2, md, t->multi))) ||
        (gt && ((rc = write_doubles(w, "PAN_GEOTRANSFORM", n, 6, t->gt[0])) ||
                (rc = write_doubles(w, "MUL_GEOTRANSFORM", n, 6, t->gt[1])))) ||
        (win && ((rc = write_doubles(w, "PAN_WINDOW", n, 4, t->win[0])) ||
                 (rc = write_doubles(w, "MUL_WINDOW", n, 4, t->win[1])))) ||
        (t->crs_wkt.n && ((rc = write_index(w, "TILE_CRS", t->crs, tmp)) ||
                          (rc = cmir__h5_write_chars(w->file, w->path, "CRS_WKT", &t->crs_wkt)))) ||
        (t->scenes.n && ((rc = write_index(w, "TILE_SCENE", t->scene, tmp)) ||
                         (rc = cmir__h5_write_chars(w->file, w->path, "SCENE_NAMES", &t->scenes)))) ||
        (t->ms_scenes.n && ((rc = write_index(w, "MUL_SCENE", t->ms_scene, tmp)) ||
                            (rc = cmir__h5_write_chars(w->file, w->path, "MUL_SCENE_NAMES", &t->ms_scenes)))) ||
        (rc = write_doubles(w, "NODATA", 1, 2, nd)))
        goto done;
    for (int k = 0; k < 3; k++)
        if (w->named[k] && w->names[k].n > 0 &&
            (rc = cmir__h5_write_chars(w->file, w->path, NAMES_VAR[k], &w->names[k])))
            goto done;
    if (!(rc = cmir__strtab_push(&fmt, CMIR__AR_FORMAT)))
        rc = cmir__h5_write_chars(w->file, w->path, "CMIR_FORMAT", &fmt);
done:
    cmir__strtab_free(&fmt);
    cmir__free(tmp);
    return rc;
}

/* MATLAB's 128-byte header in the user block: text padded to 116 bytes,
 * 8 bytes of subsystem offset, version 0x0200 and "IM". */
static int write_header(const char *tmp, const char *path)
{
    char h[128], date[64], text[192];
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm) || !strftime(date, sizeof date, "%a %b %d %H:%M:%S %Y", &tm))
        snprintf(date, sizeof date, "unknown");
    int k = snprintf(text, sizeof text,
                     "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: %s HDF5 schema 1.00 .", date);
    memset(h, ' ', 116);
    memcpy(h, text, (size_t)(k < 116 ? k : 116));
    memset(h + 116, 0, 8);
    h[124] = 0x00;
    h[125] = 0x02;
    h[126] = 'I';
    h[127] = 'M';
    int fd = open(tmp, O_WRONLY | O_CLOEXEC), rc = 0;
    if (fd < 0 || pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h)
        rc = cmir__error(CMIR_EIO, "%s: cannot write the temporary file: %s", path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = cmir__error(CMIR_EIO, "%s: cannot close the temporary file: %s", path, strerror(errno));
    return rc;
}

int cmir_archive_writer_commit(cmir_archive_writer *w)
{
    if (!w)
        return cmir__error(CMIR_EINVAL, "cmir_archive_writer_commit: NULL writer");
    int rc = 0;
    if (w->failed)
        rc = cmir__error(w->failed, "%s: not committed: the writer failed earlier", w->path);
    cmir__h5quiet q;
    cmir__h5_quiet(&q);
    if (!rc)
        rc = cmir__ar_oom(finish(w), w->path);
    close_ids(w);
    if (H5Fclose(w->file) < 0 && !rc)
        rc = cmir__h5_error(CMIR_EIO, w->path, "cannot close the temporary file");
    w->file = -1;
    cmir__h5_restore(&q);
    if (!rc)
        rc = write_header(w->af.tmp, w->path);
    if (!rc)
        rc = cmir__atomic_commit(&w->af); /* fsync, rename, directory fsync */
    writer_free(w);
    return rc;
}

void cmir_archive_writer_abort(cmir_archive_writer *w)
{
    if (w)
        writer_free(w);
}
