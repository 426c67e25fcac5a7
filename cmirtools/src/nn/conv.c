/* 3x3 'same' convolution, stride 1, NHWC. Two implementations:
 *  - direct (x86-64 CPUs with AVX-512F, detected at run time; in
 *    conv_avx512.c): register-tiled kernels on a zero-padded copy of each
 *    sample, no im2col and no GEMM (at the bf16 precision those of
 *    conv_bf16.c, vdpbf16ps on channel or pixel pairs);
 *  - im2col over a group of samples followed by one OpenBLAS sgemm
 *    (everywhere else or when built with -DCMIR_CONV_NO_DIRECT; the bf16
 *    GEMM of bf16.c at the bf16 precision).
 * Both spread samples over our threads (OpenBLAS single-threaded inside
 * them) and reduce weight gradients from per-thread partials in a fixed
 * order, so results are deterministic for a given thread count. */
#include "nn_internal.h"

#include <string.h>

/* Fixed-order reduction of the T per-thread partials: thread t's weight
 * gradient (kc floats) starts at first + t * stride, its bias gradient (co
 * floats) right after it. dW or db may be NULL. */
void cmir__conv_reduce_partials(const float *first, size_t stride, int T, size_t kc, int co, float *dW, float *db)
{
    for (int t = 0; t < T; t++) {
        const float *pw = first + (size_t)t * stride, *pb = pw + kc;
        if (dW) {
            if (t == 0)
                memcpy(dW, pw, sizeof(float) * kc);
            else
                for (size_t i = 0; i < kc; i++)
                    dW[i] += pw[i];
        }
        if (db) {
            if (t == 0)
                memcpy(db, pb, sizeof(float) * (size_t)co);
            else
                for (int i = 0; i < co; i++)
                    db[i] += pb[i];
        }
    }
}

/* Target size of one thread's im2col buffer. Large enough for efficient
 * GEMM shapes, small enough to stay near the cache. */
#define COL_BUDGET_BYTES ((size_t)4 << 20)

typedef struct conv_job {
    const float *x, *W, *b, *dy;
    float *y, *dx;
    float *scratch; /* per thread: col[group_rows * K] then dW[K*Co], db[Co],
                     * then the bf16 GEMM's work at off_work (bf16 precision only) */
    size_t per_thread;
    size_t off_work;
    int N, H, Wd, Ci, Co, K, group;
    int want_dx, want_dw;
} conv_job;

/* col{g*H*W, 9*Ci} from samples [n0, n0+g). */
static void im2col(const conv_job *j, int n0, int g, float *col)
{
    const int H = j->H, W = j->Wd, Ci = j->Ci, K = j->K;
    for (int n = 0; n < g; n++) {
        const float *xs = j->x + (size_t)(n0 + n) * H * W * Ci;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float *row = col + ((size_t)n * H * W + (size_t)y * W + x) * K;
                for (int ky = 0; ky < 3; ky++) {
                    int iy = y + ky - 1;
                    for (int kx = 0; kx < 3; kx++) {
                        int ix = x + kx - 1;
                        float *dst = row + (ky * 3 + kx) * Ci;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                            memset(dst, 0, sizeof(float) * Ci);
                        } else {
                            const float *src = xs + ((size_t)iy * W + ix) * Ci;
                            if (Ci == 1)
                                dst[0] = src[0];
                            else
                                memcpy(dst, src, sizeof(float) * Ci);
                        }
                    }
                }
            }
    }
}

/* dx[samples n0..n0+g) += col2im(dcol). */
static void col2im(const conv_job *j, int n0, int g, const float *col)
{
    const int H = j->H, W = j->Wd, Ci = j->Ci, K = j->K;
    for (int n = 0; n < g; n++) {
        float *dxs = j->dx + (size_t)(n0 + n) * H * W * Ci;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *row = col + ((size_t)n * H * W + (size_t)y * W + x) * K;
                for (int ky = 0; ky < 3; ky++) {
                    int iy = y + ky - 1;
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int kx = 0; kx < 3; kx++) {
                        int ix = x + kx - 1;
                        if (ix < 0 || ix >= W)
                            continue;
                        const float *src = row + (ky * 3 + kx) * Ci;
                        float *dst = dxs + ((size_t)iy * W + ix) * Ci;
                        for (int c = 0; c < Ci; c++)
                            dst[c] += src[c];
                    }
                }
            }
    }
}

