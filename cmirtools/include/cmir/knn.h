/* cmir/knn.h: exact Euclidean k-nearest-neighbour search by brute force.
 * Candidate distances come from OpenBLAS sgemm in blocks; every hit is then
 * confirmed with a double-precision distance, so results are exact. */
#ifndef CMIR_KNN_H
#define CMIR_KNN_H

#include "cmir/base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Options of cmir_knn. Start from cmir_knn_default_params(). */
typedef struct cmir_knn_params {
    /* n bytes, one per database row: 0 excludes the row, non-zero keeps it.
     * NULL (default) keeps every row. Borrowed for the call. */
    const uint8_t *mask;
    /* -1 (default): rows whose mask byte is non-zero are kept; 0..255: rows
     * whose mask byte equals it (so that one byte of labels per row, such
     * as an index's modalities, serves as the mask of every label). */
    int mask_value;
    /* Hits whose distance (in the unit chosen by `squared`, compared in
     * double precision) is greater than max_dist are excluded. Default
     * +INFINITY (no limit); must be >= 0 and not NaN. */
    float max_dist;
    /* 1 (default): dist[] holds squared Euclidean distances; 0: Euclidean
     * distances (the square root). The ranking is the same either way. */
    int squared;
    /* Squared row norms of the database (n floats), e.g. from
     * cmir_knn_norms, so that a long-lived database computes them once.
     * Any float or double summation is fine: the exactness guarantee
     * allows a relative error up to (d + 2) 2^-24 per norm; values further
     * off break it. NULL (default): computed inside each call. Checked
     * (finite, >= 0, < 1e30), never written. Borrowed. */
    const float *db_norms;
    /* With db_norms NULL: > 0 is the largest squared row norm as
     * cmir_knn_norm_max gives it (or larger), and the scan computes each
     * tile's norms as it goes (the same values), so that a call needs no n
     * floats of norms; the rows are then not checked for NaN, which the
     * caller did when it took the maximum. 0 (default): unused. */
    float db_norm_max;
    /* Tuning; results never depend on them. query_block: queries whose
     * state (thresholds, heaps) a thread keeps while it streams the
     * database; default 0 = 512. db_block: database rows per sgemm tile;
     * default 0 = automatic: for d <= 128 the tiles are rows x 128 queries
     * x d with rows = 1e6 / (128 d) (about 122 for d = 64), small enough
     * for OpenBLAS's unpacked small-matrix kernels (why: bench/README.md);
     * for d > 128, 512 rows x query_block. */
    int query_block;
    int db_block;
} cmir_knn_params;

CMIR_API cmir_knn_params cmir_knn_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first bad field (max_dist,
 * squared, query_block, db_block). cmir_knn calls it. */
CMIR_API int cmir_knn_check_params(cmir_knn_params p);

/* Squared Euclidean norms of the n rows of x (row-major n x d): norms[i] =
 * sum_j x[i,j]^2 accumulated in double (order unspecified), rounded to
 * float; norms has n floats, caller-allocated. For p.db_norms of
 * cmir_knn. Single-threaded. Returns 0, or CMIR_EINVAL for NULL pointers,
 * n < 0, d <= 0, d > 2^20, a row with a NaN or an infinite value, or a
 * squared norm of 1e30 or more (see cmir_knn). */
CMIR_API int cmir_knn_norms(const float *x, int64_t n, int d, float *norms);
/* The largest of the n squared norms cmir_knn_norms would give (0 when n
 * is 0), in a few KB of memory; CMIR_EINVAL as cmir_knn_norms. */
CMIR_API int cmir_knn_norm_max(const float *x, int64_t n, int d, float *max);

