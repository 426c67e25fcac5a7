/* The int8 codes an index stores beside its float matrix (cmir_knn_q8
 * records, dim + 16 bytes a row, in table "cmir_q8" chunk by chunk like the
 * embeddings), so that the first int8 search loads them instead of
 * quantising the matrix; rows without stored codes are quantised. */
#include "index_internal.h"
#include "cmir/knn.h"

#include <string.h>

#define Q8_LAYER "cmir_q8"
#define Q8_META "q8_format"

/* A 64-bit checksum (4 lanes of multiply-xor over 8-byte words, mixed at
 * the end); not cryptographic: it tells damage and a matrix changed since
 * the codes were made. Byte order as stored (little-endian files). */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static uint64_t checksum(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h[4] = {seed ^ 0x9e3779b97f4a7c15ULL, seed + 1, seed + 2, seed + 3}, w;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            memcpy(&w, b + i + 8 * l, 8);
            h[l] = (h[l] ^ w) * 0x100000001b3ULL + (h[l] >> 29);
        }
    uint64_t t = n;
    for (; i < n; i++)
        t = (t ^ b[i]) * 0x100000001b3ULL;
    return mix(mix(h[0] ^ mix(h[1])) ^ mix(h[2] ^ mix(h[3])) ^ mix(t));
}

/* The check stored with a chunk: its float rows, then its records. */
static int64_t chunk_check(const float *v, int64_t n, int dim, const void *rec)
{
    uint64_t h = checksum(v, (size_t)n * (size_t)dim * sizeof(float), 0x434d4952ULL);
    return (int64_t)checksum(rec, (size_t)n * cmir_knn_q8_record_bytes(dim), h);
}

int cmir__index_create_codes(GDALDatasetH ds, const char *path, OGRLayerH meta, OGRLayerH *q8)
{
    *q8 = GDALDatasetCreateLayer(ds, Q8_LAYER, NULL, wkbNone, NULL);
    if (!*q8)
        return cmir__gdal_error(CMIR_EIO, path, "cannot create the int8 code table");
    const char *name[] = {"first_row", "n_rows", "dim", "data", "checksum"};
    const OGRFieldType type[] = {OFTInteger64, OFTInteger, OFTInteger, OFTBinary, OFTInteger64};
    for (int i = 0; i < 5; i++) {
        OGRFieldDefnH d = OGR_Fld_Create(name[i], type[i]);
        OGRErr e = OGR_L_CreateField(*q8, d, TRUE);
        OGR_Fld_Destroy(d);
        if (e != OGRERR_NONE)
            return cmir__gdal_error(CMIR_EIO, path, "cannot create the int8 code fields");
    }
    return cmir__index_set_meta(meta, path, Q8_META, CMIR_KNN_Q8_FORMAT);
}

OGRLayerH cmir__index_codes_layer(GDALDatasetH ds, OGRLayerH meta)
{
    OGRLayerH l = GDALDatasetGetLayerByName(ds, Q8_LAYER);
    char *fmt = l ? cmir__index_get_meta(meta, Q8_META) : NULL;
    int same = fmt && !strcmp(fmt, CMIR_KNN_Q8_FORMAT);
    cmir__free(fmt);
    return same ? l : NULL;
}

int cmir__index_write_codes(OGRLayerH q8, const char *path, int64_t first, int64_t n, int dim, const float *v)
{
    cmir_knn_q8 *qx = NULL;
    size_t bytes = (size_t)n * cmir_knn_q8_record_bytes(dim);
    void *rec = cmir__malloc(bytes ? bytes : 1);
    int rc = rec ? cmir_knn_q8_new(v, n, dim, &qx) : CMIR_ENOMEM;
    if (!rc)
        rc = cmir_knn_q8_get_rows(qx, 0, n, rec);
    OGRFeatureH f = rc ? NULL : OGR_F_Create(OGR_L_GetLayerDefn(q8));
    if (!rc && !f)
        rc = CMIR_ENOMEM;
    if (!rc) {
        OGR_F_SetFieldInteger64(f, 0, first);
        OGR_F_SetFieldInteger(f, 1, (int)n);
        OGR_F_SetFieldInteger(f, 2, dim);
        OGR_F_SetFieldBinary(f, 3, (int)bytes, rec);
        OGR_F_SetFieldInteger64(f, 4, chunk_check(v, n, dim, rec));
        if (OGR_L_CreateFeature(q8, f) != OGRERR_NONE)
            rc = cmir__gdal_error(CMIR_EIO, path, "cannot write int8 codes");
    }
    if (f)
        OGR_F_Destroy(f);
    cmir_knn_q8_free(qx);
    cmir__free(rec);
    return rc;
}

