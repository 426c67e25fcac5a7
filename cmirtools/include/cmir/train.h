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
                             at least 3000 steps on small archives, but for
                             PAN-MS archives at most 100 */
    float lr1, lr2;       /* Adam learning rates, default 1e-3, 1e-3 */
    float ortho;          /* weight of the orthogonality penalty on Z, applied
                             as ortho * mean over the 128x128 entries of
                             (Z^T Z / B - I)^2; default 0.1 (0 = off) */
    float dropout;        /* on Z in stage 1, default 0.5 */
    int descriptor;       /* 1 (default): the last 7 x bands of each PAN-MS
                             side's 128 stage-1 features are the tile
                             descriptor (cmir_model_info.descriptor), which
                             the unified network sees beside the CNN's
                             features; 0: the CNN's 128 only, as the paper */
    float cnn_weight;     /* with the descriptor: the CNN's standardised
                             features are multiplied by this (default 0.1,
                             in (0, 1]) before the unified network, so that
                             its few descriptor inputs are not drowned out */
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
    int precision;        /* cmir_precision (cmir/nn.h) of the conv and dense
                             layers while training: CMIR_PRECISION_AUTO
                             (default: _BF16 for PAN/MS archives where the
                             CPU of every process has AVX512_BF16, else
                             _FP32; image-speech runs _FP32), _FP32, or
                             _BF16 (where the CPU has AVX512_BF16, else
                             float32);
                             set process-wide for the run; the model records
                             what ran */
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
    /* ---- validation, fine-tuning and pretraining (train_valid.c, train_stage0.c) */
    double valid_frac;    /* share of the labelled tiles not held out for test
                             that is held out for validation (0 = none,
                             default): stage 1 keeps, per modality, the
                             weights of the epoch of lowest validation loss;
                             the tiles and the epochs chosen are recorded in
                             the model (VALID_TILES, TRAIN_SETTINGS); the
                             test tiles never choose anything */
    double label_frac;    /* share of the training tiles whose labels are
                             used (seeded pick; default 1): label budgets */
    int unlabelled_pairs; /* 1 (default): stage 2 also trains on the PAN/MS
                             pairs of the archive's unlabelled tiles (split
                             by scene: of the training scenes only) and, with
                             label_frac < 1, of the training tiles whose
                             labels are left out, with every term but L3
                             (their batches spread among the labelled ones);
                             0: those tiles are not used at all */
    const char *init_model; /* if set: a model file whose CNN weights (not the
                             class heads when the class count differs) start
                             stage 1; tile sizes and bands must match */
    const char *pretrain; /* if set: an archive of PAN/MS pairs (labels not
                             read) for stage 0: both CNNs trained with the
                             symmetric InfoNCE loss (cmir_infonce) so that a
                             tile's PAN and MS features match; normalised by
                             its own per-band statistics; stage 1 starts
                             from the result */
    int epochs0;          /* stage-0 epochs over the pretraining archive, default 10 */
    float lr0;            /* stage-0 Adam learning rate, default 1e-3 */
    float tau;            /* InfoNCE temperature, default 0.1 */
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
    int64_t n_valid;                     /* validation tiles (valid_frac) */
    int valid_epoch[2];                  /* stage-1 epoch kept per modality (1-based; 0: the last, no validation) */
    float valid_loss[2];                 /* its validation loss */
    float stage0_loss;                   /* last stage-0 epoch's mean InfoNCE */
    double stage0_pairs_per_s;
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
    int valid_tiles;      /* 1: evaluate the validation tiles the model records
                             (trained with valid_frac > 0) instead of the held-out
                             test tiles: for choosing settings without the test
                             split. Not with all_tiles. */
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
 * threads, paper_queries, cutoffs[i], valid_tiles). cmir_eval and
 * cmir_eval_unified call it. */
CMIR_API int cmir_eval_check_params(cmir_eval_params p);

typedef struct cmir_eval_direction {
    char name[16];        /* "PAN->MS", ... or "x->y", ... */
    cmir_metrics_result r;
    double map_at[CMIR_EVAL_MAX_CUTOFFS], p_at[CMIR_EVAL_MAX_CUTOFFS];
    /* The training-free floor of this direction on the same queries and
     * database (cmir_floor_eval in cmir/metrics.h), when has_floor is 1:
     * PAN->MS and MS->PAN in the space of MS band means (PAN tiles mapped
     * there by the least-squares regression from their mean and deviation,
     * fitted on the training tiles only), PAN->PAN on (mean, deviation),
     * MS->MS on the band means; every feature standardised by its training
     * mean and deviation. has_floor is 0 for cmir_eval_unified (no tiles)
     * and image-speech models (no training-free map from an image to a
     * clip is defined, so none of the four directions gets one). */
    int has_floor;
    cmir_metrics_result floor;
    double floor_map_at[CMIR_EVAL_MAX_CUTOFFS], floor_p_at[CMIR_EVAL_MAX_CUTOFFS];
} cmir_eval_direction;

