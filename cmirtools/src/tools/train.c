/* cmir_train(): CMIR-NET end to end on a tile archive. Setup and the
 * driver: the parameters' rules, the split (train_split.c), per-band
 * normalisation (train_batch.c), stage 1 and the features of every tile
 * (train_stage1.c), stage 2 on the training pairs (train_stage2.c), then
 * the model file; checkpoints in train_checkpoint.c. Tiles are streamed. */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

cmir_train_params cmir_train_default_params(void)
{
    cmir_train_params p;
    memset(&p, 0, sizeof p);
    p.seed = 1;
    p.test_frac = 0.2;
    p.split_by_scene = 1;
    p.batch = 64;
    p.epochs1 = 10;
    p.epochs2 = 0; /* auto */
    p.lr1 = 1e-3f;
    p.lr2 = 1e-3f;
    p.ortho = 0.1f;
    p.dropout = 0.5f;
    p.descriptor = 1;
    p.precision = CMIR_PRECISION_AUTO;
    p.unlabelled_pairs = 1;
    p.cnn_weight = 0.1f;
    p.augment = 1;
    p.unified = cmir_unified_default_params();
    p.max_stat_tiles = 2000;
    p.speech_steps = 1000;
    p.audio_feature = CMIR_AUDIO_FEATURE_SPHINX;
    p.feature_noise = 0.5f;
    p.label_frac = 1;
    p.epochs0 = 10;
    p.lr0 = 1e-3f;
    p.tau = 0.1f;
    return p;
}

#define BAD(...) cmir__error(CMIR_EINVAL, __VA_ARGS__)

/* The fields stage 2 reads (cmir_train_unified's too); who names the caller. */
static int check_stage2(const cmir_train_params *p, const char *who)
{
    if (p->batch < 2 || p->batch > CMIR__TRAIN_MAX_BATCH)
        return BAD("%s: batch must be in 2..%d, got %d", who, CMIR__TRAIN_MAX_BATCH, p->batch);
    if (p->epochs2 < 0)
        return BAD("%s: epochs2 must be >= 0 (0 = automatic), got %d", who, p->epochs2);
    if (!(p->lr2 > 0))
        return BAD("%s: lr2 must be > 0, got %g", who, (double)p->lr2);
    if (p->threads < 0)
        return BAD("%s: threads must be >= 0 (0 = all CPUs), got %d", who, p->threads);
    /* d_in and n_classes come from the data */
    cmir_unified_params u = p->unified;
    u.d_in = CMIR_FEAT_DIM;
    u.n_classes = 2;
    if (cmir_unified_check_params(u)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        const char *field = strchr(msg, ' '); /* past "cmir_unified_params:" */
        return BAD("%s: unified.%s", who, field ? field + 1 : msg);
    }
    return 0;
}

int cmir_train_check_params(cmir_train_params p)
{
    const char *who = "cmir_train";
    int rc = check_stage2(&p, who);
    if (rc)
        return rc;
    if (p.precision != CMIR_PRECISION_FP32 && p.precision != CMIR_PRECISION_BF16 &&
        p.precision != CMIR_PRECISION_AUTO)
        return BAD("%s: cmir_train_params.precision must be auto, fp32 or bf16, got %d", who,
                   p.precision);
    if (p.epochs1 < 0)
        return BAD("%s: epochs1 must be >= 0, got %d", who, p.epochs1);
    if (!(p.test_frac >= 0 && p.test_frac < 1))
        return BAD("%s: test_frac must be in [0, 1), got %g", who, p.test_frac);
    if (!(p.lr1 > 0))
        return BAD("%s: lr1 must be > 0, got %g", who, (double)p.lr1);
    if (!(p.dropout >= 0 && p.dropout < 1))
        return BAD("%s: dropout must be in [0, 1), got %g", who, (double)p.dropout);
    if (p.speech_steps < 0)
        return BAD("%s: speech_steps must be >= 0, got %d", who, p.speech_steps);
    if (!(p.valid_frac >= 0 && p.valid_frac < 1) || !(p.test_frac + p.valid_frac < 1))
        return BAD("%s: valid_frac must be in [0, 1) and test_frac + valid_frac < 1, got %g", who, p.valid_frac);
    if (p.unlabelled_pairs != 0 && p.unlabelled_pairs != 1)
        return BAD("%s: unlabelled_pairs must be 0 or 1, got %d", who, p.unlabelled_pairs);
    if (p.descriptor != 0 && p.descriptor != 1)
        return BAD("%s: descriptor must be 0 or 1, got %d", who, p.descriptor);
    if (!(p.cnn_weight > 0 && p.cnn_weight <= 1))
        return BAD("%s: cnn_weight must be in (0, 1], got %g", who, p.cnn_weight);
    if (!(p.label_frac > 0 && p.label_frac <= 1))
        return BAD("%s: label_frac must be in (0, 1], got %g", who, p.label_frac);
    if (p.epochs0 < 0)
        return BAD("%s: epochs0 must be >= 0, got %d", who, p.epochs0);
    if (!(p.lr0 > 0))
        return BAD("%s: lr0 must be > 0, got %g", who, (double)p.lr0);
    if (!(p.tau > 0))
        return BAD("%s: tau must be > 0, got %g", who, (double)p.tau);
    if (p.resume && (p.valid_frac > 0 || p.pretrain || p.init_model))
        return BAD("%s: resume is not available with valid_frac, pretrain or init_model", who);
    if (p.speech_manifest && (p.pretrain || p.init_model))
        return BAD("%s: pretrain and init_model are for PAN/MS archives, not speech_manifest", who);
    if (!(p.feature_noise >= 0))
        return BAD("%s: feature_noise must be >= 0, got %g", who, (double)p.feature_noise);
    if (p.audio_feature < CMIR_AUDIO_FEATURE_CEPSTRAL || p.audio_feature > CMIR_AUDIO_FEATURE_SPHINX)
        return BAD("%s: audio_feature must be CMIR_AUDIO_FEATURE_CEPSTRAL, _SEGMENTAL or _SPHINX, got %d", who,
                   p.audio_feature);
    return 0;
}

