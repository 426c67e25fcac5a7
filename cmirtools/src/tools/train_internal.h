/* Internal to the training tools (src/tools/train*.c): the job one
 * cmir_train() or cmir_train_unified() run carries through its stages, the
 * stage-2 pair source, and the named constants of training. */
#ifndef CMIR_TRAIN_INTERNAL_H
#define CMIR_TRAIN_INTERNAL_H

#include "cmir/audio.h"
#include "cmir/dist.h"
#include "cmir/train.h"
#include "../model/model_internal.h"
#include "archive_model.h"

/* ---- constants ---------------------------------------------------------- */
#define CMIR__TRAIN_MAX_BATCH 4096      /* largest p.batch */
#define CMIR__TRAIN_MAX_EPOCHS 100000   /* cap of every epoch count made from a step target */
#define CMIR__TRAIN_AUTO_EPOCHS2 50     /* epochs2 = 0: at least this many stage-2 epochs ... */
#define CMIR__TRAIN_AUTO_STEPS2 3000    /* ... and at least this many stage-2 steps ... */
#define CMIR__TRAIN_AUTO_MAX_EPOCHS2 100 /* ... but (tiles) at most this many epochs: twice
                                           the passes over each pair that the step rule
                                           makes on DSRSID-size archives (50); a few dozen
                                           labelled tiles would otherwise get 3000 passes */
#define CMIR__TRAIN_LR1_LATE 0.1f       /* stage-1 learning rate factor in the last third of the epochs */
#define CMIR__TRAIN_LOG_LINES 20        /* about this many progress lines per stage, at most */
#define CMIR__TRAIN_CHECKPOINTS2 10     /* checkpoints written during stage 2 */
#define CMIR__TRAIN_PROGRESS2 0.05      /* progress units of a stage-2 sample (a stage-1 image is 1) */
#define CMIR__TRAIN_MAX_BANDS 1024      /* bands per modality (as the model file allows) */
#define CMIR__TRAIN_BAND_VAR_MIN 1e-12  /* a band of smaller variance is only centred */
#define CMIR__TRAIN_FEAT_VAR_MIN 1e-8   /* a feature dimension of smaller variance is only centred */
#define CMIR__TRAIN_ENCODE_ROWS 1024    /* rows encoded per call when writing unified.mat */
#define CMIR__TRAIN_MAX_LABEL 65535     /* largest class number of a labels vector */
#define CMIR__TRAIN_CKPT_FORMAT "cmir-checkpoint 1"

/* ---- the job ------------------------------------------------------------ */
typedef struct cmir__train_dp cmir__train_dp; /* train_dp.c */
typedef struct cmir__train_job {
    cmir_train_params p;
    cmir_archive *a;
    const cmir_archive_info *ai;
    cmir_model *m;
    cmir_exec *ex;
    cmir_rng *rng;
    int64_t *train, n_train, *test, n_test;
    int64_t *valid, n_valid; /* validation tiles (valid_frac), archive order */
    int64_t *unlab, n_unlab; /* tiles stage 2 may train on without L3 (unlabelled_pairs):
                                the archive's unlabelled tiles (of training scenes when
                                split by scene), then the training tiles whose labels
                                the budget (label_frac) leaves out; sorted */
    cmir_progress_fn progress;
    void *user;
    double done, total; /* progress units */
    char msg[256];
    char settings[1024];
    cmir_tensorset *resume; /* loaded checkpoint, or NULL */
    int r_stage, r_epoch;   /* where it stopped: stage 0 PAN, 1 MS, 2 unified; epochs done */
    int ml1[2];             /* stage-1 loss of side k is multi-label (sigmoid) */
    /* image-speech: side 1 is the clip features of a corpus */
    cmir_audio_corpus *corpus;
    int32_t *aud_class;     /* per clip, 1..C */
    int64_t *atrain, n_atrain, n_atest;
    uint8_t *amulti;        /* the training images' multi-labels, n_train x C */
    int32_t *bclass;        /* the training clips' classes, n_atrain */
    int64_t est_pairs;      /* pairs per stage-2 epoch (the training images'
                               labels that some training clip speaks) */
    cmir__train_dp *dp;     /* data-parallel state under MPI with > 1 rank, else NULL */
} cmir__train_job;

static inline int cmir__train_is_speech(const cmir__train_job *J) { return J->corpus != NULL; }

