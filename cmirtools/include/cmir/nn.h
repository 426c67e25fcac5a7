/* cmir/nn.h: libcmir's neural-network core. Float32 tensor views, layer
 * kernels (dense, 3x3 'same' convolution, max-pooling, (leaky) ReLU, batch
 * normalisation, dropout) with their backward passes, the losses CMIR-NET
 * needs, weight initialisation, an arena and the Adam/SGD optimiser.
 *
 * Conventions (all functions):
 * - Batch first. Images are NHWC: shape {N, H, W, C}, C fastest. Feature
 *   matrices are {N, D}. Tensors passed to kernels must be contiguous.
 * - Parameters are plain float arrays with the shapes given per function,
 *   row-major. Convolution weights are {3, 3, Cin, Cout}; dense {In, Out}.
 * - Layer backward functions OVERWRITE their outputs (dx, dW, db). Loss
 *   and penalty functions ADD scale * gradient into the gradient buffers
 *   they are given (so several terms can share one buffer) and return the
 *   loss value through *loss. Any gradient pointer may be NULL to skip it.
 * - The caller owns every buffer; no function keeps a pointer after it
 *   returns, except the optimiser and arena as documented.
 * - Return 0 or a negative CMIR_E* code (message in cmir_last_error()).
 * - `ex` gives the thread count and reusable scratch; results are
 *   bit-identical for the same inputs and the same thread count.
 * Nothing here touches files, GDAL or matio. */
#ifndef CMIR_NN_H
#define CMIR_NN_H

#include "cmir/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CMIR_MAX_DIMS 4

/* A view of float data; it never owns `data`. shape[i] is the extent of
 * dimension i, stride[i] the distance in elements between neighbours
 * along it. Contiguous row-major: stride[ndim-1] = 1 and
 * stride[i] = stride[i+1] * shape[i+1]. Unused dimensions are 1. */
typedef struct cmir_tensor {
    float *data;
    int ndim; /* 1 .. CMIR_MAX_DIMS */
    int64_t shape[CMIR_MAX_DIMS];
    int64_t stride[CMIR_MAX_DIMS];
} cmir_tensor;

/* Contiguous view of `data` with the given shape (ndim 1..4). */
CMIR_API cmir_tensor cmir_tensor_make(float *data, int ndim, const int64_t *shape);
/* Shorthands: {n0, n1}, and NHWC {n, h, w, c}. */
CMIR_API cmir_tensor cmir_tensor_2d(float *data, int64_t n0, int64_t n1);
CMIR_API cmir_tensor cmir_tensor_4d(float *data, int64_t n, int64_t h, int64_t w, int64_t c);
CMIR_API int64_t cmir_tensor_numel(const cmir_tensor *t);
CMIR_API int cmir_tensor_is_contiguous(const cmir_tensor *t);

/* ---- Arena ------------------------------------------------------------
 * A bump allocator for activations and gradients: one allocation up
 * front, 64-byte aligned pieces, reset to reuse. Pieces belong to the
 * arena and die with cmir_arena_reset/cmir_arena_free. */
typedef struct cmir_arena cmir_arena;
CMIR_API cmir_arena *cmir_arena_new(size_t bytes);
CMIR_API void cmir_arena_free(cmir_arena *a);
/* n floats, zeroed; NULL (CMIR_ENOMEM in cmir_last_error) when full. */
CMIR_API float *cmir_arena_floats(cmir_arena *a, size_t n);
CMIR_API void cmir_arena_reset(cmir_arena *a);
CMIR_API size_t cmir_arena_used(const cmir_arena *a);

/* ---- Initialisation ---------------------------------------------------- */
/* Xavier/Glorot uniform: U(-s, s), s = sqrt(6 / (fan_in + fan_out)). */
CMIR_API void cmir_init_xavier(cmir_rng *r, float *w, size_t n, int fan_in, int fan_out);
/* He/Kaiming normal: N(0, 2 / fan_in). */
CMIR_API void cmir_init_he(cmir_rng *r, float *w, size_t n, int fan_in);
CMIR_API void cmir_fill(float *w, size_t n, float value);

/* ---- Precision of the conv and dense layers ----------------------------
 * Process-wide. BF16: operands rounded to bfloat16 (nearest even), products
 * accumulated in float32, float32 results and master weights (AVX512_BF16
 * vdpbf16ps, im2col + a bf16 GEMM for the convolutions). It takes effect
 * only where cmir_nn_bf16_available() (convolutions with at least 16 input
 * channels; fewer keep the float32 direct kernels, where bf16 saves nothing);
 * elsewhere (or with the environment variable CMIR_NO_BF16=1) the layers
 * run the float32 code unchanged, with bit-identical results. Default FP32. Results stay deterministic for the
 * same inputs, precision and thread count. */
