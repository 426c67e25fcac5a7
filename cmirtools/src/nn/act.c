/* Element-wise layers: leaky ReLU (ReLU at slope 0) and inverted dropout. */
#include "nn_internal.h"

typedef struct act_job {
    const float *x, *dy;
    float *y, *dx;
    float slope;
    size_t n;
} act_job;

static int lrelu_fwd_task(int t, int T, void *user)
{
    const act_job *j = user;
    size_t lo, hi;
    cmir__split(j->n, T, t, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        float v = j->x[i];
        j->y[i] = v > 0.0f ? v : j->slope * v;
    }
    return 0;
}

static int lrelu_bwd_task(int t, int T, void *user)
{
    const act_job *j = user;
    size_t lo, hi;
    cmir__split(j->n, T, t, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        j->dx[i] = j->x[i] > 0.0f ? j->dy[i] : j->slope * j->dy[i];
    return 0;
}

int cmir_lrelu_forward(cmir_exec *ex, float slope, const cmir_tensor *x, cmir_tensor *y)
{
    int rc;
    if ((rc = cmir__check_tensor(x, 0, "cmir_lrelu_forward", "x")) ||
        (rc = cmir__check_tensor(y, 0, "cmir_lrelu_forward", "y")) ||
        (rc = cmir__check_same(x, y, "cmir_lrelu_forward", "x", "y")))
        return rc;
    act_job j = {.x = x->data, .y = y->data, .slope = slope, .n = (size_t)cmir_tensor_numel(x)};
    return cmir__parallel(cmir__elementwise_threads(ex, j.n), lrelu_fwd_task, &j);
}

int cmir_lrelu_backward(cmir_exec *ex, float slope, const cmir_tensor *y,
                        const cmir_tensor *dy, cmir_tensor *dx)
{
    int rc;
    const char *fn = "cmir_lrelu_backward";
    if ((rc = cmir__check_tensor(y, 0, fn, "y")) || (rc = cmir__check_tensor(dy, 0, fn, "dy")) ||
        (rc = cmir__check_tensor(dx, 0, fn, "dx")) || (rc = cmir__check_same(y, dy, fn, "y", "dy")) ||
        (rc = cmir__check_same(y, dx, fn, "y", "dx")))
        return rc;
    if (slope < 0.0f)
        return cmir__error(CMIR_EINVAL, "%s: slope must be >= 0", fn);
    act_job j = {.x = y->data, .dy = dy->data, .dx = dx->data, .slope = slope,
                 .n = (size_t)cmir_tensor_numel(y)};
    return cmir__parallel(cmir__elementwise_threads(ex, j.n), lrelu_bwd_task, &j);
}

int cmir_dropout_forward(cmir_rng *r, float rate, const cmir_tensor *x, uint8_t *mask,
                         cmir_tensor *y)
{
    int rc;
    const char *fn = "cmir_dropout_forward";
    if ((rc = cmir__check_tensor(x, 0, fn, "x")) || (rc = cmir__check_tensor(y, 0, fn, "y")) ||
        (rc = cmir__check_same(x, y, fn, "x", "y")))
        return rc;
    if (!(rate >= 0.0f && rate < 1.0f) || !mask || !r)
        return cmir__error(CMIR_EINVAL, "%s: rate must be in [0, 1) (got %g), mask and rng set",
                           fn, (double)rate);
    size_t n = (size_t)cmir_tensor_numel(x);
    float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) {
        mask[i] = cmir_rng_uniform(r) >= rate;
        y->data[i] = mask[i] ? x->data[i] * keep : 0.0f;
    }
    return 0;
}

int cmir_dropout_backward(float rate, const uint8_t *mask, const cmir_tensor *dy,
                          cmir_tensor *dx)
{
    int rc;
    const char *fn = "cmir_dropout_backward";
    if ((rc = cmir__check_tensor(dy, 0, fn, "dy")) || (rc = cmir__check_tensor(dx, 0, fn, "dx")) ||
        (rc = cmir__check_same(dy, dx, fn, "dy", "dx")))
        return rc;
    if (!(rate >= 0.0f && rate < 1.0f) || !mask)
        return cmir__error(CMIR_EINVAL, "%s: rate must be in [0, 1), mask set", fn);
    size_t n = (size_t)cmir_tensor_numel(dy);
    float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++)
        dx->data[i] = mask[i] ? dy->data[i] * keep : 0.0f;
    return 0;
}
