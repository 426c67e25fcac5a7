/* The fused stage-1 block (conv -> leaky ReLU -> batch norm -> max-pool)
 * forward and backward as one call each, over fused.c's batch-norm + pool
 * kernels and the direct conv's drivers; the conv output a stored in
 * float32, in bf16 (the bf16 precision) or not at all (remade). */
#include "fused_internal.h"

#include <stdint.h>
#include <string.h>

int cmir__conv3x3_bn_maxpool_backward(cmir_exec *ex, float slope, int k, const cmir_tensor *a,
                                     const float *gamma, const float *save_mean,
                                     const float *save_invstd, const cmir_tensor *dy,
                                     const int32_t *argmax, const float *xhat,
                                     const cmir_tensor *x, const float *W, const float *b,
                                     cmir_tensor *dx, float *dW, float *db, float *dgamma,
                                     float *dbeta)
{
    return cmir__conv3x3_bn_maxpool_backward_bf(ex, slope, k, a, gamma, save_mean, save_invstd,
                                                dy, argmax, xhat, x, W, b, dx, dW, db, dgamma,
                                                dbeta, 0);
}

int cmir__conv3x3_bn_maxpool_backward_bf(cmir_exec *ex, float slope, int k, const cmir_tensor *a,
                                        const float *gamma, const float *save_mean,
                                        const float *save_invstd, const cmir_tensor *dy,
                                        const int32_t *argmax, const float *xhat,
                                        const cmir_tensor *x, const float *W, const float *b,
                                        cmir_tensor *dx, float *dW, float *db, float *dgamma,
                                        float *dbeta, unsigned bf)
{
    const char *fn = "cmir__conv3x3_bn_maxpool_backward";
    int rc;
    const int a_bf16 = (bf & CMIR__BF_A) != 0, xflag = bf & CMIR__BF_X ? CMIR__CONV_XBF : 0;
    if ((a_bf16 || xflag) && (!a || !xhat))
        return cmir__error(CMIR_EINVAL, "%s: a or x in bf16 needs a and xhat", fn);
    float *tmp_a = NULL;
    cmir_tensor av;
    if (!a) { /* remade from x: only its shape is needed (xhat gives the winners') */
        if ((rc = cmir__check_tensor(x, 4, fn, "x")) || (rc = cmir__check_tensor(dy, 4, fn, "dy")))
            return rc;
        if (!xhat)
            return cmir__error(CMIR_EINVAL, "%s: a NULL needs xhat", fn);
        av = cmir_tensor_4d(dy->data, x->shape[0], x->shape[1], x->shape[2], dy->shape[3]);
        if (!cmir__conv3x3_direct_available((int)x->shape[3])) { /* the portable path needs a */
            tmp_a = cmir__malloc_aligned(sizeof(float) * (size_t)cmir_tensor_numel(&av));
            if (!tmp_a)
                return CMIR_ENOMEM;
            av.data = tmp_a;
            if ((rc = cmir__conv3x3_lrelu_forward(ex, x, W, b, slope, &av, NULL))) {
                cmir__free_aligned(tmp_a);
                return rc;
            }
        }
        a = &av;
    }
    if ((rc = cmir__check_tensor(a, 4, fn, "a")))
        return rc;
    fjob j;
    int T = 1, C = (int)a->shape[3];
    float *coef = cmir__malloc(sizeof(float) * 3 * (size_t)(C > 0 ? C : 1));
    if (!coef)
        return CMIR_ENOMEM;
    rc = cmir__bn_bwd_prepare(ex, fn, slope, k, a, gamma, save_mean, save_invstd, dy, argmax,
                              xhat, dgamma, dbeta, &j, &T, coef);
    if (!rc && a_bf16) { /* the rows only through dy_pairs, which reads bf16 */
        j.xb = (const uint16_t *)a->data;
        if (!cmir__bn_dy_pairs_ok(&j))
            rc = cmir__error(CMIR_EINVAL, "%s: a in bf16 unsupported here", fn);
    }
    if (!rc) {
        /* the conv's scratch may move the exec's: nothing of it is kept in j */
        j.part = NULL;
        /* Few input channels: remaking a's rows from x (9 Cin multiply-adds
         * per value) is cheaper than reading a from memory. */
        int remake = !a_bf16 && ((x && x->ndim == 4 && x->shape[3] <= 2) || (a == &av && !tmp_a));
        rc = cmir__conv3x3_backward_rows(ex, x, W, C, cmir__bn_dense_row_cb,
                                         cmir__bn_dy_pairs_ok(&j) ? cmir__bn_dy_pairs : NULL, &j,
                                         b, slope, (remake ? CMIR__CONV_REMAKE : 0) | xflag, dx,
                                         dW, db);
        if (rc == 1 && (a_bf16 || xflag))
            rc = cmir__error(CMIR_EINVAL, "%s: a or x in bf16 needs the direct kernels", fn);
        if (rc == 1) { /* no direct kernels: materialise dy */
            float *da = cmir__malloc_aligned(sizeof(float) * j.M * (size_t)C);
            rc = CMIR_ENOMEM;
            if (da) {
                cmir_tensor tda = cmir_tensor_4d(da, j.N, j.H, j.W, C);
                j.dx = da;
                j.nt = 0;
                int rows = j.N * j.H;
                rc = cmir__parallel(T > rows ? rows : T, cmir__bn_dense_task, &j);
                if (!rc)
                    rc = cmir_conv3x3_backward(ex, x, W, &tda, dx, dW, db);
                cmir__free_aligned(da);
            }
        }
    }
    cmir__free(coef);
    cmir__free_aligned(tmp_a);
    return rc;
}

