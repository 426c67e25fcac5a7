/* nn's private header: shape checks and kernel plumbing shared by the nn
 * sources only (modules above nn use nn_export.h, never this header). */
#ifndef CMIR_NN_INTERNAL_H
#define CMIR_NN_INTERNAL_H

#include "nn_export.h"
#include "../base/internal.h"

/* CMIR_EINVAL unless a and b have the same number of elements. */
int cmir__check_same(const cmir_tensor *a, const cmir_tensor *b, const char *fn,
                     const char *an, const char *bn);

/* conv.c: the checks of a 3x3 convolution's arguments (backward: y is
 * dy), and the fixed-order reduction of T per-thread partials (thread t's
 * dW, kc floats, at first + t * stride, its db, co floats, right after). */
int cmir__conv_check(const char *fn, const cmir_tensor *x, const float *W, const cmir_tensor *y,
                     int backward);
void cmir__conv_reduce_partials(const float *first, size_t stride, int T, size_t kc, int co,
                                float *dW, float *db);

/* Threads worth using for n elements of cheap element-wise work. */
int cmir__elementwise_threads(const cmir_exec *ex, size_t n);

/* fused.c: non-zero makes the fused kernels take their portable loops
 * even on AVX-512 CPUs (tests compare both). */
extern int cmir__fused_generic;
/* sums[0..C) = per-channel sums of x (last dimension C), sums[C..2C) =
 * sums of squares, in double (fixed order for a given thread count). */
int cmir__channel_sums(cmir_exec *ex, const cmir_tensor *x, double *sums);

/* Writes row y (W * Co floats) of sample n of a convolution's output
 * gradient dy. arow: row y of the layer's output lrelu(conv(x) + b) as the
 * conv remade it (see recompute below), or NULL. Called from the conv's
 * threads, any order of n, rows of one sample in order. */
typedef void (*cmir__dyrow_fn)(void *ctx, size_t n, int y, const float *arow, float *row);
/* At the bf16 precision, the same row straight into the bf16 kernels'
 * layouts (conv_direct.h): pix, its pixel pairs {W/2, Co}; chan, its
 * channel pairs {W, Co/2} (each NULL: not wanted); and the row's sums over
 * its pixels added to db[Co]. pix and chan are bit-identical to those
 * cmir__bfd_row_pairs and cmir__bfd_chan_pairs make from dyrow's row.
 * Given only for an even W and Co a multiple of 32 (fused_bf16.c checks). */
typedef void (*cmir__dypairs_fn)(void *ctx, size_t n, int y, const float *arow, uint32_t *pix,
                                 uint32_t *chan, float *db);
/* Flags of the direct drivers (the bf16 ones at the bf16 precision):
 *  REMAKE (backward): remake the forward's rows (cmir__conv3x3_backward_rows);
 *  YBF (forward, Co % 32 == 0): y is stored as bf16 (uint16, round to
 *    nearest even) in the first half of y->data's bytes, the sums being of
 *    the float32 values before rounding;
 *  XBF (Ci even, at least CMIR__BF16_MIN_CI): x holds bf16 likewise (the
 *    kernels take its values exactly: they round x to bf16 anyway). */
#define CMIR__CONV_REMAKE 1
#define CMIR__CONV_YBF 2
#define CMIR__CONV_XBF 4
/* cmir_conv3x3_backward with dy{N,H,W,Co} made row by row by dyrow while
 * the direct kernels use it (never stored whole). flags: XBF; REMAKE: remake each
 * output row lrelu(conv(x) + b) (slope, bias b or NULL) from the padded
 * input the dW kernel holds anyway, bit-identical to the forward's, and
 * pass it to dyrow (cheaper than reading the stored output for few input
 * channels). dypairs (or NULL): dyrow's pair form, which the bf16 kernels
 * then take instead. Returns 1 without doing anything where the direct
 * kernels are unavailable. */
int cmir__conv3x3_backward_rows(cmir_exec *ex, const cmir_tensor *x, const float *W, int Co,
                                cmir__dyrow_fn dyrow, cmir__dypairs_fn dypairs, void *ctx,
                                const float *b, float slope, int flags, cmir_tensor *dx,
                                float *dW, float *db);
