/* cmir/train.h: the training and evaluation tools of CMIR-NET as library
 * functions (the programs cmir_train and cmir_eval are thin main()s over
 * them): stage 1 (one CNN per modality), feature export, stage 2 (the
 * unified space), the model file, and retrieval metrics in all four
 * directions. */
#ifndef CMIR_TRAIN_H
#define CMIR_TRAIN_H

#include "cmir/metrics.h"
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
    int augment;          /* stage 1: each training tile in one of the 8
                             rotations/flips of the square, seeded; default 1 */
    /* stage-1 learning rate: lr1 for the first two thirds of the epochs,
     * lr1 / 10 for the last third */
    cmir_unified_params unified; /* d_v, hidden, loss weights (n_classes,
                                    multilabel and d_in are set from the data) */
    int max_stat_tiles;   /* tiles sampled for normalisation, default 2000 */
    const char *features_dir; /* if set: features_pan.mat, features_ms.mat
                                 (variable `features`, N x 128, and `labels`) */
    const char *unified_path; /* if set: unified.mat with featuresx (PAN V)
                                 and featuresy (MS V), N x d_v, and labels */
    const char *checkpoint;   /* if set: written (atomically) after every
                                 stage-1 epoch and every stage-2 tenth, with
                                 weights, optimiser moments and RNG state */
    const char *resume;       /* if set: a checkpoint of the same archive and
                                 settings to continue from; the result is
                                 bit-identical to an uninterrupted run */
    const char *speech_manifest; /* if set: the image <-> speech scenario
                                 (cmir/model.h CMIR_SCENARIO_IMAGE_SPEECH):
                                 side a = the archive's image tiles (PAN
                                 slot, multi-label, sigmoid CE), side b =
                                 the clips of this corpus manifest
                                 (cmir/audio.h; labels matched to the
                                 archive's class names, softmax CE); held-out
                                 voices are never trained on; stage 2 on
                                 pairs by label (cmir_pairs_by_label) drawn
                                 afresh each epoch, L3 on the pair's class.
                                 features_dir/unified_path are refused. */
    int audio_feature;    /* image-speech: the clip feature kind
                             (cmir/audio.h), recorded in the model; default
                             CMIR_AUDIO_FEATURE_SPHINX (vocabulary: the
                             manifest's labels) */
    const char *speech_dict; /* sphinx feature: a CMUdict-format file with
                             the pronunciations of label words the main
                             dictionary lacks (cmir_audio_params.extra_dict);
                             they are recorded in the model; NULL: none */
    float feature_noise;  /* with augment: the deviation of the Gaussian
                             noise added to normalised feature-vector inputs
                             (the speech branch) in stage 1; default 0.5 */
    int speech_steps;     /* image-speech: the clip side's stage 1 runs at
                             least this many steps (its epochs are a few
                             batches each); default 1000 */
    const char *stage1_from;  /* if set: a model file for the same archive
                                 whose stage-1 CNNs and normalisation are
                                 reused (stage 1 is skipped): ablations of
                                 stage 2 cost seconds; its TEST_TILES must
                                 be this run's split, else CMIR_EINVAL */
} cmir_train_params;

CMIR_API cmir_train_params cmir_train_default_params(void);

/* 0 when cmir_train() accepts p, else CMIR_EINVAL with a message naming the
 * first offending field ("cmir_train: batch must be in 2..4096, got 1").
 * cmir_train() runs it first. */
CMIR_API int cmir_train_check_params(cmir_train_params p);
/* The same for cmir_train_unified(), which reads the stage-2 fields only:
 * batch, epochs2, lr2, threads and unified (d_v, hidden). */
