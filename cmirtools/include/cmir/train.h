/* cmir/train.h: the training and evaluation tools of CMIR-NET as library
 * functions (the programs cmir_train and cmir_eval are thin main()s over
 * them): stage 1 (one CNN per modality), feature export, stage 2 (the
 * unified space), the model file, and retrieval metrics in all four
 * directions. */
#ifndef CMIR_TRAIN_H
#define CMIR_TRAIN_H

#include "cmir/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmir_train_params {
    int threads;          /* 0 = all CPUs */
    uint64_t seed;        /* default 1 */
    double test_frac;     /* held-out share, default 0.2 */
    int split_by_scene;   /* whole scenes go to one side (default 1, when the archive records scenes) */
    int batch;            /* default 64 */
    int epochs1;          /* stage 1 epochs per modality, default 10 */
    int epochs2;          /* stage 2 epochs; 0 (default) = 50, or more to make
                             at least 3000 steps on small archives */
    float lr1, lr2;       /* Adam learning rates, default 1e-3, 1e-3 */
    float ortho;          /* weight of the orthogonality penalty on Z, applied
                             as ortho * mean over the 128x128 entries of
                             (Z^T Z / B - I)^2; default 0.1 (0 = off) */
    float dropout;        /* on Z in stage 1, default 0.5 */
    cmir_unified_params unified; /* d_v, hidden, loss weights (n_classes,
                                    multilabel and d_in are set from the data) */
    int max_stat_tiles;   /* tiles sampled for normalisation, default 2000 */
    const char *features_dir; /* if set: features_pan.mat, features_ms.mat
                                 (variable `features`, N x 128, and `labels`) */
    const char *unified_path; /* if set: unified.mat with featuresx (PAN V)
                                 and featuresy (MS V), N x d_v, and labels */
} cmir_train_params;

CMIR_API cmir_train_params cmir_train_default_params(void);

/* What training measured. */
typedef struct cmir_train_report {
    int64_t n_train, n_test;
    float stage1_loss[2], stage1_acc[2]; /* last epoch, PAN and MS */
    double stage1_images_per_s[2];
    cmir_unified_losses stage2;          /* last epoch means */
    double stage2_samples_per_s;
    double seconds;
} cmir_train_report;

/* Trains CMIR-NET on the labelled tiles of `archive_path` and writes the
 * model to `model_path` (atomically). Tiles are streamed from the archive
 * batch by batch: memory does not grow with the number of tiles, except
 * the 2 x N x 128 stage-1 features. progress receives the fraction done
 * and, at the end of each epoch, a one-line summary in msg; non-zero from
 * it cancels (CMIR_ECANCEL; nothing is written). rep may be NULL. */
CMIR_API int cmir_train(const char *archive_path, const char *model_path, cmir_train_params p,
                        cmir_progress_fn progress, void *user, cmir_train_report *rep);

/* The paper's step 2 on anyone's features: trains the unified space on
 * the paired rows of two feature files (MATLAB .mat, variable `features`,
 * N x D each, D equal) with labels (variable `labels`: N class numbers
 * 1..C, or with p.unified.multilabel an N x C 0/1 matrix) read from
 * labels_path, or from the first feature file when labels_path is NULL.
 * Every row is a training pair. Writes unified_path (featuresx, featuresy:
 * N x d_v; labels) atomically. Features are standardised per dimension
 * first. rep may be NULL. */
CMIR_API int cmir_train_unified(const char *features_a, const char *features_b, const char *labels_path,
                                const char *unified_path, cmir_train_params p, cmir_progress_fn progress,
                                void *user, cmir_train_report *rep);

#ifdef __cplusplus
}
#endif
#endif
