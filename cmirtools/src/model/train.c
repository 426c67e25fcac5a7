/* cmir_train(): CMIR-NET end to end on a tile archive. Split (by scene
 * when the archive records scenes), per-band normalisation from a sample
 * of the training tiles, stage 1 (one CNN per modality, cross-entropy +
 * orthogonality), features of every tile, stage 2 (the unified space on
 * the training pairs), then the model file. Tiles are streamed. */
#include "cmir/train.h"
#include "cmir/audio.h"
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    p.augment = 1;
    p.unified = cmir_unified_default_params();
    p.max_stat_tiles = 2000;
    p.speech_steps = 1000;
    p.audio_feature = CMIR_AUDIO_FEATURE_SPHINX;
    p.feature_noise = 0.5f;
    return p;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void shuffle(cmir_rng *r, int64_t *v, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cmir_rng_below(r, (uint64_t)i + 1);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

typedef struct job {
    cmir_train_params p;
    cmir_archive *a;
    const cmir_archive_info *ai;
    cmir_model *m;
    cmir_exec *ex;
    cmir_rng *rng;
    int64_t *train, n_train, *test, n_test;
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
} job;

static int is_speech(const job *J) { return J->corpus != NULL; }

/* The training items of side k: tile indices, or clip indices. */
static const int64_t *side_train(const job *J, int k, int64_t *n)
{
    if (k && is_speech(J)) {
        *n = J->n_atrain;
        return J->atrain;
    }
    *n = J->n_train;
    return J->train;
}

/* Items of side k that get features: every tile, or every clip. */
static int64_t side_items(const job *J, int k)
{
    return k && is_speech(J) ? cmir_audio_corpus_count(J->corpus) : J->ai->n_tiles;
}

/* Raw item i of side k into out (h x w x bands floats). */
static int read_item(job *J, int k, int64_t i, float *out)
{
    if (k && is_speech(J)) {
        memcpy(out, cmir_audio_corpus_features(J->corpus) + (size_t)i * CMIR_AUDIO_FEATURE_DIM,
               sizeof(float) * CMIR_AUDIO_FEATURE_DIM);
        return 0;
    }
    return cmir_archive_read_tile(J->a, k ? CMIR_MS : CMIR_PAN, i, out);
}

#define CKPT_FORMAT "cmir-checkpoint 1"

/* Writes the checkpoint: every network so far, the normalisation, the
 * current optimiser's moments, the RNG state, and where we are. */
static int save_checkpoint(job *J, int stage, int epochs_done, cmir_optim *o)
{
    if (!J->p.checkpoint)
        return 0;
    cmir_tensorset *ts = cmir_tensorset_new();
    if (!ts)
        return CMIR_ENOMEM;
    char buf[160];
    uint64_t st[4];
    cmir_rng_get_state(J->rng, st);
    int rc = cmir_tensorset_put_string(ts, "CKPT_FORMAT", CKPT_FORMAT);
    snprintf(buf, sizeof buf, "%d %d %016llx %016llx %016llx %016llx", stage, epochs_done, (unsigned long long)st[0],
             (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3]);
    if (!rc) rc = cmir_tensorset_put_string(ts, "CKPT_STATE", buf);
    if (!rc) rc = cmir_tensorset_put_string(ts, "CKPT_SETTINGS", J->settings);
    if (!rc) rc = cmir_cnn_save(J->m->cnn[0], ts, "pan_");
    if (!rc) rc = cmir_cnn_save(J->m->cnn[1], ts, "ms_");
    if (!rc && stage == 2) rc = cmir_unified_save(J->m->uni, ts);
    for (int k = 0; !rc && k < 2; k++) {
        int64_t nb = k ? J->m->info.ms_bands : J->m->info.pan_bands;
        cmir_tensor mu = cmir_tensor_make(J->m->mean[k], 1, &nb), sd = cmir_tensor_make(J->m->std[k], 1, &nb);
        rc = cmir_tensorset_put(ts, k ? "MS_MEAN" : "PAN_MEAN", &mu);
        if (!rc)
            rc = cmir_tensorset_put(ts, k ? "MS_STD" : "PAN_STD", &sd);
    }
    snprintf(buf, sizeof buf, "%lld", (long long)cmir_optim_steps(o));
    if (!rc) rc = cmir_tensorset_put_string(ts, "OPT_STEPS", buf);
    for (int i = 0; !rc; i++) {
        float *m, *v;
        size_t n;
        if (cmir_optim_state(o, i, &m, &v, &n))
            break;
        int64_t nn = (int64_t)n;
        cmir_tensor tm = cmir_tensor_make(m, 1, &nn), tv = cmir_tensor_make(v, 1, &nn);
        snprintf(buf, sizeof buf, "opt_m_%d", i);
        rc = cmir_tensorset_put(ts, buf, &tm);
        snprintf(buf, sizeof buf, "opt_v_%d", i);
        if (!rc && v)
            rc = cmir_tensorset_put(ts, buf, &tv);
    }
    cmir__clear_error();
    if (!rc)
        rc = cmir_tensorset_save(ts, J->p.checkpoint);
    cmir_tensorset_free(ts);
    return rc;
}

/* Restores the optimiser's moments from the checkpoint. */
static int restore_optim(job *J, cmir_optim *o)
{
    const char *s = cmir_tensorset_get_string(J->resume, "OPT_STEPS");
    if (!s)
        return cmir__error(CMIR_EFORMAT, "%s: no OPT_STEPS", J->p.resume);
    cmir_optim_set_steps(o, atoll(s));
    char name[32];
    for (int i = 0;; i++) {
        float *m, *v;
        size_t n;
        if (cmir_optim_state(o, i, &m, &v, &n))
            break;
        int64_t nn = (int64_t)n;
        snprintf(name, sizeof name, "opt_m_%d", i);
        int rc = cmir_tensorset_expect(J->resume, name, 1, &nn);
        if (rc)
            return rc;
        memcpy(m, cmir_tensorset_get(J->resume, name)->data, sizeof(float) * n);
        if (v) {
            snprintf(name, sizeof name, "opt_v_%d", i);
            if ((rc = cmir_tensorset_expect(J->resume, name, 1, &nn)))
                return rc;
            memcpy(v, cmir_tensorset_get(J->resume, name)->data, sizeof(float) * n);
        }
    }
    cmir__clear_error();
    return 0;
}

/* Stage-1 state from a tensor set (a model file or a checkpoint): both
 * CNNs and the per-band normalisation. Messages are prefixed with path. */
static int load_stage1(job *J, const cmir_tensorset *ts, const char *path)
{
    int rc = 0;
    for (int k = 0; !rc && k < 2; k++) {
        int64_t nb = k ? J->m->info.ms_bands : J->m->info.pan_bands;
        const char *mn = k ? "MS_MEAN" : "PAN_MEAN", *sn = k ? "MS_STD" : "PAN_STD";
        if (!(rc = cmir_cnn_load(J->m->cnn[k], ts, k ? "ms_" : "pan_")) &&
            !(rc = cmir_tensorset_expect(ts, mn, 1, &nb)) && !(rc = cmir_tensorset_expect(ts, sn, 1, &nb))) {
            memcpy(J->m->mean[k], cmir_tensorset_get(ts, mn)->data, sizeof(float) * (size_t)nb);
            memcpy(J->m->std[k], cmir_tensorset_get(ts, sn)->data, sizeof(float) * (size_t)nb);
        }
    }
    if (rc) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        cmir__error(rc, "%s: %s", path, msg);
    }
    return rc;
}

