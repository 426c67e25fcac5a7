/* Dense (fully connected) layer: one OpenBLAS sgemm each way, with all of
 * the context's threads given to OpenBLAS (the bf16 GEMM of bf16.c at the
 * bf16 precision). */
#include "nn_internal.h"

#include <string.h>

static int check_dense(const cmir_tensor *x, const float *W, const cmir_tensor *y,
                       const char *fn, const char *yn)
{
    int rc;
    if ((rc = cmir__check_tensor(x, 2, fn, "x")) || (rc = cmir__check_tensor(y, 2, fn, yn)))
        return rc;
    if (!W)
        return cmir__error(CMIR_EINVAL, "%s: W is NULL", fn);
    if (x->shape[0] != y->shape[0])
        return cmir__error(CMIR_EINVAL, "%s: batch of x (%lld) differs from %s (%lld)", fn,
                           (long long)x->shape[0], yn, (long long)y->shape[0]);
    return 0;
}

int cmir_dense_forward(cmir_exec *ex, const cmir_tensor *x, const float *W, const float *b,
                       cmir_tensor *y)
{
    int rc = check_dense(x, W, y, "cmir_dense_forward", "y");
    if (rc)
        return rc;
    int B = (int)x->shape[0], In = (int)x->shape[1], Out = (int)y->shape[1];
    float beta = 0.0f;
    if (b) {
        for (int i = 0; i < B; i++)
            memcpy(y->data + (size_t)i * Out, b, sizeof(float) * Out);
        beta = 1.0f;
    }
    return cmir__gemm_auto(cmir_exec_threads(ex), 0, 0, B, Out, In, x->data, In, W, Out, beta,
                           y->data, Out, NULL);
}

int cmir_dense_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                        const cmir_tensor *dy, cmir_tensor *dx, float *dW, float *db)
{
    int rc = check_dense(x, W, dy, "cmir_dense_backward", "dy");
    if (rc)
        return rc;
    int B = (int)x->shape[0], In = (int)x->shape[1], Out = (int)dy->shape[1];
    int T = cmir_exec_threads(ex);
    if (dW && (rc = cmir__gemm_auto(T, 1, 0, In, Out, B, x->data, In, dy->data, Out, 0.0f, dW,
                                    Out, NULL)))
        return rc;
    if (db) {
        memset(db, 0, sizeof(float) * Out);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < Out; j++)
                db[j] += dy->data[(size_t)i * Out + j];
    }
    if (dx) {
        if ((rc = cmir__check_tensor(dx, 2, "cmir_dense_backward", "dx")))
            return rc;
        if ((rc = cmir__check_same(x, dx, "cmir_dense_backward", "x", "dx")))
            return rc;
        return cmir__gemm_auto(T, 0, 1, B, In, Out, dy->data, Out, W, Out, 0.0f, dx->data, In, NULL);
    }
    return 0;
}