/* For each of the m queries q (row-major m x d) finds the k rows of the
 * database db (row-major n x d) nearest in Euclidean distance. db, q,
 * p.mask and p.db_norms are only read; ids and dist are only written.
 *
 * Output: ids[i*k + r] and dist[i*k + r] (both m x k, caller-allocated)
 * are the database row index and distance of the r-th nearest row to query
 * i, in ascending order of distance. When fewer than k rows qualify (k > n,
 * or rows removed by p.mask / p.max_dist), the remaining slots get id -1
 * and dist +INFINITY. dist may be NULL when only the ids are wanted.
 *
 * Exactness: the result is identical (ids and order) to a brute force that
 * computes, for every allowed row x,
 *     D(q, x) = sum over j = 0..d-1, in this order, of ((double)q_j - (double)x_j)^2
 * in IEEE double precision (no fused multiply-add), and sorts by (D, row
 * index) ascending: ties in D go to the smaller row index. dist[] holds
 * (float)D, or (float)sqrt(D) with p.squared = 0; max_dist is compared
 * with D (or sqrt(D)) in double. The float sgemm values ||x||^2 - 2 q.x
 * only select candidates: a rigorous bound on their rounding error (from
 * d and the largest squared norms) proves every skipped row is beaten by k
 * others, and every kept candidate is ranked by its exact D. Where the
 * bound cannot separate rows (e.g. many rows within float rounding of each
 * other, as for duplicates or data far from the origin), more rows get an
 * exact D: the result stays exact, only slower (at worst O(n*d) double
 * operations per query).
 *
 * Values: every element finite, and every squared row norm (queries and
 * database) below 1e30, else CMIR_EINVAL.
 *
 * Cost and memory: about 2*n*d*m flops in sgemm plus a vectorized scan of
 * each distance tile and O(k log(n/k)) candidates per query; queries are
 * split over the context's threads (OpenBLAS single-threaded inside each),
 * or, with fewer than 8 queries per thread, the database is split and the
 * per-thread results merged (single queries). Scratch memory (from the
 * context) is bounded by the block sizes, k and the thread count (about
 * 1.1 MiB per thread for k = 10), never by n*m; without p.db_norms, n
 * floats for the norms are added and each call reads the database once
 * more to compute them. When k >= n/4 every allowed row's D is computed
 * and radix-sorted per query instead (O(n*d) double operations per query,
 * n * 32 bytes per thread), which also serves full rankings (k = n).
 *
 * ex may be NULL (one thread, scratch allocated for the call). p is taken
 * by value (start from cmir_knn_default_params()). Returns 0; CMIR_EINVAL for NULL db (with
 * n > 0), q (with m > 0) or ids (with m > 0), n < 0, m < 0, d <= 0,
 * d > 2^20, k <= 0, bad params or bad values; CMIR_ENOMEM. On failure the
 * contents of ids and dist are unspecified. */
CMIR_API int cmir_knn(cmir_exec *ex, const float *db, int64_t n, const float *q, int64_t m,
                      int d, int k, cmir_knn_params p, int64_t *ids, float *dist);

/* ------------------------------------------------------------------------ */
/* Reduced-precision scan with exact answers (int8 codes, float re-rank).    */
/*
 * A cmir_knn_q8 holds, for each database row x, int8 codes xq (|xq_j| <=
 * 127) with a per-row scale s (x' = s xq), the exact error norm ||x - x'||
 * rounded up, and ||xq||^2: d + 16 bytes per row (cmir_knn_q8_bytes_per_row),
 * laid out in blocks of 16 rows for AVX-512 VNNI (vpdpbusd); machines
 * without it run a portable C scan over the same codes. cmir_knn_q8_search
 * scans the codes with integer dot products (exact), bounds every true
 * distance between ||q' - x'|| -+ (||q - q'|| + ||x - x'||) (triangle
 * inequality, with all float rounding of the scan's arithmetic included),
 * skips only rows whose lower bound exceeds the upper bounds of k other
 * rows (or max_dist), and ranks every other row by the exact double D of
 * cmir_knn. The result is therefore identical to cmir_knn's (ids, order,
 * ties to the smaller row index, dist), whatever the data: where the bound
 * cannot separate rows (near-duplicates, rows equal below the quantisation
 * step) more rows get an exact D, which costs time, never exactness. */
