/* nn's exported internal API (not installed): the cmir__ functions that
 * modules above nn may call. Layer rule (cmirtools/README.md): tensorset
 * (tensor checks) and model (cnn.c, the fused CNN blocks) include this
 * header; no module includes nn_internal.h, which stays private to nn.
 * The fused block kernels are not public API: they serve CMIR-NET's
 * conv -> leaky ReLU -> batch norm -> max-pool block only, and their
 * contracts follow the CPU paths (AVX-512 or portable) of nn's kernels. */
#ifndef CMIR_NN_EXPORT_H
#define CMIR_NN_EXPORT_H

#include "cmir/nn.h"

/* CMIR_EINVAL unless t is non-NULL, contiguous, with data, of rank ndim
 * (or any rank when ndim is 0). `what` names the argument in the message. */
int cmir__check_tensor(const cmir_tensor *t, int ndim, const char *fn, const char *what);

/* ---- Fused block kernels (conv -> leaky ReLU -> batch norm -> max-pool) --
 * The results of the sequence of the kernels above with fewer passes over
 * the (large) activations.
 * y = lrelu(conv3x3(x) + b) with the given slope: the same values as
 * cmir_conv3x3_forward followed by cmir_lrelu_forward. sums (2 Cout
 * doubles, may be NULL) receives the per-channel sums of y over N, H, W
 * (first Cout) and of y^2 (next Cout), taken from the kernel's registers
 * on AVX-512 CPUs, for cmir__bn_maxpool_forward. */
int cmir__conv3x3_lrelu_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                const float *b, float slope, cmir_tensor *y,
                                double *sums);
/* y = maxpool_k(batchnorm(x)) without storing batchnorm(x): x{N,H,W,C},
 * y and argmax{N,H/k,W/k,C} as cmir_maxpool_forward; the batch-norm
 * arguments, statistics and running updates as cmir_batchnorm_forward.
 * Training: the batch mean and variance come from sums (as
 * cmir__conv3x3_lrelu_forward gives them), or when sums is NULL from one
 * read of x (sums of x and x^2 in double); equal to cmir_batchnorm_
 * forward's within rounding. xhat (shape of y, may be NULL) receives the
 * winners' normalised values (x - mean) * invstd for the backward pass. */
int cmir__bn_maxpool_forward(cmir_exec *ex, cmir_bn_params p, int training, int k,
                             const cmir_tensor *x, const float *gamma,
                             const float *beta, float *running_mean,
                             float *running_var, float *save_mean, float *save_invstd,
                             const double *sums, cmir_tensor *y, int32_t *argmax,
                             float *xhat);
/* Training-mode backward of y = maxpool_k(batchnorm(x)) where x is the
 * OUTPUT of a leaky ReLU with the given slope (pass 1 for no ReLU): dy and
 * argmax (and xhat, or NULL to recompute it from x) as the forward gave
 * them; dgamma, dbeta {C}; dx{N,H,W,C} = gradient w.r.t. the ReLU's input
 * (NULL: parameter gradients only). Equals cmir_maxpool_backward,
 * cmir_batchnorm_backward, cmir_lrelu_backward in sequence within float
 * rounding, in one dense pass (no zero-filled full-size pool gradient). */
int cmir__bn_maxpool_backward(cmir_exec *ex, float slope, int k, const cmir_tensor *x,
                              const float *gamma, const float *save_mean,
                              const float *save_invstd, const cmir_tensor *dy,
                              const int32_t *argmax, const float *xhat,
                              cmir_tensor *dx, float *dgamma, float *dbeta);
/* The whole block's backward: cmir__bn_maxpool_backward (slope, k, a, gamma,
 * statistics, dy, argmax, xhat, dgamma, dbeta as there) followed by
 * cmir_conv3x3_backward (x = the conv's input, W, dx, dW, db as there) on
 * its result, which is made row by row inside the convolution's threads
 * instead of being stored (on AVX-512 CPUs; a temporary elsewhere). a must
 * be lrelu(conv3x3(x, W) + b) as cmir__conv3x3_lrelu_forward made it (b, the
 * conv's bias, may be NULL for none): for few input channels its rows are
 * remade from x rather than read; a may be NULL (then xhat is required)
 * when the forward stored none. Bit-identical to that sequence. */
