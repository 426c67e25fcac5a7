/* HDF5 helpers of the tile archive: HDF5's error stack kept quiet and turned
 * into "hdf5: ..." messages, MATLAB char matrices (UTF-16 <-> UTF-8) and
 * numeric arrays with their MATLAB_class attributes, and string tables. */
#include "archive_internal.h"

#include <stdio.h>
#include <string.h>

/* Largest char matrix we read: 2^26 characters. */
#define MAX_CHARS ((hsize_t)1 << 26)
/* Claims against storage: deflate (the strongest filter MATLAB and HDF5
 * write) compresses at most about 1032:1; below the allowance any claim
 * is accepted (small fill-value datasets stay legal). */
#define MAX_RATIO 1032
#define ALLOWANCE ((hsize_t)1 << 20)

/* ---- error stack ---- */
void cmir__h5_quiet(cmir__h5quiet *q)
{
    q->fn = NULL;
    q->data = NULL;
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5Eclear2(H5E_DEFAULT);
}

void cmir__h5_restore(const cmir__h5quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    if (q->saved)
        H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

int cmir__ar_oom(int rc, const char *path)
{
    if (rc == CMIR_ENOMEM)
        cmir__error_prefix(path);
    return rc;
}

typedef struct walk {
    char desc[240];
} walk;

/* Walking upward, entry 0 is the most specific error. */
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    walk *w = data;
    if (n == 0 && e && e->desc)
        snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    return 0;
}