int cmir_train_unified_check_params(cmir_train_params p) { return check_stage2(&p, "cmir_train_unified"); }

#undef BAD

double cmir__train_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cmir__train_epochs_for_steps(int64_t per_epoch, int64_t min_steps, int min_epochs)
{
    int64_t e = per_epoch > 0 ? (min_steps + per_epoch - 1) / per_epoch : 1;
    return (int)(e > min_epochs ? (e > CMIR__TRAIN_MAX_EPOCHS ? CMIR__TRAIN_MAX_EPOCHS : e) : min_epochs);
}

int cmir__train_report(cmir__train_job *J, double add, const char *msg)
{
    J->done += add;
    if (J->progress && !cmir_dist_rank() && /* under MPI rank 0 speaks */ J->progress(J->total > 0 ? fmin(1.0, J->done / J->total) : 0, msg, J->user))
        return cmir__error(CMIR_ECANCEL, "cancelled");
    return 0;
}

static void settings_text(cmir__train_job *J, char *s, size_t n)
{
    const cmir_train_params *p = &J->p;
    const cmir_unified_params *u = &p->unified;
    char steps[96] = "";
    if (p->speech_manifest)
        snprintf(steps, sizeof steps, "\nspeech_steps=%d\naudio_feature=%d\nfeature_noise=%g", p->speech_steps,
                 p->audio_feature, p->feature_noise);
    snprintf(s, n,
             "seed=%llu\nthreads=%d\ntest_frac=%g\nsplit_by_scene=%d\nbatch=%d\nepochs1=%d\nepochs2=%d\n"
             "lr1=%g\nlr2=%g\northo=%g\ndropout=%g\naugment=%d\nd_v=%d\nhidden=%d\nw_pair=%g\nw_class=%g\nw_norm=%g\n"
             "w_cross=%g\nw_reg=%g\nalpha=%g\nn_train=%lld\nn_test=%lld%s%s%s",
             (unsigned long long)p->seed, cmir_exec_threads(J->ex), p->test_frac, p->split_by_scene, p->batch,
             p->epochs1, p->epochs2, p->lr1, p->lr2, p->ortho, p->dropout, p->augment, u->d_v, u->hidden, u->w_pair, u->w_class,
             u->w_norm, u->w_cross, u->w_reg, u->alpha, (long long)J->n_train, (long long)J->n_test,
             p->speech_manifest ? "\nspeech_manifest=" : "", p->speech_manifest ? p->speech_manifest : "", steps);
    size_t len = strlen(s);
    if (J->m && J->m->info.descriptor) /* image-speech models have none */
        snprintf(s + len, n - len, "\ndescriptor=1\ncnn_weight=%g", p->cnn_weight);
    len = strlen(s);
    if (p->valid_frac > 0 || p->label_frac < 1)
        snprintf(s + len, n - len, "\nvalid_frac=%g\nn_valid=%lld\nlabel_frac=%g", p->valid_frac, (long long)J->n_valid,
                 p->label_frac);
    len = strlen(s);
    if (J->n_unlab && p->unlabelled_pairs && !p->speech_manifest)
        snprintf(s + len, n - len, "\nunlabelled_pairs=%lld", (long long)J->n_unlab);
    len = strlen(s);
    if (p->init_model)
        snprintf(s + len, n - len, "\ninit_model=%s", p->init_model);
    len = strlen(s);
    if (p->pretrain)
        snprintf(s + len, n - len, "\npretrain=%s\nepochs0=%d\nlr0=%g\ntau=%g", p->pretrain, p->epochs0, p->lr0, p->tau);
}