int cmir__conv3x3_bn_maxpool_backward(cmir_exec *ex, float slope, int k,
                                      const cmir_tensor *a, const float *gamma,
                                      const float *save_mean,
                                      const float *save_invstd, const cmir_tensor *dy,
                                      const int32_t *argmax, const float *xhat,
                                      const cmir_tensor *x, const float *W,
                                      const float *b, cmir_tensor *dx, float *dW,
                                      float *db, float *dgamma, float *dbeta);

/* The whole block's forward: y = maxpool_k(batchnorm(lrelu(conv3x3(x, W)
 * + b))) with argmax, xhat and the batch-norm statistics as
 * cmir__bn_maxpool_forward. a{N,H,W,Cout} receives lrelu(conv + b), or is
 * NULL: then nothing full-size is stored (AVX-512 CPUs: in training the
 * conv runs twice, for the statistics, then normalising and pooling in
 * its registers; worth it for few input channels, where the conv is
 * cheaper than a pass over its output), and cmir_conv3x3_bn_maxpool_
 * backward takes a = NULL (and xhat) too. The same results as
 * cmir__conv3x3_lrelu_forward + cmir__bn_maxpool_forward. */
int cmir__conv3x3_bn_maxpool_forward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                     const float *b, float slope, cmir_bn_params p,
                                     int training, int k, const float *gamma,
                                     const float *beta, float *running_mean,
                                     float *running_var, float *save_mean,
                                     float *save_invstd, cmir_tensor *a, cmir_tensor *y,
                                     int32_t *argmax, float *xhat);

/* The same with tensors held in bf16 (uint16, round to nearest even, in the
 * first half of their bytes), as bf16 training frameworks store
 * activations: half their traffic. *bf on entry: CMIR__BF_A and CMIR__BF_Y
 * allow them for a and y, CMIR__BF_X says x holds bf16 (needs a); on
 * return, which were used. A and Y are used only in training with xhat
 * where cmir__bn_abf_ok(Cout, k, W), Y only with a in bf16 or not stored.
 * Batch norm and pooling read a's bf16 values (the statistics stay those
 * of the float32 values); y in bf16 loses nothing where the next layer's
 * bf16 kernels take it (they round it so anyway). The backward takes the
 * returned flags (cmir__conv3x3_bn_maxpool_backward_bf). */
#define CMIR__BF_A 1u
#define CMIR__BF_Y 2u
#define CMIR__BF_X 4u
int cmir__conv3x3_bn_maxpool_forward_bf(cmir_exec *ex, const cmir_tensor *x, const float *W,
                                        const float *b, float slope, cmir_bn_params p,
                                        int training, int k, const float *gamma,
                                        const float *beta, float *running_mean,
                                        float *running_var, float *save_mean,
                                        float *save_invstd, cmir_tensor *a, cmir_tensor *y,
                                        int32_t *argmax, float *xhat, unsigned *bf);
/* cmir__conv3x3_bn_maxpool_backward with bf: the flags the forward
 * returned (CMIR__BF_A: a holds bf16, CMIR__BF_X: x does). */
int cmir__conv3x3_bn_maxpool_backward_bf(cmir_exec *ex, float slope, int k,
                                         const cmir_tensor *a, const float *gamma,
                                         const float *save_mean,
                                         const float *save_invstd, const cmir_tensor *dy,
                                         const int32_t *argmax, const float *xhat,
                                         const cmir_tensor *x, const float *W,
                                         const float *b, cmir_tensor *dx, float *dW,
                                         float *db, float *dgamma, float *dbeta, unsigned bf);
/* Whether a{.., W, C} pooled by k may be held in bf16 (above): the bf16
 * precision is active on an AVX512_BF16 CPU, the AVX-512 loops run, C % 32,
 * k % 2 and W % 2 are 0. */
int cmir__bn_abf_ok(int C, int k, int W);

#endif