typedef enum cmir_precision {
    CMIR_PRECISION_FP32 = 0,
    CMIR_PRECISION_BF16 = 1,
    CMIR_PRECISION_AUTO = 2 /* only where a caller resolves it (cmir_train_params):
                               BF16 where cmir_nn_bf16_available(), else FP32;
                               cmir_nn_set_precision refuses it */
} cmir_precision;
CMIR_API int cmir_nn_set_precision(cmir_precision p);
CMIR_API cmir_precision cmir_nn_precision(void);
/* 1 when the CPU has AVX512_BF16 (and CMIR_NO_BF16 is unset), else 0. */
CMIR_API int cmir_nn_bf16_available(void);
/* "fp32" / "bf16" / "auto", and back (CMIR_EINVAL naming the string
 * otherwise). */
CMIR_API const char *cmir_precision_name(cmir_precision p);
CMIR_API int cmir_precision_parse(const char *s, cmir_precision *p);

/* ---- Dense: y{B,Out} = x{B,In} W{In,Out} + b{Out} ----------------------- */
CMIR_API int cmir_dense_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                const float *b, cmir_tensor *y);
/* dW{In,Out} = x^T dy; db{Out} = column sums of dy; dx{B,In} = dy W^T. */
CMIR_API int cmir_dense_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                 const cmir_tensor *dy, cmir_tensor *dx, float *dW,
                                 float *db);

/* ---- Convolution 3x3, 'same' (zero padding 1), stride 1 ----------------
 * x{N,H,W,Cin}, W{3,3,Cin,Cout}, b{Cout}, y{N,H,W,Cout}. On x86-64 CPUs
 * with AVX-512F a direct kernel (registers hold output tiles, bias folded
 * in, streaming stores for large outputs); elsewhere im2col per group of
 * samples + OpenBLAS sgemm. Samples are spread over the context's threads
 * (OpenBLAS single-threaded inside them). */
CMIR_API int cmir_conv3x3_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                  const float *b, cmir_tensor *y);
/* dW{3,3,Cin,Cout}, db{Cout}, dx{N,H,W,Cin} (dx may be NULL: the first
 * layer needs no input gradient, which saves a third of the work). */
CMIR_API int cmir_conv3x3_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                   const cmir_tensor *dy, cmir_tensor *dx, float *dW,
                                   float *db);

/* ---- Max-pooling, window k x k, stride k (k = 2 or 4; any k >= 1) -------
 * x{N,H,W,C} -> y{N,H/k,W/k,C} (floor: trailing rows/columns dropped).
 * argmax{N,H/k,W/k,C} receives, per output, the offset of the winning
 * input within its sample (ties: the first in row-major order). */
CMIR_API int cmir_maxpool_forward(cmir_exec *ex, int k, const cmir_tensor *x,
                                  cmir_tensor *y, int32_t *argmax);
/* dx (shape of x) is zeroed, then dy is routed to the winners. */
CMIR_API int cmir_maxpool_backward(cmir_exec *ex, const cmir_tensor *dy,
                                   const int32_t *argmax, cmir_tensor *dx);

/* ---- Leaky ReLU: y = x > 0 ? x : slope * x (slope 0 gives ReLU) ---------
 * In place allowed (y == x). The backward pass reads the forward OUTPUT y
 * (same sign as x for slope >= 0); dx may equal dy. */
CMIR_API int cmir_lrelu_forward(cmir_exec *ex, float slope, const cmir_tensor *x,
                                cmir_tensor *y);
CMIR_API int cmir_lrelu_backward(cmir_exec *ex, float slope, const cmir_tensor *y,
                                 const cmir_tensor *dy, cmir_tensor *dx);

/* ---- Batch normalisation over the last dimension C ----------------------
 * x is viewed as {M, C} (M = product of the other dimensions).
 * Training: normalise with the batch mean and (biased) variance, store
 * them in save_mean{C} and save_invstd{C} = 1/sqrt(var + eps), and update
 * running_mean/var{C} with momentum: r = (1 - momentum) r + momentum * batch
 * (running variance uses the unbiased estimate). Inference: normalise with
 * the running statistics (save_* may be NULL). y may equal x. */
typedef struct cmir_bn_params {
    float eps;      /* default 1e-3 (TensorFlow's) */
    float momentum; /* default 0.01 (TensorFlow's 0.99 decay) */
} cmir_bn_params;
CMIR_API cmir_bn_params cmir_bn_default_params(void);
/* 0, or CMIR_EINVAL naming the bad field (eps > 0, momentum in [0, 1]). */
CMIR_API int cmir_bn_check_params(cmir_bn_params p);
CMIR_API int cmir_batchnorm_forward(cmir_exec *ex, cmir_bn_params p, int training,
                                    const cmir_tensor *x, const float *gamma,
                                    const float *beta, float *running_mean,
                                    float *running_var, float *save_mean,
                                    float *save_invstd, cmir_tensor *y);
/* Training-mode backward. x is the forward INPUT. dgamma, dbeta {C}. */
CMIR_API int cmir_batchnorm_backward(cmir_exec *ex, const cmir_tensor *x,
                                     const float *gamma, const float *save_mean,
                                     const float *save_invstd, const cmir_tensor *dy,
                                     cmir_tensor *dx, float *dgamma, float *dbeta);

/* ---- Dropout (inverted: kept units scaled by 1/(1-rate)) ----------------
 * mask receives numel(x) bytes (1 kept, 0 dropped), drawn from r in order,
 * so the result depends on the seed only. rate in [0, 1). y may equal x. */