static int conv_fwd_task(int t, int T, void *user)
{
    const conv_job *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    float *col = j->scratch + (size_t)t * j->per_thread;
    const size_t hw = (size_t)j->H * j->Wd;
    for (size_t n = lo; n < hi; n += (size_t)j->group) {
        int g = (int)((hi - n) < (size_t)j->group ? (hi - n) : (size_t)j->group);
        float *y = j->y + n * hw * j->Co;
        size_t rows = (size_t)g * hw;
        im2col(j, (int)n, g, col);
        float beta = 0.0f;
        if (j->b) {
            for (size_t r = 0; r < rows; r++)
                memcpy(y + r * j->Co, j->b, sizeof(float) * j->Co);
            beta = 1.0f;
        }
        int rc = cmir__gemm_auto(1, 0, 0, (int)rows, j->Co, j->K, col, j->K, j->W, j->Co, beta,
                                 y, j->Co, col + j->off_work);
        if (rc)
            return rc;
    }
    return 0;
}

static int conv_bwd_task(int t, int T, void *user)
{
    const conv_job *j = user;
    size_t lo, hi;
    cmir__split((size_t)j->N, T, t, &lo, &hi);
    const size_t hw = (size_t)j->H * j->Wd;
    float *col = j->scratch + (size_t)t * j->per_thread;
    float *dW = col + (size_t)j->group * hw * j->K;
    float *db = dW + (size_t)j->K * j->Co;
    memset(dW, 0, sizeof(float) * ((size_t)j->K * j->Co + j->Co));
    if (j->want_dx)
        memset(j->dx + lo * hw * j->Ci, 0, sizeof(float) * (hi - lo) * hw * j->Ci);
    for (size_t n = lo; n < hi; n += (size_t)j->group) {
        int g = (int)((hi - n) < (size_t)j->group ? (hi - n) : (size_t)j->group);
        size_t rows = (size_t)g * hw;
        const float *dy = j->dy + n * hw * j->Co;
        if (j->want_dw) {
            im2col(j, (int)n, g, col);
            int rc = cmir__gemm_auto(1, 1, 0, j->K, j->Co, (int)rows, col, j->K, dy, j->Co,
                                     1.0f, dW, j->Co, col + j->off_work);
            if (rc)
                return rc;
            for (size_t r = 0; r < rows; r++)
                for (int c = 0; c < j->Co; c++)
                    db[c] += dy[r * j->Co + c];
        }
        if (j->want_dx) {
            int rc = cmir__gemm_auto(1, 0, 1, (int)rows, j->K, j->Co, dy, j->Co, j->W, j->Co,
                                     0.0f, col, j->K, col + j->off_work);
            if (rc)
                return rc;
            col2im(j, (int)n, g, col);
        }
    }
    return 0;
}

/* Argument checks shared by both implementations. */
int cmir__conv_check(const char *fn, const cmir_tensor *x, const float *W, const cmir_tensor *y,
                     int backward)
{
    int rc;
    if ((rc = cmir__check_tensor(x, 4, fn, "x")) ||
        (rc = cmir__check_tensor(y, 4, fn, backward ? "dy" : "y")))
        return rc;
    if (!W)
        return cmir__error(CMIR_EINVAL, "%s: W is NULL", fn);
    if (x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1] ||
        x->shape[2] != y->shape[2])
        return cmir__error(CMIR_EINVAL,
                           "%s: x is %lldx%lldx%lld (NxHxW) but %s is %lldx%lldx%lld", fn,
                           (long long)x->shape[0], (long long)x->shape[1],
                           (long long)x->shape[2], backward ? "dy" : "y",
                           (long long)y->shape[0], (long long)y->shape[1],
                           (long long)y->shape[2]);
    if (x->shape[1] * x->shape[2] > (1 << 26) || x->shape[3] > (1 << 16) ||
        y->shape[3] > (1 << 16))
        return cmir__error(CMIR_EINVAL, "%s: sizes too large", fn);
    return 0;
}

static int conv_setup(cmir_exec *ex, const char *fn, const cmir_tensor *x, const float *W,
                      const cmir_tensor *y, int backward, conv_job *j, int *T)
{
    int rc = cmir__conv_check(fn, x, W, y, backward);
    if (rc)
        return rc;
    memset(j, 0, sizeof *j);
    j->N = (int)x->shape[0];
    j->H = (int)x->shape[1];
    j->Wd = (int)x->shape[2];
    j->Ci = (int)x->shape[3];
    j->Co = (int)y->shape[3];
    j->K = 9 * j->Ci;
    j->x = x->data;
    j->W = W;
    size_t hw = (size_t)j->H * j->Wd;
    size_t per_sample = hw * j->K * sizeof(float);
    j->group = (int)(COL_BUDGET_BYTES / (per_sample ? per_sample : 1));
    if (j->group < 1)
        j->group = 1;
    *T = cmir_exec_threads(ex);
    if (*T > j->N)
        *T = j->N > 0 ? j->N : 1;
    /* Never let a thread's group exceed its share of the batch. */
    int share = (j->N + *T - 1) / *T;
    if (j->group > share)
        j->group = share > 0 ? share : 1;
    j->per_thread = (size_t)j->group * hw * j->K;
    if (backward)
        j->per_thread += (size_t)j->K * j->Co + j->Co;
    j->per_thread = (j->per_thread + 15) & ~(size_t)15; /* keep 64-byte alignment */
    if (cmir__bf16_active()) { /* the three GEMMs' packed operands */
        size_t rows = (size_t)j->group * hw, w = 0, s;
        if ((s = cmir__bgemm_work(0, 0, (int)rows, j->Co, j->K)) > w)
            w = s;
        if (backward && (s = cmir__bgemm_work(1, 0, j->K, j->Co, (int)rows)) > w)
            w = s;
        if (backward && (s = cmir__bgemm_work(0, 1, (int)rows, j->K, j->Co)) > w)
            w = s;
        j->off_work = j->per_thread;
        j->per_thread += (w / sizeof(float) + 15) & ~(size_t)15;
    }
    j->scratch = cmir__exec_scratch(ex, j->per_thread * sizeof(float) * (size_t)*T);
    if (!j->scratch)
        return CMIR_ENOMEM;
    return 0;
}

