/* Conditioning shared by file and memory input: the refusals (empty, too
 * short, NaN/Inf, silent, clipped or constant), resampling to 16 kHz and
 * trimming of leading and trailing silence; cmir_audio_prepare. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <string.h>

#define TRIM_FRAME 320 /* 20 ms at 16 kHz */
#define TRIM_HOP 160   /* 10 ms */

int cmir__audio_check_signal(const float *x, int64_t n, int rate, const char *name)
{
    float peak = 0.0f;
    int64_t near = 0;
    if (n <= 0)
        return cmir__error(CMIR_EFORMAT, "%s: empty (no audio frames)", name);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return cmir__error(CMIR_EFORMAT, "%s: NaN or infinite sample at frame %lld", name,
                               (long long)i);
        peak = fmaxf(peak, fabsf(x[i]));
    }
    if ((double)n < CMIR_AUDIO_MIN_SECONDS * rate)
        return cmir__error(CMIR_EFORMAT, "%s: too short (%lld frames = %.1f ms, minimum %g ms)",
                           name, (long long)n, 1000.0 * (double)n / rate,
                           1000.0 * CMIR_AUDIO_MIN_SECONDS);
    if (peak < CMIR_AUDIO_SILENT_PEAK)
        return cmir__error(CMIR_EFORMAT, "%s: silent (peak |x| %g, below %g = -100 dBFS)", name,
                           (double)peak, (double)CMIR_AUDIO_SILENT_PEAK);
    for (int64_t i = 0; i < n; i++)
        near += fabsf(x[i]) >= 0.99f * peak;
    if (2 * near > n)
        return cmir__error(CMIR_EFORMAT,
                           "%s: clipped or constant (%.0f%% of the samples within 1%% of the "
                           "peak %g; no waveform left)",
                           name, 100.0 * (double)near / (double)n, (double)peak);
    return 0;
}

void cmir__audio_trim_span(const float *x, int64_t n, float trim_db, int64_t *lo, int64_t *hi)
{
    int64_t nfr = n <= TRIM_FRAME ? 1 : 1 + (n - TRIM_FRAME + TRIM_HOP - 1) / TRIM_HOP;
    double emax = 0.0, thr;
    int64_t first = -1, last = -1;
    *lo = 0;
    *hi = n;
    if (trim_db >= 0.0f)
        return;
    for (int pass = 0; pass < 2; pass++) {
        thr = emax * pow(10.0, trim_db / 10.0);
        for (int64_t t = 0; t < nfr; t++) {
            int64_t a = t * TRIM_HOP, b = a + TRIM_FRAME < n ? a + TRIM_FRAME : n;
            double e = 0.0;
            for (int64_t i = a; i < b; i++)
                e += (double)x[i] * x[i];
            e /= TRIM_FRAME; /* short last frames count their missing part as silence */
            if (pass == 0) {
                emax = e > emax ? e : emax;
            } else if (e >= thr && e > 0.0) {
                if (first < 0)
                    first = t;
                last = t;
            }
        }
    }
    if (first < 0)
        return;
    *lo = first * TRIM_HOP;
    *hi = last * TRIM_HOP + TRIM_FRAME < n ? last * TRIM_HOP + TRIM_FRAME : n;
}

int cmir__audio_condition(const float *mono, int64_t n, int rate, const cmir_audio_params *p,
                          const char *name, float **out, int64_t *nout)
{
    float *r;
    int64_t nr, lo, hi;
    int rc = cmir__audio_check_signal(mono, n, rate, name);
    if (rc)
        return rc;
    if (rate == CMIR_AUDIO_RATE) {
        nr = n;
        r = cmir__malloc(sizeof(float) * (size_t)n);
        if (!r)
            return CMIR_ENOMEM;
        memcpy(r, mono, sizeof(float) * (size_t)n);
    } else if ((rc = cmir__audio_resample(mono, n, rate, name, &r, &nr)) != 0) {
        return rc;
    }
    cmir__audio_trim_span(r, nr, p->trim_db, &lo, &hi);
    if (lo > 0)
        memmove(r, r + lo, sizeof(float) * (size_t)(hi - lo));
    *out = r;
    *nout = hi - lo;
    return 0;
}

int cmir_audio_prepare(const float *interleaved, int64_t frames, int channels, int rate,
                       cmir_audio_params p, float **samples, int64_t *n)
{
    float *mono;
    int rc;
    if (samples)
        *samples = NULL;
    if (n)
        *n = 0;
    if (!samples || !n || (!interleaved && frames > 0) || frames < 0)
        return cmir__error(CMIR_EINVAL, "audio: NULL argument or negative frame count");
    if ((rc = cmir__audio_check_params(&p)) != 0)
        return rc;
    if (channels < 1 || channels > CMIR_AUDIO_MAX_CHANNELS)
        return cmir__error(CMIR_EUNSUPPORTED, "audio: %d channels (accepted: 1 to %d)", channels,
                           CMIR_AUDIO_MAX_CHANNELS);
    if (rate < CMIR_AUDIO_MIN_RATE || rate > CMIR_AUDIO_MAX_RATE)
        return cmir__error(CMIR_EUNSUPPORTED, "audio: sample rate %d Hz (accepted: %d to %d Hz)",
                           rate, CMIR_AUDIO_MIN_RATE, CMIR_AUDIO_MAX_RATE);
    if ((double)frames > p.max_seconds * rate)
        return cmir__error(CMIR_EUNSUPPORTED, "audio: %lld frames = %.1f s, above the limit of %g s",
                           (long long)frames, (double)frames / rate, p.max_seconds);
    mono = cmir__malloc(sizeof(float) * (size_t)(frames ? frames : 1));
    if (!mono)
        return CMIR_ENOMEM;
    for (int64_t i = 0; i < frames; i++) {
        float s = 0.0f;
        for (int c = 0; c < channels; c++)
            s += interleaved[i * channels + c];
        mono[i] = s / (float)channels;
    }
    rc = cmir__audio_condition(mono, frames, rate, &p, "audio", samples, n);
    cmir__free(mono);
    return rc;
}
