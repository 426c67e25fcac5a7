/* The clip features: pooled cepstral (MFCCs c1..c32 of the log-mel, their
 * deltas, mean and standard deviation of both over the frames) and
 * segmental (mean c1..c16 over 8 equal spans of the frames), 128 numbers
 * each; the one-shot and file forms. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NC CMIR__AUDIO_NCEP

/* Regression deltas over +-2 frames with the edge frames replicated:
 * d[t] = (c[t+1] - c[t-1] + 2 (c[t+2] - c[t-2])) / 10. */
static void deltas(const float *c, int64_t nf, float *d)
{
    for (int64_t t = 0; t < nf; t++)
        for (int k = 0; k < NC; k++) {
            float s = 0.0f;
            for (int64_t j = 1; j <= 2; j++) {
                int64_t a = t + j < nf ? t + j : nf - 1, b = t - j >= 0 ? t - j : 0;
                s += (float)j * (c[a * NC + k] - c[b * NC + k]);
            }
            d[t * NC + k] = s / 10.0f;
        }
}

/* Mean and population standard deviation of column k of v [nf][NC]. */
static void pool(const float *v, int64_t nf, int k, float *mean, float *sd)
{
    double s = 0.0, q = 0.0, m;
    for (int64_t t = 0; t < nf; t++)
        s += v[t * NC + k];
    m = s / (double)nf;
    for (int64_t t = 0; t < nf; t++)
        q += (v[t * NC + k] - m) * (v[t * NC + k] - m);
    *mean = (float)m;
    *sd = (float)sqrt(q / (double)nf);
}

/* The segmental feature: the frames cut into SEG equal spans [nf s / SEG,
 * nf (s + 1) / SEG) (a span shorter than one frame takes the frame it
 * starts in), feat[SEG_NC s + k] = mean of c_{k+1} over span s. Spans of
 * equal energy (frames weighted by their power, or by their level above a
 * floor) were measured too: they are more robust to 8-bit sources, but
 * name held-out voices' words worse (0.73 and 0.91-0.93 against 0.96 on
 * the corpus of cmir/audio.h), as quiet consonants lose their weight. */
#define SEG 8
#define SEG_NC (CMIR_AUDIO_FEATURE_DIM / SEG)
static int segments(const float *c, int64_t nf, float *feat)
{
    for (int s = 0; s < SEG; s++) {
        int64_t a = nf * s / SEG, b = nf * (s + 1) / SEG;
        if (a > nf - 1)
            a = nf - 1;
        if (b <= a)
            b = a + 1;
        for (int k = 0; k < SEG_NC; k++) {
            double sum = 0.0;
            for (int64_t t = a; t < b; t++)
                sum += c[t * NC + k];
            feat[SEG_NC * s + k] = (float)(sum / (double)(b - a));
        }
    }
    return 0;
}

int cmir_audio_extractor_feature(cmir_audio_extractor *ex, const float *x, int64_t n,
                                 float feat[CMIR_AUDIO_FEATURE_DIM])
{
    int64_t nf;
    float *mel, *cep;
    int rc, M;
    if (!feat)
        return cmir__error(CMIR_EINVAL, "audio: NULL feature output");
    if ((rc = cmir__audio_check_input(ex, x, n)) != 0)
        return rc;
    if (ex->sphinx) {
        int heard;
        float f[CMIR_AUDIO_FEATURE_DIM];
        if ((rc = cmir__sphinx_feature(ex->sphinx, x, n, f, &heard)) != 0)
            return rc;
        if (!heard)
            return cmir__error(CMIR_EFORMAT, "audio: no speech (nothing in the clip sounds like a label "
                               "of the vocabulary)");
        memcpy(feat, f, sizeof f);
        return 0;
    }
    nf = cmir__audio_n_frames(ex, n);
    M = ex->n_mels;
    mel = cmir__malloc(sizeof(float) * (size_t)nf * (size_t)M);
    cep = cmir__malloc(sizeof(float) * (size_t)nf * 2 * NC); /* MFCCs, then deltas */
    if (!mel || !cep) {
        cmir__free(mel);
        cmir__free(cep);
        return CMIR_ENOMEM;
    }
    cmir__audio_logmel_into(ex, x, n, mel);
    for (int64_t t = 0; t < nf; t++)
        for (int k = 0; k < NC; k++) {
            const float *d = ex->dct + (size_t)k * M, *l = mel + t * M;
            float s = 0.0f;
            for (int m = 0; m < M; m++)
                s += d[m] * l[m];
            cep[t * NC + k] = s;
        }
    if (ex->p.feature == CMIR_AUDIO_FEATURE_SEGMENTAL) {
        rc = segments(cep, nf, feat);
    } else {
        deltas(cep, nf, cep + nf * NC);
        for (int k = 0; k < NC; k++) {
            pool(cep, nf, k, &feat[k], &feat[NC + k]);
            pool(cep + nf * NC, nf, k, &feat[2 * NC + k], &feat[3 * NC + k]);
        }
    }
    cmir__free(mel);
    cmir__free(cep);
    return rc;
}

int cmir_audio_features(const float *x, int64_t n, cmir_audio_params p,
                        float feat[CMIR_AUDIO_FEATURE_DIM])
{
    cmir_audio_extractor *ex = cmir_audio_extractor_new(p);
    int rc;
    if (!ex)
        return cmir__failed(CMIR_ENOMEM);
    rc = cmir_audio_extractor_feature(ex, x, n, feat);
    cmir_audio_extractor_free(ex);
    return rc;
}

int cmir_audio_clip_feature(const char *path, cmir_audio_params p,
                            float feat[CMIR_AUDIO_FEATURE_DIM])
{
    float *x = NULL;
    int64_t n = 0;
    int rc = cmir_audio_load(path, p, &x, &n);
    if (rc)
        return rc;
    rc = cmir_audio_features(x, n, p, feat);
    cmir__free(x);
    if (rc == CMIR_EFORMAT && !strncmp(cmir_last_error(), "audio: ", 7)) {
        char msg[512]; /* the message names the file */
        snprintf(msg, sizeof msg, "%s", cmir_last_error() + 7);
        cmir__error(rc, "%s: %s", path, msg);
    }
    return rc;
}