/* The forward of conv -> leaky ReLU -> batch norm -> max-pool without the
 * full-size output (direct kernels only; returns 1 elsewhere): with sums
 * non-NULL, only the per-channel sums of lrelu(conv(x) + b) and of its
 * squares (as cmir__conv3x3_lrelu_forward gives them); else y, argmax,
 * xhat (may be NULL) {N, H/k, W/k, Co} as cmir__bn_maxpool_forward makes
 * them from that output with the given statistics (bit-identical); flags
 * CMIR__CONV_YBF: y in bf16 (Co % 32 == 0, the bf16 precision). */
/* Whether the direct (AVX-512) conv kernels run on this CPU for ci input
 * channels. At the bf16 precision they run conv_bf16.c's (pairs of input
 * channels, of taps for one channel) for layers of at least
 * CMIR__BF16_MIN_CI input channels (all). */
#define CMIR__BF16_MIN_CI 1
int cmir__conv3x3_direct_available(int ci);
int cmir__conv3x3_lrelu_pool(cmir_exec *ex, const cmir_tensor *x, const float *W,
                             const float *b, float slope, int Co, double *sums,
                             const float *mean, const float *invstd, const float *gamma,
                             const float *beta, int k, float *y, int32_t *argmax, float *xhat,
                             int flags);

/* bf16.c: non-zero makes cmir_nn_bf16_available() 0 (the forced fallback
 * the tests use). cmir__bf16_active: bf16 requested and available. */
extern int cmir__bf16_force_off;
int cmir__bf16_active(void);
/* float <-> bf16 bits as the hardware rounds (nearest even, denormals to
 * zero). */
uint16_t cmir__f2bf(float f);
/* The vpermw indices that turn vcvtne2ps2bf16(b, a) into pairs (a[i], b[i]). */
extern const short cmir__bf16_interleave[32];
float cmir__bf2f(uint16_t h);
/* C{m,n} = op(A) op(B) + beta C (beta 0 or 1) with bf16 operands and
 * float32 accumulation: vdpbf16ps where the CPU has AVX512_BF16 (threads
 * split the rows), else the scalar emulation cmir__bgemm_ref (same pairs,
 * same order). work: cmir__bgemm_work() bytes, 64-byte aligned, or NULL
 * (allocated here). 0 or CMIR_ENOMEM. */
size_t cmir__bgemm_work(int transa, int transb, int m, int n, int k);
int cmir__bgemm(int threads, int transa, int transb, int m, int n, int k, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc, void *work);
void cmir__bgemm_ref(int transa, int transb, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);
/* cmir__bgemm when cmir__bf16_active(), else cmir__sgemm (alpha 1). */
int cmir__gemm_auto(int threads, int transa, int transb, int m, int n, int k, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc, void *work);

/* conv_avx512.c: the direct kernels, where the compiler can target
 * AVX-512F (callers check cmir__conv3x3_direct_available(ci) first). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(CMIR_CONV_NO_DIRECT)
#define CMIR__CONV_DIRECT 1
int cmir__conv_direct_forward(cmir_exec *ex, const cmir_tensor *x, const float *W, const float *b,
                              cmir_tensor *y, int act, float slope, double *sums, int flags);
int cmir__conv_direct_backward(cmir_exec *ex, const cmir_tensor *x, const float *W,
                               const cmir_tensor *dy, cmir_tensor *dx, float *dW, float *db,
                               cmir__dyrow_fn dyrow, cmir__dypairs_fn dypairs, void *dyctx,
                               const float *rb, float rslope, int flags);
/* conv_bf16.c (AVX512_BF16): dst[0..n) = the bf16 (round to nearest even)
 * of src[0..n), n % 32 == 0; nt: streaming stores (where dst is 64-byte
 * aligned). */
void cmir__bfd_store_row(const float *src, size_t n, uint16_t *dst, int nt);
#endif

/* Batch-norm inference statistics from the running ones: mean and
 * 1/sqrt(var + eps) per channel into *mean / *invstd, which, when either is
 * NULL, point into a new 2*C buffer given in *tmp (the caller frees it;
 * tmp may be NULL only when both are set). 0 or CMIR_ENOMEM. */
int cmir__bn_inference_stats(cmir_bn_params p, int C, const float *running_mean, const float *running_var,
                             float **mean, float **invstd, float **tmp);

#endif
