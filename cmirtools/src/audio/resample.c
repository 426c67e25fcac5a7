/* Resampling to 16 kHz through libsamplerate (SRC_SINC_MEDIUM_QUALITY: 90%
 * passband, 121 dB SNR; see cmir/audio.h for why not FASTEST), with its
 * errors reported as "samplerate: ..." messages. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <samplerate.h>
#include <string.h>

int cmir__audio_resample(const float *x, int64_t n, int rate, const char *name, float **out,
                         int64_t *nout)
{
    SRC_DATA d = {0};
    double ratio = (double)CMIR_AUDIO_RATE / rate;
    int64_t cap = (int64_t)ceil((double)n * ratio) + 64;
    float *r = cmir__malloc(sizeof(float) * (size_t)cap);
    int e;
    if (!r)
        return CMIR_ENOMEM;
    d.data_in = x;
    d.input_frames = (long)n;
    d.data_out = r;
    d.output_frames = (long)cap;
    d.src_ratio = ratio;
    e = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1);
    if (e) {
        /* The error codes are not in the installed header; the message is. */
        int nomem = strstr(src_strerror(e), "alloc") != NULL;
        cmir__free(r);
        return cmir__error(nomem ? CMIR_ENOMEM : CMIR_EINVAL,
                           "samplerate: %s: %s (%d Hz to %d Hz)", name, src_strerror(e), rate,
                           CMIR_AUDIO_RATE);
    }
    if (d.output_frames_gen <= 0) {
        cmir__free(r);
        return cmir__error(CMIR_EFORMAT, "samplerate: %s: no output from %lld frames", name,
                           (long long)n);
    }
    *out = r;
    *nout = d.output_frames_gen;
    return 0;
}