/* The untrained model for the archive's sizes and classes (image-speech:
 * side b is the clip feature). */
static int build_model(cmir__train_job *J)
{
    cmir_cnn_params cp = cmir_cnn_default_params();
    cp.dropout = J->p.dropout;
    J->m = cmir__model_for_archive(J->a, cp, J->p.unified, J->p.seed,
                           cmir__train_is_speech(J) ? CMIR_SCENARIO_IMAGE_SPEECH : CMIR_SCENARIO_PAN_MS);
    if (!J->m)
        return cmir__failed(CMIR_EINVAL);
    J->m->info.descriptor = J->p.descriptor && !cmir__train_is_speech(J);
    J->m->info.cnn_weight = J->m->info.descriptor ? J->p.cnn_weight : 1.0f;
    J->m->info.precision = cmir_nn_precision() == CMIR_PRECISION_BF16 && cmir_nn_bf16_available()
                               ? CMIR_PRECISION_BF16
                               : CMIR_PRECISION_FP32;
    if (cmir__train_is_speech(J))
        return cmir_model_set_audio(J->m, J->p.audio_feature, cmir_audio_corpus_vocabulary(J->corpus));
    return 0;
}

/* Opens the archive (and the speech corpus), builds the model and splits. */
static int job_open(cmir__train_job *J, const char *archive_path)
{
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = J->p.threads;
    J->ex = cmir_exec_new(ep);
    J->rng = cmir_rng_new(J->p.seed);
    J->a = cmir_archive_open(archive_path);
    if (!J->ex || !J->rng)
        return CMIR_ENOMEM;
    if (!J->a)
        return cmir__failed(CMIR_EIO);
    const cmir_archive_info *ai = J->ai = cmir_archive_get_info(J->a);
    if (ai->n_classes < 2)
        return cmir__error(CMIR_EINVAL, "%s: needs labels of at least 2 classes to train (has %d)", archive_path,
                           ai->n_classes);
    if (ai->n_classes > CMIR__TRAIN_MAX_LABEL || ai->pan_bands > CMIR__TRAIN_MAX_BANDS ||
        ai->ms_bands > CMIR__TRAIN_MAX_BANDS)
        return cmir__error(CMIR_EINVAL, "%s: %d classes, %d PAN and %d MS bands: at most %d classes and %d bands",
                           archive_path, ai->n_classes, ai->pan_bands, ai->ms_bands, CMIR__TRAIN_MAX_LABEL,
                           CMIR__TRAIN_MAX_BANDS);
    if (J->p.unified.multilabel && !ai->has_multilabel)
        return cmir__error(CMIR_EINVAL, "%s: multi-label training asked, but the archive has no MULTI_LABELS",
                           archive_path);
    J->ml1[0] = J->ml1[1] = J->p.unified.multilabel;
    int rc = 0;
    if (J->p.speech_manifest)
        rc = cmir__train_speech_setup(J, archive_path);
    if (!rc)
        rc = build_model(J);
    if (!rc)
        rc = cmir__train_split(J);
    if (!rc)
        rc = cmir__train_split_valid(J);
    if (!rc && cmir__train_is_speech(J))
        rc = cmir__train_speech_tables(J);
    if (!rc)
        rc = cmir__train_dp_open(J, archive_path);
    return rc;
}

/* Tile buffers for a batch (and an embedding batch) of either side. */
static int alloc_tiles(cmir__train_job *J, float **raw, float **x)
{
    int B0, B1;
    size_t n0 = (size_t)cmir__train_tile_elems(&J->m->info, 0, &B0);
    size_t n1 = (size_t)cmir__train_tile_elems(&J->m->info, 1, &B1);
    size_t per = n0 > n1 ? n0 : n1;
    size_t nb = (size_t)(J->p.batch > CMIR_EMBED_BATCH ? J->p.batch : CMIR_EMBED_BATCH);
    *raw = cmir__malloc_aligned(sizeof(float) * per * nb);
    *x = cmir__malloc_aligned(sizeof(float) * per * nb);
    return *raw && *x ? 0 : CMIR_ENOMEM;
}

