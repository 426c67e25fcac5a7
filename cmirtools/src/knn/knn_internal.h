/* knn's private header: the job shared by the heap path (knn.c) and the
 * full-ranking and norm code (knn_full.c), and the exact distance every
 * path ranks by (static inline, one definition, so that it is the same
 * bit for bit wherever it runs). */
#ifndef CMIR_KNN_INTERNAL_H
#define CMIR_KNN_INTERNAL_H

#include "cmir/knn.h"
#include "../base/internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define KNN_HAVE_AVX512 1
#endif

#define KNN_DEFAULT_QB 512
/* Tiles of at most this many multiply-adds (rows x queries x d): small
 * enough for OpenBLAS's small-matrix kernels (no packing, no clearing of
 * C) and for L1/L2; the measurement behind it is in bench/README.md. */
#define KNN_SMALL_MNK 1000000
#define KNN_SUB_BLOCK 128 /* queries per sgemm for d <= 128 */
/* Per-thread budget for the k-heaps of one query block. */
#define KNN_HEAP_BUDGET ((size_t)16 << 20)
/* Squared norms at or above this are refused: keeps every float sum and
 * product in the sgemm tile far from overflow. */
#define KNN_NORM_LIMIT 1e30
#define KNN_MAX_D (1 << 20)
#define KNN_U 0x1p-24  /* unit roundoff of float */
#define KNN_UD 0x1p-53 /* unit roundoff of double */

/* Defines NAME(h, len, k, x): offers x to the max-heap h[0, *len) that
 * keeps the k smallest values of type T seen; returns 1 if x was kept.
 * One definition for the float heap (knn.c) and the double one (knn_q8). */
#define CMIR__KNN_HEAP_OFFER(NAME, T)                                                          \
    static int NAME(T *h, int *len, int k, T x)                                                \
    {                                                                                          \
        int i;                                                                                 \
        if (*len < k) {                                                                        \
            i = (*len)++;                                                                      \
            while (i > 0 && h[(i - 1) / 2] < x) {                                              \
                h[i] = h[(i - 1) / 2];                                                         \
                i = (i - 1) / 2;                                                               \
            }                                                                                  \
            h[i] = x;                                                                          \
            return 1;                                                                          \
        }                                                                                      \
        if (!(x < h[0]))                                                                       \
            return 0;                                                                          \
        for (i = 0;;) {                                                                        \
            int c = 2 * i + 1;                                                                 \
            if (c >= k)                                                                        \
                break;                                                                         \
            if (c + 1 < k && h[c] < h[c + 1])                                                  \
                c++;                                                                           \
            if (!(x < h[c]))                                                                   \
                break;                                                                         \
            h[i] = h[c];                                                                       \
            i = c;                                                                             \
        }                                                                                      \
        h[i] = x;                                                                              \
        return 1;                                                                              \
    }

typedef struct knn_hit {
    double d;
    int64_t id;
} knn_hit;

typedef struct knn_key {
    uint64_t key; /* bit pattern of a non-negative double: ordered like it */
    int64_t id;
} knn_key;

typedef struct knn_job {
    const float *db, *q;
    int64_t n, m;
    int d, k;
    const uint8_t *mask;
    int mask_value;  /* -1: non-zero mask bytes keep; else bytes equal to it */
    const float *nx; /* squared db norms (float) */
    double md;       /* max_dist as given (unit of `squared`) */
    double theta0;   /* bound on D above which nothing is kept (from md) */
    int squared;
    int qb, nb, sb;    /* queries per block (heap path), db rows per tile (0 = by
                          tile_shape()), queries per sgemm */
    int64_t q0, q1;    /* db-split mode: the query chunk */
    int split_db;      /* threads split the database instead of the queries */
    int avx512;        /* scan tiles with AVX-512F */
    double gam, epsd;  /* error-bound coefficients, see thr_for() */
    double xmax;       /* bound on every squared db norm */
    int cap;           /* candidate buffer per query (heap path) */
    size_t off_qt, off_thr, off_slot, off_aheap, off_buf; /* a thread's area */
    size_t off_nx;   /* a tile's norms when nx is NULL (db_norm_max given) */
    char *scratch;     /* per-thread areas */
    size_t per_thread; /* bytes */
    int64_t *ids;
    float *dist;
} knn_job;

/* Whether row id passes the job's mask (cmir_knn_params.mask, mask_value). */
static inline int cmir__knn_keep(const knn_job *j, int64_t id)
{
    return !j->mask || (j->mask_value < 0 ? j->mask[id] != 0 : j->mask[id] == j->mask_value);
}

