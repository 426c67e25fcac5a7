/* Named float32 tensors and strings <-> MATLAB .mat files through matio:
 * row-major/column-major conversion, validation of every variable read,
 * matio's messages captured as "matio: ..." errors, and atomic saving. */
#include "cmir/tensorset.h"
#include "../base/internal.h"
#include "../nn/nn_export.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <matio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest variable we load: 2^31 elements (8 GiB of float32). */
#define MAX_ELEMS ((int64_t)1 << 31)

typedef struct entry {
    char *name;
    char *str;         /* non-NULL for strings */
    cmir_tensor t;     /* data owned (aligned) for tensors */
} entry;

struct cmir_tensorset {
    entry *e;
    int n, cap;
};

/* ---- matio's log, captured per thread ---- */
static _Thread_local char matio_msg[512];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void matio_log(int level, char *message)
{
    (void)level;
    snprintf(matio_msg, sizeof matio_msg, "%s", message ? message : "");
}

static void init_log(void) { Mat_LogInitFunc("cmir", matio_log); }

static int matio_error(int code, const char *path, const char *what)
{
    if (matio_msg[0])
        return cmir__error(code, "matio: %s: %s (%s)", path, what, matio_msg);
    return cmir__error(code, "matio: %s: %s", path, what);
}

/* ---- set management ---- */
cmir_tensorset *cmir_tensorset_new(void) { return cmir__calloc(1, sizeof(cmir_tensorset)); }

static void entry_clear(entry *e)
{
    cmir__free(e->name);
    cmir__free(e->str);
    cmir__free_aligned(e->t.data);
    memset(e, 0, sizeof *e);
}

void cmir_tensorset_free(cmir_tensorset *ts)
{
    if (!ts)
        return;
    for (int i = 0; i < ts->n; i++)
        entry_clear(&ts->e[i]);
    cmir__free(ts->e);
    cmir__free(ts);
}

static int valid_name(const char *s)
{
    size_t n;
    if (!s || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (n = 0; s[n]; n++)
        if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return 0;
    return n <= 63;
}

static int find(const cmir_tensorset *ts, const char *name)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->e[i].name, name) == 0)
            return i;
    return -1;
}

/* Slot for `name`: the existing one (cleared) or a new one. */
static entry *slot_for(cmir_tensorset *ts, const char *name)
{
    int i = find(ts, name);
    if (i >= 0) {
        entry_clear(&ts->e[i]);
    } else {
        if (ts->n == ts->cap) {
            int cap = ts->cap ? 2 * ts->cap : 16;
            entry *e = cmir__realloc(ts->e, sizeof(entry) * (size_t)cap);
            if (!e)
                return NULL;
            ts->e = e;
            ts->cap = cap;
        }
        i = ts->n++;
        memset(&ts->e[i], 0, sizeof(entry));
    }
    ts->e[i].name = cmir__strdup(name);
    if (!ts->e[i].name) {
        /* Keep the set consistent: drop the slot. */
        memmove(&ts->e[i], &ts->e[i + 1], sizeof(entry) * (size_t)(ts->n - i - 1));
        ts->n--;
        return NULL;
    }
    return &ts->e[i];
}

/* Stores the string s (taken over, freed on failure) as variable name. */
static int set_owned_string(cmir_tensorset *ts, const char *name, char *s)
{
    entry *e = slot_for(ts, name);
    if (!e) {
        cmir__free(s);
        return CMIR_ENOMEM;
    }
    e->str = s;
    return 0;
}

/* Takes ownership of data (aligned) on success. */
static int put_owned(cmir_tensorset *ts, const char *name, float *data, int ndim,
                     const int64_t *shape)
{
    entry *e = slot_for(ts, name);
    if (!e)
        return CMIR_ENOMEM;
    e->t = cmir_tensor_make(data, ndim, shape);
    return 0;
}