/* Stage-2 pairs an epoch makes. */
static int64_t pairs_per_epoch(const cmir__train_job *J)
{
    return cmir__train_is_speech(J) ? J->est_pairs : J->n_train + (J->p.unlabelled_pairs ? J->n_unlab : 0);
}

/* The epochs (epochs2 = 0: automatic), the settings text, the resumed
 * checkpoint or reused stage 1, the progress total, the normalisation. */
static int job_plan(cmir__train_job *J, float *raw)
{
    if (J->p.epochs2 == 0) {
        J->p.epochs2 = cmir__train_epochs_for_steps((pairs_per_epoch(J) + J->p.batch - 1) / J->p.batch,
                                                    CMIR__TRAIN_AUTO_STEPS2, CMIR__TRAIN_AUTO_EPOCHS2);
        if (!cmir__train_is_speech(J) && J->p.epochs2 > CMIR__TRAIN_AUTO_MAX_EPOCHS2)
            J->p.epochs2 = CMIR__TRAIN_AUTO_MAX_EPOCHS2;
    }
    settings_text(J, J->settings, sizeof J->settings); /* before -stage1_from sets epochs1 to 0 */
    int rc = 0;
    if (J->p.resume)
        rc = cmir__train_load_checkpoint(J);
    if (!rc && J->p.stage1_from) {
        rc = cmir__train_stage1_from(J, J->p.stage1_from);
        J->p.epochs1 = 0;
    }
    if (rc)
        return rc;
    int64_t n1;
    cmir__train_side_train(J, 1, &n1);
    J->total = (double)J->p.epochs1 * (double)J->n_train + (double)cmir__train_stage1_epochs(J, 1) * (double)n1 +
               (double)(cmir__train_side_items(J, 0) + cmir__train_side_items(J, 1)) +
               (double)J->p.epochs2 * (double)pairs_per_epoch(J) * CMIR__TRAIN_PROGRESS2;
    if (!J->p.stage1_from && !J->resume)
        rc = cmir__train_norm_stats(J, raw);
    if (!rc && J->p.init_model && !J->p.stage1_from)
        rc = cmir__train_init_from(J, J->p.init_model);
    return rc;
}

/* Stage 2 on the training pairs: tiles by index, or image-speech pairs by label. */
static int stage2(cmir__train_job *J, float *Z[2], cmir_train_report *rep)
{
    cmir__train_pairs ps;
    memset(&ps, 0, sizeof ps);
    ps.by_label = cmir__train_is_speech(J);
    ps.rows = J->train;
    ps.n_rows = J->n_train;
    if (J->p.unlabelled_pairs && !ps.by_label) {
        ps.free_rows = J->unlab;
        ps.n_free = J->n_unlab;
    }
    ps.per_epoch = pairs_per_epoch(J);
    return cmir__train_stage2_run(J, J->m->uni, &ps, Z, rep);
}

/* Stages 1 and 2, the model file and the optional exports. The training
 * steps run at the run's precision; the stage-1 features of every tile and
 * the exported codes are inference and run at fp32, as cmir_model_embed
 * does, so what training writes is what the model embeds later. */
static int job_run(cmir__train_job *J, const char *model_path, float *raw, float *x, float *Z[2],
                   cmir_train_report *rep)
{
    const cmir_precision run = cmir_nn_precision();
    int rc = J->p.pretrain && !J->p.stage1_from ? cmir__train_stage0(J, rep) : 0;
    for (int k = 0; !rc && k < 2; k++)
        rc = cmir__train_stage1(J, k, raw, x, rep);
    cmir_nn_set_precision(CMIR_PRECISION_FP32);
    if (!rc)
        rc = cmir__train_all_features(J, raw, x, Z);
    if (!rc && J->p.features_dir && !cmir_dist_rank())
        rc = cmir__train_export_features(J, Z); /* raw Z, as the paper's step 2 reads them */
    if (!rc) {
        cmir__train_z_stats(J, Z);
        cmir__model_zstd(J->m, 0, Z[0], cmir__train_side_items(J, 0));
        cmir__model_zstd(J->m, 1, Z[1], cmir__train_side_items(J, 1));
        cmir_nn_set_precision(run);
        rc = stage2(J, Z, rep);
        cmir_nn_set_precision(CMIR_PRECISION_FP32);
    }
    if (!rc) {
        J->m->settings = cmir__strdup(J->settings);
        J->m->n_tiles = J->ai->n_tiles;
        J->m->test = J->test;
        J->m->n_test = J->n_test;
        J->test = NULL;
        J->m->valid = J->valid;
        J->m->n_valid = J->n_valid;
        J->valid = NULL;
        /* under MPI every rank holds the same model; rank 0 writes it */
        rc = !J->m->settings ? CMIR_ENOMEM : cmir_dist_rank() ? 0 : cmir__model_save(J->m, model_path);
    }
    if (!rc && J->p.unified_path && !cmir_dist_rank())
        rc = cmir__train_export_unified(J, Z);
    cmir_nn_set_precision(run);
    return rc;
}

