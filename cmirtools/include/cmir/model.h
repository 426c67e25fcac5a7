/* cmir/model.h: CMIR-NET's networks. Stage 1: one CNN feature extractor
 * per modality (conv3x3 -> leaky ReLU -> batch norm -> max-pool, three
 * times; dense -> 128-d ReLU features Z (dropout in training); dense ->
 * class logits). Stage 2: the unified latent space (encoders E_a, E_b to
 * d_v, cross decoders w_ab, w_ba back to 128, a classifier on V).
 *
 * All tensors are float32, batch first, row-major: images N x H x W x B
 * (band fastest), features N x 128, latent codes N x d_v. Handles are
 * opaque; *_free(NULL) is a no-op. Buffers passed in stay the caller's;
 * pointers returned by *_features()/_logits() belong to the network and
 * are valid until its next forward call or its free. */
#ifndef CMIR_MODEL_H
#define CMIR_MODEL_H

#include "cmir/nn.h"
#include "cmir/tensorset.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CMIR_FEAT_DIM 128

/* ---- Stage 1: the CNN of one modality -------------------------------- */
typedef struct cmir_cnn_params {
    int h, w, bands;   /* input tile size */
    int n_classes;     /* output logits */
    float slope;       /* leaky ReLU slope, default 0.01 */
    float dropout;     /* rate on Z in training, default 0.5 */
    cmir_bn_params bn;
} cmir_cnn_params;

CMIR_API cmir_cnn_params cmir_cnn_default_params(void);
/* 0, or CMIR_EINVAL naming the first bad field (h, w, bands, n_classes,
 * dropout, slope). cmir_cnn_new calls it; bn is checked by the layers. */
CMIR_API int cmir_cnn_check_params(cmir_cnn_params p);

typedef struct cmir_cnn cmir_cnn;

/* Builds the network for the input size: three conv blocks with 32, 64
 * and 128 filters and pooling windows k, k, k (k = 4 when the tile side is
 * 256 or more, else 2), then one more pooling that brings the side to 4
 * (for the paper's sizes: PAN 256 -> pools 4,4,4; MS 64 -> 2,2,2,2), and
 * dense 128*s*s -> 128 -> n_classes. A 1 x 1 input is a feature vector of
 * `bands` numbers (the speech branch: a 128-d clip feature): no conv
 * blocks, the network is the MLP dense bands -> 128 (ReLU, dropout) ->
 * n_classes, and the pools reported are all 1. Weights: He for
 * convolutions, Xavier for dense layers, from `seed`. NULL on error. */
CMIR_API cmir_cnn *cmir_cnn_new(cmir_cnn_params p, uint64_t seed);
CMIR_API void cmir_cnn_free(cmir_cnn *c);
CMIR_API cmir_cnn_params cmir_cnn_get_params(const cmir_cnn *c);
/* The pooling windows chosen (k1, k2, k3, k4; k4 = 1 when none) and the
 * FLOPs of one image's forward pass (convolutions and dense layers). */
CMIR_API void cmir_cnn_pools(const cmir_cnn *c, int pools[4]);
CMIR_API double cmir_cnn_flops(const cmir_cnn *c);

/* Forward pass of n images x (n x h x w x bands, already normalised).
 * training: batch statistics, dropout drawn from r (may be NULL when not
 * training); else running statistics and no dropout. Activations are kept
 * for cmir_cnn_backward. Buffers grow to the largest n seen, then are
 * reused. */
CMIR_API int cmir_cnn_forward(cmir_cnn *c, cmir_exec *ex, const float *x, int n, int training,
                              cmir_rng *r);
/* Z (n x 128, after ReLU, before dropout) and logits (n x n_classes) of
 * the last forward pass; owned by c. */
CMIR_API float *cmir_cnn_features(cmir_cnn *c);
CMIR_API float *cmir_cnn_logits(cmir_cnn *c);
/* Backward pass after a training forward: dlogits (n x C) and an extra
 * gradient on Z (n x 128, may be NULL) -> parameter gradients
 * (overwritten). */