/* -stage1_from: the CNNs were trained on the other model's training tiles, so
 * its held-out set must be exactly this run's, or test tiles would have been
 * trained on (another -seed or -test_frac draws another split). A model's
 * TEST_TILES is its run's test list as written (modelfile.c), in split()'s
 * order, so the same split gives the same sequence. */
static int same_split(job *J, const cmir_tensorset *ts, const char *path)
{
    const cmir_tensor *nt = cmir_tensorset_get(ts, "N_TILES"), *tt = cmir_tensorset_get(ts, "TEST_TILES");
    if (!nt || cmir_tensor_numel(nt) != 1 || !tt)
        return cmir__error(CMIR_EFORMAT, "%s: no N_TILES or TEST_TILES: not a CMIR model", path);
    int same = nt->data[0] == (float)J->ai->n_tiles && cmir_tensor_numel(tt) == J->n_test;
    for (int64_t i = 0; same && i < J->n_test; i++)
        same = tt->data[i] == (float)J->test[i];
    if (!same)
        return cmir__error(CMIR_EINVAL,
                           "%s: its held-out tiles are not this run's split (another archive, -seed, -test_frac or "
                           "-split): its CNNs have seen this run's test tiles",
                           path);
    return 0;
}

/* Loads a checkpoint made with the same archive and settings. */
static int load_checkpoint(job *J)
{
    const char *path = J->p.resume;
    J->resume = cmir_tensorset_load(path);
    if (!J->resume)
        return cmir__failed(CMIR_EIO);
    const char *f = cmir_tensorset_get_string(J->resume, "CKPT_FORMAT");
    const char *st = cmir_tensorset_get_string(J->resume, "CKPT_STATE");
    const char *se = cmir_tensorset_get_string(J->resume, "CKPT_SETTINGS");
    if (!f || strcmp(f, CKPT_FORMAT) || !st || !se)
        return cmir__error(CMIR_EFORMAT, "%s: not a CMIR checkpoint", path);
    if (strcmp(se, J->settings) != 0)
        return cmir__error(CMIR_EINVAL, "%s: made with other settings or another archive; resume with the same ones",
                           path);
    unsigned long long s[4];
    if (sscanf(st, "%d %d %llx %llx %llx %llx", &J->r_stage, &J->r_epoch, &s[0], &s[1], &s[2], &s[3]) != 6 ||
        J->r_stage < 0 || J->r_stage > 2 || J->r_epoch < 0)
        return cmir__error(CMIR_EFORMAT, "%s: damaged CKPT_STATE", path);
    uint64_t state[4] = {s[0], s[1], s[2], s[3]};
    cmir_rng_set_state(J->rng, state);
    int rc = load_stage1(J, J->resume, path);
    if (!rc && J->r_stage == 2 && (rc = cmir_unified_load(J->m->uni, J->resume))) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        cmir__error(rc, "%s: %s", path, msg);
    }
    return rc;
}

static int report(job *J, double add, const char *msg)
{
    J->done += add;
    if (J->progress && J->progress(J->total > 0 ? fmin(1.0, J->done / J->total) : 0, msg, J->user))
        return cmir__error(CMIR_ECANCEL, "cancelled");
    return 0;
}

static int is_labelled(const cmir_archive *a, int64_t i, int multilabel, uint8_t *tmp)
{
    if (!multilabel)
        return cmir_archive_label(a, i) > 0;
    if (cmir_archive_multilabel(a, i, tmp))
        return 0;
    for (int c = 0; c < cmir_archive_get_info(a)->n_classes; c++)
        if (tmp[c])
            return 1;
    return 0;
}

/* Train/test split: whole scenes when recorded (and asked), else tiles. */
static int split(job *J)
{
    const int64_t N = J->ai->n_tiles;
    int ml = J->ml1[0];
    uint8_t *tmp = cmir__malloc((size_t)J->ai->n_classes + 1);
    int64_t *lab = cmir__malloc(sizeof(int64_t) * (size_t)N);
    J->train = cmir__malloc(sizeof(int64_t) * (size_t)N);
    J->test = cmir__malloc(sizeof(int64_t) * (size_t)N);
    if (!tmp || !lab || !J->train || !J->test) {
        cmir__free(tmp);
        cmir__free(lab);
        return CMIR_ENOMEM;
    }
    int64_t nl = 0;
    for (int64_t i = 0; i < N; i++)
        if (is_labelled(J->a, i, ml, tmp))
            lab[nl++] = i;
    cmir__free(tmp);
    if (nl < 4) {
        cmir__free(lab);
        return cmir__error(CMIR_EINVAL, "only %lld labelled tiles: too few to train on", (long long)nl);
    }
    int64_t want = (int64_t)llround(J->p.test_frac * (double)nl);
    if (J->p.test_frac > 0 && want < 1)
        want = 1;
    int by_scene = J->p.split_by_scene && cmir_archive_scene(J->a, lab[0]) != NULL;
    if (by_scene) {
        /* Scenes in a seeded order; take whole scenes until `want`. */
        int64_t ns = 0;
        const char **names = cmir__malloc(sizeof(char *) * (size_t)nl);
        int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)nl);
        uint8_t *is_test = cmir__calloc((size_t)nl, 1);
        if (!names || !order || !is_test) {
            cmir__free(names); cmir__free(order); cmir__free(is_test); cmir__free(lab);
            return CMIR_ENOMEM;
        }
        for (int64_t i = 0; i < nl; i++) {
            const char *s = cmir_archive_scene(J->a, lab[i]);
            int64_t k;
            for (k = 0; k < ns; k++)
                if (!strcmp(names[k], s ? s : ""))
                    break;
            if (k == ns)
                names[ns++] = s ? s : "";
        }
        for (int64_t k = 0; k < ns; k++)
            order[k] = k;
        shuffle(J->rng, order, ns);
        int64_t got = 0;
        for (int64_t t = 0; t < ns - 1 && got < want; t++) { /* keep at least one scene to train on */
            const char *s = names[order[t]];
            for (int64_t i = 0; i < nl; i++) {
                const char *si = cmir_archive_scene(J->a, lab[i]);
                if (!strcmp(si ? si : "", s)) {
                    is_test[i] = 1;
                    got++;
                }
            }
        }
        if (ns < 2)
            by_scene = 0; /* one scene: fall back to tiles */
        else
            for (int64_t i = 0; i < nl; i++) {
                if (is_test[i])
                    J->test[J->n_test++] = lab[i];
                else
                    J->train[J->n_train++] = lab[i];
            }
        cmir__free(names); cmir__free(order); cmir__free(is_test);
    }
    if (!by_scene) {
        shuffle(J->rng, lab, nl);
        for (int64_t i = 0; i < nl; i++) {
            if (i < want)
                J->test[J->n_test++] = lab[i];
            else
                J->train[J->n_train++] = lab[i];
        }
        /* keep the test list in archive order */
        for (int64_t i = 1; i < J->n_test; i++)
            for (int64_t k = i; k > 0 && J->test[k - 1] > J->test[k]; k--) {
                int64_t t = J->test[k]; J->test[k] = J->test[k - 1]; J->test[k - 1] = t;
            }
    }
    cmir__free(lab);
    if (J->n_train < 2)
        return cmir__error(CMIR_EINVAL, "the split leaves %lld training tiles", (long long)J->n_train);
    return 0;
}

static int tile_elems(const cmir_model_info *i, int k, int *bands)
{
    *bands = k ? i->ms_bands : i->pan_bands;
    return k ? i->ms_h * i->ms_w * i->ms_bands : i->pan_h * i->pan_w * i->pan_bands;
}

