/* cmir/metrics.h: retrieval evaluation: exact Euclidean rankings (ties by
 * database index), mAP, mAP@k, P@k, 11-point PR, ANMRR and the CMIR-NET
 * paper's P@10..P@50 protocol, for single- or multi-label relevance; and
 * the training-free floors (PAN statistics regressed onto MS band means). */
#ifndef CMIR_METRICS_H
#define CMIR_METRICS_H

#include "cmir/base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMIR_METRICS_PR_POINTS 11   /* recall 0, 0.1, ..., 1 */
#define CMIR_METRICS_PAPER_POINTS 5 /* P@10, P@20, P@30, P@40, P@50 */

/* Relevance. Give exactly one of the two forms; all arrays are borrowed.
 *  - single label: q_class (nq) and db_class (nd) hold a class per item,
 *    >= 1, or 0 for unlabelled. A database item is relevant to a query when
 *    both have the same class >= 1. An unlabelled query is skipped;
 *    unlabelled database items are never relevant. Negative: CMIR_EINVAL.
 *  - multi-label: q_multi (nq x n_labels) and db_multi (nd x n_labels),
 *    row-major bytes, non-zero = the item has that label. Relevant = at
 *    least one label in common. A query without any label is skipped. */
typedef struct cmir_metrics_labels {
    const int32_t *q_class, *db_class;
    const uint8_t *q_multi, *db_multi;
    int n_labels;
} cmir_metrics_labels;

/* Options of cmir_metrics_eval. Start from cmir_metrics_default_params(). */
typedef struct cmir_metrics_params {
    /* Cutoffs k for P@k and mAP@k, each >= 1 (borrowed). Default: a static
     * array {5, 10, 20, 50, 100}, n_cutoffs = 5. n_cutoffs = 0: none. */
    const int *cutoffs;
    int n_cutoffs;
    /* Same-set retrieval (e.g. PAN -> PAN with Q == D): query i is database
     * item i and is removed from its own ranking and from R_q. Default 0. */
    int self_exclude;
    /* The paper's protocol: number of queries drawn (without replacement,
     * from the evaluated ones, by cmir_rng seeded with `seed`). Default 50
     * (as in the paper); 0 = all evaluated queries. */
    int paper_queries;
    uint64_t seed; /* default 1 */
} cmir_metrics_params;

CMIR_API cmir_metrics_params cmir_metrics_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first bad field (n_cutoffs,
 * cutoffs[i], paper_queries). cmir_metrics_eval calls it. */
CMIR_API int cmir_metrics_check_params(cmir_metrics_params p);

/* Results. Every mean is over the evaluated queries: labelled, with at
 * least one relevant database item (R_q >= 1). A mean without any such
 * query is NaN. Definitions, for a query with ranking x_1, x_2, ... (the
 * database by ascending distance, ties by smaller index, the query itself
 * removed with self_exclude), rel(i) = 1 if x_i is relevant, hits(i) =
 * rel(1) + ... + rel(i), P(i) = hits(i) / i, R = R_q:
 *   AP      = (1/R) sum_i P(i) rel(i) over the whole ranking
 *   AP@k    = (1/min(R, k)) sum_{i<=k} P(i) rel(i)
 *   P@k     = hits(k) / k (also when fewer than k items exist: the missing
 *             ones count as not relevant)
 *   PR      = 11-point interpolated precision: at recall level r in {0, 0.1,
 *             ..., 1}, the largest P(i) over the ranks i where hits(i) / R
 *             >= r; averaged over queries
 *   ANMRR   = MPEG-7: NG = R, GTM = the largest R over evaluated queries,
 *             K = min(4 NG, 2 GTM); each relevant item at rank i scores
 *             Rank = i if i <= K else 1.25 K; AVR = sum Rank / NG; MRR =
 *             AVR - 0.5 - NG/2; NMRR = MRR / (1.25 K - 0.5 - NG/2); ANMRR =
 *             mean NMRR (0 = perfect, 1 = no relevant item within K)
 *   paper   = the CMIR-NET protocol: P@10, ..., P@50 averaged over the
 *             sampled queries, and the mean of those five numbers. P@k can
 *             never exceed R/k: with small classes (R < 50) P@50 is capped
 *             by the class size, so it is not comparable across databases. */
typedef struct cmir_metrics_result {
    int64_t n_queries;     /* evaluated */
    int64_t n_unlabelled;  /* skipped: no label */
    int64_t n_no_relevant; /* skipped: labelled but R_q = 0 */
    int64_t gtm;           /* the largest R_q (ANMRR's GTM); 0 if none */
    double map;
    double pr[CMIR_METRICS_PR_POINTS];
    double anmrr;
    int64_t paper_n; /* queries in the paper sample */
    double paper_p_at[CMIR_METRICS_PAPER_POINTS];
    double paper_mean;
} cmir_metrics_result;