int cmir__conv3x3_bn_maxpool_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                    const float *b, float slope, cmir_bn_params p, int training,
                                    int k, const float *gamma, const float *beta,
                                    float *running_mean, float *running_var, float *save_mean,
                                    float *save_invstd, cmir_tensor *a, cmir_tensor *y,
                                    int32_t *argmax, float *xhat)
{
    return cmir__conv3x3_bn_maxpool_forward_bf(ex, x, W, b, slope, p, training, k, gamma, beta,
                                               running_mean, running_var, save_mean, save_invstd,
                                               a, y, argmax, xhat, NULL);
}

int cmir__conv3x3_bn_maxpool_forward_bf(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                       const float *b, float slope, cmir_bn_params p,
                                       int training, int k, const float *gamma,
                                       const float *beta, float *running_mean,
                                       float *running_var, float *save_mean, float *save_invstd,
                                       cmir_tensor *a, cmir_tensor *y, int32_t *argmax,
                                       float *xhat, unsigned *bf)
{
    const char *fn = "cmir__conv3x3_bn_maxpool_forward";
    const unsigned want = bf ? *bf : 0;
    if (bf)
        *bf = 0;
    int rc;
    if ((rc = cmir__check_tensor(x, 4, fn, "x")) || (rc = cmir__check_tensor(y, 4, fn, "y")))
        return rc;
    const int C = (int)y->shape[3], xbf = (want & CMIR__BF_X) != 0;
    /* bf16 a and y where cmir__bn_abf_ok, in training with xhat; y only
     * from the bf16 a or the remade conv, x only into a stored a */
    const int ok = training && xhat && cmir__conv3x3_direct_available((int)x->shape[3]) &&
                   cmir__bn_abf_ok(C, k, (int)x->shape[2]);
    const int abf = ok && a && (want & CMIR__BF_A), ybf = ok && (abf || !a) && (want & CMIR__BF_Y);
    if (C < 1 || !gamma || !beta || !running_mean || !running_var || !argmax ||
        (training && (!save_mean || !save_invstd)))
        return cmir__error(CMIR_EINVAL, "%s: NULL parameter", fn);
    if ((rc = cmir_bn_check_params(p)))
        return rc;
    if (k < 1 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] / k ||
        y->shape[2] != x->shape[2] / k)
        return cmir__error(CMIR_EINVAL, "%s: y does not fit x and window %d", fn, k);
    if (xbf && (!a || !cmir__conv3x3_direct_available((int)x->shape[3])))
        return cmir__error(CMIR_EINVAL, "%s: x in bf16 needs a stored a and the direct kernels", fn);
    double *sums = cmir__malloc(sizeof(double) * 2 * (size_t)C + sizeof(float) * 2 * (size_t)C);
    if (!sums)
        return CMIR_ENOMEM;
    float *tmp_a = NULL;
    cmir_tensor av;
    if (!a && !cmir__conv3x3_direct_available((int)x->shape[3])) { /* the portable path needs a */
        av = cmir_tensor_4d(NULL, x->shape[0], x->shape[1], x->shape[2], C);
        tmp_a = cmir__malloc_aligned(sizeof(float) * (size_t)cmir_tensor_numel(&av));
        if (!tmp_a) {
            cmir__free(sums);
            return CMIR_ENOMEM;
        }
        av.data = tmp_a;
        a = &av;
    }
    const int cflags = (abf ? CMIR__CONV_YBF : 0) | (xbf ? CMIR__CONV_XBF : 0);
    if (a && cflags) { /* as below through the direct driver, a or x in bf16 */
        rc = cmir__conv_check(fn, x, W, a, 0);
#ifdef CMIR__CONV_DIRECT
        if (!rc)
            rc = cmir__conv_direct_forward(ex, x, W, b, a, 1, slope, training ? sums : NULL,
                                           cflags);
#endif
        if (!rc)
            rc = cmir__bn_pool_fwd(ex, p, training, k, a, abf ? (const uint16_t *)a->data : NULL,
                                   ybf, gamma, beta, running_mean, running_var, save_mean,
                                   save_invstd, training ? sums : NULL, y, argmax, xhat);
    } else if (a) { /* conv + lrelu with the sums, then batch norm + max-pool reading a */
        rc = cmir__conv3x3_lrelu_forward(ex, x, W, b, slope, a, training ? sums : NULL);
        if (!rc)
            rc = cmir__bn_maxpool_forward(ex, p, training, k, a, gamma, beta, running_mean,
                                         running_var, save_mean, save_invstd,
                                         training ? sums : NULL, y, argmax, xhat);
    } else { /* the conv twice, nothing full-size stored */
        float *mean = save_mean, *invstd = save_invstd;
        if (!training && (!mean || !invstd)) {
            mean = (float *)(sums + 2 * C);
            invstd = mean + C;
        }
        size_t M = (size_t)x->shape[0] * x->shape[1] * x->shape[2];
        rc = 0;
        if (training) {
            rc = cmir__conv3x3_lrelu_pool(ex, x, W, b, slope, C, sums, NULL, NULL, NULL, NULL, k,
                                          NULL, NULL, NULL, 0);
            if (!rc)
                rc = cmir__exec_reduce_sums(ex, sums, 2 * (size_t)C, &M);
            if (!rc)
                cmir__bn_stats_finish(p, M, C, sums, sums + C, running_mean, running_var, mean,
                                      invstd);
        } else {
            cmir__bn_inference_stats(p, C, running_mean, running_var, &mean, &invstd, NULL);
        }
        if (!rc)
            rc = cmir__conv3x3_lrelu_pool(ex, x, W, b, slope, C, NULL, mean, invstd, gamma, beta,
                                          k, y->data, argmax, xhat, ybf ? CMIR__CONV_YBF : 0);
    }
    cmir__free(sums);
    cmir__free_aligned(tmp_a);
    if (!rc && bf)
        *bf = (abf ? CMIR__BF_A : 0) | (ybf ? CMIR__BF_Y : 0) | (xbf ? CMIR__BF_X : 0);
    return rc;
}