/* Per-band mean and standard deviation over a seeded sample of training tiles. */
static int norm_stats(job *J, float *buf)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        int64_t ntr;
        const int64_t *tr = side_train(J, k, &ntr);
        int64_t ns = ntr < J->p.max_stat_tiles ? ntr : J->p.max_stat_tiles;
        int64_t *pick = cmir__malloc(sizeof(int64_t) * (size_t)ntr);
        if (!pick)
            return CMIR_ENOMEM;
        memcpy(pick, tr, sizeof(int64_t) * (size_t)ntr);
        shuffle(J->rng, pick, ntr);
        int B, n = tile_elems(&J->m->info, k, &B);
        double s[1024] = {0}, s2[1024] = {0};
        int64_t cnt = 0;
        for (int64_t t = 0; t < ns && !rc; t++) {
            if ((rc = read_item(J, k, pick[t], buf)))
                break;
            for (int i = 0; i < n; i += B) {
                int ok = 1;
                for (int b = 0; b < B; b++)
                    ok &= isfinite(buf[i + b]);
                if (!ok)
                    continue;
                for (int b = 0; b < B; b++) {
                    s[b] += buf[i + b];
                    s2[b] += (double)buf[i + b] * buf[i + b];
                }
                cnt++;
            }
        }
        for (int b = 0; b < B && !rc; b++) {
            double mu = cnt ? s[b] / (double)cnt : 0, var = cnt ? s2[b] / (double)cnt - mu * mu : 1;
            J->m->mean[k][b] = (float)mu;
            J->m->std[k][b] = (float)sqrt(var > 1e-12 ? var : 1.0);
        }
        cmir__free(pick);
    }
    return rc;
}

/* Reads and normalises tiles idx[0..n) of modality k into x. */
static int load_batch(job *J, int k, const int64_t *idx, int n, float *raw, float *x)
{
    int B, per = tile_elems(&J->m->info, k, &B);
    for (int i = 0; i < n; i++) {
        int rc = read_item(J, k, idx[i], raw + (size_t)i * per);
        if (rc)
            return rc;
    }
    cmir__model_normalise(J->m, k, raw, n, x);
    return 0;
}

/* One of the 8 symmetries of the square (4 for non-square tiles: flips
 * only) per tile, drawn from the run's RNG; tmp holds one tile. */
static void augment(job *J, int k, float *x, int n, float *tmp)
{
    const cmir_model_info *mi = &J->m->info;
    int h = k ? mi->ms_h : mi->pan_h, w = k ? mi->ms_w : mi->pan_w, b = k ? mi->ms_bands : mi->pan_bands;
    size_t per = (size_t)h * w * b;
    if (h == 1 && w == 1) {
        /* a feature vector (normalised): nothing to rotate; Gaussian noise
         * of deviation feature_noise instead, so that the branch does not
         * learn the training voices' exact values */
        for (size_t i = 0; i < per * (size_t)n; i++)
            x[i] += J->p.feature_noise * cmir_rng_normal(J->rng);
        return;
    }
    for (int t = 0; t < n; t++) {
        int s = (int)cmir_rng_below(J->rng, h == w ? 8 : 4);
        if (!s)
            continue;
        float *src = x + per * t;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int si = i, sj = j;
                if (s & 1) /* flip columns */
                    sj = w - 1 - sj;
                if (s & 2) /* flip rows */
                    si = h - 1 - si;
                if (s & 4) { /* transpose (square only) */
                    int t2 = si;
                    si = sj;
                    sj = t2;
                }
                memcpy(tmp + ((size_t)i * w + j) * b, src + ((size_t)si * w + sj) * b, sizeof(float) * (size_t)b);
            }
        memcpy(src, tmp, sizeof(float) * per);
    }
}

static void labels_of(job *J, int k, const int64_t *idx, int n, int32_t *lab, float *tg)
{
    int C = J->ai->n_classes;
    uint8_t tmp[65536];
    if (k && is_speech(J)) {
        for (int i = 0; i < n; i++)
            lab[i] = J->aud_class[idx[i]] - 1;
        return;
    }
    for (int i = 0; i < n; i++) {
        lab[i] = cmir_archive_label(J->a, idx[i]) - 1;
        if (lab[i] < 0)
            lab[i] = 0;
        if (tg) {
            cmir_archive_multilabel(J->a, idx[i], tmp);
            for (int c = 0; c < C; c++)
                tg[(size_t)i * C + c] = tmp[c];
        }
    }
}

/* Stage-1 epochs of side k: epochs1, except for the clips of the speech
 * side (a few hundred feature vectors, a few batches an epoch): enough
 * epochs for speech_steps steps, and at least epochs1. */
static int stage1_epochs(const job *J, int k)
{
    if (!(k && is_speech(J)) || J->p.epochs1 == 0)
        return J->p.epochs1;
    int64_t per = (J->n_atrain - 1 + J->p.batch - 1) / J->p.batch;
    int64_t e = per > 0 ? (J->p.speech_steps + per - 1) / per : 1;
    return (int)(e > J->p.epochs1 ? (e > 100000 ? 100000 : e) : J->p.epochs1);
}

