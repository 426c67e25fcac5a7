/* knn's private header for the int8 scan with exact answers: the quantised
 * database (blocks of 16 rows, 4-byte groups interleaved for vpdpbusd), the
 * per-query state, and the scan kernels (knn_q8.c) that the search
 * (knn_q8_search.c) drives. */
#ifndef CMIR_KNN_Q8_H
#define CMIR_KNN_Q8_H

#include "knn_internal.h"

#define Q8_ROWS 16   /* rows per block (one zmm of int32 dot products) */
#define Q8_QT 8      /* queries per kernel tile (accumulators) */
#define Q8_MAX_D 4096
/* Relative slack of the scan's float filter: covers every rounding of its
 * few float operations (about 5 u, u = 2^-24; the proof is in knn_q8.c). */
#define Q8_KAPPA 0x1p-18
#define Q8_SAFE_LO 0x1p-60 /* scales outside [LO, HI] are not trusted to float */
#define Q8_SAFE_HI 0x1p60

struct cmir_knn_q8 {
    int64_t n, nblk;
    int d, G;        /* G = 4-byte groups per row (d rounded up to 4) / 4 */
    uint8_t *codes;  /* nblk x G x 64: byte 4r+c of group g of block b is
                        xq[16b+r][4g+c] + 128 (pads: 128) */
    float *cx;       /* -2 s per row (s: the row's scale), nblk*16 */
    float *xl;       /* s^2 ||xq||^2 (1 - kappa), rounded down */
    float *rx;       /* ||x - s xq|| (1 + kappa), rounded up; +inf: never skip */
    int32_t *S;      /* ||xq||^2 */
};

/* One query's quantisation and search state. */
typedef struct q8q {
    double qn, rq; /* ||q'||^2 (q' = sq qq), ||q - q'|| rounded up */
    double ukm;    /* current bound: rows with a true distance above it are
                      beaten by k others (or fail max_dist) */
    float sq, qv;  /* scale; qn (1 - kappa) rounded down */
    int32_t off;   /* 128 sum(qq): the u8 offset of the codes */
    int exact, ulen, nbuf;
} q8q;

/* One thread's view of a block of queries. */
typedef struct q8view {
    const struct q8job *j;
    int64_t q0;       /* first query of the block */
    int nq;           /* queries in the block (tiles padded to Q8_QT) */
    int8_t *qc;       /* nq_pad x 4G query codes */
    q8q *st;          /* nq_pad */
    float *W;         /* nq_pad kernel thresholds (NaN for pads) */
    double *uheap;    /* nq x k upper bounds (max-heap) */
    knn_hit *buf;     /* nq x cap candidates */
} q8view;

typedef struct q8job {
    knn_job kj; /* db, q, n, m, d, k, mask, md, theta0, squared, epsd, ids, dist */
    const cmir_knn_q8 *qx;
    int vnni, cap, qblk;
    size_t per_thread;
    char *scratch;
} q8job;

/* knn_q8_search.c: row `id` with integer dot product I passed the scan's
 * filter for query i of the view. */
void cmir__q8_candidate(q8view *v, int i, int64_t id, int32_t I);

/* knn_q8_search.c: quantises query q into codes qc (4G bytes) and state st
 * (a fresh approx-mode query; max_dist from j->kj.theta0). 0, or -1 when
 * its scale is outside the trusted range (then nothing is written; qc and
 * st may be NULL to ask only that). */
int cmir__q8_prep_query(const q8job *j, const float *q, int8_t *qc, q8q *st);

/* knn_q8.c: the scan of blocks [b0, b1) for the queries [i0, i0 + Q8_QT)
 * of the view; the portable version and the AVX-512 VNNI one. */
void cmir__q8_scan_c(q8view *v, int i0, int64_t b0, int64_t b1);
void cmir__q8_scan_vnni(q8view *v, int i0, int64_t b0, int64_t b1);
/* Whether the CPU runs the VNNI kernel (and CMIR_KNN_NO_VNNI is unset). */
int cmir__q8_have_vnni(void);
/* The smallest float <= v (v finite, >= 0). */
float cmir__q8_round_down(double v);
/* knn_q8.c: the database of n rows of d, every row unset (never skipped:
 * rx = +inf) and the pads zero; quantising rows [r0, r0 + nr) from rows
 * (nr x d, finite); storing one row's terms; the xl term of scale s and
 * S = ||xq||^2 (one expression for the builder and the loader). */
int cmir__q8_alloc(int64_t n, int d, cmir_knn_q8 **out);
int cmir__q8_quantise(cmir_knn_q8 *qx, const float *rows, int64_t r0, int64_t nr);
void cmir__q8_put_row(cmir_knn_q8 *qx, int64_t r, const int8_t *c, float cx, float xl, float rx, int32_t S);
float cmir__q8_xl(float s, int32_t S);

#endif