/* ---- stage 2's pairs ---------------------------------------------------- */
/* Where an epoch's pairs come from. By index: row order[i] of side a with
 * the same row of side b, labelled by row_class (or, when NULL, by the
 * archive). By label (image-speech): each training image with a clip of
 * each of its labels, drawn afresh every epoch, labelled by that class. */
typedef struct cmir__train_pairs {
    int by_label;
    const int64_t *rows;      /* by index: the rows paired, n_rows of them */
    int64_t n_rows;
    int keep_order;           /* by index: 0 = every epoch shuffles a fresh copy of
                                 rows (its order depends on the RNG state alone:
                                 resumable); 1 = every epoch shuffles the previous
                                 epoch's order further */
    const int64_t *free_rows; /* by index: rows paired without a label (L3 left
                                 out), n_free of them; their batches are spread
                                 among the labelled ones */
    int64_t n_free;
    int64_t *free_order;      /* owned: this epoch's order of free_rows */
    const int32_t *row_class; /* by index: class (0-based) of every row, or NULL */
    const float *row_targets; /* with row_class and multi-label: every row's
                                 0/1 class flags (rows x C) */
    int64_t per_epoch;        /* pairs an epoch makes (for progress) */
    /* the current epoch's pairs (owned) */
    int64_t *order, *pa, *pb;
    int32_t *pc;
    const int64_t *ia, *ib;
    int64_t n;
} cmir__train_pairs;

/* ---- train.c: rules and progress ---------------------------------------- */
/* The precision (cmir_precision) a run of p trains at, AUTO resolved into
 * *out (collective under MPI: every rank calls it); 0 or CMIR_E*. */
int cmir__train_precision(const cmir_train_params *p, int *out);
double cmir__train_now(void);
/* Epochs for at least min_steps steps of per_epoch batches each, and at
 * least min_epochs, capped at CMIR__TRAIN_MAX_EPOCHS (never below min_epochs). */
int cmir__train_epochs_for_steps(int64_t per_epoch, int64_t min_steps, int min_epochs);
/* Adds `add` progress units; msg (or NULL) goes to the callback. */
int cmir__train_report(cmir__train_job *J, double add, const char *msg);

/* ---- train_split.c ------------------------------------------------------ */
void cmir__train_shuffle(cmir_rng *r, int64_t *v, int64_t n);
int cmir__train_split(cmir__train_job *J);

/* ---- train_valid.c: validation split, label budget, best-epoch choice ---- */
/* Moves a seeded share valid_frac of the training tiles to J->valid and
 * keeps a seeded share label_frac of the rest (the others join J->unlab);
 * draws nothing at the defaults. */
int cmir__train_split_valid(cmir__train_job *J);
/* Mean stage-1 loss of CNN k (inference mode) on the validation tiles. */
int cmir__train_valid_loss(cmir__train_job *J, int k, float *raw, float *x, double *loss);
/* The best epoch so far of a stage-1 CNN, its weights in ts (NULL: none yet). */
typedef struct cmir__train_best {
    cmir_tensorset *ts;
    double loss;
    int epoch;
} cmir__train_best;
/* After epoch (1-based): validation loss; snapshot when it is the lowest. No-op without validation tiles. */
int cmir__train_best_update(cmir__train_job *J, int k, cmir__train_best *b, int epoch, float *raw, float *x);
/* The best epoch's weights back into CNN k (unless it was the last), recorded in
 * the settings and rep; frees the snapshot. */
int cmir__train_best_restore(cmir__train_job *J, int k, cmir__train_best *b, int last_epoch, cmir_train_report *rep);

/* ---- train_stage0.c: -init and stage 0 ----------------------------------- */
/* CNN weights of another model into J->m (heads of another shape kept). */
int cmir__train_init_from(cmir__train_job *J, const char *path);
/* Stage 0 on J->p.pretrain: InfoNCE on PAN/MS pairs, both CNNs. */
int cmir__train_stage0(cmir__train_job *J, cmir_train_report *rep);

/* ---- train_checkpoint.c -------------------------------------------------- */
int cmir__train_save_checkpoint(cmir__train_job *J, int stage, int epochs_done, cmir_optim *o);
int cmir__train_restore_optim(cmir__train_job *J, cmir_optim *o);
int cmir__train_load_checkpoint(cmir__train_job *J);
/* -stage1_from: the other model's CNNs and normalisation, if its split is this run's. */
int cmir__train_stage1_from(cmir__train_job *J, const char *path);