static int stage1(job *J, int k, float *raw, float *x, cmir_train_report *rep)
{
    cmir_cnn *c = J->m->cnn[k];
    const int C = J->ai->n_classes, ml = J->ml1[k], Bt = J->p.batch;
    int64_t ntr;
    const int64_t *tr = side_train(J, k, &ntr);
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = J->p.lr1;
    cmir_optim *o = cmir_optim_new(op);
    int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)ntr);
    int32_t *lab = cmir__malloc(sizeof(int32_t) * (size_t)Bt);
    float *tg = cmir__malloc(sizeof(float) * (size_t)Bt * C);
    float *dl = cmir__malloc(sizeof(float) * (size_t)Bt * C);
    float *dz = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    int bands;
    float *atmp = cmir__malloc(sizeof(float) * (size_t)tile_elems(&J->m->info, k, &bands));
    int rc = (!o || !order || !lab || !tg || !dl || !dz || !atmp) ? CMIR_ENOMEM : cmir_cnn_register(c, o);
    const int E = stage1_epochs(J, k);
    int ep0 = 0;
    if (!rc && J->resume && J->r_stage > k)
        ep0 = E; /* this stage finished before the checkpoint */
    else if (!rc && J->resume && J->r_stage == k) {
        ep0 = J->r_epoch;
        rc = restore_optim(J, o);
    }
    if (!rc)
        memcpy(order, tr, sizeof(int64_t) * (size_t)ntr);
    if (ep0)
        report(J, (double)ep0 * (double)ntr, NULL);
    double t0 = now();
    int64_t images = 0;
    for (int ep = ep0; !rc && ep < E; ep++) {
        cmir_optim_set_lr(o, 3 * ep >= 2 * E ? J->p.lr1 * 0.1f : J->p.lr1);
        /* each epoch's order depends on the RNG state alone (resumable) */
        memcpy(order, tr, sizeof(int64_t) * (size_t)ntr);
        shuffle(J->rng, order, ntr);
        double lsum = 0;
        int64_t right = 0, seen = 0;
        for (int64_t s = 0; !rc && s + 1 < ntr; s += Bt) { /* batches of >= 2 (batch norm) */
            int n = (int)(ntr - s < Bt ? ntr - s : Bt);
            if ((rc = load_batch(J, k, order + s, n, raw, x)))
                break;
            if (J->p.augment)
                augment(J, k, x, n, atmp);
            labels_of(J, k, order + s, n, lab, ml ? tg : NULL);
            if ((rc = cmir_cnn_forward(c, J->ex, x, n, 1, J->rng)))
                break;
            float *lg = cmir_cnn_logits(c), loss = 0, lo = 0;
            memset(dl, 0, sizeof(float) * (size_t)n * C);
            memset(dz, 0, sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
            cmir_tensor tl = cmir_tensor_2d(lg, n, C), tdl = cmir_tensor_2d(dl, n, C);
            if (ml) {
                cmir_tensor tt = cmir_tensor_2d(tg, n, C);
                rc = cmir_sigmoid_xent(&tl, &tt, 1.0f, &loss, &tdl);
            } else {
                rc = cmir_softmax_xent(&tl, lab, 1.0f, &loss, &tdl);
            }
            if (!rc && J->p.ortho > 0) {
                cmir_tensor tz = cmir_tensor_2d(cmir_cnn_features(c), n, CMIR_FEAT_DIM);
                cmir_tensor tdz = cmir_tensor_2d(dz, n, CMIR_FEAT_DIM);
                rc = cmir_ortho_penalty(J->ex, &tz, 1, J->p.ortho / (CMIR_FEAT_DIM * CMIR_FEAT_DIM), &lo, &tdz);
            }
            if (!rc)
                rc = cmir_cnn_backward(c, J->ex, dl, J->p.ortho > 0 ? dz : NULL);
            if (!rc)
                rc = cmir_optim_step(o);
            if (rc)
                break;
            if (!isfinite(loss)) {
                rc = cmir__error(CMIR_EINVAL, "stage 1 diverged (loss not finite): lower the learning rate");
                break;
            }
            lsum += (double)(loss + lo) * n;
            for (int i = 0; i < n && !ml; i++) {
                int best = 0;
                for (int q = 1; q < C; q++)
                    if (lg[(size_t)i * C + q] > lg[(size_t)i * C + best])
                        best = q;
                right += best == lab[i];
            }
            seen += n;
            images += n;
            if ((rc = report(J, n, NULL)))
                break;
        }
        if (rc)
            break;
        float L = seen ? (float)(lsum / (double)seen) : 0, A = seen ? (float)right / (float)seen : 0;
        rep->stage1_loss[k] = L;
        rep->stage1_acc[k] = A;
        snprintf(J->msg, sizeof J->msg, "stage 1 %s epoch %d/%d: loss %.4f, train accuracy %.3f",
                 cmir_model_modality_name(J->m, k), ep + 1, E, L, ml ? NAN : A);
        /* one line (and checkpoint) per epoch, at most about 20 */
        int every = E > 20 ? E / 20 : 1, show = (ep + 1) % every == 0 || ep + 1 == E;
        if (show && ((rc = save_checkpoint(J, k, ep + 1, o)) || (rc = report(J, 0, J->msg))))
            break;
    }
    double dt = now() - t0;
    rep->stage1_images_per_s[k] = dt > 0 ? (double)images / dt : 0;
    cmir_optim_free(o);
    cmir__free(order); cmir__free(lab); cmir__free(tg); cmir__free(dl); cmir__free(dz); cmir__free(atmp);
    return rc;
}

/* Stage-1 features of every tile of the archive, both modalities. */
static int all_features(job *J, float *raw, float *x, float *Z[2])
{
    int64_t idx[CMIR_EMBED_BATCH];
    for (int k = 0; k < 2; k++) {
        const int64_t N = side_items(J, k);
        Z[k] = cmir__malloc(sizeof(float) * (size_t)N * CMIR_FEAT_DIM);
        if (!Z[k])
            return CMIR_ENOMEM;
        for (int64_t s = 0; s < N; s += CMIR_EMBED_BATCH) {
            int n = (int)(N - s < CMIR_EMBED_BATCH ? N - s : CMIR_EMBED_BATCH);
            for (int i = 0; i < n; i++)
                idx[i] = s + i;
            int rc = load_batch(J, k, idx, n, raw, x);
            if (!rc)
                rc = cmir_cnn_forward(J->m->cnn[k], J->ex, x, n, 0, NULL);
            if (rc)
                return rc;
            memcpy(Z[k] + (size_t)s * CMIR_FEAT_DIM, cmir_cnn_features(J->m->cnn[k]),
                   sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
            if ((rc = report(J, n, NULL)))
                return rc;
        }
    }
    return 0;
}

/* Per-dimension mean and deviation of the training tiles' features; the
 * unified network sees standardised features (raw ReLU features differ in
 * scale between the modalities by an order of magnitude). */
static void z_stats(job *J, float *Z[2])
{
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < CMIR_FEAT_DIM; j++) {
            int64_t ntr;
            const int64_t *tr = side_train(J, k, &ntr);
            double s = 0, s2 = 0;
            for (int64_t t = 0; t < ntr; t++) {
                double v = Z[k][(size_t)tr[t] * CMIR_FEAT_DIM + j];
                s += v;
                s2 += v * v;
            }
            double mu = s / (double)ntr, var = s2 / (double)ntr - mu * mu;
            J->m->zmean[k][j] = (float)mu;
            J->m->zstd[k][j] = (float)(var > 1e-8 ? sqrt(var) : 1.0);
        }
}

/* Image-speech stage-2 pairs of one epoch, the paper's way: each training
 * image with one training clip of each of its labels, drawn afresh with
 * the run's RNG; pa/pb index tiles/clips, pc is the pair's class (0-based),
 * all in a shuffled order. The previous epoch's arrays are freed. */
static int speech_pairs(job *J, int64_t **pa, int64_t **pb, int32_t **pc, int64_t *np)
{
    cmir__free(*pa); cmir__free(*pb); cmir__free(*pc);
    *pa = *pb = NULL;
    *pc = NULL;
    int rc = cmir_pairs_by_label(J->amulti, J->n_train, J->ai->n_classes, J->bclass, J->n_atrain,
                                 cmir_rng_u64(J->rng), pa, pb, pc, np);
    if (rc)
        return rc;
    for (int64_t i = 0; i < *np; i++) {
        (*pa)[i] = J->train[(*pa)[i]];
        (*pb)[i] = J->atrain[(*pb)[i]];
    }
    for (int64_t i = *np - 1; i > 0; i--) {
        int64_t j = (int64_t)cmir_rng_below(J->rng, (uint64_t)i + 1), t;
        t = (*pa)[i]; (*pa)[i] = (*pa)[j]; (*pa)[j] = t;
        t = (*pb)[i]; (*pb)[i] = (*pb)[j]; (*pb)[j] = t;
        int32_t c = (*pc)[i]; (*pc)[i] = (*pc)[j]; (*pc)[j] = c;
    }
    return 0;
}