CMIR_API int cmir_cnn_backward(cmir_cnn *c, cmir_exec *ex, const float *dlogits, const float *dZ);
/* Registers every parameter with its gradient in o. */
CMIR_API int cmir_cnn_register(cmir_cnn *c, cmir_optim *o);
/* Parameters and running statistics to/from a tensor set, names prefixed
 * (e.g. "pan_conv1_W"). Loading checks every name and shape. */
CMIR_API int cmir_cnn_save(const cmir_cnn *c, cmir_tensorset *ts, const char *prefix);
CMIR_API int cmir_cnn_load(cmir_cnn *c, const cmir_tensorset *ts, const char *prefix);
/* Number of parameter arrays, and array i with its gradient (for tests
 * and checkpoints): name, data, grad, length. */
CMIR_API int cmir_cnn_n_params(const cmir_cnn *c);
CMIR_API int cmir_cnn_param(cmir_cnn *c, int i, const char **name, float **w, float **g, size_t *n);

/* ---- Stage 2: the unified latent space -------------------------------- */
typedef struct cmir_unified_params {
    int d_in;        /* feature size, default 128 */
    int d_v;         /* latent size: 16, 32, 64 or 128; default 64 */
    int hidden;      /* encoder hidden units, default 128 (0: linear encoders) */
    int n_classes;
    int multilabel;  /* L3 as sigmoid cross-entropy */
    /* loss weights: lambda_1 (L1 classification... see below) */
    float w_pair;    /* L2 = mean_b ||Va - Vb||^2, default 1 */
    float w_class;   /* L3 = CE on [Va; Vb], default 5 */
    float w_norm;    /* L4 = mean_b (||Va||^2 + ||Vb||^2), default 1e-3 */
    float w_cross;   /* L5 = mean_b (||w_ab Va - Zb||^2 + ||w_ba Vb - Za||^2), default 0.001 */
    float w_reg;     /* R = mean_i (w_a,i - alpha)^2 + mean_i (w_b,i - alpha)^2, default 1e-3 */
    float alpha;     /* default 1 (the paper's best) */
    float slope;     /* leaky ReLU slope of the encoders' hidden layer */
} cmir_unified_params;

CMIR_API cmir_unified_params cmir_unified_default_params(void);

#define CMIR_UNIFIED_MAX_D_IN 65536
#define CMIR_UNIFIED_MAX_D_V 4096

/* 0 when p describes a unified network (d_in 1..CMIR_UNIFIED_MAX_D_IN,
 * d_v 1..CMIR_UNIFIED_MAX_D_V, hidden >= 0, n_classes >= 1), else
 * CMIR_EINVAL with a message naming the first offending field. */
CMIR_API int cmir_unified_check_params(cmir_unified_params p);

typedef struct cmir_unified cmir_unified;
/* NULL (cmir_last_error() says why) for parameters that
 * cmir_unified_check_params() refuses. */
CMIR_API cmir_unified *cmir_unified_new(cmir_unified_params p, uint64_t seed);
CMIR_API void cmir_unified_free(cmir_unified *u);
CMIR_API cmir_unified_params cmir_unified_get_params(const cmir_unified *u);

/* Loss values of one step (each already weighted; total is their sum). */
typedef struct cmir_unified_losses {
    float pair, cls, norm, cross, reg, total;
} cmir_unified_losses;

/* One training step's forward and backward on n pairs (Za, Zb: n x d_in;
 * labels: n class indices 0..C-1, or n x C 0/1 targets when multilabel);
 * fills parameter gradients (overwritten) and *out. labels and targets both
 * NULL: unlabelled pairs, the step leaves L3 out (out->cls 0, the
 * classifier's gradients 0). */
