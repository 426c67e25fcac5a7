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

/* fused_bf16.c: whether cmir__bn_dy_pairs can make the rows of this job
 * (the bf16 precision is active, the CPU has AVX512_BF16, and C % 32,
 * k % 2 and W % 2 are 0); then cmir__dypairs_fn over a job. */
int cmir__bn_dy_pairs_ok(const fjob *j);
void cmir__bn_dy_pairs(void *job, size_t n, int y, const float *arow, uint32_t *pix,
                       uint32_t *chan, float *db);

#endif