static int stage2(job *J, float *Z[2], cmir_train_report *rep)
{
    const int C = J->ai->n_classes, ml = J->p.unified.multilabel, Bt = J->p.batch;
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = J->p.lr2;
    cmir_optim *o = cmir_optim_new(op);
    int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)J->n_train);
    float *za = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    float *zb = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    int32_t *lab = cmir__malloc(sizeof(int32_t) * (size_t)Bt);
    float *tg = cmir__malloc(sizeof(float) * (size_t)Bt * C);
    int64_t *pa = NULL, *pb = NULL, np = 0;
    int32_t *pc = NULL;
    int rc = (!o || !order || !za || !zb || !lab || !tg) ? CMIR_ENOMEM : cmir_unified_register(J->m->uni, o);
    int ep0 = 0;
    if (!rc && J->resume && J->r_stage == 2) {
        ep0 = J->r_epoch;
        rc = restore_optim(J, o);
    }
    if (!rc)
        memcpy(order, J->train, sizeof(int64_t) * (size_t)J->n_train);
    double t0 = now();
    int64_t samples = 0;
    for (int ep = ep0; !rc && ep < J->p.epochs2; ep++) {
        /* each epoch's order depends on the RNG state alone (resumable) */
        const int64_t *ia = order, *ib = order;
        if (is_speech(J)) {
            if ((rc = speech_pairs(J, &pa, &pb, &pc, &np)))
                break;
            ia = pa;
            ib = pb;
        } else {
            memcpy(order, J->train, sizeof(int64_t) * (size_t)J->n_train);
            shuffle(J->rng, order, J->n_train);
            np = J->n_train;
        }
        cmir_unified_losses sum;
        memset(&sum, 0, sizeof sum);
        int nb = 0;
        for (int64_t s = 0; !rc && s < np; s += Bt) {
            int n = (int)(np - s < Bt ? np - s : Bt);
            for (int i = 0; i < n; i++) {
                memcpy(za + (size_t)i * CMIR_FEAT_DIM, Z[0] + (size_t)ia[s + i] * CMIR_FEAT_DIM, sizeof(float) * CMIR_FEAT_DIM);
                memcpy(zb + (size_t)i * CMIR_FEAT_DIM, Z[1] + (size_t)ib[s + i] * CMIR_FEAT_DIM, sizeof(float) * CMIR_FEAT_DIM);
            }
            if (is_speech(J))
                memcpy(lab, pc + s, sizeof(int32_t) * (size_t)n);
            else
                labels_of(J, 0, order + s, n, lab, ml ? tg : NULL);
            cmir_unified_losses L;
            if ((rc = cmir_unified_step(J->m->uni, J->ex, za, zb, lab, tg, n, &L)) || (rc = cmir_optim_step(o)))
                break;
            sum.pair += L.pair; sum.cls += L.cls; sum.norm += L.norm; sum.cross += L.cross; sum.reg += L.reg;
            sum.total += L.total;
            nb++;
            samples += n;
        }
        if (rc)
            break;
        if (nb) {
            sum.pair /= nb; sum.cls /= nb; sum.norm /= nb; sum.cross /= nb; sum.reg /= nb; sum.total /= nb;
        }
        rep->stage2 = sum;
        snprintf(J->msg, sizeof J->msg,
                 "stage 2 epoch %d/%d: loss %.4f (pair %.4f, class %.4f, norm %.4f, cross %.4f, reg %.4f)", ep + 1,
                 J->p.epochs2, sum.total, sum.pair, sum.cls, sum.norm, sum.cross, sum.reg);
        /* one line per epoch, at most about 20 lines */
        int every = J->p.epochs2 > 20 ? J->p.epochs2 / 20 : 1;
        int show = (ep + 1) % every == 0 || ep + 1 == J->p.epochs2;
        int ck = J->p.epochs2 > 10 ? J->p.epochs2 / 10 : 1;
        if (((ep + 1) % ck == 0 || ep + 1 == J->p.epochs2) && (rc = save_checkpoint(J, 2, ep + 1, o)))
            break;
        if ((rc = report(J, 0.05 * (double)(is_speech(J) ? J->est_pairs : J->n_train), show ? J->msg : NULL)))
            break;
    }
    double dt = now() - t0;
    rep->stage2_samples_per_s = dt > 0 ? (double)samples / dt : 0;
    cmir_optim_free(o);
    cmir__free(order); cmir__free(za); cmir__free(zb); cmir__free(lab); cmir__free(tg);
    cmir__free(pa); cmir__free(pb); cmir__free(pc);
    return rc;
}

static float *label_vector(job *J, cmir_tensor *t, int64_t *n)
{
    *n = J->ai->n_tiles;
    float *lab = cmir__malloc(sizeof(float) * (size_t)*n);
    if (lab)
        for (int64_t i = 0; i < *n; i++)
            lab[i] = (float)cmir_archive_label(J->a, i);
    *t = cmir_tensor_make(lab, 1, n);
    return lab;
}

/* features_pan.mat and features_ms.mat (variable `features`, N x 128, and
 * `labels`), as the paper's step 2 reads them. */
static int export_features(job *J, float *Z[2])
{
    int64_t N;
    cmir_tensor tl;
    float *lab = label_vector(J, &tl, &N);
    int rc = lab ? 0 : CMIR_ENOMEM;
    char path[4096];
    for (int k = 0; !rc && k < 2; k++) {
        cmir_tensorset *ts = cmir_tensorset_new();
        cmir_tensor tz = cmir_tensor_2d(Z[k], N, CMIR_FEAT_DIM);
        snprintf(path, sizeof path, "%s/features_%s.mat", J->p.features_dir, k ? "ms" : "pan");
        rc = ts ? cmir_tensorset_put(ts, "features", &tz) : CMIR_ENOMEM;
        if (!rc)
            rc = cmir_tensorset_put(ts, "labels", &tl);
        if (!rc)
            rc = cmir_tensorset_save(ts, path);
        cmir_tensorset_free(ts);
    }
    cmir__free(lab);
    return rc;
}

/* unified.mat: featuresx (PAN) and featuresy (MS) in the latent space,
 * N x d_v, from the (standardised) features. */
static int export_unified(job *J, float *Z[2])
{
    int64_t N;
    cmir_tensor tl;
    float *lab = label_vector(J, &tl, &N);
    const int dv = J->m->info.d_v;
    float *V[2] = {cmir__malloc(sizeof(float) * (size_t)N * dv), cmir__malloc(sizeof(float) * (size_t)N * dv)};
    cmir_tensorset *ts = cmir_tensorset_new();
    int rc = (!lab || !V[0] || !V[1] || !ts) ? CMIR_ENOMEM : 0;
    for (int k = 0; !rc && k < 2; k++)
        for (int64_t s = 0; !rc && s < N; s += 1024) {
            int n = (int)(N - s < 1024 ? N - s : 1024);
            rc = cmir_unified_encode(J->m->uni, J->ex, k, Z[k] + (size_t)s * CMIR_FEAT_DIM, n, V[k] + (size_t)s * dv);
        }
    if (!rc) {
        cmir_tensor tx = cmir_tensor_2d(V[0], N, dv), ty = cmir_tensor_2d(V[1], N, dv);
        rc = cmir_tensorset_put(ts, "featuresx", &tx);
        if (!rc) rc = cmir_tensorset_put(ts, "featuresy", &ty);
        if (!rc) rc = cmir_tensorset_put(ts, "labels", &tl);
        if (!rc) rc = cmir_tensorset_save(ts, J->p.unified_path);
    }
    cmir_tensorset_free(ts);
    cmir__free(V[0]);
    cmir__free(V[1]);
    cmir__free(lab);
    return rc;
}

static void settings_text(job *J, char *s, size_t n)
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
}

/* Image-speech: the corpus's clip features, their classes (matched by
 * name to the archive's classes) and the training clips (voices not held
 * out). The image side trains multi-label, the speech side single-label,
 * and stage 2 on pairs labelled by their shared class. */