CMIR_API int cmir_unified_step(cmir_unified *u, cmir_exec *ex, const float *Za, const float *Zb,
                               const int32_t *labels, const float *targets, int n,
                               cmir_unified_losses *out);
/* Latent codes of n features of one side (0 = a, 1 = b): V (n x d_v). */
CMIR_API int cmir_unified_encode(cmir_unified *u, cmir_exec *ex, int side, const float *Z, int n,
                                 float *V);
CMIR_API int cmir_unified_register(cmir_unified *u, cmir_optim *o);
CMIR_API int cmir_unified_save(const cmir_unified *u, cmir_tensorset *ts);
CMIR_API int cmir_unified_load(cmir_unified *u, const cmir_tensorset *ts);
CMIR_API int cmir_unified_n_params(const cmir_unified *u);
CMIR_API int cmir_unified_param(cmir_unified *u, int i, const char **name, float **w, float **g,
                                size_t *n);

/* ---- The model file: both extractors and the unified network ---------
 * A MATLAB .mat file (cmir/tensorset.h) holding: CMIR_MODEL_FORMAT
 * ("cmir-model 1"), MODEL_ID (16 hex digits identifying the weights),
 * pan_* and ms_* (the two CNNs), enc_*, dec_*, cls_* (the unified
 * network), PAN_SIZE / MS_SIZE (h, w, bands), RATIO, D_V, HIDDEN,
 * N_CLASSES, MULTILABEL, PAN_MEAN / PAN_STD / MS_MEAN / MS_STD (per-band
 * normalisation from the training split), CLASS_NAMES, PAN_BAND_NAMES,
 * MS_BAND_NAMES (newline-separated text), TRAIN_SETTINGS (text),
 * N_TILES and TEST_TILES (0-based indices of the held-out tiles of the
 * archive it was trained on). */
typedef struct cmir_model cmir_model;

/* What a model's two modalities are.
 *  PAN_MS: modality 0 = PAN tiles, 1 = MS tiles of a tile archive (paired).
 *  IMAGE_SPEECH: modality 0 = image tiles (the archive's PAN slot, e.g.
 *    256 x 256 x 3 RGB), 1 = spoken labels as 128-d clip features
 *    (cmir/audio.h; ms_h = ms_w = 1, ms_bands = 128); unpaired, trained on
 *    pairs made by label (cmir_pairs_by_label). Stored as SCENARIO
 *    ("pan-ms" or "image-speech"; absent means pan-ms). */
typedef enum cmir_scenario {
    CMIR_SCENARIO_PAN_MS = 0,
    CMIR_SCENARIO_IMAGE_SPEECH = 1
} cmir_scenario;

/* Sizes and names a model is built for. */
typedef struct cmir_model_info {
    int pan_h, pan_w, pan_bands, ms_h, ms_w, ms_bands;
    int ratio, n_classes, d_v, multilabel;
    const char *id;       /* MODEL_ID; owned by the model */
    cmir_scenario scenario;
    int audio_feature;    /* image-speech: the cmir_audio_feature_kind its
                             clips were described with (AUDIO_FEATURE in the
                             file: "segmental", "cepstral" or "sphinx"); queries must
                             use the same (cmir_model_audio_params) */
    int precision;        /* cmir_precision (cmir/nn.h) it was trained at:
                             PRECISION "fp32" or "bf16" in the file (absent:
                             fp32); inference always runs float32 */
    int descriptor;       /* 1: the last 7 x bands of a PAN-MS side's 128 stage-1
                             features are the tile descriptor (per band: mean,
                             deviation, 10/50/90 % quantiles, roughness at 1 and
                             2 pixels) instead of CNN units (DESCRIPTOR in the
                             file; absent: 0). Sides of under 4 x 4 pixels or
                             over 9 bands, and image-speech models, have none */
    float cnn_weight;     /* the CNN's standardised features are multiplied by
                             this before the unified network (CNN_WEIGHT;
                             absent: 1) */
} cmir_model_info;

