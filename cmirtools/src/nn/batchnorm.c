/* Batch normalisation over the channel (last) dimension, training and
 * inference modes, with per-thread partial sums in double reduced in a
 * fixed order (deterministic for a given thread count). */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

typedef struct bn_job {
    const float *x, *dy, *gamma, *beta;
    float *y, *dx;
    const float *mean, *invstd; /* per channel, float */
    double *part;               /* T x 2C partial sums */
    double *dmean;              /* per channel, for pass 1 -> 2 */
    size_t M;
    int C, pass;
} bn_job;

static int bn_task(int t, int T, void *user)
{
    const bn_job *j = user;
    size_t lo, hi;
    const int C = j->C;
    cmir__split(j->M, T, t, &lo, &hi);
    double *p0 = j->part + (size_t)t * 2 * C, *p1 = p0 + C;
    switch (j->pass) {
    case 0: /* sum x */
        memset(p0, 0, sizeof(double) * 2 * C);
        for (size_t r = lo; r < hi; r++)
            for (int c = 0; c < C; c++)
                p0[c] += j->x[r * C + c];
        break;
    case 1: /* sum (x - mean)^2 */
        memset(p0, 0, sizeof(double) * 2 * C);
        for (size_t r = lo; r < hi; r++)
            for (int c = 0; c < C; c++) {
                double d = (double)j->x[r * C + c] - j->dmean[c];
                p0[c] += d * d;
            }
        break;
    case 2: /* normalise */
        for (size_t r = lo; r < hi; r++)
            for (int c = 0; c < C; c++) {
                float v = (j->x[r * C + c] - j->mean[c]) * j->invstd[c];
                j->y[r * C + c] = v * j->gamma[c] + j->beta[c];
            }
        break;
    case 3: /* backward sums: sum dy, sum dy * xhat */
        memset(p0, 0, sizeof(double) * 2 * C);
        for (size_t r = lo; r < hi; r++)
            for (int c = 0; c < C; c++) {
                float g = j->dy[r * C + c];
                p0[c] += g;
                p1[c] += (double)g * ((j->x[r * C + c] - j->mean[c]) * j->invstd[c]);
            }
        break;
    case 4: { /* dx; dmean holds sum dy (first C) and sum dy*xhat (next C) */
        const double *sdy = j->dmean, *sdx = j->dmean + C;
        double invM = 1.0 / (double)j->M;
        for (size_t r = lo; r < hi; r++)
            for (int c = 0; c < C; c++) {
                double xh = (double)(j->x[r * C + c] - j->mean[c]) * j->invstd[c];
                double v = (double)j->dy[r * C + c] - sdy[c] * invM - xh * sdx[c] * invM;
                j->dx[r * C + c] = (float)(v * j->gamma[c] * j->invstd[c]);
            }
        break;
    }
    }
    return 0;
}

static void reduce(const bn_job *j, int T, int width, double *out)
{
    memset(out, 0, sizeof(double) * width);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < width; c++)
            out[c] += j->part[(size_t)t * 2 * j->C + c];
}

cmir_bn_params cmir_bn_default_params(void)
{
    cmir_bn_params p = {1e-3f, 0.01f};
    return p;
}

static int bn_common(cmir_exec *ex, const char *fn, const cmir_tensor *x, const cmir_tensor *y,
                     const char *yn, bn_job *j, int *T)
{
    int rc;
    if ((rc = cmir__check_tensor(x, 0, fn, "x")) || (rc = cmir__check_tensor(y, 0, fn, yn)) ||
        (rc = cmir__check_same(x, y, fn, "x", yn)))
        return rc;
    memset(j, 0, sizeof *j);
    j->C = (int)x->shape[x->ndim - 1];
    j->M = j->C ? (size_t)(cmir_tensor_numel(x) / j->C) : 0;
    if (j->C <= 0 || j->M == 0)
        return cmir__error(CMIR_EINVAL, "%s: empty input", fn);
    *T = cmir__elementwise_threads(ex, j->M * j->C);
    j->part = cmir__exec_scratch(ex, sizeof(double) * (2 * (size_t)j->C * (*T) + 2 * j->C));
    if (!j->part)
        return CMIR_ENOMEM;
    j->dmean = j->part + 2 * (size_t)j->C * (*T);
    j->x = x->data;
    return 0;
}