/* ------------------------------------------------------------------------ */
/* Exact distances                                                           */
/*
 * The reference D must be bit-identical wherever it is computed: no
 * multiply-add contraction (GCC: off in ISO C mode, and forced off for
 * these functions; clang: the pragma).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define KNN_NO_CONTRACT
#elif defined(__GNUC__)
#define KNN_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define KNN_NO_CONTRACT
#endif

/* The reference distance: in-order double sum of squared differences. */
KNN_NO_CONTRACT static inline double exact_d(const float *a, const float *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

/* The same for four rows at once: four independent in-order chains, so each
 * result is bit-identical to exact_d, with more instruction-level overlap. */
KNN_NO_CONTRACT static inline void exact_d4(const float *q, const float *x0, const float *x1,
                                     const float *x2, const float *x3, int d, double out[4])
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int j = 0; j < d; j++) {
        double qj = (double)q[j];
        double t0 = qj - (double)x0[j], t1 = qj - (double)x1[j];
        double t2 = qj - (double)x2[j], t3 = qj - (double)x3[j];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

/* The smallest float >= v (v finite or +inf). */
static inline float round_up_float(double v)
{
    if (v > (double)FLT_MAX)
        return INFINITY;
    float f = (float)v;
    if ((double)f < v) { /* one ulp up; f != 0 here unless v is tiny */
        if (f == 0.0f)
            return FLT_TRUE_MIN;
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        b = f > 0.0f ? b + 1 : b - 1;
        memcpy(&f, &b, sizeof f);
    }
    return f;
}

/* (D, id) order and a max-heap of hits, worst on top (knn.c, knn_q8.c). */
static inline int hit_less(knn_hit a, knn_hit b) { return a.d < b.d || (a.d == b.d && a.id < b.id); }

static inline int hit_cmp(const void *a, const void *b)
{
    knn_hit x = *(const knn_hit *)a, y = *(const knn_hit *)b;
    return hit_less(x, y) ? -1 : hit_less(y, x) ? 1 : 0;
}

/* Max-heap of (D, id), worst on top. */
static inline void sift_down(knn_hit *h, int len, int i)
{
    knn_hit x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && hit_less(h[c], h[c + 1]))
            c++;
        if (!hit_less(x, h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Offers x to the heap of capacity k; returns 1 if it entered. */
static inline int heap_offer(knn_hit *h, int *len, int k, knn_hit x)
{
    if (*len < k) {
        int i = (*len)++;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!hit_less(h[p], x))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = x;
        return 1;
    }
    if (!hit_less(x, h[0]))
        return 0;
    h[0] = x;
    sift_down(h, *len, 0);
    return 1;
}

/* Sorts the heap ascending in place (heap sort) and writes one output row. */
static inline void heap_emit(const knn_job *j, knn_hit *h, int len, int64_t *ids, float *dist)
{
    for (int n = len - 1; n > 0; n--) {
        knn_hit t = h[0];
        h[0] = h[n];
        h[n] = t;
        sift_down(h, n, 0);
    }
    for (int r = 0; r < j->k; r++) {
        ids[r] = r < len ? h[r].id : -1;
        if (dist)
            dist[r] = r < len ? (float)(j->squared ? h[r].d : sqrt(h[r].d)) : INFINITY;
    }
}

/* Rows per batch of the full path's exact distances (knn_full.c). */
#define KNN_BATCH 32

/* Whether a hit at exact squared distance D passes max_dist. */
static inline int keep_dist(const knn_job *j, double D)
{
    if (j->md == INFINITY)
        return 1;
    return j->squared ? D <= j->md : sqrt(D) <= j->md;
}

/* Squared norm in double. Only its accuracy matters (relative error below
 * (d + 1) 2^-53 in any summation order), so eight partial sums keep the
 * adds independent. */
static inline double sq_norm(const float *x, int d)
{
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= d; j += 8)
        for (int u = 0; u < 8; u++)
            s[u] += (double)x[j + u] * (double)x[j + u];
    for (; j < d; j++)
        s[0] += (double)x[j] * (double)x[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static inline int norm_ok(double s) { return isfinite(s) && s < KNN_NORM_LIMIT; }

/* Whether the CPU runs AVX-512F (asked once per call, in the caller). */
static inline int cpu_avx512(void)
{
#ifdef KNN_HAVE_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

/* knn_full.c: the full path (k >= n/4), one cmir__parallel task per
 * thread over its queries (scratch: 2 n knn_keys per thread). */
int cmir__knn_task_full(int t, int T, void *user);
/* Checks the n rows of x (finite, squared norm < 1e30) on up to T threads
 * and stores their squared norms in norms (may be NULL: check only). */
int cmir__knn_norms_threads(int T, const float *x, int64_t n, int d, float *norms);

/* knn.c: cmir_knn's argument and value checks (queries, db_norms; not the
 * database rows), shared by cmir_knn_q8_search. */
int cmir__knn_check_args(const float *db, int64_t n, const float *q, int64_t m, int d, int k,
                         const cmir_knn_params *p, const int64_t *ids);

#endif
