/* Defaults and validation of cmir_audio_params (the documented ranges of
 * cmir/audio.h). */
#include "audio_internal.h"
#include "../base/internal.h"

#include <math.h>

cmir_audio_params cmir_audio_default_params(void)
{
    cmir_audio_params p;
    p.max_seconds = CMIR_AUDIO_MAX_SECONDS;
    p.trim_db = -40.0f;
    p.n_mels = 64;
    p.fmin_hz = 50.0f;
    p.fmax_hz = 8000.0f;
    p.win_ms = 25.0f;
    p.hop_ms = 10.0f;
    p.range_db = 30.0f;
    p.feature = CMIR_AUDIO_FEATURE_SEGMENTAL;
    p.vocabulary = NULL;
    p.sphinx_hmm = NULL;
    p.sphinx_dict = NULL;
    p.extra_dict = NULL;
    return p;
}

int cmir__audio_check_params(const cmir_audio_params *p) { return cmir_audio_check_params(*p); }

int cmir_audio_check_params(cmir_audio_params q)
{
    const cmir_audio_params *p = &q;
    if (!(p->max_seconds > 0 && p->max_seconds <= CMIR_AUDIO_MAX_SECONDS))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.max_seconds: must be in (0, %g], got %g", CMIR_AUDIO_MAX_SECONDS,
                           p->max_seconds);
    if (!(p->trim_db >= -120.0f && p->trim_db <= 0.0f))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.trim_db: must be in [-120, 0], got %g", (double)p->trim_db);
    if (p->n_mels <= CMIR__AUDIO_NCEP || p->n_mels > 256)
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.n_mels: must be in [%d, 256], got %d",
                           CMIR__AUDIO_NCEP + 1, p->n_mels);
    if (!(p->fmin_hz >= 0 && p->fmin_hz < p->fmax_hz))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.fmin_hz: must be >= 0 and < fmax_hz %g, got %g",
                           (double)p->fmax_hz, (double)p->fmin_hz);
    if (!(p->fmax_hz <= CMIR_AUDIO_RATE / 2))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.fmax_hz: must be <= %d Hz, got %g",
                           CMIR_AUDIO_RATE / 2, (double)p->fmax_hz);
    if (!(p->win_ms >= 5.0f && p->win_ms <= 100.0f))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.win_ms: must be in [5, 100], got %g", (double)p->win_ms);
    if (!(p->hop_ms >= 1.0f && p->hop_ms <= p->win_ms))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.hop_ms: must be in [1, win_ms], got %g", (double)p->hop_ms);
    if (!(p->range_db >= 10.0f && p->range_db <= 160.0f))
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.range_db: must be in [10, 160], got %g", (double)p->range_db);
    if (p->feature != CMIR_AUDIO_FEATURE_CEPSTRAL && p->feature != CMIR_AUDIO_FEATURE_SEGMENTAL &&
        p->feature != CMIR_AUDIO_FEATURE_SPHINX)
        return cmir__error(CMIR_EINVAL, "cmir_audio_params.feature: must be CMIR_AUDIO_FEATURE_CEPSTRAL, _SEGMENTAL or _SPHINX, got %d", p->feature);
    return 0;
}