/* The stored codes of one file (its rows at off.. of qx, their floats v,
 * n x dim), marking the rows they cover in done. A file without codes of
 * this format gives none (its rows are quantised); a damaged chunk, or one
 * whose check does not match its rows, is an error naming the file. */
static int load_file(const cmir_index *f, const float *v, cmir_knn_q8 *qx, int64_t off, uint8_t *done)
{
    OGRLayerH l = cmir__index_codes_layer(f->ds, GDALDatasetGetLayerByName(f->ds, "cmir_meta"));
    if (!l)
        return 0;
    const int dim = f->dim;
    const size_t rb = cmir_knn_q8_record_bytes(dim);
    int rc = 0;
    OGRFeatureH g;
    OGR_L_ResetReading(l);
    while (!rc && (g = OGR_L_GetNextFeature(l)) != NULL) {
        int64_t first = OGR_F_GetFieldAsInteger64(g, 0);
        int nr = OGR_F_GetFieldAsInteger(g, 1), d = OGR_F_GetFieldAsInteger(g, 2), bytes = 0;
        const GByte *rec = OGR_F_GetFieldAsBinary(g, 3, &bytes);
        int64_t check = OGR_F_GetFieldAsInteger64(g, 4);
        int ok = d == dim && nr >= 1 && first >= 0 && first <= f->n - nr && rec && (size_t)bytes == (size_t)nr * rb;
        for (int j = 0; ok && j < nr; j++)
            ok = !done[off + first + j];
        if (!ok || chunk_check(v + (size_t)first * (size_t)dim, nr, dim, rec) != check ||
            cmir_knn_q8_put_rows(qx, off + first, nr, rec))
            rc = cmir__error(CMIR_EFORMAT, "%s: damaged int8 code chunk at row %lld (or the embeddings changed "
                             "since; search with -scan float, or rebuild the index)", f->path, (long long)first);
        else
            memset(done + off + first, 1, (size_t)nr);
        OGR_F_Destroy(g);
    }
    cmir__trim_heap();
    return rc;
}

int cmir__index_codes(cmir_index *ix, cmir_knn_q8 **out)
{
    *out = NULL;
    cmir_knn_q8 *qx = NULL;
    uint8_t *done = cmir__calloc((size_t)(ix->n ? ix->n : 1), 1);
    int rc = done ? cmir_knn_q8_new_blank(ix->n, ix->dim, &qx) : CMIR_ENOMEM;
    cmir__gdal_quiet_begin();
    for (int p = 0; !rc && p < (ix->parts ? ix->n_parts : 1); p++) {
        int64_t off = ix->parts ? ix->part_first[p] : 0;
        rc = load_file(ix->parts ? ix->parts[p] : ix, ix->v + (size_t)off * ix->dim, qx, off, done);
    }
    cmir__gdal_quiet_end();
    /* the rows no stored chunk gave (an index without codes: all of them) */
    for (int64_t r = 0, e; !rc && r < ix->n; r = e) {
        for (e = r; e < ix->n && done[e] == done[r]; e++)
            ;
        if (!done[r])
            rc = cmir_knn_q8_set_rows(qx, r, e - r, ix->v + (size_t)r * ix->dim);
    }
    cmir__free(done);
    if (rc)
        cmir_knn_q8_free(qx);
    else
        *out = qx;
    return rc;
}

int cmir__index_stores_codes(const cmir_index *ix)
{
    const cmir_index *f = ix && ix->parts ? ix->parts[0] : ix;
    return f && f->ds && cmir__index_codes_layer(f->ds, GDALDatasetGetLayerByName(f->ds, "cmir_meta")) != NULL;
}