CMIR_API int cmir_dropout_forward(cmir_rng *r, float rate, const cmir_tensor *x,
                                  uint8_t *mask, cmir_tensor *y);
CMIR_API int cmir_dropout_backward(float rate, const uint8_t *mask,
                                   const cmir_tensor *dy, cmir_tensor *dx);

/* ---- Losses (gradients are ADDED, scaled; see the conventions) ---------- */
/* Softmax cross-entropy, mean over the batch: logits{B,C}, labels[B] in
 * [0,C). *loss = scale * mean_b(-log softmax(logits_b)[label_b]). */
CMIR_API int cmir_softmax_xent(const cmir_tensor *logits, const int32_t *labels,
                               float scale, float *loss, cmir_tensor *dlogits);
/* Sigmoid cross-entropy (multi-label), mean over all B*C entries;
 * targets{B,C} in [0,1]. Numerically stable for large |logits|. */
CMIR_API int cmir_sigmoid_xent(const cmir_tensor *logits, const cmir_tensor *targets,
                               float scale, float *loss, cmir_tensor *dlogits);
/* Squared Frobenius distance: *loss = scale * ||a - b||_F^2 (a, b same
 * shape); da += 2 scale (a - b), db += -2 scale (a - b). b may be a
 * constant target (db NULL). */
CMIR_API int cmir_sqdist(const cmir_tensor *a, const cmir_tensor *b, float scale,
                         float *loss, cmir_tensor *da, cmir_tensor *db);
/* Soft orthogonality on features Z{B,D}: G = Z^T Z / s with s = B when
 * per_batch is non-zero, else 1; *loss = scale * ||G - I||_F^2;
 * dZ += 4 scale Z (G - I) / s. */
CMIR_API int cmir_ortho_penalty(cmir_exec *ex, const cmir_tensor *Z, int per_batch,
                                float scale, float *loss, cmir_tensor *dZ);
/* Weight penalty towards alpha: *loss = scale * sum_i (w_i - alpha)^2;
 * dw += 2 scale (w - alpha). For the per-element mean pass scale/n. */
CMIR_API int cmir_weight_penalty(const float *w, size_t n, float alpha, float scale,
                                 float *loss, float *dw);
/* Symmetric InfoNCE (cross-modal contrastive pairing) over a batch of B
 * paired rows za{B,D}, zb{B,D} (B >= 2): u, v = rows divided by their
 * norms, S = u v^T / tau; *loss = scale * (mean_i CE(S_i., i) +
 * mean_i CE(S_.i, i)) / 2: row i of one side must pick row i of the other
 * among all B. dza, dzb (may be NULL) get the gradients added. */
CMIR_API int cmir_infonce(const cmir_tensor *za, const cmir_tensor *zb, float tau, float scale,
                          float *loss, cmir_tensor *dza, cmir_tensor *dzb);

/* ---- Optimiser ----------------------------------------------------------
 * Adam (Kingma & Ba, with bias correction) or SGD with momentum. The
 * optimiser keeps pointers to the parameter and gradient arrays registered
 * with cmir_optim_add; the caller keeps them alive until cmir_optim_free. */
typedef enum cmir_optim_kind { CMIR_OPTIM_ADAM = 0, CMIR_OPTIM_SGD = 1 } cmir_optim_kind;

typedef struct cmir_optim_params {
    cmir_optim_kind kind;  /* default ADAM */
    float lr;              /* default 1e-3 */
    float beta1, beta2;    /* Adam, default 0.9, 0.999 */
    float eps;             /* Adam, default 1e-8 */
    float momentum;        /* SGD, default 0 */
    float weight_decay;    /* L2 decay added to the gradient, default 0 */
} cmir_optim_params;

typedef struct cmir_optim cmir_optim;
CMIR_API cmir_optim_params cmir_optim_default_params(void);
/* 0, or CMIR_EINVAL naming the first bad field (kind, lr, beta1, beta2, eps,
 * momentum). cmir_optim_new calls it. */
CMIR_API int cmir_optim_check_params(cmir_optim_params p);
CMIR_API cmir_optim *cmir_optim_new(cmir_optim_params p);
CMIR_API void cmir_optim_free(cmir_optim *o);
/* Registers w[n] with its gradient g[n]; returns 0 or CMIR_ENOMEM. */
CMIR_API int cmir_optim_add(cmir_optim *o, float *w, const float *g, size_t n);
/* One update of every registered parameter from its current gradient. */
CMIR_API int cmir_optim_step(cmir_optim *o);
CMIR_API void cmir_optim_set_lr(cmir_optim *o, float lr);
CMIR_API int64_t cmir_optim_steps(const cmir_optim *o);
/* Moment buffers of parameter i (for checkpoints): m and v of length n as
 * registered (v is NULL for SGD, m is the velocity). Owned by o. */
CMIR_API int cmir_optim_state(cmir_optim *o, int i, float **m, float **v, size_t *n);
CMIR_API void cmir_optim_set_steps(cmir_optim *o, int64_t t);

#ifdef __cplusplus
}
#endif
#endif