int cmir_tensorset_put(cmir_tensorset *ts, const char *name, const cmir_tensor *t)
{
    int rc;
    if (!ts || !valid_name(name))
        return cmir__error(CMIR_EINVAL, "cmir_tensorset_put: invalid name '%s'",
                           name ? name : "(null)");
    if ((rc = cmir__check_tensor(t, 0, "cmir_tensorset_put", name)))
        return rc;
    size_t n = (size_t)cmir_tensor_numel(t);
    float *d = cmir__malloc_aligned(sizeof(float) * (n ? n : 1));
    if (!d)
        return CMIR_ENOMEM;
    memcpy(d, t->data, sizeof(float) * n);
    if ((rc = put_owned(ts, name, d, t->ndim, t->shape))) {
        cmir__free_aligned(d);
        return rc;
    }
    return 0;
}

int cmir_tensorset_put_string(cmir_tensorset *ts, const char *name, const char *value)
{
    if (!ts || !valid_name(name) || !value)
        return cmir__error(CMIR_EINVAL, "cmir_tensorset_put_string: invalid name or value");
    char *s = cmir__strdup(value);
    return s ? set_owned_string(ts, name, s) : CMIR_ENOMEM;
}

const cmir_tensor *cmir_tensorset_get(const cmir_tensorset *ts, const char *name)
{
    int i = ts && name ? find(ts, name) : -1;
    if (i < 0 || ts->e[i].str) {
        cmir__error(CMIR_ENOTFOUND, "no tensor named '%s'", name ? name : "(null)");
        return NULL;
    }
    return &ts->e[i].t;
}

const char *cmir_tensorset_get_string(const cmir_tensorset *ts, const char *name)
{
    int i = ts && name ? find(ts, name) : -1;
    if (i < 0 || !ts->e[i].str) {
        cmir__error(CMIR_ENOTFOUND, "no string named '%s'", name ? name : "(null)");
        return NULL;
    }
    return ts->e[i].str;
}

int cmir_tensorset_count(const cmir_tensorset *ts) { return ts ? ts->n : 0; }

const char *cmir_tensorset_name(const cmir_tensorset *ts, int i)
{
    return ts && i >= 0 && i < ts->n ? ts->e[i].name : NULL;
}

int cmir_tensorset_expect(const cmir_tensorset *ts, const char *name, int ndim,
                          const int64_t *shape)
{
    const cmir_tensor *t = cmir_tensorset_get(ts, name);
    if (!t)
        return CMIR_ENOTFOUND;
    int64_t want[CMIR_MAX_DIMS] = {1, 1, 1, 1};
    int wn = ndim;
    for (int i = 0; i < ndim && i < CMIR_MAX_DIMS; i++)
        want[i] = shape[i];
    if (wn == 1 && t->ndim == 2) { /* a vector comes back from a file as n x 1 */
        want[1] = 1;
        wn = 2;
    }
    int ok = t->ndim == wn;
    for (int i = 0; ok && i < wn; i++)
        ok = want[i] < 0 || want[i] == t->shape[i];
    if (!ok) {
        char got[96] = "", exp[96] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "x" : "",
                     (long long)t->shape[i]);
        for (int i = 0; i < wn; i++) {
            if (want[i] < 0)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s*", i ? "x" : "");
            else
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", i ? "x" : "",
                         (long long)want[i]);
        }
        return cmir__error(CMIR_EFORMAT, "'%s' is %s, expected %s", name, got, exp);
    }
    return 0;
}

/* ---- layout conversion ---- */
/* Row-major src with dims d[0..r) -> column-major dst (to MATLAB) when
 * to_col, else the reverse. */
static void relayout(const float *src, float *dst, int r, const size_t *d, int to_col)
{
    size_t idx[CMIR_MAX_DIMS] = {0}, cstride[CMIR_MAX_DIMS], total = 1;
    for (int i = 0; i < r; i++) {
        cstride[i] = total;
        total *= d[i];
    }
    for (size_t k = 0; k < total; k++) {
        size_t c = 0;
        for (int i = 0; i < r; i++)
            c += idx[i] * cstride[i];
        if (to_col)
            dst[c] = src[k];
        else
            dst[k] = src[c];
        for (int i = r - 1; i >= 0; i--) { /* row-major counter */
            if (++idx[i] < d[i])
                break;
            idx[i] = 0;
        }
    }
}