int cmir__bn_inference_stats(cmir_bn_params p, int C, const float *running_mean, const float *running_var,
                             float **mean, float **invstd, float **tmp)
{
    if (!*mean || !*invstd) {
        if (!tmp || !(*tmp = cmir__malloc(sizeof(float) * 2 * (size_t)C)))
            return CMIR_ENOMEM;
        *mean = *tmp;
        *invstd = *tmp + C;
    }
    for (int c = 0; c < C; c++) {
        (*mean)[c] = running_mean[c];
        (*invstd)[c] = (float)(1.0 / sqrt((double)running_var[c] + p.eps));
    }
    return 0;
}

int cmir_bn_check_params(cmir_bn_params p)
{
    if (!(p.eps > 0.0f))
        return cmir__error(CMIR_EINVAL, "cmir_bn_params.eps: must be > 0, got %g", (double)p.eps);
    if (!(p.momentum >= 0.0f && p.momentum <= 1.0f))
        return cmir__error(CMIR_EINVAL, "cmir_bn_params.momentum: must be in [0, 1], got %g",
                           (double)p.momentum);
    return 0;
}

int cmir_batchnorm_forward(cmir_exec *ex, cmir_bn_params p, int training, const cmir_tensor *x,
                           const float *gamma, const float *beta, float *running_mean,
                           float *running_var, float *save_mean, float *save_invstd,
                           cmir_tensor *y)
{
    const char *fn = "cmir_batchnorm_forward";
    bn_job j;
    int T = 1, rc = bn_common(ex, fn, x, y, "y", &j, &T);
    if (rc)
        return rc;
    if (!gamma || !beta || !running_mean || !running_var ||
        (training && (!save_mean || !save_invstd)))
        return cmir__error(CMIR_EINVAL, "%s: NULL parameter", fn);
    if ((rc = cmir_bn_check_params(p)))
        return rc;
    const int C = j.C;
    float *mean = save_mean, *invstd = save_invstd;
    float *tmp = NULL;
    if (training) {
        j.pass = 0;
        cmir__parallel(T, bn_task, &j);
        reduce(&j, T, C, j.dmean);
        for (int c = 0; c < C; c++)
            j.dmean[c] /= (double)j.M;
        j.pass = 1;
        cmir__parallel(T, bn_task, &j);
        double *var = j.dmean + C;
        reduce(&j, T, C, var);
        for (int c = 0; c < C; c++) {
            double v = var[c] / (double)j.M;
            double unbiased = j.M > 1 ? var[c] / (double)(j.M - 1) : v;
            mean[c] = (float)j.dmean[c];
            invstd[c] = (float)(1.0 / sqrt(v + p.eps));
            running_mean[c] = (1.0f - p.momentum) * running_mean[c] + p.momentum * mean[c];
            running_var[c] = (1.0f - p.momentum) * running_var[c] + p.momentum * (float)unbiased;
        }
    } else {
        /* Inference: running statistics, converted once per call. */
        if (cmir__bn_inference_stats(p, C, running_mean, running_var, &mean, &invstd, &tmp))
            return CMIR_ENOMEM;
    }
    j.mean = mean;
    j.invstd = invstd;
    j.gamma = gamma;
    j.beta = beta;
    j.y = y->data;
    j.pass = 2;
    rc = cmir__parallel(T, bn_task, &j);
    cmir__free(tmp);
    return rc;
}

int cmir_batchnorm_backward(cmir_exec *ex, const cmir_tensor *x, const float *gamma,
                            const float *save_mean, const float *save_invstd,
                            const cmir_tensor *dy, cmir_tensor *dx, float *dgamma, float *dbeta)
{
    const char *fn = "cmir_batchnorm_backward";
    bn_job j;
    int T = 1, rc = bn_common(ex, fn, x, dy, "dy", &j, &T);
    if (rc)
        return rc;
    if (!gamma || !save_mean || !save_invstd)
        return cmir__error(CMIR_EINVAL, "%s: NULL parameter", fn);
    if (dx && ((rc = cmir__check_tensor(dx, 0, fn, "dx")) ||
               (rc = cmir__check_same(x, dx, fn, "x", "dx"))))
        return rc;
    const int C = j.C;
    j.dy = dy->data;
    j.mean = save_mean;
    j.invstd = save_invstd;
    j.gamma = gamma;
    j.pass = 3;
    cmir__parallel(T, bn_task, &j);
    reduce(&j, T, 2 * C, j.dmean); /* dmean[0..C) = sum dy, [C..2C) = sum dy xhat */
    for (int c = 0; c < C; c++) {
        if (dbeta)
            dbeta[c] = (float)j.dmean[c];
        if (dgamma)
            dgamma[c] = (float)j.dmean[C + c];
    }
    if (dx) {
        j.dx = dx->data;
        j.pass = 4;
        cmir__parallel(T, bn_task, &j);
    }
    return 0;
}