typedef struct cmir_knn_q8 cmir_knn_q8;

/* Quantises the n rows of db (row-major n x d, only read, not kept).
 * d in 1..4096; every value finite and every squared row norm below 1e30,
 * else CMIR_EINVAL (as cmir_knn). Rows whose scale is far outside float's
 * comfortable range (max |x_j| below 2^-60 or above 2^60, non-zero) are
 * marked never-skipped. CMIR_ENOMEM. Single-threaded, O(n d). */
CMIR_API int cmir_knn_q8_new(const float *db, int64_t n, int d, cmir_knn_q8 **out);
CMIR_API void cmir_knn_q8_free(cmir_knn_q8 *qx);
/* Bytes the scan reads per database row (codes and per-row terms). */
CMIR_API size_t cmir_knn_q8_bytes_per_row(const cmir_knn_q8 *qx);
/* 1 when the scan runs the AVX-512 VNNI kernel on this CPU, 0 portable C.
 * The environment variable CMIR_KNN_NO_VNNI=1 forces the portable scan
 * (tests run both). */
CMIR_API int cmir_knn_q8_vnni(void);

/* Storing the codes (an index file keeps them beside its float matrix, so
 * that a search loads them instead of quantising). A row's record is
 * cmir_knn_q8_record_bytes(d) = d + 16 bytes: its d codes (int8, -127..127),
 * then four little-endian 32-bit words: -2 s, the lower term xl and the
 * error bound rx (float32) and ||xq||^2 (int32), exactly as the builder
 * made them, so codes read back are byte for byte the ones
 * cmir_knn_q8_new makes and the hits are the same. The format's name is
 * CMIR_KNN_Q8_FORMAT; a reader of another name must not read the records.
 *
 * cmir_knn_q8_new_blank: n rows of d, none set yet (a row not set is never
 * skipped by the scan: still exact, only slower); _set_rows quantises rows
 * [r0, r0 + nr) from rows (nr x d, values as cmir_knn_q8_new wants);
 * _get_rows writes their records into rec (nr x record_bytes); _put_rows
 * reads records back, checking what a record can prove by itself (codes in
 * -127..127, ||xq||^2 and xl as the codes and scale give them, finite
 * non-negative scale, rx >= 0): 0, CMIR_EFORMAT naming the first bad row
 * (then rows before it are set, the rest unchanged), CMIR_EINVAL for a
 * range outside [0, n) or NULL arguments. That rx bounds the row's real
 * error cannot be told from a record: a file storing records must guard
 * them against damage and against a matrix changed since (a checksum). */
#define CMIR_KNN_Q8_FORMAT "cmir-q8 1"
CMIR_API size_t cmir_knn_q8_record_bytes(int d);
CMIR_API int cmir_knn_q8_new_blank(int64_t n, int d, cmir_knn_q8 **out);
CMIR_API int cmir_knn_q8_set_rows(cmir_knn_q8 *qx, int64_t r0, int64_t nr, const float *rows);
CMIR_API int cmir_knn_q8_get_rows(const cmir_knn_q8 *qx, int64_t r0, int64_t nr, void *rec);
CMIR_API int cmir_knn_q8_put_rows(cmir_knn_q8 *qx, int64_t r0, int64_t nr, const void *rec);

/* cmir_knn(ex, db, n, q, m, d, k, p, ids, dist) with the scan over qx,
 * which must have been built from the same db (n x d) and db unchanged
 * since: the same result, the same arguments and errors. p.db_norms and
 * the tuning fields are ignored. Queries with a scale outside 2^-60..2^60
 * (see cmir_knn_q8_new), and calls with k >= n/4, are answered by cmir_knn
 * itself. */
CMIR_API int cmir_knn_q8_search(cmir_exec *ex, const cmir_knn_q8 *qx, const float *db,
                                int64_t n, const float *q, int64_t m, int d, int k,
                                cmir_knn_params p, int64_t *ids, float *dist);

#ifdef __cplusplus
}
#endif
#endif