CMIR_API int cmir_train_unified_check_params(cmir_train_params p);

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
 * first. Stage 2 runs as in cmir_train() (epochs2 = 0: automatic; no
 * checkpoints). rep may be NULL; it gets n_train (the rows), stage2 (the
 * last epoch's mean losses), stage2_samples_per_s and seconds. */
CMIR_API int cmir_train_unified(const char *features_a, const char *features_b, const char *labels_path,
                                const char *unified_path, cmir_train_params p, cmir_progress_fn progress,
                                void *user, cmir_train_report *rep);

/* Training pairs for unpaired multi-label data, the paper's way (image <->
 * speech): for each item i of side a (multi-labels a_multi, na x C bytes,
 * non-zero = has the label) and each of its labels c, one item of side b
 * drawn uniformly, seeded, among those whose class b_class[j] (1..C) is
 * c + 1. Labels of a that no b item carries give no pair. Outputs, each of
 * *n entries and allocated by the library (free with cmir_free): pa (index
 * into a), pb (index into b), pc (the pair's class, 0-based). */
CMIR_API int cmir_pairs_by_label(const uint8_t *a_multi, int64_t na, int C, const int32_t *b_class,
                                 int64_t nb, uint64_t seed, int64_t **pa, int64_t **pb, int32_t **pc,
                                 int64_t *n);

/* ---- Evaluation ------------------------------------------------------ */
#define CMIR_EVAL_MAX_CUTOFFS 8

typedef struct cmir_eval_params {
    int threads;          /* 0 = all CPUs */
    int cutoffs[CMIR_EVAL_MAX_CUTOFFS]; /* for P@k and mAP@k; default 5, 10, 20, 50, 100 */
    int n_cutoffs;
    int paper_queries;    /* the paper's protocol sample, default 50 (0 = all) */
    uint64_t seed;        /* default 1 */
    int all_tiles;        /* evaluate every labelled tile, not the held-out ones */
    const char *speech_manifest; /* image-speech models: the corpus whose
                                    clips form side b (required for them) */
    int audio_voices;     /* image-speech: clips of 0 = held-out voices
                             (default), 1 = the voices trained on, 2 = all */
    int audio_ranking;    /* image-speech: 0 = the model (default); 1 = oracle:
                             each clip's feature is its true label (the
                             sphinx feature of a perfect recogniser; the
                             image branch's ceiling); 2 = training-free
                             floor: no network, images ranked in a seeded
                             random order, clips by the training images'
                             frequency of the label the recogniser heard */
} cmir_eval_params;

CMIR_API cmir_eval_params cmir_eval_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first bad field (n_cutoffs,
 * threads, paper_queries, cutoffs[i]). cmir_eval and cmir_eval_unified call it. */
CMIR_API int cmir_eval_check_params(cmir_eval_params p);

typedef struct cmir_eval_direction {
    char name[16];        /* "PAN->MS", ... or "x->y", ... */
    cmir_metrics_result r;
    double map_at[CMIR_EVAL_MAX_CUTOFFS], p_at[CMIR_EVAL_MAX_CUTOFFS];
} cmir_eval_direction;

typedef struct cmir_eval_report {
    int64_t n_items;      /* database size (tiles evaluated; images) */
    int64_t n_items_b;    /* side b's (the same, or the clips evaluated) */
    int n_cutoffs;
    int cutoffs[CMIR_EVAL_MAX_CUTOFFS];
    cmir_eval_direction dir[4]; /* cross-modal both ways, then same-modal */
} cmir_eval_report;

/* Embeds the held-out tiles of the archive the model was trained on (or
 * all labelled tiles with p.all_tiles) and evaluates retrieval in the four
 * directions PAN->MS, MS->PAN, PAN->PAN, MS->MS (same-modal: the query
 * itself excluded). Relevance: same class, or (multi-label models) at
 * least one shared label. Image-speech models: image->audio, audio->image,
 * image->image, audio->audio between those image tiles and the clips of
 * p.speech_manifest selected by p.audio_voices; relevance: the clip's
 * label is one of the image's. The held-out list is used only when the archive
 * has as many tiles as at training, else CMIR_EINVAL (use all_tiles). */
CMIR_API int cmir_eval(const char *model_path, const char *archive_path, cmir_eval_params p,
                       cmir_progress_fn progress, void *user, cmir_eval_report *out);
/* The same on a unified.mat (featuresx, featuresy, labels), all rows. */
CMIR_API int cmir_eval_unified(const char *unified_path, cmir_eval_params p, cmir_progress_fn progress,
                               void *user, cmir_eval_report *out);
/* Writes the report as JSON or CSV (one row per direction), atomically. */
CMIR_API int cmir_eval_write_json(const cmir_eval_report *r, const char *path);
CMIR_API int cmir_eval_write_csv(const cmir_eval_report *r, const char *path);

#ifdef __cplusplus
}
#endif
#endif
