/* The feature extractor handle: periodic Hann window, HTK-mel triangular
 * filterbank, DCT-II matrix and the FFTW plan (created under a lock, since
 * FFTW's planner is not thread safe). */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <pthread.h>

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

static double hz2mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel2hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

static void make_fbank(cmir_audio_extractor *ex)
{
    int M = ex->n_mels, nb = ex->nbins;
    double pts[256 + 2], mlo = hz2mel(ex->p.fmin_hz), mhi = hz2mel(ex->p.fmax_hz);
    for (int m = 0; m < M + 2; m++)
        pts[m] = mel2hz(mlo + (mhi - mlo) * m / (M + 1));
    for (int m = 0; m < M; m++) {
        double lo = pts[m], c = pts[m + 1], hi = pts[m + 2];
        float *w = ex->fbank + (size_t)m * nb;
        int first = nb, last = -1;
        for (int k = 0; k < nb; k++) {
            double f = (double)k * CMIR_AUDIO_RATE / ex->nfft;
            double v = fmin((f - lo) / (c - lo), (hi - f) / (hi - c));
            w[k] = v > 0.0 ? (float)v : 0.0f;
            if (w[k] > 0.0f) {
                first = first < k ? first : k;
                last = k;
            }
        }
        if (last < 0) { /* narrower than a bin: take the bin nearest the centre */
            int k = (int)lround(c * ex->nfft / CMIR_AUDIO_RATE);
            k = k < nb ? k : nb - 1;
            w[k] = 1.0f;
            first = last = k;
        }
        ex->fb_lo[m] = first;
        ex->fb_hi[m] = last + 1;
    }
}

cmir_audio_extractor *cmir_audio_extractor_new(cmir_audio_params p)
{
    cmir_audio_extractor *ex;
    const double pi = 3.14159265358979323846;
    if (cmir__audio_check_params(&p) != 0)
        return NULL;
    if (!(ex = cmir__calloc(1, sizeof *ex)))
        return NULL;
    ex->p = p;
    ex->win = (int)lround(p.win_ms * (CMIR_AUDIO_RATE / 1000));
    ex->hop = (int)lround(p.hop_ms * (CMIR_AUDIO_RATE / 1000));
    for (ex->nfft = 1; ex->nfft < ex->win; ex->nfft <<= 1)
        ;
    ex->nbins = ex->nfft / 2 + 1;
    ex->n_mels = p.n_mels;
    ex->window = cmir__malloc(sizeof(float) * (size_t)ex->win);
    ex->fbank = cmir__malloc(sizeof(float) * (size_t)ex->n_mels * (size_t)ex->nbins);
    ex->fb_lo = cmir__malloc(sizeof(int) * (size_t)ex->n_mels);
    ex->fb_hi = cmir__malloc(sizeof(int) * (size_t)ex->n_mels);
    ex->dct = cmir__malloc(sizeof(float) * CMIR__AUDIO_NCEP * (size_t)ex->n_mels);
    ex->frame = cmir__malloc_aligned(sizeof(float) * (size_t)ex->nfft);
    ex->spec = cmir__malloc_aligned(sizeof(fftwf_complex) * (size_t)ex->nbins);
    ex->power = cmir__malloc(sizeof(float) * (size_t)ex->nbins);
    if (!ex->window || !ex->fbank || !ex->fb_lo || !ex->fb_hi || !ex->dct || !ex->frame ||
        !ex->spec || !ex->power) {
        cmir_audio_extractor_free(ex);
        return NULL;
    }
    for (int i = 0; i < ex->win; i++)
        ex->window[i] = (float)(0.5 - 0.5 * cos(2.0 * pi * i / ex->win));
    make_fbank(ex);
    for (int k = 0; k < CMIR__AUDIO_NCEP; k++)
        for (int m = 0; m < ex->n_mels; m++)
            ex->dct[(size_t)k * ex->n_mels + m] =
                (float)(sqrt(2.0 / ex->n_mels) * cos(pi * (k + 1) * (m + 0.5) / ex->n_mels));
    pthread_mutex_lock(&plan_lock);
    ex->plan = fftwf_plan_dft_r2c_1d(ex->nfft, ex->frame, ex->spec, FFTW_ESTIMATE);
    pthread_mutex_unlock(&plan_lock);
    if (!ex->plan) {
        cmir__error(CMIR_ENOMEM, "audio: FFTW could not plan a %d-point FFT", ex->nfft);
        cmir_audio_extractor_free(ex);
        return NULL;
    }
    if (p.feature == CMIR_AUDIO_FEATURE_SPHINX && !(ex->sphinx = cmir__sphinx_new(&p))) {
        cmir_audio_extractor_free(ex);
        return NULL;
    }
    return ex;
}

const char *cmir_audio_extractor_vocabulary(const cmir_audio_extractor *ex)
{
    return ex ? cmir__sphinx_vocabulary(ex->sphinx) : NULL;
}

void cmir_audio_extractor_free(cmir_audio_extractor *ex)
{
    if (!ex)
        return;
    if (ex->plan) {
        pthread_mutex_lock(&plan_lock);
        fftwf_destroy_plan(ex->plan);
        pthread_mutex_unlock(&plan_lock);
    }
    cmir__free(ex->window);
    cmir__free(ex->fbank);
    cmir__free(ex->fb_lo);
    cmir__free(ex->fb_hi);
    cmir__free(ex->dct);
    cmir__free_aligned(ex->frame);
    cmir__free_aligned(ex->spec);
    cmir__free(ex->power);
    cmir__sphinx_free(ex->sphinx);
    cmir__free(ex);
}

int cmir_audio_extractor_heard(cmir_audio_extractor *ex, const float *x, int64_t n, int *labels, int max,
                               int *n_heard)
{
    if (!ex || !ex->sphinx || !labels || !n_heard || max < 1)
        return cmir__error(CMIR_EINVAL, "cmir_audio_extractor_heard: needs a sphinx extractor and outputs");
    int rc = cmir__audio_check_input(ex, x, n);
    return rc ? rc : cmir__sphinx_heard(ex->sphinx, x, n, labels, max, n_heard);
}