/* ---- saving ---- */
static int write_entry(mat_t *mat, const entry *e, const char *path)
{
    size_t dims[CMIR_MAX_DIMS];
    matvar_t *v;
    void *buf = NULL;
    if (e->str) {
        dims[0] = 1;
        dims[1] = strlen(e->str);
        v = Mat_VarCreate(e->name, MAT_C_CHAR, MAT_T_UINT8, 2, dims, e->str, MAT_F_DONT_COPY_DATA);
    } else {
        int r = e->t.ndim;
        size_t n = (size_t)cmir_tensor_numel(&e->t);
        for (int i = 0; i < r; i++)
            dims[i] = (size_t)e->t.shape[i];
        if (r == 1) {
            dims[1] = 1;
            r = 2;
        }
        buf = cmir__malloc(sizeof(float) * (n ? n : 1));
        if (!buf)
            return CMIR_ENOMEM;
        relayout(e->t.data, buf, r, dims, 1);
        v = Mat_VarCreate(e->name, MAT_C_SINGLE, MAT_T_SINGLE, r, dims, buf, MAT_F_DONT_COPY_DATA);
    }
    int rc = 0;
    if (!v)
        rc = matio_error(CMIR_ENOMEM, path, "cannot create variable");
    else if (Mat_VarWrite(mat, v, MAT_COMPRESSION_ZLIB) != 0)
        rc = matio_error(CMIR_EIO, path, "cannot write variable");
    Mat_VarFree(v);
    cmir__free(buf);
    return rc;
}

int cmir_tensorset_save(const cmir_tensorset *ts, const char *path)
{
    if (!ts || !path)
        return cmir__error(CMIR_EINVAL, "cmir_tensorset_save: NULL argument");
    pthread_once(&log_once, init_log);
    matio_msg[0] = '\0';
    cmir__atomic_file af;
    int rc = cmir__atomic_open(&af, path, CMIR__ATOMIC_NAME_ONLY);
    if (rc)
        return rc;
    mat_t *mat = Mat_CreateVer(af.tmp, NULL, MAT_FT_MAT5);
    if (!mat)
        rc = matio_error(CMIR_EIO, path, "cannot create file");
    for (int i = 0; !rc && i < ts->n; i++)
        rc = write_entry(mat, &ts->e[i], path);
    if (mat && Mat_Close(mat) != 0 && !rc)
        rc = matio_error(CMIR_EIO, path, "cannot close file");
    if (rc) {
        cmir__atomic_abort(&af);
        return rc;
    }
    return cmir__atomic_commit(&af);
}

/* ---- loading ---- */
static int to_float(const matvar_t *v, float *dst, size_t n)
{
#define CONV(T)                                       \
    do {                                              \
        const T *s = (const T *)v->data;              \
        for (size_t i = 0; i < n; i++)                \
            dst[i] = (float)s[i];                     \
    } while (0)
    switch (v->class_type) {
    case MAT_C_SINGLE: memcpy(dst, v->data, sizeof(float) * n); break;
    case MAT_C_DOUBLE: CONV(double); break;
    case MAT_C_INT8: CONV(int8_t); break;
    case MAT_C_UINT8: CONV(uint8_t); break;
    case MAT_C_INT16: CONV(int16_t); break;
    case MAT_C_UINT16: CONV(uint16_t); break;
    case MAT_C_INT32: CONV(int32_t); break;
    case MAT_C_UINT32: CONV(uint32_t); break;
    case MAT_C_INT64: CONV(int64_t); break;
    case MAT_C_UINT64: CONV(uint64_t); break;
    default: return -1;
    }
#undef CONV
    return 0;
}

/* MATLAB v7.3 files are HDF5: the bytes HDF5 has allocated to variable
 * `name` (a dataset of the root group), -1 when that cannot be told (a
 * struct or cell is a group). HDF5's fill values let a dataset claim any
 * size while storing nothing, so the claim is compared with this. */