typedef struct cmir_eval_report {
    int64_t n_items;      /* database size (tiles evaluated; images) */
    int64_t n_items_b;    /* side b's (the same, or the clips evaluated) */
    int n_cutoffs;
    int cutoffs[CMIR_EVAL_MAX_CUTOFFS];
    cmir_eval_direction dir[4]; /* cross-modal both ways, then same-modal */
    int64_t floor_fit_tiles; /* tiles the floors were fitted on (0: no floors) */
    int floor_in_sample;  /* 1: fitted on the evaluated tiles themselves, because
                             the archive is not the training one (-all on
                             another archive): then the floor is optimistic */
} cmir_eval_report;

/* Embeds the held-out tiles of the archive the model was trained on (or
 * all labelled tiles with p.all_tiles, or its validation tiles with
 * p.valid_tiles: CMIR_EINVAL when it records none) and evaluates retrieval in the four
 * directions PAN->MS, MS->PAN, PAN->PAN, MS->MS (same-modal: the query
 * itself excluded). Relevance: same class, or (multi-label models) at
 * least one shared label. Image-speech models: image->audio, audio->image,
 * image->image, audio->audio between those image tiles and the clips of
 * p.speech_manifest selected by p.audio_voices; relevance: the clip's
 * label is one of the image's. The held-out list is used only when the archive
 * has as many tiles as at training, else CMIR_EINVAL (use all_tiles). Each
 * direction also gets its training-free floor (cmir_eval_direction): fitted
 * on the labelled tiles the model did not hold out, for test or validation
 * (with all_tiles on an
 * archive of another size, on the evaluated tiles: floor_in_sample). */
CMIR_API int cmir_eval(const char *model_path, const char *archive_path, cmir_eval_params p,
                       cmir_progress_fn progress, void *user, cmir_eval_report *out);
/* The same on a unified.mat (featuresx, featuresy, labels), all rows. */
CMIR_API int cmir_eval_unified(const char *unified_path, cmir_eval_params p, cmir_progress_fn progress,
                               void *user, cmir_eval_report *out);
/* The floors alone (cmir_floor_eval) on the tiles of an archive: fitted on
 * the n_train tiles train[] (their PAN mean and deviation over all pixels
 * and PAN bands, their MS band means), evaluated on the n_test tiles
 * test[] with the archive's labels (multi-label when the archive has
 * them and multilabel is 1). Fills out's names, sizes, cutoffs and floor
 * fields (the learned fields are zero). cmir_eval computes its floors
 * this way, with train = the labelled tiles the model did not hold out. */
CMIR_API int cmir_eval_floor(const char *archive_path, const int64_t *train, int64_t n_train, const int64_t *test,
                             int64_t n_test, int multilabel, cmir_eval_params p, cmir_eval_report *out);
/* Writes the report as JSON or CSV (one row per direction), atomically.
 * Floors: JSON has per direction "floor": {"map", "anmrr", "paper_protocol",
 * "p_at", "map_at", "pr_11pt"} (null without floors) and at the top
 * "floor_fit_tiles" and "floor_in_sample"; CSV appends the columns
 * floor_map, floor_anmrr, floor_paper_protocol, floor_p_at_K...,
 * floor_map_at_K... (empty without floors). */
CMIR_API int cmir_eval_write_json(const cmir_eval_report *r, const char *path);
CMIR_API int cmir_eval_write_csv(const cmir_eval_report *r, const char *path);
/* Draws the 11-point precision-recall curves of the four directions as an
 * SVG (pure text, no library) with, for each, its floor as a dashed line
 * of the same colour, axes with ticks, a legend and `title` (NULL: a
 * default), written atomically. Geometry, for readers of the file: the
 * plot frame is <rect id="frame" x y width height>; recall r is at x +
 * r width, precision v at y + (1 - v) height; each curve is a <polyline>
 * with class "learned" or "floor" and data-direction the direction's
 * name; a direction without a value (NaN) or without a floor draws none. */
CMIR_API int cmir_eval_write_svg(const cmir_eval_report *r, const char *path, const char *title);

/* Data-parallel training under MPI (a build with CMIR_WITH_MPI, started by
 * mpirun, mpiexec or srun, after cmir_dist_init, cmir/dist.h): cmir_train()
 * then trains on every rank, each on its share of every global batch, with
 * the gradients and batch-norm sums added over the ranks (cmir_dist_sum_*),
 * and rank 0 writes the model and checkpoints. A failed rank should leave
 * without cmir_dist_finalize, so that the launcher ends the others. */

#ifdef __cplusplus
}
#endif
#endif
