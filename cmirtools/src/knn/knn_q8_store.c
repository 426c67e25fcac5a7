/* The int8 database's stored form (cmir_knn_q8 records, d + 16 bytes a
 * row): an empty database, quantising ranges of rows, writing records and
 * reading them back with the checks a record alone allows. */
#include "knn_q8.h"

#include <math.h>

size_t cmir_knn_q8_record_bytes(int d) { return d > 0 ? (size_t)d + 16 : 0; }

int cmir_knn_q8_new_blank(int64_t n, int d, cmir_knn_q8 **out)
{
    if (!out)
        return cmir__error(CMIR_EINVAL, "cmir_knn_q8_new_blank: NULL argument");
    return cmir__q8_alloc(n, d, out);
}

static int check_range(const cmir_knn_q8 *qx, int64_t r0, int64_t nr, const void *p, const char *fn)
{
    if (!qx || (!p && nr > 0) || r0 < 0 || nr < 0 || r0 > qx->n - nr)
        return cmir__error(CMIR_EINVAL, "%s: rows %lld + %lld outside the database (%lld rows) or NULL", fn,
                           (long long)r0, (long long)nr, qx ? (long long)qx->n : 0LL);
    return 0;
}

int cmir_knn_q8_set_rows(cmir_knn_q8 *qx, int64_t r0, int64_t nr, const float *rows)
{
    int rc = check_range(qx, r0, nr, rows, "cmir_knn_q8_set_rows");
    if (!rc)
        rc = cmir__knn_norms_threads(1, rows, nr, qx->d, NULL);
    return rc ? rc : cmir__q8_quantise(qx, rows, r0, nr);
}

int cmir_knn_q8_get_rows(const cmir_knn_q8 *qx, int64_t r0, int64_t nr, void *rec)
{
    int rc = check_range(qx, r0, nr, rec, "cmir_knn_q8_get_rows");
    if (rc)
        return rc;
    const int d = qx->d;
    unsigned char *o = rec;
    for (int64_t r = r0; r < r0 + nr; r++, o += (size_t)d + 16) {
        const uint8_t *blk = qx->codes + (size_t)(r / Q8_ROWS) * qx->G * 64 + (size_t)(r % Q8_ROWS) * 4;
        for (int j = 0; j < d; j++)
            o[j] = (unsigned char)(blk[(size_t)(j / 4) * 64 + j % 4] ^ 0x80); /* c + 128 -> c */
        memcpy(o + d, &qx->cx[r], 4);
        memcpy(o + d + 4, &qx->xl[r], 4);
        memcpy(o + d + 8, &qx->rx[r], 4);
        memcpy(o + d + 12, &qx->S[r], 4);
    }
    return 0;
}

int cmir_knn_q8_put_rows(cmir_knn_q8 *qx, int64_t r0, int64_t nr, const void *rec)
{
    int rc = check_range(qx, r0, nr, rec, "cmir_knn_q8_put_rows");
    if (rc)
        return rc;
    const int d = qx->d;
    const unsigned char *o = rec;
    for (int64_t r = r0; r < r0 + nr; r++, o += (size_t)d + 16) {
        const int8_t *c = (const int8_t *)o;
        float cx, xl, rx;
        int32_t S, ss = 0;
        memcpy(&cx, o + d, 4);
        memcpy(&xl, o + d + 4, 4);
        memcpy(&rx, o + d + 8, 4);
        memcpy(&S, o + d + 12, 4);
        int bad = 0;
        for (int j = 0; j < d; j++) {
            bad |= c[j] == -128;
            ss += c[j] * c[j];
        }
        /* cx = -2 s exactly, so -cx / 2 is s again */
        float s = -cx / 2.0f;
        if (bad || ss != S || !isfinite(cx) || !(s >= 0.0f) || isnan(rx) || !(rx >= 0.0f) ||
            memcmp(&xl, &(float){cmir__q8_xl(s, S)}, 4) != 0)
            return cmir__error(CMIR_EFORMAT, "int8 code record of row %lld is damaged", (long long)r);
        cmir__q8_put_row(qx, r, c, cx, xl, rx, S);
    }
    return 0;
}
