/* Log-mel spectrogram: framing, windowing, real FFT (FFTW3 single
 * precision), mel weighting and the log with a floor range_db below the
 * clip's largest mel value. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <string.h>

int64_t cmir__audio_n_frames(const cmir_audio_extractor *ex, int64_t n)
{
    return n >= ex->win ? 1 + (n - ex->win) / ex->hop : 1;
}

int cmir__audio_check_input(const cmir_audio_extractor *ex, const float *x, int64_t n)
{
    if (!ex || !x || n < 1)
        return cmir__error(CMIR_EINVAL, "audio: NULL extractor or signal, or no samples");
    if ((double)n > ex->p.max_seconds * CMIR_AUDIO_RATE)
        return cmir__error(CMIR_EINVAL, "audio: %lld samples = %.1f s, above the limit of %g s",
                           (long long)n, (double)n / CMIR_AUDIO_RATE, ex->p.max_seconds);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return cmir__error(CMIR_EINVAL, "audio: NaN or infinite sample at %lld", (long long)i);
    return 0;
}

void cmir__audio_logmel_into(cmir_audio_extractor *ex, const float *x, int64_t n, float *mel)
{
    int64_t nf = cmir__audio_n_frames(ex, n);
    int M = ex->n_mels;
    float vmax = 0.0f, floor_;
    for (int64_t t = 0; t < nf; t++) {
        int64_t a = t * ex->hop;
        memset(ex->frame, 0, sizeof(float) * (size_t)ex->nfft);
        for (int i = 0; i < ex->win && a + i < n; i++)
            ex->frame[i] = x[a + i] * ex->window[i];
        fftwf_execute(ex->plan);
        for (int k = 0; k < ex->nbins; k++)
            ex->power[k] = ex->spec[k][0] * ex->spec[k][0] + ex->spec[k][1] * ex->spec[k][1];
        for (int m = 0; m < M; m++) {
            const float *w = ex->fbank + (size_t)m * ex->nbins;
            float s = 0.0f;
            for (int k = ex->fb_lo[m]; k < ex->fb_hi[m]; k++)
                s += w[k] * ex->power[k];
            mel[t * M + m] = s;
            vmax = s > vmax ? s : vmax;
        }
    }
    floor_ = vmax * powf(10.0f, -ex->p.range_db / 10.0f);
    floor_ = floor_ > 1e-30f ? floor_ : 1e-30f;
    for (int64_t i = 0; i < nf * M; i++)
        mel[i] = logf(mel[i] > floor_ ? mel[i] : floor_);
}

int cmir_audio_extractor_logmel(cmir_audio_extractor *ex, const float *x, int64_t n,
                                float **mel, int64_t *n_frames)
{
    int64_t nf;
    int rc;
    if (mel)
        *mel = NULL;
    if (n_frames)
        *n_frames = 0;
    if (!mel || !n_frames)
        return cmir__error(CMIR_EINVAL, "audio: NULL output");
    if ((rc = cmir__audio_check_input(ex, x, n)) != 0)
        return rc;
    nf = cmir__audio_n_frames(ex, n);
    if (!(*mel = cmir__malloc(sizeof(float) * (size_t)nf * (size_t)ex->n_mels)))
        return CMIR_ENOMEM;
    cmir__audio_logmel_into(ex, x, n, *mel);
    *n_frames = nf;
    return 0;
}

int cmir_audio_logmel(const float *x, int64_t n, cmir_audio_params p, float **mel,
                      int64_t *n_frames)
{
    cmir_audio_extractor *ex;
    int rc;
    if (mel)
        *mel = NULL;
    if (n_frames)
        *n_frames = 0;
    if (!(ex = cmir_audio_extractor_new(p)))
        return cmir__audio_check_params(&p) ? CMIR_EINVAL : CMIR_ENOMEM;
    rc = cmir_audio_extractor_logmel(ex, x, n, mel, n_frames);
    cmir_audio_extractor_free(ex);
    return rc;
}