static int speech_setup(job *J, const char *archive_path)
{
    const char *man = J->p.speech_manifest;
    if (!J->ai->has_multilabel)
        return cmir__error(CMIR_EINVAL, "%s: the image-speech scenario needs multi-labels (MULTI_LABELS; "
                           "tile with -multilabel)", archive_path);
    if (J->p.features_dir || J->p.unified_path)
        return cmir__error(CMIR_EUNSUPPORTED, "feature and unified.mat export is not available for the "
                           "image-speech scenario");
    cmir_audio_params ap = cmir_audio_default_params();
    ap.feature = J->p.audio_feature;
    ap.extra_dict = J->p.speech_dict;
    J->corpus = cmir_audio_corpus_load(man, ap, NULL, NULL);
    if (!J->corpus)
        return cmir__failed(CMIR_EIO);
    int64_t n = cmir_audio_corpus_count(J->corpus);
    J->aud_class = cmir__malloc(sizeof(int32_t) * (size_t)n);
    J->atrain = cmir__malloc(sizeof(int64_t) * (size_t)n);
    if (!J->aud_class || !J->atrain)
        return CMIR_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        const char *l = cmir_audio_corpus_label(J->corpus, i);
        J->aud_class[i] = 0;
        for (int c = 1; c <= J->ai->n_classes && !J->aud_class[i]; c++)
            if (cmir_audio_label_match(l, cmir_archive_class_name(J->a, c)))
                J->aud_class[i] = c;
        if (!J->aud_class[i])
            return cmir__error(CMIR_EINVAL, "%s: clip %s is labelled '%s', which is not a class of %s", man,
                               cmir_audio_corpus_file(J->corpus, i), l, archive_path);
        if (cmir_audio_corpus_held_out(J->corpus, i))
            J->n_atest++;
        else if (cmir_audio_corpus_heard_own(J->corpus, i)) /* misheard clips teach nothing true */
            J->atrain[J->n_atrain++] = i;
    }
    if (J->n_atrain < 2)
        return cmir__error(CMIR_EINVAL, "%s: only %lld clips of voices not held out: too few to train on", man,
                           (long long)J->n_atrain);
    J->ml1[0] = 1;
    J->ml1[1] = 0;
    J->p.unified.multilabel = 0; /* L3 on the pair's class */
    return 0;
}

/* The training images' multi-labels and the training clips' classes, read
 * once for stage 2's pairing, and the pairs an epoch makes from them. */
static int speech_tables(job *J)
{
    const int C = J->ai->n_classes;
    uint8_t *has = cmir__calloc((size_t)C, 1);
    J->amulti = cmir__malloc((size_t)J->n_train * (size_t)C);
    J->bclass = cmir__malloc(sizeof(int32_t) * (size_t)J->n_atrain);
    int rc = (!has || !J->amulti || !J->bclass) ? CMIR_ENOMEM : 0;
    for (int64_t j = 0; !rc && j < J->n_atrain; j++) {
        J->bclass[j] = J->aud_class[J->atrain[j]];
        has[J->bclass[j] - 1] = 1;
    }
    J->est_pairs = 0;
    for (int64_t i = 0; !rc && i < J->n_train; i++) {
        uint8_t *row = J->amulti + (size_t)i * C;
        rc = cmir_archive_multilabel(J->a, J->train[i], row);
        for (int c = 0; !rc && c < C; c++)
            J->est_pairs += row[c] && has[c];
    }
    cmir__free(has);
    if (!rc && J->est_pairs < 2)
        rc = cmir__error(CMIR_EINVAL, "no training image carries a label that a training clip speaks");
    return rc;
}

int cmir_train(const char *archive_path, const char *model_path, cmir_train_params p,
               cmir_progress_fn progress, void *user, cmir_train_report *rep_out)
{
    if (!archive_path || !model_path || p.batch < 2 || p.batch > 4096 || p.epochs1 < 0 || p.epochs2 < 0 ||
        !(p.test_frac >= 0 && p.test_frac < 1) || !(p.lr1 > 0) || !(p.lr2 > 0) || p.threads < 0 ||
        p.speech_steps < 0 || !(p.feature_noise >= 0) || p.audio_feature < CMIR_AUDIO_FEATURE_CEPSTRAL || p.audio_feature > CMIR_AUDIO_FEATURE_SPHINX)
        return cmir__error(CMIR_EINVAL, "cmir_train: invalid parameters (batch %d, test_frac %g)", p.batch,
                           p.test_frac);
    cmir_train_report rep;
    memset(&rep, 0, sizeof rep);
    job J;
    memset(&J, 0, sizeof J);
    J.p = p;
    J.progress = progress;
    J.user = user;
    double t0 = now();
    cmir_exec_params ep = cmir_exec_default_params();
    ep.n_threads = p.threads;
    J.ex = cmir_exec_new(ep);
    J.rng = cmir_rng_new(p.seed);
    J.a = cmir_archive_open(archive_path);
    int rc = (!J.ex || !J.rng) ? CMIR_ENOMEM : (!J.a ? cmir__failed(CMIR_EIO) : 0);
    float *raw = NULL, *x = NULL, *Z[2] = {NULL, NULL};
    if (!rc) {
        J.ai = cmir_archive_get_info(J.a);
        if (J.ai->n_classes < 2)
            rc = cmir__error(CMIR_EINVAL, "%s: needs labels of at least 2 classes to train (has %d)", archive_path,
                             J.ai->n_classes);
        else if (J.p.unified.multilabel && !J.ai->has_multilabel)
            rc = cmir__error(CMIR_EINVAL, "%s: multi-label training asked, but the archive has no MULTI_LABELS",
                             archive_path);
    }
    J.ml1[0] = J.ml1[1] = J.p.unified.multilabel;
    if (!rc && p.speech_manifest)
        rc = speech_setup(&J, archive_path);
    if (!rc) {
        cmir_cnn_params cp = cmir_cnn_default_params();
        cp.dropout = p.dropout;
        if (!(J.m = cmir__model_new(J.a, cp, J.p.unified, p.seed,
                                    is_speech(&J) ? CMIR_SCENARIO_IMAGE_SPEECH : CMIR_SCENARIO_PAN_MS)))
            rc = cmir__failed(CMIR_EINVAL);
        else if (is_speech(&J))
            rc = cmir_model_set_audio(J.m, p.audio_feature, cmir_audio_corpus_vocabulary(J.corpus));
    }
    if (!rc)
        rc = split(&J);
    if (!rc && is_speech(&J))
        rc = speech_tables(&J);
    if (!rc) {
        int B0, B1;
        size_t n0 = (size_t)tile_elems(&J.m->info, 0, &B0), n1 = (size_t)tile_elems(&J.m->info, 1, &B1);
        size_t per = n0 > n1 ? n0 : n1, nb = (size_t)(p.batch > CMIR_EMBED_BATCH ? p.batch : CMIR_EMBED_BATCH);
        raw = cmir__malloc_aligned(sizeof(float) * per * nb);
        x = cmir__malloc_aligned(sizeof(float) * per * nb);
        if (!raw || !x)
            rc = CMIR_ENOMEM;
    }
    if (!rc && J.p.epochs2 == 0) {
        /* auto: 50 epochs, and at least 3000 steps on small archives */
        int64_t per = ((is_speech(&J) ? J.est_pairs : J.n_train) + p.batch - 1) / p.batch;
        int64_t e = (3000 + per - 1) / per;
        J.p.epochs2 = (int)(e > 50 ? (e > 100000 ? 100000 : e) : 50);
    }
    if (!rc) {
        settings_text(&J, J.settings, sizeof J.settings);
        if (p.resume)
            rc = load_checkpoint(&J);
    }
    if (!rc && p.stage1_from) {
        cmir_tensorset *ts = cmir_tensorset_load(p.stage1_from);
        rc = ts ? same_split(&J, ts, p.stage1_from) : cmir__failed(CMIR_EIO);
        if (!rc)
            rc = load_stage1(&J, ts, p.stage1_from);
        cmir_tensorset_free(ts);
        p.epochs1 = J.p.epochs1 = 0;
    }
    if (!rc) {
        p.epochs2 = J.p.epochs2;
        int64_t n1;
        side_train(&J, 1, &n1);
        J.total = (double)p.epochs1 * (double)J.n_train + (double)stage1_epochs(&J, 1) * (double)n1 + (double)(side_items(&J, 0) + side_items(&J, 1)) +
                  (double)p.epochs2 * (double)(is_speech(&J) ? J.est_pairs : J.n_train) * 0.05;
        if (!p.stage1_from && !J.resume)
            rc = norm_stats(&J, raw);
    }
    for (int k = 0; !rc && k < 2; k++)
        rc = stage1(&J, k, raw, x, &rep);
    if (!rc)
        rc = all_features(&J, raw, x, Z);
    if (!rc && p.features_dir)
        rc = export_features(&J, Z); /* raw Z, as the paper's step 2 reads them */
    if (!rc) {
        z_stats(&J, Z);
        cmir__model_zstd(J.m, 0, Z[0], side_items(&J, 0));
        cmir__model_zstd(J.m, 1, Z[1], side_items(&J, 1));
        rc = stage2(&J, Z, &rep); /* progress: 5% of a stage-1 image per sample */
    }
    if (!rc) {
        J.m->settings = cmir__strdup(J.settings);
        J.m->n_tiles = J.ai->n_tiles;
        J.m->test = J.test;
        J.m->n_test = J.n_test;
        J.test = NULL;
        rc = J.m->settings ? cmir__model_save(J.m, model_path) : CMIR_ENOMEM;
    }
    if (!rc && p.unified_path)
        rc = export_unified(&J, Z);
    rep.n_train = J.n_train;
    rep.n_test = J.m ? J.m->n_test : 0;
    rep.seconds = now() - t0;
    if (rep_out)
        *rep_out = rep;
    cmir__free(Z[0]);
    cmir__free(Z[1]);
    cmir__free_aligned(raw);
    cmir__free_aligned(x);
    cmir__free(J.train);
    cmir__free(J.test);
    cmir_model_free(J.m);
    cmir_archive_close(J.a);
    cmir_rng_free(J.rng);
    cmir_exec_free(J.ex);
    cmir_tensorset_free(J.resume);
    cmir_audio_corpus_free(J.corpus);
    cmir__free(J.aud_class);
    cmir__free(J.atrain);
    cmir__free(J.amulti);
    cmir__free(J.bclass);
    return rc;
}