static int64_t h5_stored(hid_t file, const char *name)
{
    if (file < 0)
        return -1;
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    int saved = H5Eget_auto2(H5E_DEFAULT, &fn, &data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int64_t r = -1;
    if (H5Lexists(file, name, H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(file, name, H5P_DEFAULT); /* fails for a group */
        if (ds >= 0) {
            r = (int64_t)H5Dget_storage_size(ds);
            H5Dclose(ds);
        }
    }
    H5Eclear2(H5E_DEFAULT);
    if (saved)
        H5Eset_auto2(H5E_DEFAULT, fn, data);
    return r;
}

static size_t class_size(enum matio_classes c)
{
    switch (c) {
    case MAT_C_DOUBLE: case MAT_C_INT64: case MAT_C_UINT64: return 8;
    case MAT_C_SINGLE: case MAT_C_INT32: case MAT_C_UINT32: return 4;
    case MAT_C_INT16: case MAT_C_UINT16: return 2;
    case MAT_C_INT8: case MAT_C_UINT8: return 1;
    default: return 0;
    }
}

static int load_var(cmir_tensorset *ts, const matvar_t *v, const char *path)
{
    const char *name = v->name ? v->name : "(unnamed)";
    if (!v->name || !valid_name(v->name))
        return cmir__error(CMIR_EFORMAT, "%s: variable with an invalid name", path);
    if (v->rank < 1 || v->rank > CMIR_MAX_DIMS || !v->dims)
        return cmir__error(CMIR_EFORMAT, "%s: variable '%s' has %d dimensions (1 to %d supported)",
                           path, name, v->rank, CMIR_MAX_DIMS);
    int64_t n = 1;
    int64_t shape[CMIR_MAX_DIMS];
    size_t dims[CMIR_MAX_DIMS];
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i] > (size_t)MAX_ELEMS || (n *= (int64_t)v->dims[i]) > MAX_ELEMS)
            return cmir__error(CMIR_EFORMAT, "%s: variable '%s' is too large", path, name);
        shape[i] = (int64_t)v->dims[i];
        dims[i] = v->dims[i];
    }
    if (v->class_type == MAT_C_CHAR) {
        if (v->rank != 2 || (v->dims[0] != 1 && n > 0) || (n > 0 && !v->data))
            return cmir__error(CMIR_EFORMAT, "%s: '%s' is not a character row vector", path, name);
        char *s = cmir__malloc((size_t)n + 1);
        if (!s)
            return CMIR_ENOMEM;
        size_t es = v->data_size > 0 ? (size_t)v->data_size : 1;
        if (v->nbytes < (size_t)n * es) {
            cmir__free(s);
            return cmir__error(CMIR_EFORMAT, "%s: '%s' holds fewer characters than it claims", path, name);
        }
        for (int64_t i = 0; i < n; i++) {
            unsigned c;
            if (es == 2)
                c = ((const uint16_t *)v->data)[i];
            else if (es == 4)
                c = ((const uint32_t *)v->data)[i];
            else
                c = ((const uint8_t *)v->data)[i];
            s[i] = (char)(c < 128 && c != 0 ? c : '?');
        }
        s[n] = '\0';
        return set_owned_string(ts, name, s);
    }
    size_t cs = class_size(v->class_type);
    if (!cs || v->isComplex || v->isLogical || v->class_type == MAT_C_SPARSE)
        return cmir__error(CMIR_EFORMAT, "%s: variable '%s' is not a real numeric array", path, name);
    if (n > 0 && (!v->data || v->nbytes < (size_t)n * cs || (size_t)v->data_size != cs))
        return cmir__error(CMIR_EFORMAT, "%s: variable '%s' holds less data than its size claims",
                           path, name);
    float *col = cmir__malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *d = cmir__malloc_aligned(sizeof(float) * (size_t)(n ? n : 1));
    int rc = 0;
    if (!col || !d) {
        rc = CMIR_ENOMEM;
    } else if (n > 0) {
        to_float(v, col, (size_t)n);
        relayout(col, d, v->rank, dims, 0);
    }
    cmir__free(col);
    if (!rc)
        rc = put_owned(ts, name, d, v->rank, shape);
    if (rc)
        cmir__free_aligned(d);
    return rc;
}