int cmir__h5_error(int code, const char *path, const char *fmt, ...)
{
    char what[320];
    walk w = {""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    for (char *c = w.desc; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    if (w.desc[0])
        return cmir__error(code, "hdf5: %s: %s (%s)", path, what, w.desc);
    return cmir__error(code, "hdf5: %s: %s", path, what);
}

void cmir__h5_close(hid_t id)
{
    if (id < 0)
        return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

int cmir__h5_exists(hid_t file, const char *name)
{
    htri_t r = H5Lexists(file, name, H5P_DEFAULT);
    return r > 0 ? 1 : r == 0 ? 0 : -1;
}

/* ---- numeric arrays ---- */
int cmir__h5_open_array(hid_t file, const char *path, const char *name, hid_t *out, int *rank,
                        hsize_t dims[4])
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT), ty = -1, sp = -1, dcpl = -1;
    int rc = 0;
    *out = -1;
    if (ds < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot open variable '%s'", name);
    ty = H5Dget_type(ds);
    sp = H5Dget_space(ds);
    dcpl = H5Dget_create_plist(ds);
    if (ty < 0 || sp < 0 || dcpl < 0) {
        rc = cmir__h5_error(CMIR_EFORMAT, path, "cannot read the type and size of '%s'", name);
    } else {
        H5T_class_t c = H5Tget_class(ty);
        int r = H5Sget_simple_extent_ndims(sp);
        if (c != H5T_INTEGER && c != H5T_FLOAT)
            rc = cmir__error(CMIR_EFORMAT, "%s: '%s' is not a numeric array", path, name);
        else if (r < 0 || r > 4)
            rc = cmir__error(CMIR_EFORMAT, "%s: '%s' has %d dimensions (at most 4 supported)",
                             path, name, r);
        else if (H5Pget_layout(dcpl) == H5D_VIRTUAL || H5Pget_external_count(dcpl) != 0)
            rc = cmir__error(CMIR_EUNSUPPORTED, "%s: '%s' keeps its data outside the file", path,
                             name);
        else if (H5Aexists(ds, "MATLAB_empty") > 0 ||
                 H5Sget_simple_extent_type(sp) == H5S_NULL) {
            *rank = 2; /* MATLAB's empty array */
            dims[0] = dims[1] = 0;
        } else if (r > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
            rc = cmir__h5_error(CMIR_EFORMAT, path, "cannot read the size of '%s'", name);
        } else {
            *rank = r;
        }
    }
    cmir__h5_close(dcpl);
    cmir__h5_close(sp);
    cmir__h5_close(ty);
    if (rc)
        cmir__h5_close(ds);
    else
        *out = ds;
    return rc;
}

int cmir__h5_check_stored(hid_t ds, const char *path, const char *name, hsize_t count,
                          const char *unit, hsize_t bytes)
{
    if (bytes <= ALLOWANCE)
        return 0;
    hsize_t stored = H5Dget_storage_size(ds); /* 0 also on error: refused below */
    if (stored >= (bytes - ALLOWANCE) / MAX_RATIO)
        return 0;
    return cmir__error(CMIR_EFORMAT,
                       "%s: '%s' claims %llu %s (%llu bytes) but the file stores %llu bytes of it "
                       "(at most 1:%d compression is plausible)",
                       path, name, (unsigned long long)count, unit, (unsigned long long)bytes,
                       (unsigned long long)stored, MAX_RATIO);
}

int cmir__h5_check_array(hid_t ds, const char *path, const char *name)
{
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t es = ty < 0 ? 0 : H5Tget_size(ty);
    cmir__h5_close(ty);
    cmir__h5_close(sp);
    if (n < 0 || es == 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot read the size of '%s'", name);
    if ((hsize_t)n > ((hsize_t)-1) / es) /* cannot happen for HDF5's own limits */
        return cmir__error(CMIR_EFORMAT, "%s: '%s' is too large", path, name);
    return cmir__h5_check_stored(ds, path, name, (hsize_t)n, "values", (hsize_t)n * es);
}

int cmir__h5_read_all(hid_t ds, const char *path, const char *name, hid_t memtype, void *buf)
{
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        return cmir__h5_error(CMIR_EFORMAT, path, "cannot read '%s' (damaged file?)", name);
    return 0;
}

int cmir__h5_set_class(hid_t obj, const char *path, const char *mclass)
{
    hid_t st = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), at = -1, it = -1;
    int rc = 0;
    if (st < 0 || sp < 0 || H5Tset_size(st, strlen(mclass)) < 0 ||
        (at = H5Acreate2(obj, "MATLAB_class", st, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(at, st, mclass) < 0) {
        rc = cmir__h5_error(CMIR_EIO, path, "cannot write the MATLAB_class attribute");
    } else if (strcmp(mclass, "char") == 0) {
        int32_t two = 2;
        if ((it = H5Acreate2(obj, "MATLAB_int_decode", H5T_STD_I32LE, sp, H5P_DEFAULT,
                             H5P_DEFAULT)) < 0 ||
            H5Awrite(it, H5T_NATIVE_INT32, &two) < 0)
            rc = cmir__h5_error(CMIR_EIO, path, "cannot write the MATLAB_int_decode attribute");
    }
    cmir__h5_close(it);
    cmir__h5_close(at);
    cmir__h5_close(sp);
    cmir__h5_close(st);
    return rc;
}

int cmir__h5_write_array(hid_t file, const char *path, const char *name, hid_t filetype,
                         hid_t memtype, const char *mclass, int rank, const hsize_t *dims,
                         const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), ds = -1;
    hsize_t n = 1;
    int rc = 0;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    if (sp < 0 ||
        (ds = H5Dcreate2(file, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        rc = cmir__h5_error(CMIR_EIO, path, "cannot create variable '%s'", name);
    else if (!(rc = cmir__h5_set_class(ds, path, mclass)) && n > 0 &&
             H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = cmir__h5_error(CMIR_EIO, path, "cannot write variable '%s'", name);
    if (ds >= 0 && H5Dclose(ds) < 0 && !rc)
        rc = cmir__h5_error(CMIR_EIO, path, "cannot close variable '%s'", name);
    cmir__h5_close(sp);
    return rc;
}

/* ---- char matrices ---- */
/* Next code point of UTF-8 text; U+FFFD for a malformed sequence. */
static uint32_t utf8_next(const unsigned char **p)
{
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n;
    *p = s + 1;
    if (c < 0x80)
        return c;
    if ((c & 0xE0) == 0xC0)
        n = 1, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 2, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 3, c &= 0x07;
    else
        return 0xFFFD;
    for (int k = 1; k <= n; k++) {
        if ((s[k] & 0xC0) != 0x80) /* also stops at the terminator */
            return 0xFFFD;
        c = (c << 6) | (s[k] & 0x3F);
    }
    *p = s + n + 1;
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0xFFFD;
    return c;
}

/* UTF-16 units of s (counted only when out is NULL), written with a stride. */
static size_t utf16_of(const char *s, uint16_t *out, size_t stride)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        uint32_t c = utf8_next(&p);
        if (c >= 0x10000) {
            if (out) {
                out[n * stride] = (uint16_t)(0xD800 + ((c - 0x10000) >> 10));
                out[(n + 1) * stride] = (uint16_t)(0xDC00 + ((c - 0x10000) & 0x3FF));
            }
            n += 2;
        } else {
            if (out)
                out[n * stride] = (uint16_t)c;
            n++;
        }
    }
    return n;
}

static size_t utf8_put(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Row r of a K-row char matrix stored as u[j*K + r], j < L, to UTF-8 in
 * o (room for 3*L+1 bytes), trailing blanks and NULs trimmed. */
static void row_to_utf8(const uint16_t *u, size_t L, size_t K, size_t r, char *o)
{
    size_t len = L, n = 0;
    while (len > 0 && (u[(len - 1) * K + r] == ' ' || u[(len - 1) * K + r] == 0))
        len--;
    for (size_t j = 0; j < len; j++) {
        uint32_t c = u[j * K + r];
        if (c == 0) {
            c = ' ';
        } else if (c >= 0xD800 && c <= 0xDBFF && j + 1 < len && u[(j + 1) * K + r] >= 0xDC00 &&
                   u[(j + 1) * K + r] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[(j + 1) * K + r] - 0xDC00u);
            j++;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        n += utf8_put(o + n, c);
    }
    o[n] = '\0';
}

int cmir__h5_read_chars(hid_t file, const char *path, const char *name, cmir__strtab *out)
{
    hid_t ds;
    int rank = 0, rc;
    hsize_t d[4] = {0, 0, 0, 0}, L, K;
    if ((rc = cmir__h5_open_array(file, path, name, &ds, &rank, d)))
        return rc;
    L = rank >= 1 ? d[0] : 1;
    K = rank == 2 ? d[1] : 1;
    uint16_t *u = NULL;
    char *row = NULL;
    if (rank > 2)
        rc = cmir__error(CMIR_EFORMAT, "%s: '%s' is not a char matrix (%d dimensions)", path,
                         name, rank);
    else if (K > MAX_CHARS || L > MAX_CHARS || L * K > MAX_CHARS)
        rc = cmir__error(CMIR_EFORMAT, "%s: '%s' is too large (%llu x %llu characters)", path,
                         name, (unsigned long long)K, (unsigned long long)L);
    else if (!(rc = cmir__h5_check_array(ds, path, name)) &&
             (!(u = cmir__malloc(sizeof(uint16_t) * (size_t)(L * K > 0 ? L * K : 1))) ||
              !(row = cmir__malloc(3 * (size_t)L + 1))))
        rc = CMIR_ENOMEM;
    if (!rc && L * K > 0)
        rc = cmir__h5_read_all(ds, path, name, H5T_NATIVE_UINT16, u);
    for (hsize_t r = 0; !rc && r < K; r++) {
        if (L * K > 0)
            row_to_utf8(u, (size_t)L, (size_t)K, (size_t)r, row);
        else
            row[0] = '\0';
        rc = cmir__strtab_push(out, row);
    }
    cmir__free(row);
    cmir__free(u);
    cmir__h5_close(ds);
    return rc;
}

int cmir__h5_write_chars(hid_t file, const char *path, const char *name, const cmir__strtab *t)
{
    size_t K = (size_t)t->n, L = 1;
    for (size_t r = 0; r < K; r++) {
        size_t n = utf16_of(t->s[r], NULL, 0);
        if (n > L)
            L = n;
    }
    uint16_t *u = cmir__malloc(sizeof(uint16_t) * (L * K > 0 ? L * K : 1));
    if (!u)
        return CMIR_ENOMEM;
    for (size_t k = 0; k < L * K; k++)
        u[k] = ' ';
    for (size_t r = 0; r < K; r++)
        utf16_of(t->s[r], u + r, K);
    hsize_t dims[2] = {L, K};
    int rc = cmir__h5_write_array(file, path, name, H5T_STD_U16LE, H5T_NATIVE_UINT16, "char", 2,
                                  dims, u);
    cmir__free(u);
    return rc;
}

/* ---- tables ---- */
void cmir__strtab_free(cmir__strtab *t)
{
    for (int i = 0; i < t->n; i++)
        cmir__free(t->s[i]);
    cmir__free(t->s);
    memset(t, 0, sizeof *t);
}

int cmir__strtab_push(cmir__strtab *t, const char *s)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 8;
        char **p = cmir__realloc(t->s, sizeof(char *) * (size_t)cap);
        if (!p)
            return CMIR_ENOMEM;
        t->s = p;
        t->cap = cap;
    }
    char *d = cmir__strdup(s);
    if (!d)
        return CMIR_ENOMEM;
    t->s[t->n++] = d;
    return 0;
}

void cmir__artab_free(cmir__artab *t)
{
    cmir__free(t->label);
    cmir__free(t->multi);
    for (int m = 0; m < 2; m++) {
        cmir__free(t->gt[m]);
        cmir__free(t->win[m]);
    }
    cmir__free(t->crs);
    cmir__free(t->scene);
    cmir__free(t->ms_scene);
    cmir__strtab_free(&t->crs_wkt);
    cmir__strtab_free(&t->scenes);
    cmir__strtab_free(&t->ms_scenes);
    memset(t, 0, sizeof *t);
}

/* ---- pixel types ---- */
hid_t cmir__h5_memtype(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return H5T_NATIVE_UINT8;
    case CMIR_DT_UINT16: return H5T_NATIVE_UINT16;
    case CMIR_DT_INT16: return H5T_NATIVE_INT16;
    default: return H5T_NATIVE_FLOAT;
    }
}

hid_t cmir__h5_filetype(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return H5T_STD_U8LE;
    case CMIR_DT_UINT16: return H5T_STD_U16LE;
    case CMIR_DT_INT16: return H5T_STD_I16LE;
    default: return H5T_IEEE_F32LE;
    }
}

const char *cmir__mat_class(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return "uint8";
    case CMIR_DT_UINT16: return "uint16";
    case CMIR_DT_INT16: return "int16";
    default: return "single";
    }
}
