/* Internal parts of the audio module (not installed): parameter checks,
 * the conditioning steps shared by file and memory input, and the layout
 * of the feature extractor. */
#ifndef CMIR_AUDIO_INTERNAL_H
#define CMIR_AUDIO_INTERNAL_H

#include "cmir/audio.h"
#include <fftw3.h>

/* 0 or CMIR_EINVAL naming the bad field. */
int cmir__audio_check_params(const cmir_audio_params *p);

/* Refusals of step 3 on a mono signal at `rate` Hz; `name` (the file or
 * "audio") starts the message. 0 or CMIR_EFORMAT. */
int cmir__audio_check_signal(const float *x, int64_t n, int rate, const char *name);

/* Resamples mono x (n samples at `rate` Hz) to CMIR_AUDIO_RATE into a new
 * buffer *out of *nout samples (cmir__free). 0, CMIR_ENOMEM, or CMIR_EFORMAT
 * with a "samplerate: " message. */
int cmir__audio_resample(const float *x, int64_t n, int rate, const char *name, float **out,
                         int64_t *nout);

/* The span [*lo, *hi) kept by silence trimming of x at CMIR_AUDIO_RATE. */
void cmir__audio_trim_span(const float *x, int64_t n, float trim_db, int64_t *lo, int64_t *hi);

/* Steps 3-5 on a mono signal: checks, resampling, trimming. `mono` stays
 * the caller's. */
int cmir__audio_condition(const float *mono, int64_t n, int rate, const cmir_audio_params *p,
                          const char *name, float **out, int64_t *nout);

/* ---- The pocketsphinx feature (sphinx.c) ---- */
typedef struct cmir__sphinx cmir__sphinx;
/* Loads the acoustic model and dictionary of p and builds the grammar of
 * p->vocabulary; NULL with a one-line message naming the problem. */
cmir__sphinx *cmir__sphinx_new(const cmir_audio_params *p);
void cmir__sphinx_free(cmir__sphinx *s);
/* The resolved vocabulary: one label a line, "label<TAB>PHONES" where the
 * pronunciation came from the vocabulary or the extra dictionary. */
const char *cmir__sphinx_vocabulary(const cmir__sphinx *s);
int cmir__sphinx_n_labels(const cmir__sphinx *s);
/* The feature of x (16 kHz); *n_heard = labels on the best path (0: no
 * speech the vocabulary names; feat is then all zero). */
int cmir__sphinx_feature(cmir__sphinx *s, const float *x, int64_t n, float feat[CMIR_AUDIO_FEATURE_DIM],
                         int *n_heard);
/* The labels (0-based, in the order spoken, no repeats) of the best path. */
int cmir__sphinx_heard(cmir__sphinx *s, const float *x, int64_t n, int *labels, int max, int *n_heard);

struct cmir_audio_extractor {
    cmir_audio_params p;
    cmir__sphinx *sphinx; /* CMIR_AUDIO_FEATURE_SPHINX only */
    int win, hop, nfft, nbins, n_mels;
    float *window;        /* [win] periodic Hann */
    float *fbank;         /* [n_mels][nbins] triangular weights */
    int *fb_lo, *fb_hi;   /* nonzero bin range [lo, hi) of each filter */
    float *dct;           /* [32][n_mels], rows c1..c32 */
    float *frame;         /* [nfft] FFT input (aligned) */
    fftwf_complex *spec;  /* [nbins] FFT output (aligned) */
    float *power;         /* [nbins] */
    fftwf_plan plan;
};

#define CMIR__AUDIO_NCEP 32

/* Frames of an n-sample signal (see cmir_audio_extractor_logmel). */
int64_t cmir__audio_n_frames(const cmir_audio_extractor *ex, int64_t n);
/* 0, or CMIR_EINVAL for a NULL, empty, too long or non-finite signal. */
int cmir__audio_check_input(const cmir_audio_extractor *ex, const float *x, int64_t n);
/* The log-mel of x into mel [n_frames][n_mels] (input already checked). */
void cmir__audio_logmel_into(cmir_audio_extractor *ex, const float *x, int64_t n, float *mel);

#endif