cmir_tensorset *cmir_tensorset_load(const char *path)
{
    if (!path) {
        cmir__error(CMIR_EINVAL, "cmir_tensorset_load: NULL path");
        return NULL;
    }
    pthread_once(&log_once, init_log);
    matio_msg[0] = '\0';
    struct stat st;
    if (cmir__stat_regular(path, &st))
        return NULL;
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat) {
        matio_error(CMIR_EFORMAT, path, "not a readable MATLAB .mat file");
        return NULL;
    }
    cmir_tensorset *ts = cmir_tensorset_new();
    int rc = ts ? 0 : CMIR_ENOMEM;
    matvar_t *info;
    int64_t claimed = 0, can_hold = (int64_t)1032 * (int64_t)st.st_size + 65536, stored;
    hid_t h5 = -1;
    if (Mat_GetVersion(mat) == MAT_FT_MAT73) {
        H5E_auto2_t fn = NULL;
        void *data = NULL;
        int saved = H5Eget_auto2(H5E_DEFAULT, &fn, &data) >= 0;
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5 = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        H5Eclear2(H5E_DEFAULT);
        if (saved)
            H5Eset_auto2(H5E_DEFAULT, fn, data);
    }
    while (!rc && (info = Mat_VarReadNextInfo(mat)) != NULL) {
        matvar_t *v = NULL;
        if (!info->name) {
            rc = cmir__error(CMIR_EFORMAT, "%s: variable without a name", path);
        } else if (cmir_tensorset_get(ts, info->name) || cmir_tensorset_get_string(ts, info->name)) {
            rc = cmir__error(CMIR_EFORMAT, "%s: variable '%s' appears twice", path, info->name);
        } else {
            /* Check the declared size before matio allocates for it. */
            int64_t n = 1;
            int bad = info->rank < 1 || info->rank > CMIR_MAX_DIMS || !info->dims;
            for (int i = 0; !bad && i < info->rank; i++)
                bad = info->dims[i] > (size_t)MAX_ELEMS || (n *= (int64_t)info->dims[i]) > MAX_ELEMS;
            if (bad)
                rc = cmir__error(CMIR_EFORMAT, "%s: variable '%s' has an unsupported size", path,
                                 info->name);
            /* ... and, all variables together, against what the file can
             * hold (a byte a value at least, deflated at most 1032:1; HDF5
             * fill values can claim more), so damaged or hostile sizes
             * cannot make matio allocate gigabytes for a small file */
            else if ((stored = h5_stored(h5, info->name)) >= 0 && n > 1032 * stored + 65536)
                rc = cmir__error(CMIR_EFORMAT, "%s: variable '%s' claims %lld values but the file "
                                 "stores %lld bytes of it (at most 1:1032 compression is "
                                 "plausible)", path, info->name, (long long)n, (long long)stored);
            else if ((claimed += n) > can_hold)
                rc = cmir__error(CMIR_EFORMAT, "%s: variable '%s' brings the values claimed to "
                                 "%lld, more than the file (%lld bytes) can hold (%lld)", path,
                                 info->name, (long long)claimed, (long long)st.st_size,
                                 (long long)can_hold);
            else if (!(v = Mat_VarRead(mat, info->name)))
                rc = matio_error(CMIR_EFORMAT, path, "cannot read a variable (damaged or truncated file?)");
            else
                rc = load_var(ts, v, path);
        }
        Mat_VarFree(v);
        Mat_VarFree(info);
    }
    if (!rc && matio_msg[0])
        rc = matio_error(CMIR_EFORMAT, path, "damaged or truncated file");
    if (h5 >= 0)
        H5Fclose(h5);
    Mat_Close(mat);
    if (rc) {
        cmir_tensorset_free(ts);
        return NULL;
    }
    return ts;
}