/* Loads and validates a model file: every name, shape, type and the
 * format version. NULL with a message naming the file and the problem. */
CMIR_API cmir_model *cmir_model_load(const char *path);
CMIR_API void cmir_model_free(cmir_model *m);
CMIR_API const cmir_model_info *cmir_model_get_info(const cmir_model *m);
/* The audio front-end settings of an image-speech model: the defaults of
 * cmir/audio.h with the model's feature kind and, for the sphinx feature,
 * its vocabulary, acoustic model and dictionary (strings owned by m). */
struct cmir_audio_params;
CMIR_API void cmir_model_audio_params(const cmir_model *m, struct cmir_audio_params *p);
/* Records the clip feature an image-speech model is trained with; for
 * CMIR_AUDIO_FEATURE_SPHINX also the resolved vocabulary
 * (cmir_audio_corpus_vocabulary) and the identity of the default acoustic
 * model and dictionary (cmir_audio_sphinx_identity), saved as
 * AUDIO_VOCABULARY, AUDIO_ACOUSTIC_MODEL, AUDIO_DICTIONARY and
 * AUDIO_MODEL_SUM. cmir_model_load refuses a sphinx model whose acoustic
 * model or dictionary is missing or differs (checksum), in one line.
 * 0, CMIR_EINVAL, CMIR_EIO or CMIR_ENOMEM. */
CMIR_API int cmir_model_set_audio(cmir_model *m, int feature, const char *vocabulary);
/* The sphinx model's vocabulary (one label a line, in feature order), or
 * NULL for other models. */
CMIR_API const char *cmir_model_audio_vocabulary(const cmir_model *m);
/* Name of modality k (0 or 1): "PAN"/"MS", or "image"/"audio" for an
 * image-speech model. Static storage. */
CMIR_API const char *cmir_model_modality_name(const cmir_model *m, cmir_modality k);
/* Class c (1-based) name, "class_<c>" when none. */
CMIR_API const char *cmir_model_class_name(const cmir_model *m, int c);
/* The class (1..C) whose name matches `name` as cmir_audio_label_match
 * does (case and '_' versus ' ' ignored): how a spoken label finds its
 * class. 0 when none does. */
CMIR_API int cmir_model_class_of(const cmir_model *m, const char *name);
/* The held-out tiles recorded at training: *n indices (owned by m). */
CMIR_API const int64_t *cmir_model_test_tiles(const cmir_model *m, int64_t *n, int64_t *n_tiles);
/* The validation tiles recorded at training (valid_frac > 0): *n indices
 * (owned by m), or NULL and *n = 0 when the model records none. */
CMIR_API const int64_t *cmir_model_valid_tiles(const cmir_model *m, int64_t *n);

/* Embeds n raw tiles of modality `modality` (CMIR_PAN or CMIR_MS; values as
 * stored in the archive, n x h x w x bands; for an image-speech model,
 * CMIR_IMAGE = image tiles, CMIR_AUDIO = clip features, n x 128; any other
 * value is CMIR_EINVAL) into the unified space:
 * V (n x d_v). Z (n x 128 stage-1 features) may be NULL. Normalisation is
 * applied inside. Processes at most 64 tiles at a time. ex may be NULL
 * (a context of the model's own, with all CPUs, is used).
 *
 * Threads: a model is not safe to share between threads while one of
 * them embeds. cmir_model_embed writes scratch inside the model (the
 * normalised tiles, the networks' activations, its own context), so give
 * each thread its own model (cmir_model_load the file once per thread),
 * or serialise the calls. The read-only accessors (cmir_model_get_info,
 * _modality_name, _class_name, _class_of, _test_tiles, _audio_params)
 * may run concurrently with each other. */
CMIR_API int cmir_model_embed(cmir_model *m, cmir_exec *ex, cmir_modality modality, const float *tiles, int n,
                              float *Z, float *V);

#ifdef __cplusplus
}
#endif
#endif