/* Evaluates retrieval of the nq query codes Q (row-major nq x d) against
 * the nd database codes D (row-major nd x d) with the relevance `labels`.
 * map_at and p_at (p.n_cutoffs doubles each, caller-allocated, either may
 * be NULL) receive mAP@k and P@k for p.cutoffs in order. p is taken by
 * value (start from cmir_metrics_default_params()). progress (may be NULL)
 * gets the fraction of queries ranked; non-zero from it cancels with
 * CMIR_ECANCEL. ex gives the threads (NULL: one).
 *
 * Cost: O(nd * d + nd) per evaluated query for the exact ranking (see
 * cmir_knn with k = nd) plus O(nd * n_labels / 64) for relevance; memory
 * O(nq + nd) plus a block of rankings of at most ~16 MiB.
 *
 * Returns 0; CMIR_EINVAL for NULL or inconsistent arguments (both or
 * neither label form, negative classes, a cutoff < 1, self_exclude with
 * nq > nd, non-finite codes), CMIR_ENOMEM, or CMIR_ECANCEL. out is
 * written only on success. */
CMIR_API int cmir_metrics_eval(cmir_exec *ex, const float *Q, int64_t nq, const float *D,
                               int64_t nd, int d, const cmir_metrics_labels *labels,
                               cmir_metrics_params p, cmir_progress_fn progress, void *user,
                               cmir_metrics_result *out, double *map_at, double *p_at);

/* ---- Training-free floors -------------------------------------------
 * What retrieval reaches without any learning, from two statistics of a
 * PAN/MS tile pair, so that an evaluation shows whether a trained model
 * beats them (cmir_eval reports them beside every direction). Per tile:
 * the PAN tile's mean and standard deviation over its pixels (pan, 2
 * values) and the MS tile's band means (ms, n_bands values). */

/* Options of cmir_floor_eval. Start from cmir_floor_default_params(). */
typedef struct cmir_floor_params {
    /* 1 (default): every feature (PAN mean, PAN deviation, each MS band
     * mean) is standardised by the mean and standard deviation over the
     * training tiles, so that no feature's scale dominates the distances
     * (a feature constant on the training tiles is only centred); 0: raw. */
    int standardise;
    /* Ridge weight of the regression (>= 0, finite; default 0 = plain
     * least squares): see cmir_floor_lstsq. */
    double ridge;
} cmir_floor_params;

CMIR_API cmir_floor_params cmir_floor_default_params(void);
/* 0, or CMIR_EINVAL naming the first bad field (standardise, ridge). */
CMIR_API int cmir_floor_check_params(cmir_floor_params p);

/* The statistics of n tiles (borrowed): pan n x 2 (mean, deviation),
 * ms n x n_bands (band means), row-major. */
typedef struct cmir_floor_tiles {
    int64_t n;
    const double *pan;
    const double *ms;
} cmir_floor_tiles;

/* Least squares: B (p x q, row-major, caller-allocated) minimising
 * ||X B - Y||^2 + ridge ||B||^2 for X (n x p) and Y (n x q), row-major,
 * by Householder QR in double precision (ridge > 0: on X stacked over
 * sqrt(ridge) I). A column of X that is (numerically, 1e-12 relative) a
 * combination of the columns before it gets coefficients 0, so a
 * rank-deficient X still gives a solution that attains the least residual.
 * Returns 0, or CMIR_EINVAL (NULL, n < 1, p outside 1..64, q < 1,
 * non-finite values or ridge), CMIR_ENOMEM. */
CMIR_API int cmir_floor_lstsq(const double *X, int64_t n, int p, const double *Y, int q, double ridge,
                              double *B);

/* The four floors, in cmir_eval's direction order: out[0] PAN->MS, out[1]
 * MS->PAN, out[2] PAN->PAN, out[3] MS->MS, over the test tiles (queries and
 * database both; same-modal directions exclude the query itself), with
 * relevance `labels` of the test tiles as in cmir_metrics_eval (and
 * mp.self_exclude set per direction). Features, with the standardisation
 * statistics taken from the training tiles only:
 *   PAN->MS, MS->PAN  the PAN-statistics regression: a least-squares map
 *                     (cmir_floor_lstsq, p.ridge) from (PAN mean, PAN
 *                     deviation, 1) to the MS band means, FITTED ON THE
 *                     TRAINING TILES ONLY; a PAN tile is represented by its
 *                     predicted band means, an MS tile by its band means;
 *                     Euclidean distance in that n_bands-space;
 *   PAN->PAN          the PAN (mean, deviation) pair;
 *   MS->MS            the MS band means.
 * map_at and p_at (4 x mp.n_cutoffs doubles, direction-major; either may be
 * NULL) get mAP@k and P@k. coef (3 x n_bands doubles, may be NULL) gets the
 * fitted map in the standardised features (rows: mean, deviation,
 * constant). Costs 4 calls of cmir_metrics_eval on d <= n_bands codes.
 * Returns 0; CMIR_EINVAL for NULL arguments, n_bands < 1, fewer than 2
 * training tiles, non-finite statistics or bad params; CMIR_ENOMEM;
 * CMIR_ECANCEL from progress (called as in cmir_metrics_eval, per
 * direction). */
CMIR_API int cmir_floor_eval(cmir_exec *ex, const cmir_floor_tiles *train, const cmir_floor_tiles *test,
                             int n_bands, const cmir_metrics_labels *labels, cmir_metrics_params mp,
                             cmir_floor_params p, cmir_progress_fn progress, void *user,
                             cmir_metrics_result out[4], double *map_at, double *p_at, double *coef);

#ifdef __cplusplus
}
#endif
#endif
