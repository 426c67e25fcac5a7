/* cmir_train()'s inputs batch by batch: the training items of each side
 * (tiles, or the clips of the speech side), their per-band normalisation
 * from a seeded sample, normalised batches, the stage-1 augmentation
 * (symmetries of the square, or noise on feature vectors) and labels. */
#include "train_internal.h"

#include <math.h>
#include <string.h>

/* The training items of side k: tile indices, or clip indices. */
const int64_t *cmir__train_side_train(const cmir__train_job *J, int k, int64_t *n)
{
    if (k && cmir__train_is_speech(J)) {
        *n = J->n_atrain;
        return J->atrain;
    }
    *n = J->n_train;
    return J->train;
}

/* Items of side k that get features: every tile, or every clip. */
int64_t cmir__train_side_items(const cmir__train_job *J, int k)
{
    return k && cmir__train_is_speech(J) ? cmir_audio_corpus_count(J->corpus) : J->ai->n_tiles;
}

/* Raw item i of side k into out (h x w x bands floats). */
static int read_item(cmir__train_job *J, int k, int64_t i, float *out)
{
    if (k && cmir__train_is_speech(J)) {
        memcpy(out, cmir_audio_corpus_features(J->corpus) + (size_t)i * CMIR_AUDIO_FEATURE_DIM,
               sizeof(float) * CMIR_AUDIO_FEATURE_DIM);
        return 0;
    }
    return cmir_archive_read_tile(J->a, k ? CMIR_MS : CMIR_PAN, i, out);
}

int cmir__train_tile_elems(const cmir_model_info *i, int k, int *bands)
{
    *bands = k ? i->ms_bands : i->pan_bands;
    return k ? i->ms_h * i->ms_w * i->ms_bands : i->pan_h * i->pan_w * i->pan_bands;
}

/* Per-band mean and standard deviation over a seeded sample of training tiles. */
int cmir__train_norm_stats(cmir__train_job *J, float *buf)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        int64_t ntr;
        const int64_t *tr = cmir__train_side_train(J, k, &ntr);
        int64_t ns = ntr < J->p.max_stat_tiles ? ntr : J->p.max_stat_tiles;
        int64_t *pick = cmir__malloc(sizeof(int64_t) * (size_t)ntr);
        if (!pick)
            return CMIR_ENOMEM;
        memcpy(pick, tr, sizeof(int64_t) * (size_t)ntr);
        cmir__train_shuffle(J->rng, pick, ntr);
        int B, n = cmir__train_tile_elems(&J->m->info, k, &B);
        double s[CMIR__TRAIN_MAX_BANDS] = {0}, s2[CMIR__TRAIN_MAX_BANDS] = {0};
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
            J->m->std[k][b] = (float)sqrt(var > CMIR__TRAIN_BAND_VAR_MIN ? var : 1.0);
        }
        cmir__free(pick);
    }
    return rc;
}

/* Reads and normalises tiles idx[0..n) of modality k into x. */
int cmir__train_load_batch(cmir__train_job *J, int k, const int64_t *idx, int n, float *raw, float *x)
{
    int B, per = cmir__train_tile_elems(&J->m->info, k, &B);
    for (int i = 0; i < n; i++) {
        int rc = read_item(J, k, idx[i], raw + (size_t)i * per);
        if (rc)
            return rc;
    }
    cmir__model_normalise(J->m, k, raw, n, x);
    return 0;
}

/* One of the 8 symmetries of the square (4 for non-square tiles: flips
 * only) per tile, drawn from the run's RNG; tmp holds one tile. The draws
 * are those of the global batch's n tiles; x holds tiles [at, at + nl) of
 * them (data-parallel: this rank's share; one process: at 0, nl n). */
void cmir__train_augment(cmir__train_job *J, int k, float *x, int nl, int at, int n, float *tmp)
{
    const cmir_model_info *mi = &J->m->info;
    int h = k ? mi->ms_h : mi->pan_h, w = k ? mi->ms_w : mi->pan_w, b = k ? mi->ms_bands : mi->pan_bands;
    size_t per = (size_t)h * w * b, lo = per * (size_t)at, hi = per * (size_t)(at + nl);
    if (h == 1 && w == 1) {
        /* a feature vector (normalised): nothing to rotate; Gaussian noise
         * of deviation feature_noise instead, so that the branch does not
         * learn the training voices' exact values */
        for (size_t i = 0; i < per * (size_t)n; i++) {
            float e = J->p.feature_noise * cmir_rng_normal(J->rng);
            if (i >= lo && i < hi)
                x[i - lo] += e;
        }
        return;
    }
    for (int t = 0; t < n; t++) {
        int s = (int)cmir_rng_below(J->rng, h == w ? 8 : 4);
        if (!s || t < at || t >= at + nl)
            continue;
        float *src = x + per * (size_t)(t - at);
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

void cmir__train_labels_of(cmir__train_job *J, int k, const int64_t *idx, int n, int32_t *lab, float *tg)
{
    int C = J->ai->n_classes;
    uint8_t tmp[CMIR__TRAIN_MAX_LABEL + 1]; /* n_classes <= CMIR__TRAIN_MAX_LABEL */
    if (k && cmir__train_is_speech(J)) {
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
