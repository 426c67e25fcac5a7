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

int cmir__audio_check_params(const cmir_audio_params *p)
{
    if (!(p->max_seconds > 0 && p->max_seconds <= CMIR_AUDIO_MAX_SECONDS))
        return cmir__error(CMIR_EINVAL, "audio: max_seconds %g outside (0, %g]", p->max_seconds,
                           CMIR_AUDIO_MAX_SECONDS);
    if (!(p->trim_db >= -120.0f && p->trim_db <= 0.0f))
        return cmir__error(CMIR_EINVAL, "audio: trim_db %g outside [-120, 0]", p->trim_db);
    if (p->n_mels <= CMIR__AUDIO_NCEP || p->n_mels > 256)
        return cmir__error(CMIR_EINVAL, "audio: n_mels %d outside [%d, 256]", p->n_mels,
                           CMIR__AUDIO_NCEP + 1);
    if (!(p->fmin_hz >= 0 && p->fmax_hz <= CMIR_AUDIO_RATE / 2 && p->fmin_hz < p->fmax_hz))
        return cmir__error(CMIR_EINVAL, "audio: mel range %g-%g Hz not within 0-%d Hz",
                           p->fmin_hz, p->fmax_hz, CMIR_AUDIO_RATE / 2);
    if (!(p->win_ms >= 5.0f && p->win_ms <= 100.0f))
        return cmir__error(CMIR_EINVAL, "audio: win_ms %g outside [5, 100]", p->win_ms);
    if (!(p->hop_ms >= 1.0f && p->hop_ms <= p->win_ms))
        return cmir__error(CMIR_EINVAL, "audio: hop_ms %g outside [1, win_ms]", p->hop_ms);
    if (!(p->range_db >= 10.0f && p->range_db <= 160.0f))
        return cmir__error(CMIR_EINVAL, "audio: range_db %g outside [10, 160]", p->range_db);
    if (p->feature != CMIR_AUDIO_FEATURE_CEPSTRAL && p->feature != CMIR_AUDIO_FEATURE_SEGMENTAL &&
        p->feature != CMIR_AUDIO_FEATURE_SPHINX)
        return cmir__error(CMIR_EINVAL, "audio: unknown feature kind %d", p->feature);
    return 0;
}
