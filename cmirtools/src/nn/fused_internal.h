/* fused.c's private header: the job of the fused batch-norm + max-pool
 * kernels, shared with fused_bf16.c (the backward rows in bf16 pairs). */
#ifndef CMIR_FUSED_INTERNAL_H
#define CMIR_FUSED_INTERNAL_H

#include "nn_internal.h"

#include <stdint.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(CMIR_FUSED_NO_AVX512)
#define FUSED_AVX512 1
#endif

typedef struct fjob {
    const float *x, *gamma, *beta, *mean, *invstd;
    const uint16_t *xb; /* non-NULL: x's values in bf16 (read instead of x) */
    int ybf;            /* with xb: y is written in bf16 (uint16) */
    const float *dy, *xhat_in;
    float *y, *xhat, *dx;
    int32_t *arg;
    const int32_t *carg;
    const float *m1, *m2, *g; /* backward per channel: A, B, G */
    double *part;             /* T x 2C partial sums */
    float slope;
    size_t M;
    int N, H, W, C, k, Ho, Wo;
    int nt;
} fjob;

/* fused.c, for fused_block.c:
 *  cmir__bn_pool_fwd: cmir__bn_maxpool_forward, xb (non-NULL) its input's
 *    values in bf16 (then sums are required in training), ybf (with xb):
 *    y written in bf16;
 *  cmir__bn_stats_finish: batch mean and invstd from the sums of x and x^2
 *    over M rows, running statistics updated as cmir_batchnorm_forward;
 *  cmir__bn_bwd_prepare: the backward's sums, dgamma, dbeta and per-channel
 *    coefficients (into coef[3C]), and the job for the rows (*T threads);
 *  cmir__bn_dense_task: a cmir__parallel task writing the rows into j->dx;
 *  cmir__bn_dense_row_cb: cmir__dyrow_fn over a job. */
int cmir__bn_pool_fwd(cmir_exec *ex, cmir_bn_params p, int training, int k, const cmir_tensor *x,
                      const uint16_t *xb, int ybf, const float *gamma, const float *beta,
                      float *running_mean, float *running_var, float *save_mean,
                      float *save_invstd, const double *sums, cmir_tensor *y, int32_t *argmax,
                      float *xhat);
void cmir__bn_stats_finish(cmir_bn_params p, size_t M, int C, const double *sum,
                           const double *sq, float *running_mean, float *running_var,
                           float *mean, float *invstd);
int cmir__bn_bwd_prepare(cmir_exec *ex, const char *fn, float slope, int k, const cmir_tensor *x,
                         const float *gamma, const float *save_mean, const float *save_invstd,
                         const cmir_tensor *dy, const int32_t *argmax, const float *xhat,
                         float *dgamma, float *dbeta, fjob *j, int *T, float *coef);
int cmir__bn_dense_task(int t, int T, void *user);
void cmir__bn_dense_row_cb(void *ctx, size_t n, int y, const float *arow, float *row);

/* fused_bf16.c: whether cmir__bn_dy_pairs can make the rows of this job
 * (the bf16 precision is active, the CPU has AVX512_BF16, and C % 32,
 * k % 2 and W % 2 are 0); then cmir__dypairs_fn over a job. */
int cmir__bn_dy_pairs_ok(const fjob *j);
void cmir__bn_dy_pairs(void *job, size_t n, int y, const float *arow, uint32_t *pix,
                       uint32_t *chan, float *db);

#endif
