/* model's exported internal API (not installed): the model structure
 * shared by the model file code (modelfile.c) and the trainer (train*.c in
 * tools, which fills weights, statistics and the test split). It knows no
 * archive: a model is built from sizes and names (cmir__model_spec). */
#ifndef CMIR_MODEL_INTERNAL_H
#define CMIR_MODEL_INTERNAL_H

#include "cmir/model.h"
#include "../base/internal.h"

#define CMIR_EMBED_BATCH 64
/* A model of seed s initialises CNN k (0, 1) from s + CMIR__CNN_SEED_STEP * (k + 1)
 * and the unified network from s + CMIR__UNIFIED_SEED_OFFSET; cmir_train_unified()
 * uses the same offset. */
#define CMIR__CNN_SEED_STEP 101
#define CMIR__UNIFIED_SEED_OFFSET 303

struct cmir_model {
    cmir_model_info info;
    cmir_cnn *cnn[2];        /* 0 = PAN, 1 = MS */
    cmir_unified *uni;
    float *mean[2], *std[2]; /* per band */
    float zmean[2][CMIR_FEAT_DIM], zstd[2][CMIR_FEAT_DIM]; /* stage-1 features, standardised
                                                               before the unified network */
    char **class_names;      /* n_classes */
    char *band_names[2];     /* newline-separated */
    char *settings;
    int64_t *test, n_test, n_tiles;
    int64_t *valid, n_valid; /* validation tiles of training (VALID_TILES, saved when any) */
    char id[17];
    float *norm;             /* CMIR_EMBED_BATCH tiles, normalised */
    cmir_exec *own_ex;       /* for callers that pass no context */
    size_t norm_cap;
    char *audio_vocab, *audio_hmm, *audio_dict; /* sphinx feature (model_audio.c) */
    char audio_sum[17];
};

/* What a new model is built for: the tile sizes, band and class names of
 * its data (the trainer takes them from the archive). Names are borrowed
 * for the call and copied. With scenario CMIR_SCENARIO_IMAGE_SPEECH the
 * ms_* sizes and ms band names are ignored: modality 1 is the 128-d audio
 * clip feature. */
typedef struct cmir__model_spec {
    int pan_h, pan_w, pan_bands;
    int ms_h, ms_w, ms_bands;
    int n_classes;
    const char *const *class_names; /* n_classes (class c + 1 at c) */
    const char *const *pan_band_names; /* pan_bands */
    const char *const *ms_band_names;  /* ms_bands */
    cmir_scenario scenario;
} cmir__model_spec;

/* An untrained model for the spec (weights from seed); NULL with the
 * error set. */
cmir_model *cmir__model_new(const cmir__model_spec *s, cmir_cnn_params base, cmir_unified_params up,
                            uint64_t seed);
/* AUDIO_FEATURE and, for the sphinx feature, its vocabulary and acoustic
 * model (model_audio.c); loading checks the acoustic model's identity. */
struct cmir_tensorset;
int cmir__model_save_audio(const cmir_model *m, struct cmir_tensorset *ts);
int cmir__model_load_audio(cmir_model *m, const struct cmir_tensorset *ts);
void cmir__model_audio_params(const cmir_model *m, struct cmir_audio_params *p);
/* Normalises n raw tiles of modality k into m->norm-sized dst. */
void cmir__model_normalise(const cmir_model *m, int k, const float *src, int n, float *dst);
/* Standardises n feature rows of modality k in place, the CNN's features
 * then multiplied by info.cnn_weight. */
void cmir__model_zstd(const cmir_model *m, int k, float *Z, int64_t n);
/* descriptor.c: statistics per band of the tile descriptor; how many of
 * side k's features it takes (0: none, see cmir_model_info.descriptor);
 * writes it over the last of them for n normalised tiles x (as
 * cmir__model_normalise makes them) into the n rows of Z. */
#define CMIR__DESC_STATS 7
int cmir__model_desc_dims(const cmir_model_info *i, int k);
void cmir__model_describe(const cmir_model *m, int k, const float *x, int n, float *Z);
/* Computes MODEL_ID from the weights, then writes the file atomically. */
int cmir__model_save(cmir_model *m, const char *path);

#endif