static int gemm_forward(cmir_exec *ex, const cmir_tensor *x, const float *W, const float *b,
                        cmir_tensor *y)
{
    conv_job j;
    int T = 1, rc = conv_setup(ex, "cmir_conv3x3_forward", x, W, y, 0, &j, &T);
    if (rc)
        return rc;
    j.b = b;
    j.y = y->data;
    return cmir__parallel(T, conv_fwd_task, &j);
}

static int gemm_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                         const cmir_tensor *dy, cmir_tensor *dx, float *dW, float *db)
{
    conv_job j;
    int T = 1, rc = conv_setup(ex, "cmir_conv3x3_backward", x, W, dy, 1, &j, &T);
    if (rc)
        return rc;
    if (dx) {
        if ((rc = cmir__check_tensor(dx, 4, "cmir_conv3x3_backward", "dx")) ||
            (rc = cmir__check_same(x, dx, "cmir_conv3x3_backward", "x", "dx")))
            return rc;
        j.dx = dx->data;
        j.want_dx = 1;
    }
    j.dy = dy->data;
    j.want_dw = dW || db;
    if ((rc = cmir__parallel(T, conv_bwd_task, &j)))
        return rc;
    size_t kc = (size_t)j.K * j.Co;
    if (j.want_dw)
        cmir__conv_reduce_partials(j.scratch + (size_t)j.group * j.H * j.Wd * j.K, j.per_thread, T, kc, j.Co, dW, db);
    return 0;
}


int cmir_conv3x3_forward(cmir_exec *ex, const cmir_tensor *x, const float *W, const float *b,
                         cmir_tensor *y)
{
#ifdef CMIR__CONV_DIRECT
    int rc = cmir__conv_check("cmir_conv3x3_forward", x, W, y, 0);
    if (rc)
        return rc;
    if (cmir__conv3x3_direct_available((int)x->shape[3]))
        return cmir__conv_direct_forward(ex, x, W, b, y, 0, 0.0f, NULL, 0);
#endif
    return gemm_forward(ex, x, W, b, y);
}

int cmir__conv3x3_lrelu_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                               const float *b, float slope, cmir_tensor *y, double *sums)
{
    int rc = cmir__conv_check("cmir__conv3x3_lrelu_forward", x, W, y, 0);
    if (rc)
        return rc;
#ifdef CMIR__CONV_DIRECT
    if (cmir__conv3x3_direct_available((int)x->shape[3]))
        return cmir__conv_direct_forward(ex, x, W, b, y, 1, slope, sums, 0);
#endif
    if ((rc = gemm_forward(ex, x, W, b, y)) || (rc = cmir_lrelu_forward(ex, slope, y, y)))
        return rc;
    return sums ? cmir__channel_sums(ex, y, sums) : 0;
}

int cmir_conv3x3_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                          const cmir_tensor *dy, cmir_tensor *dx, float *dW, float *db)
{
#ifdef CMIR__CONV_DIRECT
    int rc = cmir__conv_check("cmir_conv3x3_backward", x, W, dy, 1);
    if (rc)
        return rc;
    if (dx && ((rc = cmir__check_tensor(dx, 4, "cmir_conv3x3_backward", "dx")) ||
               (rc = cmir__check_same(x, dx, "cmir_conv3x3_backward", "x", "dx"))))
        return rc;
    if (cmir__conv3x3_direct_available((int)x->shape[3]))
        return cmir__conv_direct_backward(ex, x, W, dy, dx, dW, db, NULL, NULL, NULL, NULL, 0.0f, 0);
#endif
    return gemm_backward(ex, x, W, dy, dx, dW, db);
}