static void job_close(cmir__train_job *J)
{
    cmir__train_dp_close(J);
    cmir__free(J->train);
    cmir__free(J->test);
    cmir__free(J->valid);
    cmir__free(J->unlab);
    cmir_model_free(J->m);
    cmir_archive_close(J->a);
    cmir_rng_free(J->rng);
    cmir_exec_free(J->ex);
    cmir_tensorset_free(J->resume);
    cmir_audio_corpus_free(J->corpus);
    cmir__free(J->aud_class);
    cmir__free(J->atrain);
    cmir__free(J->amulti);
    cmir__free(J->bclass);
}

/* The precision a run of p trains at. AUTO: bf16 only where every
 * rank's CPU has AVX512_BF16 (collective under MPI), so the ranks of one
 * run never mix precisions, and only for PAN/MS tile archives: bf16's
 * quality was measured against fp32 there (bench/precision.sh), not for
 * image-speech. */
int cmir__train_precision(const cmir_train_params *p, int *out)
{
    int precision = p->precision;
    if (precision == CMIR_PRECISION_AUTO) {
        int lacks = !cmir_nn_bf16_available() || p->speech_manifest;
        int rc = cmir_dist_size() > 1 ? cmir_dist_max_int(&lacks, 1) : 0;
        if (rc)
            return rc;
        precision = lacks ? CMIR_PRECISION_FP32 : CMIR_PRECISION_BF16;
    }
    *out = precision;
    return 0;
}

static int set_precision(const cmir_train_params *p)
{
    int precision, rc = cmir__train_precision(p, &precision);
    return rc ? rc : cmir_nn_set_precision((cmir_precision)precision);
}

int cmir_train(const char *archive_path, const char *model_path, cmir_train_params p,
               cmir_progress_fn progress, void *user, cmir_train_report *rep_out)
{
    if (!archive_path || !model_path)
        return cmir__error(CMIR_EINVAL, "cmir_train: need an archive and a model path");
    int rc = cmir_train_check_params(p);
    if (rc)
        return rc;
    cmir_train_report rep;
    memset(&rep, 0, sizeof rep);
    cmir__train_job J;
    memset(&J, 0, sizeof J);
    J.p = p;
    J.progress = progress;
    J.user = user;
    double t0 = cmir__train_now();
    float *raw = NULL, *x = NULL, *Z[2] = {NULL, NULL};
    cmir_precision prec = cmir_nn_precision();
    rc = set_precision(&p);
    char what[512];
    snprintf(what, sizeof what, "training %s from %s", model_path, archive_path);
    if (!rc)
        rc = cmir_dist_doing(what); /* for the line a dead rank gets (cmir_dist_watch) */
    if (!rc)
        rc = job_open(&J, archive_path);
    if (!rc)
        rc = alloc_tiles(&J, &raw, &x);
    if (!rc)
        rc = job_plan(&J, raw);
    if (!rc)
        rc = job_run(&J, model_path, raw, x, Z, &rep);
    rep.n_train = J.n_train;
    rep.n_valid = J.n_valid;
    rep.n_test = J.m ? J.m->n_test : 0;
    rep.seconds = cmir__train_now() - t0;
    if (rep_out)
        *rep_out = rep;
    cmir__free(Z[0]);
    cmir__free(Z[1]);
    cmir__free_aligned(raw);
    cmir__free_aligned(x);
    job_close(&J);
    if (rc && cmir_dist_size() > 1 && strncmp(cmir_last_error(), "rank ", 5)) {
        /* under MPI one rank may fail alone: say which */
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        cmir__error(rc, "rank %d: %s", cmir_dist_rank(), msg);
    }
    cmir_nn_set_precision(prec);
    return rc;
}