/* ---- the paper's step 2 from feature files ---- */

static const cmir_tensor *get_matrix(const cmir_tensorset *ts, const char *path, const char *name)
{
    const cmir_tensor *t = cmir_tensorset_get(ts, name);
    if (!t)
        cmir__error(CMIR_ENOTFOUND, "%s: no variable '%s'", path, name);
    else if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
        cmir__error(CMIR_EFORMAT, "%s: '%s' must be a non-empty matrix", path, name);
        t = NULL;
    }
    return t;
}

static void standardise(float *Z, int64_t n, int d)
{
    for (int j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s += Z[i * d + j];
            s2 += (double)Z[i * d + j] * Z[i * d + j];
        }
        double mu = s / (double)n, var = s2 / (double)n - mu * mu, sd = var > 1e-8 ? sqrt(var) : 1.0;
        for (int64_t i = 0; i < n; i++)
            Z[i * d + j] = (float)((Z[i * d + j] - mu) / sd);
    }
}

int cmir_train_unified(const char *features_a, const char *features_b, const char *labels_path,
                       const char *unified_path, cmir_train_params p, cmir_progress_fn progress, void *user,
                       cmir_train_report *rep_out)
{
    if (!features_a || !features_b || !unified_path || p.batch < 2 || !(p.lr2 > 0))
        return cmir__error(CMIR_EINVAL, "cmir_train_unified: need two feature files and an output");
    cmir_train_report rep;
    memset(&rep, 0, sizeof rep);
    double t0 = now();
    cmir_tensorset *ta = cmir_tensorset_load(features_a), *tb = ta ? cmir_tensorset_load(features_b) : NULL;
    cmir_tensorset *tl = tb && labels_path ? cmir_tensorset_load(labels_path) : NULL;
    const char *lpath = labels_path ? labels_path : features_a;
    int rc = (!ta || !tb || (labels_path && !tl)) ? cmir__failed(CMIR_EIO) : 0;
    const cmir_tensor *A = rc ? NULL : get_matrix(ta, features_a, "features");
    const cmir_tensor *Bm = rc ? NULL : get_matrix(tb, features_b, "features");
    const cmir_tensor *L = rc ? NULL : cmir_tensorset_get(labels_path ? tl : ta, "labels");
    if (!rc && (!A || !Bm))
        rc = CMIR_EFORMAT;
    else if (!rc && !L)
        rc = cmir__error(CMIR_ENOTFOUND, "%s: no variable 'labels'", lpath);
    int64_t N = 0;
    int D = 0, C = 0, ml = p.unified.multilabel;
    if (!rc) {
        N = A->shape[0];
        D = (int)A->shape[1];
        if (Bm->shape[0] != N || Bm->shape[1] != D)
            rc = cmir__error(CMIR_EFORMAT, "%s is %lldx%lld but %s is %lldx%lld: the rows must pair up", features_a,
                             (long long)N, (long long)D, features_b, (long long)Bm->shape[0], (long long)Bm->shape[1]);
        else if (ml ? (L->ndim != 2 || L->shape[0] != N) : (cmir_tensor_numel(L) != N))
            rc = cmir__error(CMIR_EFORMAT, "%s: 'labels' must hold %lld %s", lpath, (long long)N,
                             ml ? "rows of 0/1 class flags" : "class numbers");
    }
    int32_t *lab = NULL;
    float *tg = NULL, *Z[2] = {NULL, NULL};
    if (!rc) {
        if (ml) {
            C = (int)L->shape[1];
        } else {
            for (int64_t i = 0; i < N && !rc; i++) {
                float v = L->data[i];
                if (!(v >= 1 && v <= 65535) || v != floorf(v))
                    rc = cmir__error(CMIR_EFORMAT, "%s: label %g of row %lld is not a class number 1..C", lpath, v,
                                     (long long)i + 1);
                else if ((int)v > C)
                    C = (int)v;
            }
        }
        if (!rc && C < 2)
            rc = cmir__error(CMIR_EINVAL, "%s: needs at least 2 classes", lpath);
    }
    if (!rc) {
        lab = cmir__malloc(sizeof(int32_t) * (size_t)N);
        tg = ml ? (float *)L->data : NULL;
        Z[0] = cmir__malloc(sizeof(float) * (size_t)N * D);
        Z[1] = cmir__malloc(sizeof(float) * (size_t)N * D);
        if (!lab || !Z[0] || !Z[1])
            rc = CMIR_ENOMEM;
    }
    if (!rc) {
        for (int64_t i = 0; i < N; i++)
            lab[i] = ml ? 0 : (int32_t)L->data[i] - 1;
        memcpy(Z[0], A->data, sizeof(float) * (size_t)N * D);
        memcpy(Z[1], Bm->data, sizeof(float) * (size_t)N * D);
        standardise(Z[0], N, D);
        standardise(Z[1], N, D);
    }
    cmir_unified_params up = p.unified;
    up.d_in = D;
    up.n_classes = C;
    cmir_unified *u = rc ? NULL : cmir_unified_new(up, p.seed + 303);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.n_threads = p.threads;
    cmir_exec *ex = rc ? NULL : cmir_exec_new(ep);
    cmir_rng *rng = cmir_rng_new(p.seed);
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = p.lr2;
    cmir_optim *o = rc ? NULL : cmir_optim_new(op);
    int64_t *order = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)N);
    int Bt = p.batch;
    float *za = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)Bt * D), *zb = rc ? NULL : cmir__malloc(sizeof(float) * (size_t)Bt * D);
    int32_t *bl = rc ? NULL : cmir__malloc(sizeof(int32_t) * (size_t)Bt);
    float *bt = rc || !ml ? NULL : cmir__malloc(sizeof(float) * (size_t)Bt * C);
    if (!rc && (!u || !ex || !rng || !o || !order || !za || !zb || !bl || (ml && !bt)))
        rc = u ? CMIR_ENOMEM : CMIR_EINVAL;
    if (!rc)
        rc = cmir_unified_register(u, o);
    int epochs = p.epochs2;
    if (!rc && epochs == 0) {
        int64_t per = (N + Bt - 1) / Bt, e = (3000 + per - 1) / per;
        epochs = (int)(e > 50 ? (e > 100000 ? 100000 : e) : 50);
    }
    for (int64_t i = 0; !rc && i < N; i++)
        order[i] = i;
    char msg[256];
    int64_t samples = 0;
    for (int e = 0; !rc && e < epochs; e++) {
        shuffle(rng, order, N);
        cmir_unified_losses sum, Ls;
        memset(&sum, 0, sizeof sum);
        int nb = 0;
        for (int64_t s = 0; !rc && s < N; s += Bt) {
            int n = (int)(N - s < Bt ? N - s : Bt);
            for (int i = 0; i < n; i++) {
                memcpy(za + (size_t)i * D, Z[0] + (size_t)order[s + i] * D, sizeof(float) * (size_t)D);
                memcpy(zb + (size_t)i * D, Z[1] + (size_t)order[s + i] * D, sizeof(float) * (size_t)D);
                bl[i] = lab[order[s + i]];
                if (ml)
                    memcpy(bt + (size_t)i * C, tg + (size_t)order[s + i] * C, sizeof(float) * (size_t)C);
            }
            if ((rc = cmir_unified_step(u, ex, za, zb, bl, bt, n, &Ls)) || (rc = cmir_optim_step(o)))
                break;
            sum.total += Ls.total; sum.pair += Ls.pair; sum.cls += Ls.cls; sum.cross += Ls.cross;
            nb++;
            samples += n;
        }
        if (rc)
            break;
        int every = epochs > 20 ? epochs / 20 : 1;
        snprintf(msg, sizeof msg, "stage 2 epoch %d/%d: loss %.4f (pair %.4f, class %.4f, cross %.4f)", e + 1, epochs,
                 sum.total / nb, sum.pair / nb, sum.cls / nb, sum.cross / nb);
        if (progress && progress((double)(e + 1) / epochs, ((e + 1) % every == 0 || e + 1 == epochs) ? msg : NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    rep.n_train = N;
    rep.stage2_samples_per_s = samples / fmax(1e-9, now() - t0);
    /* unified.mat */
    float *V[2] = {NULL, NULL};
    cmir_tensorset *out = rc ? NULL : cmir_tensorset_new();
    const int dv = up.d_v;
    if (!rc) {
        V[0] = cmir__malloc(sizeof(float) * (size_t)N * dv);
        V[1] = cmir__malloc(sizeof(float) * (size_t)N * dv);
        if (!out || !V[0] || !V[1])
            rc = CMIR_ENOMEM;
    }
    for (int k = 0; !rc && k < 2; k++)
        for (int64_t s = 0; !rc && s < N; s += 1024) {
            int n = (int)(N - s < 1024 ? N - s : 1024);
            rc = cmir_unified_encode(u, ex, k, Z[k] + (size_t)s * D, n, V[k] + (size_t)s * dv);
        }
    if (!rc) {
        cmir_tensor tx = cmir_tensor_2d(V[0], N, dv), ty = cmir_tensor_2d(V[1], N, dv);
        rc = cmir_tensorset_put(out, "featuresx", &tx);
        if (!rc) rc = cmir_tensorset_put(out, "featuresy", &ty);
        if (!rc) rc = cmir_tensorset_put(out, "labels", L);
        if (!rc) rc = cmir_unified_save(u, out);
        if (!rc) rc = cmir_tensorset_save(out, unified_path);
    }
    rep.seconds = now() - t0;
    if (rep_out)
        *rep_out = rep;
    cmir_tensorset_free(out);
    cmir__free(V[0]); cmir__free(V[1]);
    cmir__free(order); cmir__free(za); cmir__free(zb); cmir__free(bl); cmir__free(bt);
    cmir__free(lab); cmir__free(Z[0]); cmir__free(Z[1]);
    cmir_optim_free(o);
    cmir_rng_free(rng);
    cmir_exec_free(ex);
    cmir_unified_free(u);
    cmir_tensorset_free(ta);
    cmir_tensorset_free(tb);
    cmir_tensorset_free(tl);
    return rc;
}

int cmir_pairs_by_label(const uint8_t *a_multi, int64_t na, int C, const int32_t *b_class, int64_t nb,
                        uint64_t seed, int64_t **pa, int64_t **pb, int32_t **pc, int64_t *n)
{
    if (!a_multi || !b_class || na < 0 || nb < 0 || C < 1 || !pa || !pb || !pc || !n)
        return cmir__error(CMIR_EINVAL, "cmir_pairs_by_label: bad arguments");
    *pa = *pb = NULL;
    *pc = NULL;
    *n = 0;
    /* b items grouped by class: start[c] .. start[c+1] in `by` */
    int64_t *start = cmir__calloc((size_t)C + 1, sizeof(int64_t)), *by = cmir__malloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
    int64_t *fill = cmir__calloc((size_t)C + 1, sizeof(int64_t));
    cmir_rng *r = cmir_rng_new(seed);
    int rc = (!start || !by || !fill || !r) ? CMIR_ENOMEM : 0;
    for (int64_t j = 0; !rc && j < nb; j++) {
        if (b_class[j] < 1 || b_class[j] > C)
            rc = cmir__error(CMIR_EINVAL, "cmir_pairs_by_label: class %d of b item %lld outside 1..%d", b_class[j],
                             (long long)j, C);
        else
            start[b_class[j]]++;
    }
    for (int c = 1; !rc && c <= C; c++)
        start[c] += start[c - 1]; /* start[c] = end of class c (1-based) */
    for (int64_t j = 0; !rc && j < nb; j++) {
        int c = b_class[j] - 1; /* class c occupies [start[c], start[c+1]) */
        by[start[c] + fill[c]++] = j;
    }
    int64_t total = 0;
    for (int64_t i = 0; !rc && i < na; i++)
        for (int c = 0; c < C; c++)
            total += a_multi[i * C + c] && start[c + 1] > start[c];
    if (!rc) {
        *pa = cmir__malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
        *pb = cmir__malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
        *pc = cmir__malloc(sizeof(int32_t) * (size_t)(total ? total : 1));
        if (!*pa || !*pb || !*pc)
            rc = CMIR_ENOMEM;
    }
    for (int64_t i = 0; !rc && i < na; i++)
        for (int c = 0; c < C; c++) {
            int64_t cnt = start[c + 1] - start[c];
            if (!a_multi[i * C + c] || cnt == 0)
                continue;
            (*pa)[*n] = i;
            (*pb)[*n] = by[start[c] + (int64_t)cmir_rng_below(r, (uint64_t)cnt)];
            (*pc)[*n] = c;
            (*n)++;
        }
    if (rc) {
        cmir__free(*pa);
        cmir__free(*pb);
        cmir__free(*pc);
        *pa = *pb = NULL;
        *pc = NULL;
        *n = 0;
    }
    cmir__free(start);
    cmir__free(by);
    cmir__free(fill);
    cmir_rng_free(r);
    return rc;
}