/* ---- train_batch.c -------------------------------------------------------- */
const int64_t *cmir__train_side_train(const cmir__train_job *J, int k, int64_t *n);
int64_t cmir__train_side_items(const cmir__train_job *J, int k);
int cmir__train_tile_elems(const cmir_model_info *i, int k, int *bands);
int cmir__train_norm_stats(cmir__train_job *J, float *buf);
int cmir__train_load_batch(cmir__train_job *J, int k, const int64_t *idx, int n, float *raw, float *x);
void cmir__train_augment(cmir__train_job *J, int k, float *x, int nl, int at, int n, float *tmp);
void cmir__train_labels_of(cmir__train_job *J, int k, const int64_t *idx, int n, int32_t *lab, float *tg);

/* ---- train_stage1.c -------------------------------------------------------- */
int cmir__train_stage1_epochs(const cmir__train_job *J, int k);
int cmir__train_stage1(cmir__train_job *J, int k, float *raw, float *x, cmir_train_report *rep);
int cmir__train_all_features(cmir__train_job *J, float *raw, float *x, float *Z[2]);
void cmir__train_z_stats(cmir__train_job *J, float *Z[2]);

/* ---- train_stage2.c -------------------------------------------------------- */
/* Stage 2: trains u (with the optimiser's moments from J->resume when it
 * stopped in stage 2) on the pairs of ps over the features Z[0], Z[1]
 * (rows of u's d_in), J->p.epochs2 epochs; fills rep->stage2 (the last
 * epoch's mean losses) and rep->stage2_samples_per_s. Frees ps's arrays. */
int cmir__train_stage2_run(cmir__train_job *J, cmir_unified *u, cmir__train_pairs *ps, float *const Z[2],
                           cmir_train_report *rep);
int cmir__train_export_features(cmir__train_job *J, float *Z[2]);
/* unified.mat's featuresx, featuresy (N x d_v) of the N rows of Z[0], Z[1]. */
int cmir__train_encode_all(cmir_unified *u, cmir_exec *ex, float *const Z[2], int64_t N, float *V[2]);
int cmir__train_export_unified(cmir__train_job *J, float *Z[2]);

/* ---- train_speech.c -------------------------------------------------------- */
int cmir__train_speech_setup(cmir__train_job *J, const char *archive_path);
int cmir__train_speech_tables(cmir__train_job *J);
/* One epoch's image-speech pairs into ps (pa, pb, pc, n), shuffled. */
int cmir__train_speech_pairs(cmir__train_job *J, cmir__train_pairs *ps);

/* ---- train_dp.c: data-parallel stage 1 (J->dp NULL: one process) ------------ */
int cmir__train_dp_open(cmir__train_job *J, const char *archive_path);
void cmir__train_dp_close(cmir__train_job *J);
/* This rank's share [*at, *at + *nl) of a global batch of n. */
void cmir__train_dp_share(const cmir__train_job *J, int64_t n, int *at, int *nl);
/* Draws of the RNG that other ranks' samples use (dropout: one per value). */
void cmir__train_dp_skip(cmir__train_job *J, int64_t draws);
/* Between begin and end the batch norm of J->ex sums over the ranks. */
void cmir__train_dp_begin(cmir__train_job *J);
void cmir__train_dp_end(cmir__train_job *J);
/* The orthogonality penalty of the global batch of n on this rank's nl rows. */
int cmir__train_dp_ortho(cmir__train_job *J, const float *Z, int nl, int n, float scale, float *loss, float *dZ);
/* Sums the CNN's gradients and extra[0..2) over the ranks. */
int cmir__train_dp_grads(cmir__train_job *J, cmir_cnn *c, float extra[2]);
/* A step whose share here is empty: the other ranks' draws and sums, zero
 * gradients and extras (then summed by cmir__train_dp_grads as any share's). */
int cmir__train_dp_idle(cmir__train_job *J, int k, int n, float extra[2]);
/* Rank 0's CNN k (its batch-norm running statistics) on every rank. */
int cmir__train_dp_sync_cnn(cmir__train_job *J, int k);
/* Rows [lo, hi) of Z (N x width) are this rank's share: all of them everywhere. */
int cmir__train_dp_gather_rows(cmir__train_job *J, float *Z, int64_t N, int width);

#endif
